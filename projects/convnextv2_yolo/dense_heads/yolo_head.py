"""YOLO11 / YOLOv8 decoupled detection head with DFL box regression.

Its building blocks live in ``layers`` (``Conv``/``DWConv``, :class:`DFL`, ``bbox_nms``: candidate selection
and ``multiclass_nms``), its training loss in :mod:`.yolo_head_loss`.
"""
import logging
import math
import warnings
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
from mmdet.models.dense_heads.base_dense_head import BaseDenseHead
from mmdet.registry import MODELS, TASK_UTILS
from mmdet.utils import ConfigType, InstanceList, OptConfigType, OptMultiConfig
from mmengine.logging import print_log
from mmengine.structures import InstanceData
from torch import Tensor

from ..layers.bbox_nms import multiclass_nms, select_candidates
from ..layers.conv import Conv, DWConv
from ..layers.dfl import DFL
from ..layers.scaling import reject_auto
from .yolo_head_loss import YOLOHeadLossMixin

__all__ = ['DFL', 'YOLOHead', 'YOLO11Head', 'multiclass_nms']


# the class branches a YOLO head may have: the one-to-many (the reference's Detect.cv3) and, in end-to-end
# heads (YOLO26's YOLOE2EHead), the one-to-one copy (Detect.one2one_cv3); fine-tuning remaps the rows of both
# by class name and MuSGD gives both LR x 3, as the reference does
CLS_BRANCHES = ('cls_convs', 'one2one_cls_convs')


@MODELS.register_module()
class YOLOHead(YOLOHeadLossMixin, BaseDenseHead):
    """Decoupled YOLO11 (or YOLOv8) head: DFL box branch + class branch.

    Outputs per level ``(cls_score (B, C, H, W), bbox_dist (B, 4*reg_max, H,
    W))``. Training assigns targets with a batched task-aligned assigner and
    computes BCE + CIoU + DFL losses over the whole batch in one go.

    Example:
        >>> bbox_head = dict(
        ...     type='YOLOHead', num_classes=80, in_channels=[64, 128, 256],
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
        loss_dfl (dict, optional): DFL loss on positives' bin logits (None:
            not built, for heads without DFL).
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
        reject_auto(type(self).__name__, in_channels=in_channels)
        if len(in_channels) != len(featmap_strides):
            raise ValueError(f'YOLOHead: in_channels {list(in_channels)} and featmap_strides '
                             f'{list(featmap_strides)} must have the same length')
        if cls_branch not in ('yolo11', 'yolov8'):
            raise ValueError(f"YOLOHead: cls_branch must be 'yolo11' or 'yolov8', got {cls_branch!r}")
        if cls_channels is not None and (not isinstance(cls_channels, int) or cls_channels < 1):
            raise ValueError(f'YOLOHead: cls_channels must be a positive int or None, got {cls_channels!r}')
        self.num_classes = num_classes
        self.in_channels = list(in_channels)
        self.featmap_strides = list(featmap_strides)
        self.reg_max = reg_max
        self.cls_branch = cls_branch
        self.train_cfg = train_cfg
        self.test_cfg = test_cfg
        self.degenerate_log_interval = degenerate_log_interval
        self._warned_e2e = False  # test_cfg.end2end=True on this one-to-many head: warned once

        c2 = max(16, self.in_channels[0] // 4, 4 * reg_max)
        c3 = cls_channels or max(self.in_channels[0], min(num_classes, 100))
        self.cls_channels = c3
        self.reg_convs = nn.ModuleList(
            nn.Sequential(Conv(c, c2, 3), Conv(c2, c2, 3), nn.Conv2d(c2, 4 * reg_max, 1))
            for c in self.in_channels)
        self.cls_convs = nn.ModuleList(self._cls_branch(c, c3) for c in self.in_channels)
        # no DFL without bins (reg_max=1: the box convs predict the distances), as the reference's Detect
        self.dfl = DFL(reg_max) if reg_max > 1 else nn.Identity()

        self.loss_cls = MODELS.build(loss_cls)
        self.loss_bbox = MODELS.build(loss_bbox)
        self.loss_dfl = MODELS.build(loss_dfl) if loss_dfl is not None else None
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
        if isinstance(self.dfl, DFL):
            self.dfl.reset_bins()

    def forward(self, x: Tuple[Tensor, ...]) -> Tuple[List[Tensor], List[Tensor]]:
        """Per-level class logits (B, C, H, W) and DFL logits (B, 4R, H, W)."""
        if len(x) != len(self.reg_convs):
            raise ValueError(f'YOLOHead expects {len(self.reg_convs)} feature maps, got {len(x)}')
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
            raise ValueError('YOLOHead.predict_by_feat: rescale=True needs one img_meta per image')
        if with_nms and 'nms' not in cfg:
            raise KeyError("YOLOHead: test_cfg lacks 'nms' (e.g. nms=dict(type='nms', iou_threshold=0.7))")
        if cfg.get('end2end') and not self._warned_e2e:  # YOLOE2EHead passes end2end=False here
            self._warned_e2e = True  # a one-to-many head has no end-to-end path: say so once
            print_log(f'{type(self).__name__}: test_cfg.end2end=True is ignored: this head has no one-to-one '
                      'branch (an end-to-end head is YOLOE2EHead, YOLO26); its detections take NMS',
                      logger='current', level=logging.WARNING)
        # float32 even under AMP: fp16 has 0.5 px steps above 512
        points, strides = self.get_priors([m.shape[-2:] for m in cls_scores], torch.float32,
                                          cls_scores[0].device)
        scores = torch.cat([m.flatten(2) for m in cls_scores], dim=2).float().sigmoid()  # (B, C, A)
        dists = torch.cat([m.flatten(2) for m in bbox_dists], dim=2)  # (B, 4R, A)

        # Candidates per image (score_thr, nms_pre), then one decode of all
        # of them: DFL on the few candidates instead of every anchor.
        cands = [select_candidates(scores[i], cfg) for i in range(num_imgs)]
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
        results = InstanceData()
        results.bboxes = boxes[keep]
        results.scores = scores
        results.labels = labels[keep]
        return self.rescale_instances(results, img_meta) if rescale else results

    @classmethod
    def rescale_instances(cls, results: InstanceData, img_meta: dict) -> InstanceData:
        """Map ``results.bboxes`` (network input, xyxy px) back to the original image, in place.

        ``bboxes`` are clipped to ``ori_shape`` (what COCO evaluation, the
        visualizer and exports use); ``unclipped_bboxes`` keeps the same boxes
        unclipped, as the reference's ``DetectionValidator`` matches them
        (:class:`YOLODetMetric` ``match_boxes='unclipped'``).
        """
        unclipped = cls._rescale(results.bboxes, img_meta, clip=False)
        results.bboxes = clip_to_shape(unclipped, img_meta['ori_shape'])
        results.unclipped_bboxes = unclipped
        return results

    @staticmethod
    def _rescale(bboxes: Tensor, img_meta: dict, clip: bool = True) -> Tensor:
        """Undo letterbox padding and resizing, then (``clip``) clip to ``ori_shape``."""
        for key in ('scale_factor', 'ori_shape'):
            if key not in img_meta:
                raise KeyError(f'YOLOHead: img_meta lacks {key!r}, needed to rescale predictions '
                               '(add it to PackDetInputs meta_keys)')
        if 'pad_param' in img_meta:
            top, _, left, _ = (float(v) for v in img_meta['pad_param'])
            bboxes = bboxes - bboxes.new_tensor([left, top, left, top])
        bboxes = bboxes / bboxes.new_tensor(img_meta['scale_factor']).repeat(2)
        return clip_to_shape(bboxes, img_meta['ori_shape']) if clip else bboxes


def clip_to_shape(bboxes: Tensor, shape: Sequence[int]) -> Tensor:
    """Clip (N, 4) xyxy boxes to an image of ``shape`` (h, w, ...): x to [0, w], y to [0, h]."""
    h, w = shape[:2]
    return torch.stack([bboxes[:, 0].clamp(0, w), bboxes[:, 1].clamp(0, h),
                        bboxes[:, 2].clamp(0, w), bboxes[:, 3].clamp(0, h)], dim=-1)


@MODELS.register_module()
class YOLO11Head(YOLOHead):
    """Deprecated name of :class:`YOLOHead` (it builds YOLOv8 too, ``cls_branch='yolov8'``).

    Kept so that older configs build unchanged: same arguments, same modules,
    so the same state-dict keys.
    """

    def __init__(self, *args, **kwargs) -> None:
        warnings.warn("'YOLO11Head' is deprecated: use type='YOLOHead' (same arguments)", FutureWarning,
                      stacklevel=2)
        super().__init__(*args, **kwargs)
