"""YOLO11 / YOLOv8 decoupled detection head with DFL box regression."""
import math
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torchvision
from mmcv.ops import soft_nms
from mmdet.models.dense_heads.base_dense_head import BaseDenseHead
from mmdet.registry import MODELS, TASK_UTILS
from mmdet.utils import ConfigType, InstanceList, OptConfigType, OptInstanceList, OptMultiConfig
from mmengine.dist import get_dist_info
from mmengine.logging import MessageHub, print_log
from mmengine.structures import InstanceData
from torch import Tensor

from ..datasets.collate import pack_gt_instances
from ..layers.conv import Conv, DWConv


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


class DFL(nn.Module):
    """Integral of a softmax distribution over ``reg_max`` bins.

    The bin values live in a frozen 1x1 conv ``conv`` (weight ``arange``), as
    in the reference, so checkpoints and parameter counts match.

    Args:
        reg_max (int): Number of bins. Defaults to 16.
    """

    def __init__(self, reg_max: int = 16) -> None:
        super().__init__()
        self.reg_max = reg_max
        self.conv = nn.Conv2d(reg_max, 1, 1, bias=False).requires_grad_(False)
        self.reset_bins()

    def reset_bins(self) -> None:
        """Write ``arange(reg_max)`` into the bin weights."""
        with torch.no_grad():
            self.conv.weight.copy_(torch.arange(self.reg_max, dtype=torch.float).view(1, -1, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        """(..., 4 * reg_max) logits -> (..., 4) expected distances."""
        probs = x.unflatten(-1, (4, self.reg_max)).softmax(-1)
        return probs @ self.conv.weight.view(self.reg_max).to(probs.dtype)


@MODELS.register_module()
class YOLO11Head(BaseDenseHead):
    """Decoupled YOLO11 (or YOLOv8) head: DFL box branch + class branch.

    Outputs per level ``(cls_score (B, C, H, W), bbox_dist (B, 4*reg_max, H,
    W))``. Training assigns targets with a batched task-aligned assigner and
    computes BCE + CIoU + DFL losses over the whole batch in one go.

    Example:
        >>> bbox_head = dict(
        ...     type='YOLO11Head', num_classes=80, in_channels=[64, 128, 256],
        ...     featmap_strides=(8, 16, 32), reg_max=16, cls_branch='yolo11',
        ...     loss_cls=dict(type='YOLOBCELoss', reduction='sum',
        ...                   loss_weight=0.5),
        ...     loss_bbox=dict(type='YOLOCIoULoss', reduction='sum',
        ...                    loss_weight=7.5),
        ...     loss_dfl=dict(type='mmdet.DistributionFocalLoss',
        ...                   reduction='sum', loss_weight=1.5))
        >>> train_cfg = dict(assigner=dict(type='BatchTaskAlignedAssigner',
        ...                  topk=10, alpha=0.5, beta=6.0, eps=1e-9))
        >>> test_cfg = dict(score_thr=0.001, nms_pre=30000,
        ...                 nms=dict(type='nms', iou_threshold=0.7),
        ...                 max_per_img=300, multi_label=True)

    Args:
        num_classes (int): Number of classes.
        in_channels (Sequence[int]): Channels of each input level.
        featmap_strides (Sequence[int]): Stride of each level.
            Defaults to (8, 16, 32).
        reg_max (int): DFL bins per box side. Defaults to 16.
        cls_branch (str): 'yolo11' (depthwise class branch) or 'yolov8'.
        cls_channels (int, optional): Width of the class branch's hidden
            convs (the reference's ``c3``). None (default) applies the
            reference's rule ``max(in_channels[0], min(num_classes, 100))``
            (ultralytics/nn/modules/head.py, ``Detect.__init__``). Set it to a
            checkpoint's width to fine-tune from it with another
            ``num_classes`` (the reference keeps the checkpoint's width then:
            80 for a COCO YOLO11-n); ``YOLORunner`` sets it from a
            ``load_from`` checkpoint automatically.
        loss_cls (dict): Class loss on (B, A, C) logits vs soft targets;
            called with ``reduction_override='sum'`` (mmdet's sigmoid
            ``CrossEntropyLoss`` gives the same values, slower).
        loss_bbox (dict): Box loss on positives (stride units).
        loss_dfl (dict): DFL loss on positives' bin logits.
        bbox_coder (dict): Distance coder. Defaults to ``DFLBBoxCoder``.
        degenerate_log_interval (int): Every this many loss calls, log how
            many degenerate GT boxes (zero width/height) were dropped.
        train_cfg (dict, optional): Holds ``assigner``.
        test_cfg (dict, optional): ``score_thr``, ``nms_pre``, ``nms``,
            ``max_per_img``, ``multi_label``.
        init_cfg (dict | list[dict], optional): Initialisation config.
    """

    def __init__(self,
                 num_classes: int,
                 in_channels: Sequence[int],
                 featmap_strides: Sequence[int] = (8, 16, 32),
                 reg_max: int = 16,
                 cls_branch: str = 'yolo11',
                 cls_channels: Optional[int] = None,
                 loss_cls: ConfigType = dict(type='YOLOBCELoss', reduction='sum', loss_weight=0.5),
                 loss_bbox: ConfigType = dict(type='YOLOCIoULoss', reduction='sum', loss_weight=7.5),
                 loss_dfl: ConfigType = dict(type='mmdet.DistributionFocalLoss', reduction='sum', loss_weight=1.5),
                 bbox_coder: ConfigType = dict(type='DFLBBoxCoder'),
                 degenerate_log_interval: int = 50,
                 train_cfg: OptConfigType = None,
                 test_cfg: OptConfigType = None,
                 init_cfg: OptMultiConfig = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if len(in_channels) != len(featmap_strides):
            raise ValueError(f'YOLO11Head: in_channels {list(in_channels)} and featmap_strides '
                             f'{list(featmap_strides)} must have the same length')
        if cls_branch not in ('yolo11', 'yolov8'):
            raise ValueError(f"YOLO11Head: cls_branch must be 'yolo11' or 'yolov8', got {cls_branch!r}")
        if cls_channels is not None and (not isinstance(cls_channels, int) or cls_channels < 1):
            raise ValueError(f'YOLO11Head: cls_channels must be a positive int or None, got {cls_channels!r}')
        self.num_classes = num_classes
        self.in_channels = list(in_channels)
        self.featmap_strides = list(featmap_strides)
        self.reg_max = reg_max
        self.cls_branch = cls_branch
        self.train_cfg = train_cfg
        self.test_cfg = test_cfg
        self.degenerate_log_interval = degenerate_log_interval

        c2 = max(16, self.in_channels[0] // 4, 4 * reg_max)
        c3 = cls_channels or max(self.in_channels[0], min(num_classes, 100))
        self.cls_channels = c3
        self.reg_convs = nn.ModuleList(
            nn.Sequential(Conv(c, c2, 3), Conv(c2, c2, 3), nn.Conv2d(c2, 4 * reg_max, 1))
            for c in self.in_channels)
        self.cls_convs = nn.ModuleList(self._cls_branch(c, c3) for c in self.in_channels)
        self.dfl = DFL(reg_max)

        self.loss_cls = MODELS.build(loss_cls)
        self.loss_bbox = MODELS.build(loss_bbox)
        self.loss_dfl = MODELS.build(loss_dfl)
        bbox_coder = dict(bbox_coder)
        bbox_coder.setdefault('reg_max', reg_max)
        self.bbox_coder = TASK_UTILS.build(bbox_coder)
        self.assigner = None
        if train_cfg is not None and 'assigner' in train_cfg:
            self.assigner = TASK_UTILS.build(train_cfg['assigner'])

        self._prior_cache: Dict[tuple, Tuple[Tensor, Tensor]] = {}
        self._num_loss_calls = 0
        self._num_degenerate: Optional[Tensor] = None
        self._total_degenerate = 0

    def _cls_branch(self, c: int, c3: int) -> nn.Sequential:
        if self.cls_branch == 'yolo11':
            return nn.Sequential(
                nn.Sequential(DWConv(c, c, 3), Conv(c, c3, 1)),
                nn.Sequential(DWConv(c3, c3, 3), Conv(c3, c3, 1)),
                nn.Conv2d(c3, self.num_classes, 1))
        return nn.Sequential(Conv(c, c3, 3), Conv(c3, c3, 3), nn.Conv2d(c3, self.num_classes, 1))

    def init_weights(self) -> None:
        """Reference init: box bias 1, class bias ``log(5/nc/(640/s)^2)``."""
        super().init_weights()
        for reg, cls, stride in zip(self.reg_convs, self.cls_convs, self.featmap_strides):
            nn.init.constant_(reg[-1].bias, 1.0)
            nn.init.constant_(cls[-1].bias, math.log(5 / self.num_classes / (640 / stride)**2))
        self.dfl.reset_bins()

    def forward(self, x: Tuple[Tensor, ...]) -> Tuple[List[Tensor], List[Tensor]]:
        """Per-level class logits (B, C, H, W) and DFL logits (B, 4R, H, W)."""
        if len(x) != len(self.reg_convs):
            raise ValueError(f'YOLO11Head expects {len(self.reg_convs)} feature maps, got {len(x)}')
        cls_scores = [cls(feat) for feat, cls in zip(x, self.cls_convs)]
        bbox_dists = [reg(feat) for feat, reg in zip(x, self.reg_convs)]
        return cls_scores, bbox_dists

    # ------------------------------------------------------------------ priors
    def get_priors(self, featmap_sizes: Sequence[Tuple[int, int]], dtype: torch.dtype,
                   device: torch.device) -> Tuple[Tensor, Tensor]:
        """Grid-cell centres in stride units (A, 2) and strides (A, 1).

        Cached per (sizes, dtype, device), except while torch traces the head
        for export (sizes may then be symbolic: the grid becomes graph ops).
        """
        tracing = torch.compiler.is_compiling() or torch.jit.is_tracing()
        key = None if tracing else (tuple(tuple(s) for s in featmap_sizes), dtype, device)
        if tracing or key not in self._prior_cache:
            points, strides = [], []
            for (h, w), stride in zip(featmap_sizes, self.featmap_strides):
                ys = torch.arange(h, dtype=dtype, device=device) + 0.5
                xs = torch.arange(w, dtype=dtype, device=device) + 0.5
                yy, xx = torch.meshgrid(ys, xs, indexing='ij')
                points.append(torch.stack([xx, yy], dim=-1).reshape(-1, 2))
                strides.append(torch.full((h * w, 1), stride, dtype=dtype, device=device))
            if tracing:
                return torch.cat(points), torch.cat(strides)
            self._prior_cache[key] = (torch.cat(points), torch.cat(strides))
        return self._prior_cache[key]

    @staticmethod
    def _flatten(maps: List[Tensor]) -> Tensor:
        """List of (B, K, H, W) -> contiguous (B, sum(HW), K)."""
        return torch.cat([m.flatten(2) for m in maps], dim=2).transpose(1, 2).contiguous()

    # -------------------------------------------------------------------- loss
    def loss(self, x: Tuple[Tensor, ...], batch_data_samples: Union[list, dict]) -> dict:
        """Loss from features and either packed targets or data samples.

        Args:
            x (tuple[Tensor]): Multi-level features.
            batch_data_samples (list[DetDataSample] | dict): Data samples, or
                the fast path's dict with ``bboxes_labels`` (N, 6) =
                [batch_idx, label, x1, y1, x2, y2] and ``img_metas``.
        """
        outs = self(x)
        if isinstance(batch_data_samples, dict):
            gts = batch_data_samples['bboxes_labels']
            img_metas = batch_data_samples['img_metas']
        else:
            gts = [s.gt_instances for s in batch_data_samples]
            img_metas = [s.metainfo for s in batch_data_samples]
        return self.loss_by_feat(*outs, batch_gt_instances=gts, batch_img_metas=img_metas)

    def loss_by_feat(self,
                     cls_scores: List[Tensor],
                     bbox_dists: List[Tensor],
                     batch_gt_instances: Union[Tensor, InstanceList],
                     batch_img_metas: List[dict],
                     batch_gt_instances_ignore: OptInstanceList = None) -> Dict[str, Tensor]:
        """BCE, CIoU and DFL losses for the whole batch.

        Args:
            cls_scores (list[Tensor]): Per-level class logits (B, C, H, W).
            bbox_dists (list[Tensor]): Per-level DFL logits (B, 4R, H, W).
            batch_gt_instances (Tensor | list[InstanceData]): Packed (N, 6)
                [batch_idx, label, x1, y1, x2, y2] or per-image instances.
            batch_img_metas (list[dict]): Image metas (unused; kept for the
                mmdet interface).
            batch_gt_instances_ignore: Unused (the reference has no ignore
                regions).

        Returns:
            dict: ``loss_cls``, ``loss_bbox``, ``loss_dfl``.
        """
        if self.assigner is None:
            raise RuntimeError("YOLO11Head: train_cfg['assigner'] is required to compute losses")
        num_imgs = cls_scores[0].shape[0]
        device = cls_scores[0].device
        packed = batch_gt_instances
        if not isinstance(packed, Tensor):
            packed = pack_gt_instances(packed)
        gt_labels, gt_bboxes, pad_mask = self._pad_gts(packed.to(device), num_imgs)

        points, strides = self.get_priors([m.shape[-2:] for m in cls_scores], torch.float32, device)
        # (B, A, C) view of a (B, C, A) tensor: no transposing copy of the
        # largest map; targets created "like" it share the layout.
        flat_cls = torch.cat([m.flatten(2) for m in cls_scores], dim=2).float().transpose(1, 2)
        flat_dist = self._flatten(bbox_dists).float()
        pred_boxes = self.bbox_coder.decode(points, self.dfl(flat_dist))  # stride units

        # losses with ``sum_sparse`` (YOLOBCELoss) never need the dense
        # (B, A, C) target map, the largest tensor of the step
        sparse_cls = hasattr(self.loss_cls, 'sum_sparse')
        assigned = self.assigner.assign(
            flat_cls.detach().sigmoid(), pred_boxes.detach() * strides, points * strides,
            gt_labels, gt_bboxes, pad_mask, dense_scores=not sparse_cls)
        fg_mask = assigned['fg_mask']
        # each positive's target row is one-hot * score: its sum is the score
        weight = assigned['fg_scores']
        avg_factor = weight.sum().clamp(min=1)

        if sparse_cls:
            loss_cls = self.loss_cls.sum_sparse(
                flat_cls, fg_mask, assigned['assigned_labels'][fg_mask], weight) / avg_factor
        else:
            loss_cls = self.loss_cls(flat_cls, assigned['assigned_scores'], reduction_override='sum') / avg_factor

        fg_strides = strides.expand(num_imgs, -1, -1)[fg_mask]
        fg_points = points.expand(num_imgs, -1, -1)[fg_mask]
        target_boxes = assigned['assigned_bboxes'][fg_mask] / fg_strides
        loss_bbox = self.loss_bbox(
            pred_boxes[fg_mask], target_boxes, weight=weight, reduction_override='sum') / avg_factor

        target_dist = self.bbox_coder.encode(fg_points, target_boxes)
        loss_dfl = self.loss_dfl(
            flat_dist[fg_mask].reshape(-1, self.reg_max), target_dist.reshape(-1),
            weight=(weight / 4).repeat_interleave(4), reduction_override='sum') / avg_factor

        # The reference scales by batch size (its DDP averages gradients).
        scale = num_imgs * get_dist_info()[1]
        return dict(loss_cls=loss_cls * scale, loss_bbox=loss_bbox * scale, loss_dfl=loss_dfl * scale)

    def _pad_gts(self, packed: Tensor, num_imgs: int) -> Tuple[Tensor, Tensor, Tensor]:
        """(N, 6) packed GTs -> labels (B, M), boxes (B, M, 4), mask (B, M).

        Degenerate boxes (zero width or height) keep their row but are masked
        out, and counted for the log.
        """
        if packed.dim() != 2 or packed.shape[1] != 6:
            raise ValueError('YOLO11Head: packed GTs (bboxes_labels) must have shape (N, 6) = '
                             f'[batch_idx, label, x1, y1, x2, y2], got {tuple(packed.shape)}')
        device = packed.device
        if packed.shape[0] == 0:
            return (torch.zeros(num_imgs, 0, dtype=torch.long, device=device),
                    torch.zeros(num_imgs, 0, 4, device=device),
                    torch.zeros(num_imgs, 0, dtype=torch.bool, device=device))
        img_idx = packed[:, 0].long()
        labels = packed[:, 1].long()
        boxes = packed[:, 2:].float()
        valid = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
        self._count_degenerate(valid)

        counts = torch.bincount(img_idx.clamp(0, num_imgs - 1), minlength=num_imgs)
        max_gts, lab_min, lab_max, idx_min, idx_max = torch.stack(
            [counts.max(), labels.min(), labels.max(), img_idx.min(), img_idx.max()]).tolist()
        if lab_min < 0 or lab_max >= self.num_classes:
            raise ValueError(f'YOLO11Head: GT labels must be in [0, {self.num_classes}), '
                             f'got range [{lab_min}, {lab_max}] (check num_classes / dataset classes)')
        if idx_min < 0 or idx_max >= num_imgs:
            raise ValueError(f'YOLO11Head: GT batch indices must be in [0, {num_imgs}), '
                             f'got range [{idx_min}, {idx_max}]')

        order = torch.argsort(img_idx, stable=True)
        img_idx = img_idx[order]
        first = counts.cumsum(0) - counts
        slot = torch.arange(img_idx.numel(), device=device) - first[img_idx]
        gt_labels = torch.zeros(num_imgs, max_gts, dtype=torch.long, device=device)
        gt_bboxes = torch.zeros(num_imgs, max_gts, 4, dtype=boxes.dtype, device=device)
        pad_mask = torch.zeros(num_imgs, max_gts, dtype=torch.bool, device=device)
        gt_labels[img_idx, slot] = labels[order]
        gt_bboxes[img_idx, slot] = boxes[order]
        pad_mask[img_idx, slot] = valid[order]
        return gt_labels, gt_bboxes, pad_mask

    def _count_degenerate(self, valid: Tensor) -> None:
        """Accumulate dropped boxes on device; log every N calls (one sync)."""
        num_bad = (~valid).sum()
        self._num_degenerate = num_bad if self._num_degenerate is None else self._num_degenerate + num_bad
        self._num_loss_calls += 1
        if self._num_loss_calls % self.degenerate_log_interval:
            return
        dropped = int(self._num_degenerate.item())
        self._num_degenerate = None
        if dropped:
            self._total_degenerate += dropped
            print_log(f'YOLO11Head: dropped {dropped} degenerate GT boxes (zero width or height) in the '
                      f'last {self.degenerate_log_interval} iterations ({self._total_degenerate} in total)',
                      logger='current')
            MessageHub.get_current_instance().update_info('yolo_head/degenerate_gt_boxes',
                                                          self._total_degenerate)

    # ----------------------------------------------------------------- predict
    def predict_by_feat(self,
                        cls_scores: List[Tensor],
                        bbox_dists: List[Tensor],
                        score_factors: Optional[List[Tensor]] = None,
                        batch_img_metas: Optional[List[dict]] = None,
                        cfg: OptConfigType = None,
                        rescale: bool = False,
                        with_nms: bool = True) -> InstanceList:
        """Threshold, decode the candidates (batched), NMS and rescale.

        Args:
            cls_scores (list[Tensor]): Per-level class logits (B, C, H, W).
            bbox_dists (list[Tensor]): Per-level DFL logits (B, 4R, H, W).
            score_factors: Unused.
            batch_img_metas (list[dict], optional): Needs ``scale_factor`` and
                ``ori_shape`` (and ``pad_param`` after letterboxing) when
                ``rescale``.
            cfg (dict, optional): Test config; ``self.test_cfg`` if None.
            rescale (bool): Map boxes back to the original image.
            with_nms (bool): Apply ``cfg['nms']`` (``multiclass_nms``: per
                class unless ``class_agnostic``; soft-NMS scores decayed).

        Returns:
            list[InstanceData]: ``bboxes`` (K, 4), ``scores`` (K,), ``labels``
            (K,) per image, by descending score.
        """
        cfg = dict((self.test_cfg if cfg is None else cfg) or {})
        num_imgs = cls_scores[0].shape[0]
        if rescale and (batch_img_metas is None or len(batch_img_metas) != num_imgs):
            raise ValueError('YOLO11Head.predict_by_feat: rescale=True needs one img_meta per image')
        if with_nms and 'nms' not in cfg:
            raise KeyError("YOLO11Head: test_cfg lacks 'nms' (e.g. nms=dict(type='nms', iou_threshold=0.7))")
        # float32 even under AMP: fp16 has 0.5 px steps above 512
        points, strides = self.get_priors([m.shape[-2:] for m in cls_scores], torch.float32,
                                          cls_scores[0].device)
        scores = torch.cat([m.flatten(2) for m in cls_scores], dim=2).float().sigmoid()  # (B, C, A)
        dists = torch.cat([m.flatten(2) for m in bbox_dists], dim=2)  # (B, 4R, A)

        # Candidates per image (score_thr, nms_pre), then one decode of all
        # of them: DFL on the few candidates instead of every anchor.
        cands = [self._candidates(scores[i], cfg) for i in range(num_imgs)]
        img_idx = torch.cat([torch.full_like(c[0], i) for i, c in enumerate(cands)])
        prior_idx = torch.cat([c[0] for c in cands])
        boxes = self.bbox_coder.decode(points[prior_idx], self.dfl(dists[img_idx, :, prior_idx].float()),
                                       strides[prior_idx])
        boxes = boxes.split([len(c[0]) for c in cands])
        metas = batch_img_metas if batch_img_metas is not None else [{}] * num_imgs
        return [self._nms_and_rescale(boxes[i], cands[i][1], cands[i][2], metas[i], cfg, rescale, with_nms)
                for i in range(num_imgs)]

    def decode_dense(self, cls_scores: List[Tensor], bbox_dists: List[Tensor]) -> Tuple[Tensor, Tensor]:
        """Every prior decoded, before any threshold or NMS (the raw ONNX export's outputs).

        The same priors, sigmoid, DFL integral and box coder as ``predict_by_feat``,
        applied to all A = sum(H_l * W_l) priors instead of the candidates.

        Args:
            cls_scores (list[Tensor]): Per-level class logits (B, C, H, W).
            bbox_dists (list[Tensor]): Per-level DFL logits (B, 4R, H, W).

        Returns:
            tuple[Tensor, Tensor]: boxes (B, A, 4) float32 (x1, y1, x2, y2) in
            pixels of the network input, and scores (B, A, C) float32 in [0, 1]
            (per-class sigmoid), priors ordered level by level, row-major.
        """
        points, strides = self.get_priors([m.shape[-2:] for m in cls_scores], torch.float32,
                                          cls_scores[0].device)
        scores = torch.cat([m.flatten(2) for m in cls_scores], dim=2).float().sigmoid().transpose(1, 2)
        boxes = self.bbox_coder.decode(points, self.dfl(self._flatten(bbox_dists).float()), strides)
        return boxes, scores

    @staticmethod
    def _candidates(scores: Tensor, cfg: dict) -> Tuple[Tensor, Tensor, Tensor]:
        """(C, A) scores of one image -> prior indices, labels, scores."""
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

    def _nms_and_rescale(self, boxes: Tensor, labels: Tensor, scores: Tensor, img_meta: dict, cfg: dict,
                         rescale: bool, with_nms: bool) -> InstanceData:
        """NMS (``multiclass_nms``) on network-input boxes, then rescale one
        image. Scores are NMS's output scores (decayed by soft-NMS)."""
        if with_nms:  # also with no candidates: the NMS config is checked
            keep, scores = multiclass_nms(boxes, scores, labels, cfg['nms'])
            max_per_img = cfg.get('max_per_img', 300)
            keep, scores = keep[:max_per_img], scores[:max_per_img]
        else:
            scores, keep = scores.sort(descending=True)
        boxes, labels = boxes[keep], labels[keep]
        if rescale:
            boxes = self._rescale(boxes, img_meta)
        results = InstanceData()
        results.bboxes = boxes
        results.scores = scores
        results.labels = labels
        return results

    @staticmethod
    def _rescale(bboxes: Tensor, img_meta: dict) -> Tensor:
        """Undo letterbox padding and resizing, then clip to ``ori_shape``."""
        for key in ('scale_factor', 'ori_shape'):
            if key not in img_meta:
                raise KeyError(f'YOLO11Head: img_meta lacks {key!r}, needed to rescale predictions '
                               '(add it to PackDetInputs meta_keys)')
        if 'pad_param' in img_meta:
            top, _, left, _ = (float(v) for v in img_meta['pad_param'])
            bboxes = bboxes - bboxes.new_tensor([left, top, left, top])
        bboxes = bboxes / bboxes.new_tensor(img_meta['scale_factor']).repeat(2)
        h, w = img_meta['ori_shape'][:2]
        return torch.stack([bboxes[:, 0].clamp(0, w), bboxes[:, 1].clamp(0, h),
                            bboxes[:, 2].clamp(0, w), bboxes[:, 3].clamp(0, h)], dim=-1)
