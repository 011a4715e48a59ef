"""YOLO26's end-to-end (NMS-free) detection head: one-to-many and one-to-one branches, no DFL.

Follows ``Detect`` of ultralytics/nn/modules/head.py (8.4) with ``end2end=True`` and ``reg_max=1``
(ultralytics/cfg/models/26/yolo26.yaml): the one-to-one branches are deep copies of the one-to-many
ones, run on detached features while training, and their decoded outputs are reduced by a two-stage
top-k instead of NMS.
"""
import copy
import logging
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
from mmdet.registry import MODELS, TASK_UTILS
from mmdet.utils import ConfigType, InstanceList, OptConfigType, OptMultiConfig
from mmengine.logging import print_log
from mmengine.structures import InstanceData
from torch import Tensor

from .yolo_e2e_head_loss import YOLOE2EHeadLossMixin
from .yolo_head import YOLOHead

__all__ = ['YOLOE2EHead', 'topk_detections']


def topk_detections(boxes: Tensor, scores: Tensor, max_det: int = 300) -> Tensor:
    """The reference's end-to-end top-k (``Detect.postprocess`` / ``get_topk_index``, not class-agnostic).

    First the ``k = min(max_det, A)`` anchors with the highest best-class score, then the ``k`` highest
    (anchor, class) pairs among those anchors' ``k * C`` scores: multi-label (an anchor may appear with
    several classes), sorted by descending score (``torch.topk`` order), no NMS and no threshold.

    Args:
        boxes (Tensor): (B, A, 4) boxes (x1, y1, x2, y2).
        scores (Tensor): (B, A, C) class probabilities.
        max_det (int): Detections per image. Defaults to 300.

    Returns:
        Tensor: (B, k, 6) = [x1, y1, x2, y2, score, class index (float)].
    """
    num_anchors, num_classes = scores.shape[1:]
    k = min(max_det, num_anchors)
    anchor_idx = scores.max(dim=-1)[0].topk(k, dim=-1)[1]  # (B, k)
    cand = scores.gather(1, anchor_idx.unsqueeze(-1).expand(-1, -1, num_classes))  # (B, k, C)
    top_scores, flat_idx = cand.flatten(1).topk(k, dim=-1)  # (B, k)
    labels = (flat_idx % num_classes).to(scores.dtype)
    anchors = anchor_idx.gather(1, flat_idx // num_classes)
    top_boxes = boxes.gather(1, anchors.unsqueeze(-1).expand(-1, -1, boxes.shape[-1]))
    return torch.cat([top_boxes, top_scores.unsqueeze(-1), labels.unsqueeze(-1)], dim=-1)


@MODELS.register_module()
class YOLOE2EHead(YOLOE2EHeadLossMixin, YOLOHead):
    """YOLO26's end-to-end head: YOLOHead's branches without DFL plus one-to-one copies.

    * Box branch (``reg_convs``): 4 ltrb distances per anchor in stride units (``reg_max=1``: no DFL,
      no activation, no clamp), hidden width ``max(16, in_channels[0] // 4, 4)``.
    * Class branch (``cls_convs``): as :class:`YOLOHead` (``cls_branch``, ``cls_channels``).
    * ``one2one_reg_convs`` / ``one2one_cls_convs`` (the reference's ``one2one_cv2`` / ``one2one_cv3``):
      deep copies of the two branches made at construction, re-synchronised in :meth:`init_weights`
      (box bias 2.0, class bias ``log(5 / nc / (640 / stride)^2)`` in both), so both start from the
      same weights; in training mode they run on detached features (the one-to-one loss reaches the
      head's own convs only).

    ``forward`` returns per-level lists ``(cls_scores (B, C, H, W), bbox_preds (B, 4, H, W),
    o2o_cls_scores, o2o_bbox_preds)``. Prediction (``test_cfg``):

    * ``end2end=True``: only the one-to-one branch is decoded (boxes ``anchor -/+ dist * stride``,
      sigmoid scores), :func:`topk_detections` keeps ``max_per_img`` (the reference's ``max_det``, 300)
      multi-label detections without NMS, then scores ``> score_thr`` are kept (the reference's
      end-to-end ``non_max_suppression`` path: strict, no IoU suppression);
    * ``end2end=False``: the one-to-many branch through :meth:`YOLOHead.predict_by_feat` (``score_thr``,
      ``nms_pre``, ``nms``, ``max_per_img``, ``multi_label``): the reference's default ``nms=None`` path.
      Keys left out take the reference's values (:attr:`NMS_DEFAULTS`: ``nms_pre=30000``,
      ``nms=dict(type='nms', iou_threshold=0.7)``, ``multi_label=True``), so
      ``--cfg-options model.test_cfg.end2end=False`` is enough to switch.

    NMS never runs on the one-to-one output (the reference refuses ``nms=True`` for end-to-end
    models): with ``end2end=True`` the NMS keys (``nms``, ``nms_pre``, ``multi_label``) are ignored,
    and a test config that has them gets a warning (once per head) saying so.

    Boxes are rescaled to the original image as :class:`YOLOHead` does.

    Training (:class:`YOLOE2EHeadLossMixin`, first base): the reference's ``E2ELoss``: each branch
    is assigned on its own outputs (``assigner``: ``train_cfg['assigner']``, the one-to-many
    ``topk=10``; ``o2o_assigner``: ``train_cfg['o2o_assigner']``, ``topk=7, topk2=1``) and gets the
    class BCE, the CIoU box loss and the distance L1 loss (``loss_l1``, replacing DFL); each term is
    ``o2m_weight * L_o2m + (1 - o2m_weight) * L_o2o``, ``o2m_weight`` set per epoch by
    :class:`~convnextv2_yolo.engine.hooks.E2ELossScheduleHook` (0.8 -> 0.1). The unweighted o2o
    terms are logged as ``o2o_cls``, ``o2o_bbox``, ``o2o_l1`` (the reference's logged losses).

    Example:
        >>> import torch
        >>> head = YOLOE2EHead(num_classes=80, in_channels=[64, 128, 256],
        ...                    test_cfg=dict(end2end=True, max_per_img=300, score_thr=0.001))
        >>> head = head.eval()
        >>> feats = [torch.rand(1, c, s, s) for c, s in zip([64, 128, 256], [8, 4, 2])]
        >>> outs = head(feats)
        >>> [len(o) for o in outs], tuple(outs[3][0].shape)
        ([3, 3, 3, 3], (1, 4, 8, 8))
        >>> tuple(head.predict_dense(outs[2], outs[3]).shape)  # 84 anchors < 300
        (1, 84, 6)

    Args:
        num_classes (int): Number of classes.
        in_channels (Sequence[int]): Channels of each input level.
        featmap_strides (Sequence[int]): Stride of each level. Defaults to (8, 16, 32).
        reg_max (int): Must be 1 (no DFL). Defaults to 1.
        cls_branch (str): 'yolo11' (depthwise class branch, YOLO26's) or 'yolov8'.
        cls_channels (int, optional): Class-branch width, as :class:`YOLOHead`.
        loss_cls (dict): Class loss (gain 0.5, the reference's ``cls``).
        loss_bbox (dict): IoU box loss (gain 7.5, ``box``).
        loss_l1 (dict): Distance loss replacing DFL: :class:`YOLODistanceL1Loss` (sides normalised by
            the image size; gain 1.5, the reference's ``dfl`` gain reused).
        loss_dfl (None): Must be None (a config inheriting a DFL head's sets it so); anything else is a
            ``ValueError``.
        bbox_coder (dict): Distance coder. Defaults to ``YOLODistanceBBoxCoder``.
        o2m_weight (float): Initial weight of the one-to-many loss (the reference's ``E2ELoss.o2m``,
            0.8; the one-to-one weight is ``1 - o2m_weight``). Defaults to 0.8.
        degenerate_log_interval (int): As :class:`YOLOHead`.
        train_cfg (dict, optional): ``assigner`` (one-to-many) and ``o2o_assigner`` (one-to-one).
        test_cfg (dict, optional): ``end2end`` (default True), ``max_per_img``, ``score_thr``; with
            ``end2end=False`` also ``nms_pre``, ``nms``, ``multi_label`` (defaults
            :attr:`NMS_DEFAULTS`; see :meth:`resolve_test_cfg`).
        init_cfg (dict | list[dict], optional): Initialisation config.

    Raises:
        ValueError: ``reg_max != 1``, ``o2m_weight`` outside [0, 1], no ``loss_l1``, or a ``loss_dfl``.
    """

    # the one-to-many branch's NMS settings when test_cfg.end2end=False leaves them out: the
    # reference's validation defaults (iou=0.7, max_nms=30000, multi_label)
    NMS_DEFAULTS = dict(nms_pre=30000, nms=dict(type='nms', iou_threshold=0.7), multi_label=True)

    def __init__(self,
                 num_classes: int,
                 in_channels: Sequence[int],
                 featmap_strides: Sequence[int] = (8, 16, 32),
                 reg_max: int = 1,
                 cls_branch: str = 'yolo11',
                 cls_channels: Optional[int] = None,
                 loss_cls: ConfigType = dict(type='YOLOBCELoss', reduction='sum', loss_weight=0.5),
                 loss_bbox: ConfigType = dict(type='YOLOCIoULoss', reduction='sum', loss_weight=7.5),
                 loss_l1: ConfigType = dict(type='YOLODistanceL1Loss', reduction='sum', loss_weight=1.5),
                 loss_dfl: OptConfigType = None,
                 bbox_coder: ConfigType = dict(type='YOLODistanceBBoxCoder'),
                 o2m_weight: float = 0.8,
                 degenerate_log_interval: int = 50,
                 train_cfg: OptConfigType = None,
                 test_cfg: OptConfigType = None,
                 init_cfg: OptMultiConfig = None) -> None:
        if reg_max != 1:
            raise ValueError(f'YOLOE2EHead: reg_max must be 1 (YOLO26 has no DFL), got {reg_max}')
        if not 0 <= o2m_weight <= 1:
            raise ValueError(f'YOLOE2EHead: o2m_weight must be in [0, 1] (the one-to-one weight is 1 - it), '
                             f'got {o2m_weight}')
        if not loss_l1:
            raise ValueError('YOLOE2EHead: loss_l1 is required (the box distance loss that replaces DFL, e.g. '
                             f"dict(type='YOLODistanceL1Loss', reduction='sum', loss_weight=1.5)), got {loss_l1!r}")
        if loss_dfl is not None:  # None in configs that inherit a DFL head's (configs/_base_/models/yolo26.py)
            raise ValueError(f'YOLOE2EHead: loss_dfl must be None (no DFL; the box term is loss_l1), got {loss_dfl}')
        super().__init__(num_classes, in_channels, featmap_strides=featmap_strides, reg_max=reg_max,
                         cls_branch=cls_branch, cls_channels=cls_channels, loss_cls=loss_cls, loss_bbox=loss_bbox,
                         loss_dfl=None, bbox_coder=bbox_coder, degenerate_log_interval=degenerate_log_interval,
                         train_cfg=train_cfg, test_cfg=test_cfg, init_cfg=init_cfg)
        self.loss_l1 = MODELS.build(loss_l1)
        self.o2m_weight = float(o2m_weight)
        self.o2o_assigner = None
        if train_cfg is not None and 'o2o_assigner' in train_cfg:
            self.o2o_assigner = TASK_UTILS.build(train_cfg['o2o_assigner'])
        # the reference copies before its bias init: both branches start equal
        self.one2one_reg_convs = copy.deepcopy(self.reg_convs)
        self.one2one_cls_convs = copy.deepcopy(self.cls_convs)
        self._warned_nms = False  # NMS keys in an end-to-end test config: warned once
        self._logged_nms = False  # end2end=False: the resolved NMS settings logged once

    def init_weights(self) -> None:
        """The reference's ``Detect.bias_init`` for both branches (box bias 2.0, class bias
        ``log(5 / nc / (640 / s)^2)``), the one-to-one branches then copied from the one-to-many ones
        (whatever ``init_cfg`` drew, they start equal, as the reference's deep copy)."""
        super().init_weights()
        for reg in self.reg_convs:
            nn.init.constant_(reg[-1].bias, 2.0)
        self.one2one_reg_convs.load_state_dict(self.reg_convs.state_dict())
        self.one2one_cls_convs.load_state_dict(self.cls_convs.state_dict())

    def forward(self, x: Tuple[Tensor, ...]) -> Tuple[List[Tensor], List[Tensor], List[Tensor], List[Tensor]]:
        """Both branches on the neck's levels.

        Args:
            x (tuple[Tensor]): Per-level features (B, in_channels[i], H_i, W_i).

        Returns:
            tuple[list[Tensor]]: ``cls_scores`` (B, C, H, W) and ``bbox_preds`` (B, 4, H, W) of the
            one-to-many branch, then ``o2o_cls_scores`` and ``o2o_bbox_preds`` of the one-to-one
            branch (computed on detached features in training mode). Raw logits and distances.
        """
        cls_scores, bbox_preds = super().forward(x)
        feats = [f.detach() for f in x] if self.training else x
        o2o_cls = [cls(feat) for feat, cls in zip(feats, self.one2one_cls_convs)]
        o2o_bbox = [reg(feat) for feat, reg in zip(feats, self.one2one_reg_convs)]
        return cls_scores, bbox_preds, o2o_cls, o2o_bbox

    def resolve_test_cfg(self, cfg: OptConfigType = None) -> dict:
        """The test config as prediction applies it (``self.test_cfg`` if ``cfg`` is None).

        ``end2end`` (default True), ``score_thr`` (0.001) and ``max_per_img`` (300) always;
        with ``end2end=False`` also ``nms_pre``, ``nms`` and ``multi_label``, missing ones (and
        missing keys of ``nms``) taken from :attr:`NMS_DEFAULTS`. With ``end2end=True`` the NMS keys
        are dropped, with a warning (once per head) when the config has them: NMS added to an
        end-to-end model by mistake.

        Returns:
            dict: A new dict (the config is not modified).
        """
        cfg = dict((self.test_cfg if cfg is None else cfg) or {})
        out = dict(cfg, end2end=bool(cfg.get('end2end', True)), score_thr=float(cfg.get('score_thr', 0.001)),
                   max_per_img=int(cfg.get('max_per_img', 300)))
        if not out['end2end']:
            for key, value in self.NMS_DEFAULTS.items():
                out.setdefault(key, copy.deepcopy(value))
            out['nms'] = dict(self.NMS_DEFAULTS['nms'], **dict(out['nms'] or {}))
            if not self._logged_nms:
                self._logged_nms = True
                print_log('YOLOE2EHead: test_cfg.end2end=False: the one-to-many branch with NMS, '
                          + ', '.join(f'{k}={out[k]}' for k in ('score_thr', 'nms_pre', 'nms', 'multi_label',
                                                                'max_per_img')), logger='current')
            return out
        ignored = [key for key in self.NMS_DEFAULTS if key in out]
        if ignored and not self._warned_nms:
            self._warned_nms = True
            print_log(f'YOLOE2EHead: test_cfg.end2end=True: the one-to-one branch\'s top-{out["max_per_img"]} '
                      'detections are final and take no NMS (the reference\'s nms=False); test_cfg '
                      f'{", ".join(f"{k}={out[k]}" for k in ignored)} ignored. For detections with NMS set '
                      'test_cfg.end2end=False (the one-to-many branch + NMS, the reference\'s default nms=None); '
                      'NMS on the one-to-one output is not supported', logger='current', level=logging.WARNING)
        for key in ignored:
            del out[key]
        return out

    def predict_dense(self, cls_scores: List[Tensor], bbox_preds: List[Tensor], max_det: int = 300) -> Tensor:
        """End-to-end detections of one branch, before any threshold: the reference's eval output with
        ``end2end`` set, ``(B, min(max_det, A), 6)`` = [x1, y1, x2, y2, score, class] in pixels of the
        network input (float32; float64 for float64 inputs).

        Args:
            cls_scores (list[Tensor]): Per-level class logits (B, C, H, W) (the one-to-one branch's).
            bbox_preds (list[Tensor]): Per-level distances (B, 4, H, W).
            max_det (int): Detections per image. Defaults to 300.
        """
        # float32 even under AMP (as YOLOHead), float64 kept
        dtype = torch.promote_types(cls_scores[0].dtype, torch.float32)
        points, strides = self.get_priors([m.shape[-2:] for m in cls_scores], dtype, cls_scores[0].device)
        scores = torch.cat([m.flatten(2) for m in cls_scores], dim=2).to(dtype).sigmoid().transpose(1, 2)
        boxes = self.bbox_coder.decode(points, self._flatten(bbox_preds).to(dtype), strides)
        return topk_detections(boxes, scores, max_det)

    def predict_by_feat(self,
                        cls_scores: List[Tensor],
                        bbox_preds: List[Tensor],
                        o2o_cls_scores: Optional[List[Tensor]] = None,
                        o2o_bbox_preds: Optional[List[Tensor]] = None,
                        score_factors: Optional[List[Tensor]] = None,
                        batch_img_metas: Optional[List[dict]] = None,
                        cfg: OptConfigType = None,
                        rescale: bool = False,
                        with_nms: bool = True) -> InstanceList:
        """Detections per image from the one-to-one branch (``end2end``, the default) or from the
        one-to-many branch with NMS (``end2end=False``).

        Args:
            cls_scores, bbox_preds (list[Tensor]): One-to-many outputs (B, C, H, W), (B, 4, H, W).
            o2o_cls_scores, o2o_bbox_preds (list[Tensor], optional): One-to-one outputs; needed with
                ``end2end``.
            score_factors: Unused.
            batch_img_metas (list[dict], optional): As :meth:`YOLOHead.predict_by_feat`.
            cfg (dict, optional): Test config; ``self.test_cfg`` if None.
            rescale (bool): Map boxes back to the original image.
            with_nms (bool): ``end2end=False`` only (the end-to-end path has no NMS).

        Returns:
            list[InstanceData]: ``bboxes`` (K, 4), ``scores`` (K,), ``labels`` (K,) per image, by
            descending score (K <= ``max_per_img``).
        """
        cfg = self.resolve_test_cfg(cfg)
        if not cfg['end2end']:
            return super().predict_by_feat(cls_scores, bbox_preds, None, batch_img_metas, cfg, rescale, with_nms)
        if o2o_cls_scores is None or o2o_bbox_preds is None:
            raise ValueError('YOLOE2EHead.predict_by_feat: end2end=True needs the one-to-one outputs '
                             '(o2o_cls_scores, o2o_bbox_preds)')
        num_imgs = o2o_cls_scores[0].shape[0]
        if rescale and (batch_img_metas is None or len(batch_img_metas) != num_imgs):
            raise ValueError('YOLOE2EHead.predict_by_feat: rescale=True needs one img_meta per image')
        dets = self.predict_dense(o2o_cls_scores, o2o_bbox_preds, cfg['max_per_img'])
        score_thr = cfg['score_thr']
        metas = batch_img_metas if batch_img_metas is not None else [{}] * num_imgs
        results = []
        for img_dets, meta in zip(dets, metas):
            img_dets = img_dets[img_dets[:, 4] > score_thr]
            res = InstanceData()
            res.bboxes = img_dets[:, :4]
            res.scores = img_dets[:, 4]
            res.labels = img_dets[:, 5].long()
            results.append(self.rescale_instances(res, meta) if rescale else res)
        return results
