"""Class-aware and class-agnostic NMS with one meaning per key (mmcv ``batched_nms`` config), and the
candidate selection before it; used by :class:`~convnextv2_yolo.dense_heads.YOLOHead` and the ONNX Runtime
post-processing (:mod:`convnextv2_yolo.deployment.onnx_runtime`)."""
import math
from typing import Tuple

import torch
import torchvision
from mmcv.ops import soft_nms
from torch import Tensor

# Class-aware NMS: below this many boxes (after the score filters) one NMS
# over class-shifted boxes is faster than one NMS per class (torchvision's own
# switch is at 1000 boxes on CPU; soft-NMS runs on CPU, where its crossover
# with 80 classes is at 1500-2000). ``split_thr`` in the NMS config overrides it; it
# changes the speed only, never the result.
_SINGLE_NMS_MAX = dict(cpu=2000, cuda=5000)

_NMS_COMMON_KEYS = {'type', 'iou_threshold', 'offset', 'max_num', 'class_agnostic', 'split_thr'}
_NMS_KEYS = dict(nms=_NMS_COMMON_KEYS | {'score_threshold'},
                 soft_nms=_NMS_COMMON_KEYS | {'sigma', 'min_score', 'method'})
_SOFT_NMS_METHODS = ('naive', 'linear', 'gaussian')


def _check_nms_cfg(nms_cfg: dict) -> dict:
    """Validated copy of an NMS config, with defaults filled in."""
    cfg = dict(nms_cfg)
    nms_type = cfg.setdefault('type', 'nms')
    if nms_type not in _NMS_KEYS:
        raise ValueError(f'multiclass_nms: unsupported NMS type={nms_type!r}; supported: '
                         f"{sorted(_NMS_KEYS)} (type='nms' runs torchvision, 'soft_nms' mmcv)")
    for key in sorted(set(cfg) - _NMS_KEYS[nms_type]):
        hint = " (soft_nms drops boxes with 'min_score')" if key == 'score_threshold' else ''
        raise KeyError(f'multiclass_nms: unknown key {key!r} for type={nms_type!r}{hint}; '
                       f'supported keys: {sorted(_NMS_KEYS[nms_type])}')
    if nms_type == 'nms' and 'iou_threshold' not in cfg:
        raise KeyError("multiclass_nms: type='nms' needs 'iou_threshold'")
    if cfg.setdefault('offset', 0) not in (0, 1):
        raise ValueError(f"multiclass_nms: 'offset' must be 0 or 1, got {cfg['offset']!r}")
    if nms_type == 'soft_nms':
        cfg.setdefault('iou_threshold', 0.3)  # mmcv's soft_nms defaults
        cfg.setdefault('sigma', 0.5)
        cfg.setdefault('min_score', 1e-3)
        if cfg.setdefault('method', 'linear') not in _SOFT_NMS_METHODS:
            raise ValueError(f"multiclass_nms: soft_nms 'method' must be one of {_SOFT_NMS_METHODS}, "
                             f"got {cfg['method']!r}")
    return cfg


def _shift_classes_apart(boxes: Tensor, labels: Tensor, grid: bool) -> Tensor:
    """(N, 4) boxes moved to x, y >= 0, the k-th present class by k * pitch
    along the diagonal, or (``grid``) into cell (k % m, k // m) of an m x m
    grid (m = ceil(sqrt(classes))), pitch 2 * (span + 1): no box overlaps a
    box of another class, even with ``offset=1`` or rounding. The grid keeps
    coordinates ~sqrt(classes) smaller (float32 rounding: 10x less for 80
    classes); the diagonal makes torchvision's NMS ~25% faster."""
    present, dense = torch.unique(labels, return_inverse=True)
    pitch = 2 * (boxes.max() - boxes.min() + 1)
    if grid:
        cols = math.ceil(math.sqrt(len(present)))
        cells = torch.stack([dense % cols, dense // cols], 1).to(boxes).repeat(1, 2)
    else:
        cells = dense.to(boxes)[:, None]
    return boxes - boxes.min() + cells * pitch


def _single_nms(boxes: Tensor, scores: Tensor, cfg: dict) -> Tuple[Tensor, Tensor]:
    """One NMS over all ``boxes`` (N, 4): kept indices (K,) and their output
    scores (K,), by descending output score."""
    if cfg['type'] == 'nms':
        # (boxes already widened by ``offset``)
        keep = torchvision.ops.nms(boxes, scores, float(cfg['iou_threshold']))
        return keep, scores[keep]
    dets, keep = soft_nms(boxes, scores, float(cfg['iou_threshold']), sigma=float(cfg['sigma']),
                          min_score=float(cfg['min_score']), method=cfg['method'], offset=int(cfg['offset']))
    return keep, dets[:, 4]


def multiclass_nms(boxes: Tensor, scores: Tensor, labels: Tensor, nms_cfg: dict) -> Tuple[Tensor, Tensor]:
    """NMS per class (or over all boxes with ``class_agnostic=True``).

    Takes mmcv's ``batched_nms`` config keys, each with one meaning at every
    candidate count and for any coordinates (in mmcv 2.1.0 several change
    with the count or the coordinates; the deviations are marked "mmcv:"):

    - ``type``: ``'nms'`` (default; torchvision's ``nms``, 3-5x faster than
      mmcv's on CPU with thousands of boxes) or ``'soft_nms'`` (mmcv's
      ``soft_nms``, on CPU). Any other type, or a key that the type does not
      take, raises an error naming it (mmcv: ``eval``s the type name).
    - ``iou_threshold``: ``'nms'`` (required) suppresses IoU > thr;
      ``'soft_nms'`` (default 0.3) acts on IoU >= thr, as mmcv's kernels:
      method ``'linear'`` (default) multiplies the score by 1 - IoU,
      ``'naive'`` removes the box, ``'gaussian'`` ignores the threshold and
      multiplies every score by exp(-IoU^2 / ``sigma``) (default 0.5).
    - ``class_agnostic`` (default False): True is always one NMS over all
      boxes. mmcv: ignored from ``split_thr`` (10000) boxes on, where its
      per-class loop takes over: 10000 identical boxes of two classes kept 2,
      9999 kept 1.
    - class-aware (default): NMS within each class, never across classes,
      whatever the coordinates. mmcv (and torchvision's ``batched_nms`` below
      its switch: 1000 boxes on CPU, 25000 on CUDA) shifts class k by
      ``k * (max + 1)``, which overlaps classes once boxes reach below 0, as
      raw predictions do; here ``_shift_classes_apart`` moves boxes to >= 0
      before shifting classes apart, in float64 for plain NMS (a float32
      shift of 1e5 rounds coordinates by up to 0.008 px and flips IoUs near
      the threshold). mmcv's soft-NMS kernel takes float32 only: below
      ``split_thr`` its IoUs carry that rounding (classes on a grid to keep
      it small: decayed scores within ~1e-5 of the per-class loop's with 80
      classes at 640 px; one per-class call costs ~0.1 ms, so the loop
      would cost ~8 ms at any count).
    - ``split_thr``: speed only. Class-aware NMS runs one NMS over shifted
      boxes below it (default ``_SINGLE_NMS_MAX`` for the device, CPU for
      soft-NMS), one NMS per class from it on.
    - ``max_num`` (default -1: all): keep the ``max_num`` best. mmcv: passed
      to ``soft_nms`` below ``split_thr``, a TypeError.
    - ``score_threshold`` (``'nms'`` only, default 0): scores <= thr are
      dropped before NMS, as in mmcv's ``nms``.
    - ``min_score`` (``'soft_nms'``, default 1e-3): output scores are
      >= min_score (boxes below it are dropped before soft-NMS). mmcv: its
      kernel never checks the first box of a call, so one box below
      min_score survived per image below ``split_thr``, one per class above.
    - ``offset`` (0 or 1, default 0): box sides are ``x2 - x1 + offset``;
      plain NMS runs torchvision on boxes widened by ``offset`` (same IoUs).

    Boxes or scores that are not finite (NaN / inf, a diverged model) are
    never kept (a NaN would otherwise disable the class separation).
    Which of several equal-score boxes survives is not specified.

    Args:
        boxes (Tensor): (N, 4) boxes (x1, y1, x2, y2), any sign.
        scores (Tensor): (N,) scores.
        labels (Tensor): (N,) integer class labels (unused when
            ``class_agnostic``).
        nms_cfg (dict): NMS config, keys above.

    Returns:
        tuple[Tensor, Tensor]: ``keep`` (K,) long indices into the inputs and
        the output scores (K,) float32 (soft-NMS: decayed), both by
        descending output score, on the inputs' device.
    """
    cfg = _check_nms_cfg(nms_cfg)
    device = boxes.device
    boxes, scores = boxes.float(), scores.float()
    # boxes or scores that are not finite (a diverged model) cannot be compared: never kept
    idx = torch.where(torch.isfinite(boxes).all(1) & torch.isfinite(scores))[0]
    # the score filters, before NMS
    if cfg['type'] == 'nms' and float(cfg.get('score_threshold', 0)) > 0:
        idx = idx[scores[idx] > float(cfg['score_threshold'])]
    elif cfg['type'] == 'soft_nms':
        idx = idx[scores[idx] >= float(cfg['min_score'])]
        boxes, scores, labels, idx = boxes.cpu(), scores.cpu(), labels.cpu(), idx.cpu()
    boxes, scores, labels = boxes[idx], scores[idx], labels[idx]
    if cfg['type'] == 'nms' and cfg['offset']:
        boxes = boxes + boxes.new_tensor([0., 0., 1., 1.])
    split_thr = cfg.get('split_thr', _SINGLE_NMS_MAX.get(boxes.device.type, 0))

    if len(boxes) == 0:
        keep, out = idx, scores
    elif cfg.get('class_agnostic', False):
        keep, out = _single_nms(boxes, scores, cfg)
    elif len(boxes) < split_thr and cfg['type'] == 'nms':
        # float64: the shifted coordinates are exact, so are the IoUs
        keep, _ = _single_nms(_shift_classes_apart(boxes.double(), labels, grid=False), scores.double(), cfg)
        out = scores[keep]
    elif len(boxes) < split_thr:  # mmcv's soft_nms kernel takes float32 only
        keep, out = _single_nms(_shift_classes_apart(boxes, labels, grid=True), scores, cfg)
    else:
        keeps, outs = [], []
        for label in torch.unique(labels):
            members = torch.where(labels == label)[0]
            k, s = _single_nms(boxes[members], scores[members], cfg)
            keeps.append(members[k])
            outs.append(s)
        keep, out = torch.cat(keeps), torch.cat(outs)
    out, rank = out.sort(descending=True, stable=True)
    keep = keep[rank]
    max_num = int(cfg.get('max_num', -1))
    if max_num > 0:  # 0 or -1: all, as in mmcv
        keep, out = keep[:max_num], out[:max_num]
    return idx[keep].to(device), out.float().to(device)


def select_candidates(scores: Tensor, cfg: dict) -> Tuple[Tensor, Tensor, Tensor]:
    """The candidates of one image before NMS: score threshold, then the ``nms_pre`` best.

    Args:
        scores (Tensor): (C, A) per-class scores in [0, 1] of one image.
        cfg (dict): ``score_thr`` (default 0.001), ``nms_pre`` (default 30000; <= 0: all) and
            ``multi_label`` (default True: every class above the threshold is a candidate; False:
            the best class of each prior).

    Returns:
        tuple[Tensor, Tensor, Tensor]: prior indices (K,), labels (K,), scores (K,).
    """
    score_thr = cfg.get('score_thr', 0.001)
    nms_pre = cfg.get('nms_pre', 30000)
    if cfg.get('multi_label', True):
        labels, prior_idx = (scores > score_thr).nonzero(as_tuple=True)
        kept = scores[labels, prior_idx]
    else:
        kept, labels = scores.max(dim=0)
        prior_idx = (kept > score_thr).nonzero(as_tuple=True)[0]
        kept, labels = kept[prior_idx], labels[prior_idx]
    if 0 < nms_pre < kept.numel():
        kept, top = kept.topk(nms_pre)
        prior_idx, labels = prior_idx[top], labels[top]
    return prior_idx, labels, kept
