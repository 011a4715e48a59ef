"""Export a YOLOHead detector to ONNX: raw decoded outputs, decoding + NMS in one graph, or the
end-to-end (NMS-free) detections of a YOLOE2EHead (YOLO26).

Three kinds of file (``postprocess``):

- ``'none'``: inputs ``images`` (B, 3, H, W) (normalised as the model's data
  preprocessor does: ``(pixel - mean) / std``, RGB when ``bgr_to_rgb``);
  outputs ``boxes`` (B, A, 4) float32 (x1, y1, x2, y2) in pixels of the
  network input and ``scores`` (B, A, C) float32 per-class sigmoid scores,
  A = sum over the strides s of (H / s) * (W / s) priors (8400 at 640 px),
  from :meth:`YOLOHead.decode_dense` (the head's own priors, DFL and box
  coder).
- ``'nms'``: the same network followed by the head's test config as ONNX ops
  (:func:`append_nms`): ``multi_label`` (or the best class per prior),
  ``nms_pre`` (top-k over all (prior, class) scores), class-aware
  ``NonMaxSuppression`` with ``iou_threshold`` and ``score_thr``, then the
  ``max_per_img`` = K best over all classes. Outputs, in the layout of
  TensorRT's EfficientNMS plugin and the reference's end-to-end exports:
  ``num_dets`` (B, 1) int32, ``boxes`` (B, K, 4) float32 (input pixels),
  ``scores`` (B, K) float32, ``labels`` (B, K) int32, each image's
  detections first by descending score, then padding (boxes 0, scores 0,
  labels -1) after ``num_dets``.
- ``'e2e'`` (a :class:`YOLOE2EHead` with ``test_cfg.end2end=True``, YOLO26): the
  backbone, neck and one-to-one branch only, decoded (``anchor -/+ dist * stride``,
  sigmoid scores) and reduced by the reference's two-stage top-k
  (:func:`topk_detections`), no NMS op: one output ``dets`` (B, K, 6) float32 =
  x1, y1, x2, y2 (network-input pixels), score, class index (as a float), by
  descending score, K = min(``max_per_img``, A) (300; the metadata's ``max_det``).
  No score threshold in the graph: the caller keeps ``score > score_thr``. The
  reference's ``format=onnx, nms=False`` file (``output0``).

``'none'`` and ``'nms'`` of a YOLOE2EHead need ``test_cfg.end2end=False`` (the
one-to-many branch, as YOLO11's head); ``'e2e'`` needs ``end2end=True``: the file
always computes what ``tools/test.py`` runs with the same config. An end-to-end
model's detections never go through NMS (the reference refuses ``nms=True`` for
end-to-end models): :func:`add_nms` / :func:`raw_to_nms` refuse ``'e2e'`` files.

BatchNorm is fused into the preceding convolutions (mmcv's ``fuse_conv_bn``)
and the fused model is checked against the unfused one before export. The
file carries :data:`METADATA_KEY` metadata (JSON): classes, input size,
mean/std, letterbox pad value, output layout, test config and the source
config, which :mod:`.onnx_runtime` and ``tools/infer.py`` read.

Follows the reference's ONNX export (Ultralytics ``Exporter.export_onnx``:
BN fusion, ``dynamic``, ``half``, ``simplify``, ``nms``) with torch's ONNX
exporter (``torch.onnx.export(dynamo=True)``) and onnxslim as simplifier.
"""
import copy
import json
import os
import os.path as osp
import re
from typing import Dict, Optional, Sequence, Tuple

import torch
from torch import Tensor, nn

from ..dense_heads.yolo_head import YOLOHead

METADATA_KEY = 'convnextv2_yolo'
METADATA_VERSION = 1
POSTPROCESS = ('none', 'nms', 'e2e')
# the test pipeline the ONNX Runtime path re-creates from the metadata
_PIPELINE_TYPES = {'LoadImageFromFile', 'mmdet.LoadImageFromFile', 'LetterResize', 'LoadAnnotations',
                   'mmdet.LoadAnnotations', 'PackDetInputs', 'mmdet.PackDetInputs'}
_FUSE_ATOL = 1e-3  # px / score: fusion changes float rounding only


class ExportError(ValueError):
    """The model, checkpoint or an option cannot be exported (the message says why)."""


class DenseOutputs(nn.Module):
    """The detector as the raw ONNX graph: images -> (boxes, scores) of every prior.

    Args:
        detector (nn.Module): A built mmdet detector with ``extract_feat`` and a
            :class:`YOLOHead` ``bbox_head``.

    Forward:
        images (Tensor): (B, 3, H, W) normalised images, H and W multiples of
            the largest stride.

    Returns:
        tuple[Tensor, Tensor]: boxes (B, A, 4) and scores (B, A, C), float32
        (see :meth:`YOLOHead.decode_dense`).
    """

    def __init__(self, detector: nn.Module) -> None:
        super().__init__()
        self.detector = detector

    def forward(self, images: Tensor) -> Tuple[Tensor, Tensor]:
        head = self.detector.bbox_head
        # YOLOHead's forward: the one-to-many branch only, also for a YOLOE2EHead
        cls_scores, bbox_dists = YOLOHead.forward(head, self.detector.extract_feat(images))
        return head.decode_dense(cls_scores, bbox_dists)


class EndToEndOutputs(nn.Module):
    """A YOLOE2EHead detector as the end-to-end ONNX graph: images -> (B, K, 6) detections, no NMS.

    Only the one-to-one branch runs (the reference's fused end-to-end model drops the one-to-many
    branch); its outputs are decoded and reduced as :meth:`YOLOE2EHead.predict_dense` does.

    Args:
        detector (nn.Module): A built mmdet detector with a :class:`YOLOE2EHead` ``bbox_head``.
        max_det (int): Detections per image (the test config's ``max_per_img``).

    Forward:
        images (Tensor): (B, 3, H, W) normalised images.

    Returns:
        Tensor: (B, min(max_det, A), 6) = x1, y1, x2, y2, score, class (float32).
    """

    def __init__(self, detector: nn.Module, max_det: int = 300) -> None:
        super().__init__()
        self.detector = detector
        self.max_det = int(max_det)

    def dense(self, images: Tensor) -> Tuple[Tensor, Tensor]:
        """The one-to-one branch decoded for every prior: boxes (B, A, 4), scores (B, A, C)."""
        head = self.detector.bbox_head
        feats = self.detector.extract_feat(images)
        cls_scores = [cls(f) for f, cls in zip(feats, head.one2one_cls_convs)]
        bbox_preds = [reg(f) for f, reg in zip(feats, head.one2one_reg_convs)]
        return head.decode_dense(cls_scores, bbox_preds)

    def forward(self, images: Tensor) -> Tensor:
        from ..dense_heads.yolo_e2e_head import topk_detections
        boxes, scores = self.dense(images)
        return topk_detections(boxes, scores, self.max_det)


# ------------------------------------------------------------------- model
def _state_dict_of(checkpoint: str) -> Tuple[Dict[str, Tensor], dict]:
    from ..utils.checkpoint_io import safe_torch_load
    ckpt = safe_torch_load(checkpoint, map_location='cpu')
    if not isinstance(ckpt, dict):
        raise ExportError(f'{checkpoint}: not a checkpoint (a {type(ckpt).__name__}, expected a dict with '
                          "'state_dict')")
    state = ckpt.get('state_dict', ckpt)
    state = {re.sub(r'^module\.', '', k): v for k, v in state.items() if isinstance(v, Tensor)}
    meta = ckpt.get('meta') if isinstance(ckpt.get('meta'), dict) else {}
    return state, meta


def check_state_dict(model: nn.Module, state: Dict[str, Tensor], checkpoint: str = 'checkpoint') -> None:
    """Refuse a state dict that does not fit ``model`` exactly, naming the first mismatched key.

    Keys are compared in the model's order (missing or of another shape), then
    the checkpoint's keys the model lacks.

    Raises:
        ExportError: ``'<checkpoint> does not fit the config: first mismatched key <key>: <why>'``.
    """
    own = model.state_dict()
    problems = []
    for key, value in own.items():
        if key not in state:
            problems.append(f'{key}: missing in the checkpoint')
        elif tuple(state[key].shape) != tuple(value.shape):
            problems.append(f'{key}: shape {tuple(state[key].shape)} in the checkpoint, '
                            f'{tuple(value.shape)} in the model built from the config')
    problems += [f'{key}: in the checkpoint, not in the model' for key in state if key not in own]
    if problems:
        raise ExportError(f'{checkpoint} does not fit the config: first mismatched key {problems[0]} '
                          f'({len(problems)} mismatched key(s) in all; was it trained with this config, '
                          'the same --cfg-options and --data?)')


def load_detector(cfg, checkpoint: str) -> Tuple[nn.Module, Tuple[str, ...]]:
    """Build the config's detector on the CPU, load ``checkpoint`` strictly, name its classes.

    ``num_classes`` follows the checkpoint's ``meta.dataset_meta.classes`` when
    it names classes; the backbone's ``init_cfg`` is dropped (the checkpoint
    holds every weight; nothing is downloaded), and so is ``train_cfg`` (no
    assigner is built).

    Args:
        cfg (mmengine.Config): The model config (with --cfg-options applied).
        checkpoint (str): Path of an mmengine checkpoint (or a plain state dict).

    Returns:
        tuple: the detector in eval mode, and its class names (index = label).

    Raises:
        ExportError: the head is not a YOLOHead, or the checkpoint does not fit
            (first mismatched key).
        FileNotFoundError, CheckpointLoadError: as ``utils.checkpoint_io.safe_torch_load``.
    """
    from mmdet.registry import MODELS
    from mmengine.registry import init_default_scope

    from ..datasets.data_overrides import inner_dataset
    from ..dense_heads.yolo_head import YOLOHead
    from ..utils import resolve_class_names
    state, meta = _state_dict_of(checkpoint)
    model_cfg = copy.deepcopy(cfg.model)
    ckpt_classes = (meta.get('dataset_meta') or {}).get('classes')
    head_cfg = model_cfg.get('bbox_head') or {}
    if ckpt_classes and head_cfg.get('num_classes') != len(ckpt_classes):
        print(f'num_classes: {len(ckpt_classes)} from the checkpoint\'s meta.dataset_meta.classes '
              f'(the config says {head_cfg.get("num_classes")})')
        head_cfg['num_classes'] = len(ckpt_classes)
    if isinstance(model_cfg.get('backbone'), dict):
        model_cfg.backbone.init_cfg = None
    model_cfg['train_cfg'] = None  # inference only: no assigner
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    model = MODELS.build(model_cfg)
    if not isinstance(getattr(model, 'bbox_head', None), YOLOHead):
        raise ExportError(f'only detectors with a YOLOHead are exported, this config builds '
                          f'{type(model).__name__} with {type(getattr(model, "bbox_head", None)).__name__}')
    check_state_dict(model, state, checkpoint)
    model.load_state_dict(state, strict=True)
    dataset = inner_dataset(cfg.get('test_dataloader')) or {}
    config_classes = (dataset.get('metainfo') or {}).get('classes')
    names, source = resolve_class_names(meta, config_classes, model.bbox_head.num_classes)
    print(f'classes ({source}): {", ".join(names)}')
    return model.eval(), tuple(names)


def fuse_batchnorm(model: nn.Module, example: Tensor) -> nn.Module:
    """Fuse every BatchNorm into its convolution (mmcv's ``fuse_conv_bn``), checked on ``example``.

    Args:
        model (nn.Module): A :class:`DenseOutputs` or :class:`EndToEndOutputs` (whose dense,
            pre-top-k outputs are compared: near-tied scores may swap places in a top-k) in eval
            mode (modified in place).
        example (Tensor): (B, 3, H, W) input for the check.

    Returns:
        nn.Module: ``model``, with no BatchNorm left.

    Raises:
        ExportError: the fused model's outputs differ from the unfused one's by
            more than 1e-3 (a BatchNorm that does not follow its sibling conv),
            or a BatchNorm could not be fused.
    """
    from mmcv.cnn import fuse_conv_bn
    run = getattr(model, 'dense', model)
    with torch.no_grad():
        before = run(example)
        fuse_conv_bn(model)
        after = run(example)
    left = [n for n, m in model.named_modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if left:
        raise ExportError(f'BatchNorm layers not preceded by a convolution cannot be fused: {left[:5]}')
    for name, a, b in zip(('boxes', 'scores'), before, after):
        err = (a - b).abs().max().item() if a.numel() else 0.0
        if not err <= _FUSE_ATOL * max(1.0, a.abs().max().item()):
            raise ExportError(f'fusing BatchNorm into the convolutions changed the {name} by {err:.3g}: a '
                              'BatchNorm does not belong to the convolution before it; not exported')
    return model


# -------------------------------------------------------------------- checks
def check_test_cfg(test_cfg: dict, postprocess: str) -> dict:
    """The head's test config as the ``nms`` graph applies it, or the reason it cannot.

    Returns:
        dict: ``score_thr``, ``nms_pre``, ``iou_threshold``, ``max_per_img``,
        ``multi_label``; for ``postprocess='e2e'`` ``end2end`` (True), ``score_thr``
        and ``max_per_img`` only (the file has no NMS).

    Raises:
        ExportError: soft-NMS, class-agnostic NMS, ``offset=1``, a non-positive
            ``max_per_img`` or an unknown NMS key with ``postprocess='nms'``.
    """
    cfg = dict(test_cfg or {})
    if postprocess == 'e2e':
        out = dict(end2end=True, score_thr=float(cfg.get('score_thr', 0.001)),
                   max_per_img=int(cfg.get('max_per_img', 300)))
        if out['max_per_img'] <= 0:
            raise ExportError(f"max_per_img={out['max_per_img']}: the end-to-end graph keeps a fixed K > 0")
        return out
    nms = dict(cfg.get('nms') or {})
    out = dict(score_thr=float(cfg.get('score_thr', 0.001)), nms_pre=int(cfg.get('nms_pre', 30000)),
               iou_threshold=float(nms.get('iou_threshold', 0.7)), max_per_img=int(cfg.get('max_per_img', 300)),
               multi_label=bool(cfg.get('multi_label', True)))
    if postprocess != 'nms':
        return out
    why = []
    if nms.get('type', 'nms') != 'nms':
        why.append(f"nms type {nms.get('type')!r} (ONNX NonMaxSuppression is plain NMS)")
    if nms.get('class_agnostic', False):
        why.append('class_agnostic=True (the graph runs class-aware NonMaxSuppression)')
    if nms.get('offset', 0):
        why.append(f"offset={nms.get('offset')} (ONNX NonMaxSuppression has no +1 box sides)")
    if 'iou_threshold' not in nms:
        why.append("nms without 'iou_threshold'")
    unknown = set(nms) - {'type', 'iou_threshold', 'offset', 'class_agnostic', 'split_thr', 'score_threshold',
                          'max_num'}
    if unknown:
        why.append(f'nms keys {sorted(unknown)}')
    if float(nms.get('score_threshold', 0)) > out['score_thr']:
        why.append('nms.score_threshold above score_thr')
    if out['max_per_img'] <= 0:
        why.append(f"max_per_img={out['max_per_img']} (the graph needs a fixed K > 0)")
    if 0 < int(nms.get('max_num', -1)) < out['max_per_img']:
        out['max_per_img'] = int(nms['max_num'])
    if why:
        raise ExportError('--postprocess nms cannot export this test_cfg: ' + '; '.join(why) +
                          '; export --postprocess none and run the NMS outside the graph')
    return out


def _letterbox_of(cfg) -> dict:
    """Letterbox size/pad of the config's test pipeline, refusing other transforms."""
    from ..datasets.data_overrides import inner_dataset
    dataset = inner_dataset(cfg.get('test_dataloader')) or {}
    pipeline = dataset.get('pipeline') or []
    types = [t.get('type') for t in pipeline]
    if not any(str(t).endswith('LetterResize') for t in types):
        raise ExportError(f'the test pipeline {types} has no LetterResize: the exported file letterboxes')
    others = [t for t in types if t not in _PIPELINE_TYPES]
    if others:
        raise ExportError(f'the test pipeline has transforms the ONNX Runtime path does not re-create: {others} '
                          '(it runs LoadImageFromFile -> LetterResize -> PackDetInputs)')
    letter = next(t for t in pipeline if str(t.get('type')).endswith('LetterResize'))
    pad = letter.get('pad_val', 114)
    pad = pad['img'] if isinstance(pad, dict) else pad
    scale = letter['scale']
    scale = (scale, scale) if isinstance(scale, int) else tuple(scale)
    return dict(scale=[int(scale[0]), int(scale[1])], pad_val=pad,
                allow_scale_up=bool(letter.get('allow_scale_up', True)))


def _preprocessor_of(model: nn.Module) -> dict:
    pre = model.data_preprocessor
    mean = getattr(pre, 'mean', None)
    std = getattr(pre, 'std', None)
    return dict(mean=[0.0] * 3 if mean is None else mean.flatten().tolist(),
                std=[1.0] * 3 if std is None else std.flatten().tolist(),
                bgr_to_rgb=bool(getattr(pre, '_channel_conversion', False)),
                pad_size_divisor=int(getattr(pre, 'pad_size_divisor', 1)),
                pad_value=float(getattr(pre, 'pad_value', 0)))


# -------------------------------------------------------------------- NMS graph
def append_nms(model, test: dict) -> None:
    """Turn a raw file (outputs ``boxes`` (B, A, 4), ``scores`` (B, A, C)) into an ``nms`` file.

    The graph's outputs become ``num_dets`` (B, 1) int32, ``boxes`` (B, K, 4)
    float32, ``scores`` (B, K) float32, ``labels`` (B, K) int32 with
    K = ``test['max_per_img']`` (layout in the module doc). Steps, as
    :meth:`YOLOHead.predict_by_feat` with ``multiclass_nms``:

    1. scores (B, A, C) -> (B, C, A); without ``multi_label`` only each prior's
       best class (first on ties, as ``torch.max``) keeps its score;
    2. ``nms_pre`` > 0: only the ``nms_pre`` best (prior, class) scores of each
       image keep theirs (``TopK`` + ``ScatterElements``);
    3. ``NonMaxSuppression`` per image and class: scores > ``score_thr``,
       IoU > ``iou_threshold`` suppressed, at most K per class;
    4. the K best survivors of each image over all classes (``ScatterND`` into
       a -1 map, ``TopK``), padded.

    Args:
        model (onnx.ModelProto): Exported raw model (opset >= 13), modified in place.
        test (dict): :func:`check_test_cfg`'s output.
    """
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper
    graph = model.graph
    if [o.name for o in graph.output] == list(output_names('e2e')):
        raise ExportError(_E2E_NO_NMS)
    if [o.name for o in graph.output] != ['boxes', 'scores']:
        raise ExportError('append_nms needs a raw file with outputs boxes, scores; got '
                          f'{[o.name for o in graph.output]}')
    _free_names(graph, {'boxes', 'scores', 'num_dets', 'labels'})  # the raw outputs become raw/boxes, raw/scores
    boxes, scores = 'raw/boxes', 'raw/scores'
    nodes, inits = [], []

    def const(name, value, dtype):
        inits.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), 'nms/' + name))
        return 'nms/' + name

    def node(op, inputs, n_out=1, **attrs):
        name = f'nms/{op}_{len(nodes)}'
        outs = [f'{name}:{i}' for i in range(n_out)]
        nodes.append(helper.make_node(op, inputs, outs, name=name, **attrs))
        return outs[0] if n_out == 1 else outs

    k = const('k', [test['max_per_img']], np.int64)
    zero_f = const('zero_f', 0.0, np.float32)
    half_neg = const('half_neg', -0.5, np.float32)
    i0, i1, i2 = const('i0', [0], np.int64), const('i1', [1], np.int64), const('i2', [2], np.int64)
    scores_t = node('Transpose', [scores], perm=[0, 2, 1])  # (B, C, A)
    shape_sc = node('Shape', [scores_t])  # [B, C, A]
    b_dim = node('Slice', [shape_sc, i0, i1])
    a_dim = node('Slice', [shape_sc, i2, const('i3', [3], np.int64)])
    if not test['multi_label']:
        best = node('ArgMax', [scores_t], axis=1, keepdims=1)  # (B, 1, A)
        classes = node('Range', [const('r0', 0, np.int64), node('Squeeze', [node('Slice', [shape_sc, i1, i2]), i0]),
                                 const('r1', 1, np.int64)])
        classes = node('Unsqueeze', [classes, const('ax02', [0, 2], np.int64)])  # (1, C, 1)
        scores_t = node('Where', [node('Equal', [classes, best]), scores_t, zero_f])
    flat_shape = const('flat_shape', [0, -1], np.int64)
    flat = node('Reshape', [scores_t, flat_shape])  # (B, C*A)
    if test['nms_pre'] > 0:
        n = node('Slice', [node('Shape', [flat]), i1, i2])
        top_v, top_i = node('TopK', [flat, node('Min', [n, const('nms_pre', [test['nms_pre']], np.int64)])], 2,
                            axis=1)
        zeros = node('ConstantOfShape', [node('Shape', [flat])],
                     value=helper.make_tensor('v', TensorProto.FLOAT, [1], [0.0]))
        flat = node('ScatterElements', [zeros, top_i, top_v], axis=1)
        scores_t = node('Reshape', [flat, shape_sc])
    sel = node('NonMaxSuppression', [boxes, scores_t, k, const('iou', [test['iou_threshold']], np.float32),
                                     const('score_thr', [test['score_thr']], np.float32)], center_point_box=0)
    sel_b = node('Gather', [sel, i0], axis=1)  # (N, 1)
    sel_c = node('Gather', [sel, i1], axis=1)
    sel_a = node('Gather', [sel, i2], axis=1)
    sel_f = node('Add', [node('Mul', [sel_c, a_dim]), sel_a])  # (N, 1): class * A + prior
    bf = node('Concat', [sel_b, sel_f], axis=1)  # (N, 2)
    kept = node('ScatterND', [node('ConstantOfShape', [node('Shape', [flat])],
                                   value=helper.make_tensor('v', TensorProto.FLOAT, [1], [-1.0])),
                              bf, node('GatherND', [flat, bf])])  # (B, C*A): survivors' scores, else -1
    pad = node('ConstantOfShape', [node('Concat', [b_dim, k], axis=0)],
               value=helper.make_tensor('v', TensorProto.FLOAT, [1], [-1.0]))
    top_v, top_i = node('TopK', [node('Concat', [kept, pad], axis=1), k], 2, axis=1, largest=1, sorted=1)
    valid = node('Greater', [top_v, half_neg])  # (B, K)
    num_dets = node('ReduceSum', [node('Cast', [valid], to=TensorProto.INT32), i1], keepdims=1)
    labels = node('Where', [valid, node('Cast', [node('Div', [top_i, a_dim])], to=TensorProto.INT32),
                            const('neg1_i', -1, np.int32)])
    prior = node('Where', [valid, node('Mod', [top_i, a_dim]), const('zero_i64', 0, np.int64)])
    idx4 = node('Expand', [node('Unsqueeze', [prior, i2]),
                           node('Concat', [b_dim, k, const('four', [4], np.int64)], axis=0)])
    out_boxes = node('Where', [node('Unsqueeze', [valid, i2]), node('GatherElements', [boxes, idx4], axis=1),
                               zero_f])
    out_scores = node('Where', [valid, top_v, zero_f])
    renames = dict(num_dets=num_dets, boxes=out_boxes, scores=out_scores, labels=labels)
    for n_ in nodes:  # the final outputs get their public names
        for i, o in enumerate(n_.output):
            for public, internal in renames.items():
                if o == internal:
                    n_.output[i] = public
    graph.node.extend(nodes)
    graph.initializer.extend(inits)
    del graph.output[:]
    kk = test['max_per_img']
    graph.output.extend([
        helper.make_tensor_value_info('num_dets', TensorProto.INT32, ['batch', 1]),
        helper.make_tensor_value_info('boxes', TensorProto.FLOAT, ['batch', kk, 4]),
        helper.make_tensor_value_info('scores', TensorProto.FLOAT, ['batch', kk]),
        helper.make_tensor_value_info('labels', TensorProto.INT32, ['batch', kk])])


def _free_names(graph, names: set) -> None:
    """Rename values of ``graph`` called like one of ``names`` (they become the new outputs)."""
    for n in graph.node:
        for field in (n.input, n.output):
            for i, v in enumerate(field):
                if v in names:
                    field[i] = 'raw/' + v
    for vi in graph.value_info:
        if vi.name in names:
            vi.name = 'raw/' + vi.name


# -------------------------------------------------------------------- export
def _is_end2end_head(head: nn.Module) -> bool:
    return hasattr(head, 'one2one_cls_convs') and hasattr(head, 'resolve_test_cfg')


def resolve_postprocess(head: nn.Module, postprocess: str) -> Tuple[str, dict]:
    """The kind of file a head exports to (``'auto'`` resolved) and its effective test config.

    ``'auto'``: ``'e2e'`` for a :class:`YOLOE2EHead` with ``test_cfg.end2end=True`` (YOLO26's
    default), ``'nms'`` otherwise.

    Returns:
        tuple: (``'none'`` | ``'nms'`` | ``'e2e'``, the head's test config as prediction applies it).

    Raises:
        ExportError: ``'e2e'`` for a head without one-to-one branch or with ``end2end=False``;
            ``'none'`` / ``'nms'`` for an end-to-end head with ``end2end=True`` (NMS on its
            one-to-one output is what the reference refuses too).
    """
    if postprocess not in POSTPROCESS + ('auto',):
        raise ExportError(f"--postprocess must be one of {POSTPROCESS + ('auto',)}, got {postprocess!r}")
    if not _is_end2end_head(head):
        if postprocess == 'e2e':
            raise ExportError(f'--postprocess e2e needs an end-to-end head (YOLOE2EHead: YOLO26 and its backbone '
                              f'swaps); this config builds a {type(head).__name__}, whose detections need NMS: '
                              "export --postprocess nms (NMS in the graph) or none (raw outputs)")
        return ('nms' if postprocess == 'auto' else postprocess), dict(head.test_cfg or {})
    end2end = bool(dict(head.test_cfg or {}).get('end2end', True))
    if postprocess == 'auto':
        postprocess = 'e2e' if end2end else 'nms'
    if end2end and postprocess != 'e2e':
        raise ExportError(f'--postprocess {postprocess}: this is an end-to-end model (YOLOE2EHead with '
                          'test_cfg.end2end=True): its one-to-one detections are final and take no NMS (the '
                          'reference refuses nms=True for end-to-end models). Export --postprocess e2e (the '
                          "default for it: top-k in the graph, no NMS), or add --cfg-options "
                          'model.test_cfg.end2end=False to export the one-to-many branch with NMS (nms) or its '
                          'raw outputs (none), as tools/test.py evaluates it with that option')
    if not end2end and postprocess == 'e2e':
        raise ExportError('--postprocess e2e: this config sets test_cfg.end2end=False (the one-to-many branch '
                          'with NMS, as tools/test.py evaluates it); drop that option to export the one-to-one '
                          'branch without NMS, or export --postprocess nms / none')
    return postprocess, head.resolve_test_cfg()


def _check_half(half: bool, device: str) -> None:
    if not half:
        return
    import onnxruntime as ort
    gpu = [p for p in ('CUDAExecutionProvider', 'TensorrtExecutionProvider') if p in ort.get_available_providers()]
    if not gpu:
        raise ExportError(f'--half: this ONNX Runtime has no GPU provider ({ort.get_available_providers()}); its CPU '
                          'provider lacks float16 kernels for most ops, so the file would not run here. Export '
                          'fp32, or install onnxruntime-gpu on a CUDA machine')
    if not str(device).startswith('cuda') or not torch.cuda.is_available():
        raise ExportError('--half needs a CUDA device to trace the float16 model (--device cuda:0)')


def export_onnx(cfg, checkpoint: str, out_file: str, imgsz: Sequence[int] = (640, 640), batch: int = 1,
                dynamic: bool = False, opset: int = 18, half: bool = False, simplify: bool = False,
                postprocess: str = 'none', device: str = 'cpu') -> dict:
    """Export ``checkpoint`` of the config's detector to ``out_file``.

    Args:
        cfg (mmengine.Config): Model config (--cfg-options / --data applied).
        checkpoint (str): The checkpoint; must fit the config exactly.
        out_file (str): The .onnx file written.
        imgsz (Sequence[int]): Input (height, width), multiples of the largest
            stride (32); also the letterbox size written to the metadata.
        batch (int): Batch size of a static file (the example's with ``dynamic``).
        dynamic (bool | str): ``True``/``'all'``: dynamic batch, height and width;
            ``'batch'``: dynamic batch only; False: static.
        opset (int): ONNX opset, >= 18 (torch's exporter).
        half (bool): float16 weights and input (outputs float32); needs CUDA
            and an ONNX Runtime GPU provider, else refused.
        simplify (bool): Run onnxslim on the graph.
        postprocess (str): ``'none'``, ``'nms'``, ``'e2e'`` (module doc) or ``'auto'``
            (``'e2e'`` for an end-to-end head in ``end2end`` mode, else ``'nms'``;
            :func:`resolve_postprocess`).
        device (str): Device the model is traced on.

    Returns:
        dict: The metadata written (:data:`METADATA_KEY`).

    Raises:
        ExportError: an option or the model cannot be exported (with the reason),
            or the checkpoint does not fit the config (first mismatched key).
    """
    if postprocess not in POSTPROCESS + ('auto',):
        raise ExportError(f"--postprocess must be one of {POSTPROCESS + ('auto',)}, got {postprocess!r}")
    if opset < 18:
        raise ExportError(f'--opset {opset}: torch\'s ONNX exporter writes opset 18 or later')
    if dynamic not in (False, True, 'all', 'batch'):
        raise ExportError(f"dynamic must be False, True/'all' or 'batch', got {dynamic!r}")
    if batch < 1:
        raise ExportError(f'--batch must be >= 1, got {batch}')
    _check_half(half, device)
    model, names = load_detector(cfg, checkpoint)
    postprocess, head_test_cfg = resolve_postprocess(model.bbox_head, postprocess)
    stride = max(model.bbox_head.featmap_strides)
    h, w = (int(imgsz[0]), int(imgsz[1]))
    if h % stride or w % stride or h <= 0 or w <= 0:
        raise ExportError(f'--imgsz {h}x{w} must be positive multiples of the largest stride {stride}')
    test = check_test_cfg(head_test_cfg, postprocess)
    letter = _letterbox_of(cfg)
    if tuple(letter['scale']) != (w, h):
        print(f'letterbox: {w}x{h} (the config\'s test pipeline says {letter["scale"][0]}x{letter["scale"][1]})')
        letter['scale'] = [w, h]
    e2e = postprocess == 'e2e'
    wrapper = (EndToEndOutputs(model, test['max_per_img']) if e2e else DenseOutputs(model)).eval()
    example = torch.rand(batch, 3, h, w)
    fuse_batchnorm(wrapper, example)
    if half:
        wrapper, example = wrapper.half().to(device), example.half().to(device)
    dynamic_shapes = None
    if dynamic:
        from torch.export import Dim
        axes = {0: Dim('batch', min=1, max=1024)}
        if dynamic != 'batch':
            axes.update({2: Dim.AUTO, 3: Dim.AUTO})
        dynamic_shapes = {'images': axes}
    with torch.no_grad():
        program = torch.onnx.export(wrapper, (example,), None, dynamo=True, opset_version=opset,
                                    input_names=['images'], output_names=list(output_names('e2e' if e2e else 'none')),
                                    dynamic_shapes=dynamic_shapes, verbose=False)
    onnx_model = program.model_proto
    num_priors = sum((h // s) * (w // s) for s in model.bbox_head.featmap_strides)
    max_det = min(test['max_per_img'], num_priors) if e2e else None
    meta = dict(version=METADATA_VERSION, classes=list(names), input_size=[h, w], batch=None if dynamic else batch,
                dynamic='batch' if dynamic == 'batch' else bool(dynamic), half=bool(half),
                postprocess='e2e' if e2e else 'none', end2end=e2e, max_det=max_det,
                strides=list(model.bbox_head.featmap_strides), letterbox=letter, test_cfg=test,
                nms={} if e2e else dict(head_test_cfg.get('nms') or {}),
                **_preprocessor_of(model),
                outputs=_describe_outputs('e2e' if e2e else 'none', max_det or test['max_per_img'], len(names)),
                config=cfg.pretty_text, config_file=str(getattr(cfg, 'filename', '') or ''),
                checkpoint=osp.basename(checkpoint))
    if postprocess == 'nms':
        add_nms(onnx_model, meta)
    save_onnx(onnx_model, meta, out_file, simplify)
    return meta


def add_nms(model, meta: dict) -> None:
    """:func:`append_nms` with the metadata's test config, and the metadata updated to match.

    Raises:
        ExportError: as :func:`check_test_cfg`, or the model is not a raw file (an end-to-end
            ``e2e`` file is refused: its detections take no NMS).
    """
    if meta.get('postprocess') == 'e2e' or meta.get('end2end'):
        raise ExportError(_E2E_NO_NMS)
    test = check_test_cfg(dict(score_thr=meta['test_cfg']['score_thr'], nms_pre=meta['test_cfg']['nms_pre'],
                               max_per_img=meta['test_cfg']['max_per_img'],
                               multi_label=meta['test_cfg']['multi_label'], nms=meta.get('nms') or {}), 'nms')
    append_nms(model, test)
    meta.update(postprocess='nms', test_cfg=test,
                outputs=_describe_outputs('nms', test['max_per_img'], len(meta['classes'])))


def raw_to_nms(raw_file: str, out_file: str, simplify: bool = False) -> dict:
    """Write an ``nms`` file from a ``none`` (raw) export of ours, without tracing the model again.

    Returns:
        dict: The new metadata.

    Raises:
        ValueError: ``raw_file`` has no metadata of ours, or is already an ``nms`` file.
        ExportError: the test config cannot run as ONNX NMS (:func:`check_test_cfg`).
    """
    import onnx
    meta = read_onnx_metadata(raw_file)
    if meta['postprocess'] == 'e2e' or meta.get('end2end'):
        raise ExportError(f'{raw_file}: {_E2E_NO_NMS}')
    if meta['postprocess'] != 'none':
        raise ValueError(f"{raw_file} is a --postprocess {meta['postprocess']} file; a raw (none) one is needed")
    model = onnx.load(raw_file)
    del model.metadata_props[:]
    add_nms(model, meta)
    save_onnx(model, meta, out_file, simplify)
    return meta


def save_onnx(model, meta: dict, out_file: str, simplify: bool = False) -> None:
    """Check ``model``, attach ``meta`` under :data:`METADATA_KEY`, optionally simplify it
    (onnxslim), and write it atomically (temporary file renamed into place)."""
    import onnx
    model.producer_name = 'convnextv2_yolo'
    onnx.checker.check_model(model)
    os.makedirs(osp.dirname(osp.abspath(out_file)), exist_ok=True)
    tmp = f'{out_file}.{os.getpid()}.tmp'
    try:
        if simplify:
            import onnxslim
            model = onnxslim.slim(model)
        del model.metadata_props[:]
        model.metadata_props.append(onnx.StringStringEntryProto(key=METADATA_KEY, value=json.dumps(meta)))
        onnx.save(model, tmp)
        os.replace(tmp, out_file)
    finally:
        if osp.exists(tmp):
            os.remove(tmp)


_E2E_NO_NMS = ('an end-to-end (e2e) file: its detections come from the one-to-one branch\'s top-k and take no NMS '
               '(the reference refuses nms=True for end-to-end models); for a file with NMS, export the '
               'checkpoint again with --cfg-options model.test_cfg.end2end=False --postprocess nms '
               '(the one-to-many branch)')


def _describe_outputs(postprocess: str, k: int, c: int) -> Dict[str, str]:
    if postprocess == 'e2e':
        return dict(dets=f'(B, {k}, 6) float32 x1,y1,x2,y2 in network-input pixels, score, class index '
                    f'(float), by descending score; no NMS, no threshold (keep score > score_thr)')
    if postprocess == 'none':
        return dict(boxes='(B, A, 4) float32 x1,y1,x2,y2 in network-input pixels, A priors',
                    scores=f'(B, A, {c}) float32 per-class sigmoid scores')
    return dict(num_dets='(B, 1) int32 detections per image',
                boxes=f'(B, {k}, 4) float32 x1,y1,x2,y2 in network-input pixels; 0 after num_dets',
                scores=f'(B, {k}) float32, descending; 0 after num_dets',
                labels=f'(B, {k}) int32 class index; -1 after num_dets')


def read_onnx_metadata(path: str) -> dict:
    """The :data:`METADATA_KEY` metadata of an exported file (without loading its weights).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: the file is not an ONNX model, or has no (or unreadable)
            convnextv2_yolo metadata (it was not written by this exporter).
    """
    import onnx
    if not osp.isfile(path):
        raise FileNotFoundError(f'ONNX file not found: {path}')
    try:
        model = onnx.load(path, load_external_data=False)
    except Exception as e:  # protobuf's DecodeError and friends
        raise ValueError(f'{path} is not an ONNX model: {e}') from None
    return parse_metadata({p.key: p.value for p in model.metadata_props}, path)


def parse_metadata(props: Dict[str, str], path: str) -> dict:
    """Decode and check the metadata from an ONNX file's key/value properties.

    Raises:
        ValueError: the key is absent, not JSON, or lacks a field (naming ``path``).
    """
    if METADATA_KEY not in props:
        raise ValueError(f'{path} has no {METADATA_KEY!r} metadata: it was not exported by '
                         'tools/deployment/export_onnx.py, so its classes, input size, normalisation and '
                         'output layout are unknown (export the checkpoint with that tool)')
    try:
        meta = json.loads(props[METADATA_KEY])
    except json.JSONDecodeError as e:
        raise ValueError(f'{path}: the {METADATA_KEY!r} metadata is not valid JSON ({e})') from None
    required = ('classes', 'input_size', 'postprocess', 'mean', 'std', 'bgr_to_rgb', 'letterbox', 'test_cfg')
    missing = [k for k in required if k not in meta]
    if missing:
        raise ValueError(f'{path}: the {METADATA_KEY!r} metadata lacks {missing}')
    if meta['postprocess'] not in POSTPROCESS:
        raise ValueError(f"{path}: unknown postprocess {meta['postprocess']!r} in the metadata")
    return meta


def output_names(postprocess: str) -> Tuple[str, ...]:
    """Names of the outputs of a ``postprocess`` file, in order."""
    if postprocess == 'e2e':
        return ('dets',)
    return ('boxes', 'scores') if postprocess == 'none' else ('num_dets', 'boxes', 'scores', 'labels')


def parse_imgsz(values: Optional[Sequence[int]]) -> Tuple[int, int]:
    """``--imgsz N`` or ``--imgsz H W`` -> (H, W)."""
    if not values:
        return 640, 640
    if len(values) == 1:
        return int(values[0]), int(values[0])
    if len(values) == 2:
        return int(values[0]), int(values[1])
    raise ExportError(f'--imgsz takes N or H W, got {list(values)}')
