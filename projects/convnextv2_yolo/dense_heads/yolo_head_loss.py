"""The training loss of :class:`~convnextv2_yolo.dense_heads.YOLOHead`: task-aligned assignment, then
BCE (class), CIoU (box) and DFL (bin) losses over the whole batch, as the reference's ``v8DetectionLoss``
(ultralytics/utils/loss.py); heads without bins (``reg_max=1``) get the reference's distance L1 instead
of DFL."""
from typing import Dict, List, Tuple, Union

import torch
from mmdet.registry import MODELS
from mmdet.utils import InstanceList, OptInstanceList
from mmengine.dist import get_dist_info
from mmengine.logging import MessageHub, print_log
from torch import Tensor

from ..structures import pack_gt_instances


class YOLOHeadLossMixin:
    """``loss_by_feat`` of :class:`~convnextv2_yolo.dense_heads.YOLOHead` and its GT padding.

    Uses the head's ``assigner``, ``loss_cls``, ``loss_bbox``, ``get_priors``, ``num_classes``,
    ``featmap_strides``, ``reg_max`` and ``degenerate_log_interval``; with DFL (``reg_max > 1``) also
    ``bbox_coder``, ``dfl`` and ``loss_dfl``; without (``reg_max == 1``: the box branch predicts the 4
    side distances in stride units directly, as YOLO26) ``loss_l1`` instead of the DFL term, built on
    first use as ``YOLODistanceL1Loss(reduction='sum', loss_weight=1.5)`` when the head has none.
    """

    #: the distance term of ``reg_max == 1`` heads when the head sets no ``loss_l1``
    default_loss_l1 = dict(type='YOLODistanceL1Loss', reduction='sum', loss_weight=1.5)

    def loss_by_feat(self,
                     cls_scores: List[Tensor],
                     bbox_dists: List[Tensor],
                     batch_gt_instances: Union[Tensor, InstanceList],
                     batch_img_metas: List[dict],
                     batch_gt_instances_ignore: OptInstanceList = None) -> Dict[str, Tensor]:
        """BCE, CIoU and DFL (or, with ``reg_max == 1``, distance L1) losses for the whole batch.

        Args:
            cls_scores (list[Tensor]): Per-level class logits (B, C, H, W).
            bbox_dists (list[Tensor]): Per-level DFL logits (B, 4R, H, W),
                or with ``reg_max == 1`` side distances (B, 4, H, W) in
                stride units.
            batch_gt_instances (Tensor | list[InstanceData]): Packed (N, 6)
                [batch_idx, label, x1, y1, x2, y2] or per-image instances.
            batch_img_metas (list[dict]): Image metas (unused; kept for the
                mmdet interface).
            batch_gt_instances_ignore: Unused (the reference has no ignore
                regions).

        Returns:
            dict: ``loss_cls``, ``loss_bbox``, and ``loss_dfl`` (or
            ``loss_l1``), each the reference's gain-weighted loss times the
            batch size (times the world size, see :meth:`loss_scale`).
        """
        num_imgs = cls_scores[0].shape[0]
        gts = self._gt_tensors(batch_gt_instances, num_imgs, cls_scores[0].device)
        losses = self._branch_losses(cls_scores, bbox_dists, gts, self.assigner)
        scale = self.loss_scale(num_imgs)
        return {f'loss_{name}': value * scale for name, value in losses.items()}

    @staticmethod
    def loss_scale(num_imgs: int) -> int:
        """The factor of the batch-mean losses: images per GPU x number of GPUs.

        The reference returns ``loss * batch_size`` (its per-GPU batch; its DDP
        averages the gradients); ours multiplies by the total batch, so that
        on one GPU both are the same number.
        """
        return num_imgs * get_dist_info()[1]

    def _gt_tensors(self, batch_gt_instances: Union[Tensor, InstanceList], num_imgs: int,
                    device: torch.device) -> Tuple[Tensor, Tensor, Tensor]:
        """Packed (N, 6) GTs or per-image instances -> padded labels (B, M), boxes (B, M, 4) px, mask (B, M)."""
        packed = batch_gt_instances
        if not isinstance(packed, Tensor):
            packed = pack_gt_instances(packed)
        return self._pad_gts(packed.to(device), num_imgs)

    def _branch_losses(self, cls_scores: List[Tensor], bbox_dists: List[Tensor],
                       gts: Tuple[Tensor, Tensor, Tensor], assigner) -> Dict[str, Tensor]:
        """Assign one branch's predictions and compute its three losses.

        The reference's ``v8DetectionLoss.get_assigned_targets_and_loss``
        (ultralytics/utils/loss.py): targets assigned on the branch's own
        detached sigmoid scores and decoded boxes, then class BCE on every
        anchor and, on the positives, CIoU and DFL (``reg_max > 1``) or
        :class:`~convnextv2_yolo.losses.YOLODistanceL1Loss` (``reg_max == 1``),
        each weighted by the positive's target score and divided by the sum
        of the target scores (at least 1).

        Args:
            cls_scores (list[Tensor]): Per-level class logits (B, C, H, W).
            bbox_dists (list[Tensor]): Per-level DFL logits (B, 4R, H, W) or
                (``reg_max == 1``) distances (B, 4, H, W) in stride units.
            gts (tuple[Tensor]): From :meth:`_gt_tensors`.
            assigner: A :class:`BatchTaskAlignedAssigner`.

        Returns:
            dict: ``cls``, ``bbox`` and ``dfl`` (or ``l1``): scalar losses
            with their loss weights (the reference's gains), per batch (not
            multiplied by the batch size).
        """
        if assigner is None:
            raise RuntimeError(f"{type(self).__name__}: train_cfg['assigner'] is required to compute losses")
        gt_labels, gt_bboxes, pad_mask = gts
        num_imgs = cls_scores[0].shape[0]
        device = cls_scores[0].device
        use_dfl = self.reg_max > 1

        # float32 (also for half-precision outputs under AMP); float64 outputs keep float64 (exactness tests)
        dtype = torch.promote_types(cls_scores[0].dtype, torch.float32)
        points, strides = self.get_priors([m.shape[-2:] for m in cls_scores], dtype, device)
        # (B, A, C) view of a (B, C, A) tensor: no transposing copy of the
        # largest map; targets created "like" it share the layout.
        flat_cls = torch.cat([m.flatten(2) for m in cls_scores], dim=2).to(dtype).transpose(1, 2)
        flat_dist = self._flatten(bbox_dists).to(dtype)
        if use_dfl:
            pred_boxes = self.bbox_coder.decode(points, self.dfl(flat_dist))  # stride units
        else:  # the raw outputs are the distances: no bins, no clamp
            pred_boxes = torch.cat([points - flat_dist[..., :2], points + flat_dist[..., 2:]], dim=-1)

        # losses with ``sum_sparse`` (YOLOBCELoss) never need the dense
        # (B, A, C) target map, the largest tensor of the step
        sparse_cls = hasattr(self.loss_cls, 'sum_sparse')
        assigned = assigner.assign(
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

        if use_dfl:
            target_dist = self.bbox_coder.encode(fg_points, target_boxes)
            loss_dfl = self.loss_dfl(
                flat_dist[fg_mask].reshape(-1, self.reg_max), target_dist.reshape(-1),
                weight=(weight / 4).repeat_interleave(4), reduction_override='sum') / avg_factor
            return dict(cls=loss_cls, bbox=loss_bbox, dfl=loss_dfl)

        # unclamped target distances, stride units -> pixels; the image is the
        # padded batch input, (H, W) of the first level times its stride
        target_dist = torch.cat([fg_points - target_boxes[:, :2], target_boxes[:, 2:] - fg_points], dim=-1)
        img_shape = [s * self.featmap_strides[0] for s in cls_scores[0].shape[-2:]]
        loss_l1 = self._loss_l1_module()(
            flat_dist[fg_mask] * fg_strides, target_dist * fg_strides, img_shape, weight=weight,
            reduction_override='sum') / avg_factor
        return dict(cls=loss_cls, bbox=loss_bbox, l1=loss_l1)

    def _loss_l1_module(self):
        """The head's ``loss_l1``; built from :attr:`default_loss_l1` (and kept) when it has none."""
        if getattr(self, 'loss_l1', None) is None:
            self.loss_l1 = MODELS.build(self.default_loss_l1)
        return self.loss_l1

    def _pad_gts(self, packed: Tensor, num_imgs: int) -> Tuple[Tensor, Tensor, Tensor]:
        """(N, 6) packed GTs -> labels (B, M), boxes (B, M, 4), mask (B, M).

        Degenerate boxes (zero width or height) keep their row but are masked
        out, and counted for the log.
        """
        if packed.dim() != 2 or packed.shape[1] != 6:
            raise ValueError('YOLOHead: packed GTs (bboxes_labels) must have shape (N, 6) = '
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
            raise ValueError(f'YOLOHead: GT labels must be in [0, {self.num_classes}), '
                             f'got range [{lab_min}, {lab_max}] (check num_classes / dataset classes)')
        if idx_min < 0 or idx_max >= num_imgs:
            raise ValueError(f'YOLOHead: GT batch indices must be in [0, {num_imgs}), '
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
            print_log(f'YOLOHead: dropped {dropped} degenerate GT boxes (zero width or height) in the '
                      f'last {self.degenerate_log_interval} iterations ({self._total_degenerate} in total)',
                      logger='current')
            MessageHub.get_current_instance().update_info('yolo_head/degenerate_gt_boxes',
                                                          self._total_degenerate)
