"""Task-aligned assignment (TOOD / YOLOv8 style) for a whole batch at once.

mmdet's ``TaskAlignedAssigner`` runs one image at a time (a Python loop over
the batch plus per-image ``AssignResult`` objects), too slow for YOLO batches:
this one works on padded (B, M, A) tensors and never leaves the device.
"""
from typing import Dict

import torch
from mmdet.registry import TASK_UTILS
from torch import Tensor

from ...losses.ciou_loss import bbox_ciou


@TASK_UTILS.register_module()
class BatchTaskAlignedAssigner:
    """Assign GT boxes to anchor points of a batch by the task-aligned metric.

    For every GT ``g`` and anchor ``a`` whose centre lies inside ``g``:
    ``metric = score[a, label_g]^alpha * max(CIoU(g, pred_a), 0)^beta``. The
    ``topk`` anchors of highest metric per GT are its positives; an anchor
    claimed by several GTs goes to the GT it overlaps most. The target score
    of a positive is ``metric * maxIoU_g / (maxMetric_g + eps)`` on its GT's
    class (one-hot), 0 elsewhere.

    Args:
        topk (int): Positives per GT. Defaults to 10.
        alpha (float): Exponent of the classification score. Defaults to 0.5.
        beta (float): Exponent of the IoU. Defaults to 6.0.
        eps (float): Stabiliser of the "centre inside box" test and of the
            metric normalisation. Defaults to 1e-9.
    """

    def __init__(self, topk: int = 10, alpha: float = 0.5, beta: float = 6.0,
                 eps: float = 1e-9) -> None:
        if topk < 1:
            raise ValueError(f'BatchTaskAlignedAssigner: topk must be >= 1, got {topk}')
        self.topk = topk
        self.alpha = alpha
        self.beta = beta
        self.eps = eps

    @torch.no_grad()
    def assign(self, pred_scores: Tensor, pred_bboxes: Tensor, priors: Tensor,
               gt_labels: Tensor, gt_bboxes: Tensor, pad_mask: Tensor) -> Dict[str, Tensor]:
        """Assign a padded batch of GTs to the anchor points.

        Args:
            pred_scores (Tensor): Sigmoid class scores, shape (B, A, C).
            pred_bboxes (Tensor): Decoded (x1, y1, x2, y2) boxes in pixels,
                shape (B, A, 4).
            priors (Tensor): Anchor-point centres (x, y) in pixels, (A, 2).
            gt_labels (Tensor): GT labels (int), shape (B, M).
            gt_bboxes (Tensor): GT (x1, y1, x2, y2) in pixels, (B, M, 4).
            pad_mask (Tensor): True for real GT rows, shape (B, M).

        Returns:
            dict: ``assigned_labels`` (B, A) long, ``num_classes`` on
            background; ``assigned_bboxes`` (B, A, 4); ``assigned_scores``
            (B, A, C); ``fg_mask`` (B, A) bool; ``assigned_gt_inds`` (B, A)
            long, 0-based GT row, -1 on background.
        """
        num_imgs, num_priors, num_classes = pred_scores.shape
        num_gts = gt_bboxes.shape[1]
        if num_gts == 0:
            return self._all_background(pred_scores, pred_bboxes)
        pad_mask = pad_mask.bool()
        gt_labels = gt_labels.long()

        # (B, M, A): anchor centre strictly inside a real GT.
        lt = priors[None, None] - gt_bboxes[:, :, None, :2]
        rb = gt_bboxes[:, :, None, 2:] - priors[None, None]
        in_gts = torch.cat([lt, rb], dim=-1).amin(dim=-1) > self.eps
        candidates = in_gts & pad_mask[:, :, None]

        # CIoU only where needed; zero elsewhere.
        overlaps = pred_bboxes.new_zeros(num_imgs, num_gts, num_priors)
        gt_exp = gt_bboxes[:, :, None, :].expand(-1, -1, num_priors, -1)
        pred_exp = pred_bboxes[:, None, :, :].expand(-1, num_gts, -1, -1)
        overlaps[candidates] = bbox_ciou(gt_exp[candidates], pred_exp[candidates]).clamp_(min=0)

        # score of each anchor on each GT's class: (B, M, A).
        label_idx = gt_labels.clamp(0, num_classes - 1)[:, :, None].expand(-1, -1, num_priors)
        gt_scores = pred_scores.transpose(1, 2).gather(1, label_idx)
        align_metric = gt_scores.pow(self.alpha) * overlaps.pow(self.beta)
        align_metric = align_metric * candidates

        topk = min(self.topk, num_priors)
        topk_idx = align_metric.topk(topk, dim=-1, largest=True).indices
        in_topk = torch.zeros_like(candidates).scatter_(-1, topk_idx, True)
        pos = in_topk & candidates

        # An anchor claimed by several GTs goes to the GT it overlaps most.
        multi = pos.sum(dim=1, keepdim=True) > 1
        best_gt = torch.zeros_like(pos).scatter_(1, overlaps.argmax(dim=1, keepdim=True), True)
        pos = torch.where(multi, best_gt, pos)
        fg_mask = pos.any(dim=1)
        gt_idx = pos.to(torch.uint8).argmax(dim=1)

        # Normalise the metric per GT: metric * maxIoU_g / (maxMetric_g + eps).
        align_metric = align_metric * pos
        max_metric = align_metric.amax(dim=-1, keepdim=True)
        max_iou = (overlaps * pos).amax(dim=-1, keepdim=True)
        norm_metric = (align_metric * max_iou / (max_metric + self.eps)).amax(dim=1)

        flat_idx = gt_idx + torch.arange(num_imgs, device=gt_idx.device)[:, None] * num_gts
        labels = gt_labels.flatten()[flat_idx]
        bboxes = gt_bboxes.reshape(-1, 4)[flat_idx]
        scores = torch.zeros_like(pred_scores)
        scores.scatter_(-1, labels.clamp(0, num_classes - 1)[..., None],
                        (norm_metric * fg_mask)[..., None].to(scores.dtype))
        return dict(
            assigned_labels=torch.where(fg_mask, labels, num_classes),
            assigned_bboxes=bboxes,
            assigned_scores=scores,
            fg_mask=fg_mask,
            assigned_gt_inds=torch.where(fg_mask, gt_idx, -1))

    @staticmethod
    def _all_background(pred_scores: Tensor, pred_bboxes: Tensor) -> Dict[str, Tensor]:
        num_imgs, num_priors, num_classes = pred_scores.shape
        return dict(
            assigned_labels=pred_scores.new_full((num_imgs, num_priors), num_classes, dtype=torch.long),
            assigned_bboxes=torch.zeros_like(pred_bboxes),
            assigned_scores=torch.zeros_like(pred_scores),
            fg_mask=pred_scores.new_zeros((num_imgs, num_priors), dtype=torch.bool),
            assigned_gt_inds=pred_scores.new_full((num_imgs, num_priors), -1, dtype=torch.long))
