"""Run an exported file with ONNX Runtime, with the PyTorch path's pre- and post-processing.

:class:`ORTDetector` is a drop-in for a detector's ``test_step``: the data
samples of mmdet's test pipeline (``LetterResize`` built from the file's
metadata) go through the same ``YOLODetDataPreprocessor`` (mean/std/RGB from
the metadata), ONNX Runtime runs the network, and the outputs become
``pred_instances`` in original-image pixels through the head's own code
(``select_candidates`` + ``multiclass_nms`` of ``layers/bbox_nms.py`` for a raw file;
for an end-to-end ``e2e`` file only ``score > score_thr`` of the metadata's test config,
as :meth:`YOLOE2EHead.predict_by_feat`, never NMS; ``YOLOHead._rescale`` for all). :class:`ORTInferencer` is mmdet's
``DetInferencer`` with that model: the same inputs, pictures and JSON as
``tools/infer.py``'s PyTorch path.
"""
import os
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
from mmengine.structures import InstanceData
from torch import nn

from .onnx_export import output_names, parse_metadata

GPU_PROVIDERS = ('TensorrtExecutionProvider', 'CUDAExecutionProvider')


def select_providers(device: str = 'cpu', half: bool = False, cache_dir: Optional[str] = None) -> List:
    """ONNX Runtime execution providers for ``device``, best first, among those installed.

    ``cpu``: the CPU provider only. ``cuda`` / ``cuda:N``: TensorRT (fp16 when
    ``half``, engines cached in ``cache_dir``), then CUDA on GPU N, then CPU,
    each only when this ONNX Runtime build has it (``onnxruntime-gpu``).

    Returns:
        list: provider names or ``(name, options)`` pairs for ``InferenceSession``.

    Raises:
        ValueError: ``device`` is neither cpu nor cuda[:N], or cuda was asked for
            and no GPU provider is installed.
    """
    import onnxruntime as ort
    available = ort.get_available_providers()
    if device == 'cpu':
        return ['CPUExecutionProvider']
    if not str(device).startswith('cuda'):
        raise ValueError(f"device must be 'cpu' or 'cuda[:N]', got {device!r}")
    gpu_id = int(device.split(':')[1]) if ':' in device else 0
    providers = []
    if 'TensorrtExecutionProvider' in available:
        trt = dict(device_id=gpu_id, trt_fp16_enable=bool(half))
        if cache_dir:
            trt.update(trt_engine_cache_enable=True, trt_engine_cache_path=cache_dir)
        providers.append(('TensorrtExecutionProvider', trt))
    if 'CUDAExecutionProvider' in available:
        providers.append(('CUDAExecutionProvider', dict(device_id=gpu_id)))
    if not providers:
        raise ValueError(f'device {device}: this ONNX Runtime has no GPU provider (available: {available}); '
                         'install onnxruntime-gpu, or run with --device cpu')
    return providers + ['CPUExecutionProvider']


def make_session(path: str, device: str = 'cpu', threads: Optional[int] = None, half: bool = False):
    """An ``InferenceSession`` for ``path`` (``threads``: intra-op threads, None = ORT's default)."""
    import onnxruntime as ort
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads:
        opts.intra_op_num_threads = int(threads)
        opts.inter_op_num_threads = 1
    cache = os.path.join(os.path.dirname(os.path.abspath(path)), '.trt_cache')
    return ort.InferenceSession(path, sess_options=opts, providers=select_providers(device, half, cache))


def e2e_to_instances(dets: torch.Tensor, test_cfg: dict) -> InstanceData:
    """One image's end-to-end output -> detections, as :meth:`YOLOE2EHead.predict_by_feat` (no NMS).

    Args:
        dets (Tensor): (K, 6) = x1, y1, x2, y2 (network-input pixels), score, class, by descending score.
        test_cfg (dict): ``score_thr`` (rows with ``score > score_thr`` kept, strict, as the
            reference's end-to-end path) and ``max_per_img``.

    Returns:
        InstanceData: ``bboxes`` (K', 4), ``scores`` (K',), ``labels`` (K',) long, by descending score.
    """
    dets = dets[dets[:, 4] > float(test_cfg.get('score_thr', 0.001))][:int(test_cfg.get('max_per_img', 300))]
    return InstanceData(bboxes=dets[:, :4].float(), scores=dets[:, 4].float(), labels=dets[:, 5].round().long())


def raw_to_instances(boxes: torch.Tensor, scores: torch.Tensor, test_cfg: dict, nms_cfg: dict) -> InstanceData:
    """One image's raw outputs -> detections, with the head's candidate selection and ``multiclass_nms``.

    Args:
        boxes (Tensor): (A, 4) network-input pixels.
        scores (Tensor): (A, C) sigmoid scores.
        test_cfg (dict): ``score_thr``, ``nms_pre``, ``max_per_img``, ``multi_label``.
        nms_cfg (dict): The head's ``test_cfg.nms``.

    Returns:
        InstanceData: ``bboxes`` (K, 4), ``scores`` (K,), ``labels`` (K,), by descending score.
    """
    from ..layers.bbox_nms import multiclass_nms, select_candidates
    prior_idx, labels, kept = select_candidates(scores.t(), test_cfg)
    keep, out = multiclass_nms(boxes[prior_idx], kept, labels, nms_cfg)
    keep, out = keep[:test_cfg['max_per_img']], out[:test_cfg['max_per_img']]
    return InstanceData(bboxes=boxes[prior_idx][keep], scores=out, labels=labels[keep])


class ORTDetector(nn.Module):
    """An exported file under ONNX Runtime with a detector's ``test_step`` interface.

    Args:
        path (str): The .onnx file (exported by ``tools/deployment/export_onnx.py``).
        device (str): 'cpu' or 'cuda[:N]' (see :func:`select_providers`).
        threads (int, optional): ONNX Runtime intra-op threads.

    Raises:
        FileNotFoundError: no such file.
        ValueError: the file has no convnextv2_yolo metadata (not exported by our
            tool: its classes, letterbox, normalisation and output layout are unknown).
    """

    def __init__(self, path: str, device: str = 'cpu', threads: Optional[int] = None) -> None:
        super().__init__()
        from ..datasets.data_preprocessor import YOLODetDataPreprocessor
        if not os.path.isfile(path):
            raise FileNotFoundError(f'ONNX file not found: {path}')
        try:
            self.session = make_session(path, device, threads)
        except ValueError:  # no GPU provider for device
            raise
        except Exception as e:  # ORT raises its own Fail / InvalidProtobuf types
            raise ValueError(f'{path} is not an ONNX model ONNX Runtime can load: {e}') from None
        self.meta = parse_metadata(self.session.get_modelmeta().custom_metadata_map, path)
        self.path = path
        self.input = self.session.get_inputs()[0]
        self.out_names = output_names(self.meta['postprocess'])
        self.data_preprocessor = YOLODetDataPreprocessor(
            mean=self.meta['mean'], std=self.meta['std'], bgr_to_rgb=self.meta['bgr_to_rgb'],
            pad_size_divisor=self.meta.get('pad_size_divisor', 1), pad_value=self.meta.get('pad_value', 0))
        self.dataset_meta = dict(classes=tuple(self.meta['classes']), palette='random')
        self.test_cfg = dict(self.meta['test_cfg'])
        self.end2end = self.meta['postprocess'] == 'e2e'
        # an end-to-end file's detections take no NMS: no NMS config for it
        self.nms_cfg = None if self.end2end else dict(
            self.meta.get('nms') or dict(type='nms', iou_threshold=self.test_cfg['iou_threshold']))

    @property
    def static_batch(self) -> Optional[int]:
        """The file's fixed batch size, None when dynamic."""
        dim = self.input.shape[0]
        return dim if isinstance(dim, int) else None

    def run(self, images: np.ndarray) -> Dict[str, np.ndarray]:
        """Raw session outputs for (B, 3, H, W) normalised images (any B: split or padded to the file's batch)."""
        dtype = np.float16 if 'float16' in self.input.type else np.float32
        images = np.ascontiguousarray(images, dtype=dtype)
        batch = self.static_batch
        if batch is None or batch == len(images):
            return dict(zip(self.out_names, self.session.run(list(self.out_names), {self.input.name: images})))
        parts = []
        for start in range(0, len(images), batch):
            chunk = images[start:start + batch]
            n = len(chunk)
            if n < batch:
                chunk = np.concatenate([chunk, np.zeros((batch - n, *chunk.shape[1:]), chunk.dtype)])
            outs = self.session.run(list(self.out_names), {self.input.name: chunk})
            parts.append([o[:n] for o in outs])
        return {name: np.concatenate([p[i] for p in parts]) for i, name in enumerate(self.out_names)}

    def predict_instances(self, images: torch.Tensor) -> List[InstanceData]:
        """Detections per image in network-input pixels (no rescaling)."""
        outs = {k: torch.from_numpy(np.asarray(v)) for k, v in self.run(images.cpu().numpy()).items()}
        if self.meta['postprocess'] == 'e2e':  # final detections: threshold only, never NMS
            return [e2e_to_instances(d, self.test_cfg) for d in outs['dets']]
        if self.meta['postprocess'] == 'nms':
            results = []
            for i, n in enumerate(outs['num_dets'][:, 0].tolist()):
                results.append(InstanceData(bboxes=outs['boxes'][i, :n].float(), scores=outs['scores'][i, :n].float(),
                                            labels=outs['labels'][i, :n].long()))
            return results
        return [raw_to_instances(outs['boxes'][i].float(), outs['scores'][i].float(), self.test_cfg, self.nms_cfg)
                for i in range(len(images))]

    @torch.no_grad()
    def test_step(self, data: dict) -> list:
        """As ``BaseDetector.test_step``: collated pipeline output -> data samples with ``pred_instances``
        (boxes in original-image pixels, as the PyTorch model with ``rescale=True``)."""
        from ..dense_heads.yolo_head import YOLOHead
        data = self.data_preprocessor(data, False)
        samples = data['data_samples']
        for sample, inst in zip(samples, self.predict_instances(data['inputs'])):
            sample.pred_instances = YOLOHead.rescale_instances(inst, sample.metainfo)
        return samples

    def forward(self, *args, **kwargs):  # nn.Module's; the inferencer calls test_step
        return self.test_step(*args, **kwargs)


def inference_pipeline(meta: dict) -> List[dict]:
    """The PyTorch path's test pipeline from the file's metadata: load -> LetterResize -> PackDetInputs."""
    letter = meta['letterbox']
    return [dict(type='LoadImageFromFile'),
            dict(type='LetterResize', scale=tuple(letter['scale']), pad_val=dict(img=letter['pad_val']),
                 allow_scale_up=letter['allow_scale_up']),
            dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                                                  'scale_factor', 'pad_param'))]


def make_inferencer(path: str, device: str = 'cpu', threads: Optional[int] = None,
                    palette: Optional[Sequence] = None):
    """mmdet's ``DetInferencer`` running ``path`` with ONNX Runtime (see :class:`ORTDetector`).

    Its pipeline is :func:`inference_pipeline` of the metadata, collate mmengine's
    ``pseudo_collate``, visualizer mmdet's ``DetLocalVisualizer``: the same
    pictures and ``preds/*.json`` as the PyTorch path of ``tools/infer.py``.
    """
    from mmdet.apis import DetInferencer
    from mmengine.config import Config

    class ORTInferencer(DetInferencer):
        def _init_model(self, cfg, weights, device='cpu'):
            return detector

    detector = ORTDetector(path, device=device, threads=threads)
    cfg = Config(dict(
        default_scope='mmdet',
        test_dataloader=dict(collate_fn='pseudo_collate',
                             dataset=dict(pipeline=inference_pipeline(detector.meta))),
        visualizer=dict(type='DetLocalVisualizer', name=f'onnx_{id(detector)}'),
    ))
    inferencer = ORTInferencer(model=cfg, weights=None, device='cpu', show_progress=False)
    inferencer.model.dataset_meta = dict(classes=tuple(detector.meta['classes']), palette=palette or 'random')
    inferencer.visualizer.dataset_meta = inferencer.model.dataset_meta
    return inferencer
