"""Task-aligned assignment (TOOD / YOLOv8 style) for a whole batch at once.

mmdet's ``TaskAlignedAssigner`` runs one image at a time (a Python loop over
the batch plus per-image ``AssignResult`` objects), too slow for YOLO batches:
this one works on padded (B, M, A) tensors and never leaves the device.
"""
from typing import Dict, Optional

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

    With ``min_gt_size`` > 0, a GT side shorter than it is enlarged to it about
    the box centre for the "centre inside" test only (the CIoU and targets use
    the real box), so that small objects get candidates on the coarser levels:
    ultralytics 8.4 ``TaskAlignedAssigner.select_candidates_in_gts`` with
    ``stride_val = strides[1]`` (16 for strides 8/16/32); 0 is TOOD's and
    ultralytics 8.3's plain test.

    With ``topk2``, after the conflict resolution each GT keeps only its
    ``topk2`` final positives of highest metric (the others become
    background), then the targets are normalised over what is left:
    ultralytics 8.4 ``TaskAlignedAssigner.select_highest_overlaps`` (utils/tal.py),
    whose one-to-one branch of YOLO26 uses ``topk=7, topk2=1`` (at most one
    positive per GT, chosen among the conflict-free top 7). As there, the step
    runs only when ``topk2 != topk``, and the ``topk2`` highest are taken over
    the GT's row of ``metric * final_positive`` (all anchors), so when fewer
    than ``topk2`` of its positives have a metric > 0 the ties at 0 are
    resolved by ``torch.topk``'s order, the same as the reference's.

    Args:
        topk (int): Positives per GT. Defaults to 10.
        alpha (float): Exponent of the classification score. Defaults to 0.5.
        beta (float): Exponent of the IoU. Defaults to 6.0.
        eps (float): Stabiliser of the "centre inside box" test and of the
            metric normalisation. Defaults to 1e-9.
        min_gt_size (float): Smallest GT side (pixels) in the candidate test;
            our configs set 16. Defaults to 0 (no enlargement).
        topk2 (int, optional): Final positives kept per GT after the conflict
            resolution. Defaults to None (off; ``topk2 == topk`` is off too).

    Raises:
        ValueError: ``topk`` or ``topk2`` < 1, or ``min_gt_size`` < 0.
    """

    def __init__(self, topk: int = 10, alpha: float = 0.5, beta: float = 6.0,
                 eps: float = 1e-9, min_gt_size: float = 0., topk2: Optional[int] = None) -> None:
        if topk < 1:
            raise ValueError(f'BatchTaskAlignedAssigner: topk must be >= 1, got {topk}')
        if topk2 is not None and (isinstance(topk2, bool) or not isinstance(topk2, int) or topk2 < 1):
            raise ValueError(f'BatchTaskAlignedAssigner: topk2 must be an int >= 1 or None, got {topk2!r}')
        if min_gt_size < 0:
            raise ValueError(f'BatchTaskAlignedAssigner: min_gt_size must be >= 0, got {min_gt_size}')
        self.min_gt_size = float(min_gt_size)
        self.topk = topk
        self.topk2 = topk2
        self.alpha = alpha
        self.beta = beta
        self.eps = eps

    @torch.no_grad()
    def assign(self, pred_scores: Tensor, pred_bboxes: Tensor, priors: Tensor,
               gt_labels: Tensor, gt_bboxes: Tensor, pad_mask: Tensor,
               dense_scores: bool = True) -> Dict[str, Tensor]:
        """Assign a padded batch of GTs to the anchor points.

        Args:
            pred_scores (Tensor): Sigmoid class scores, shape (B, A, C).
            pred_bboxes (Tensor): Decoded (x1, y1, x2, y2) boxes in pixels,
                shape (B, A, 4).
            priors (Tensor): Anchor-point centres (x, y) in pixels, (A, 2).
            gt_labels (Tensor): GT labels (int), shape (B, M).
            gt_bboxes (Tensor): GT (x1, y1, x2, y2) in pixels, (B, M, 4).
            pad_mask (Tensor): True for real GT rows, shape (B, M).
            dense_scores (bool): Also build ``assigned_scores`` (B, A, C);
                a loss that only needs the positives' scores can skip it.

        Returns:
            dict: ``assigned_labels`` (B, A) long, ``num_classes`` on
            background; ``assigned_bboxes`` (B, A, 4); ``assigned_scores``
            (B, A, C) (if ``dense_scores``); ``fg_scores`` (F,), the target
            score of each positive in ``fg_mask`` order; ``fg_mask`` (B, A)
            bool; ``assigned_gt_inds`` (B, A) long, 0-based GT row, -1 on
            background.
        """
        num_imgs, num_priors, num_classes = pred_scores.shape
        num_gts = gt_bboxes.shape[1]
        if num_gts == 0:
            return self._all_background(pred_scores, pred_bboxes, dense_scores)
        device = pred_scores.device
        gt_labels = gt_labels.long()

        # (B, M, A): anchor centre strictly inside a real GT. With the signs
        # flipped on (x2, y2), one broadcast subtraction gives the four exact
        # distances; padded rows become +inf and never pass.
        prior4 = torch.cat([priors, -priors], dim=-1)
        cand_boxes = gt_bboxes
        if self.min_gt_size > 0:  # small sides enlarged about the centre, for this test only
            centre = (gt_bboxes[..., :2] + gt_bboxes[..., 2:]) / 2
            half = (gt_bboxes[..., 2:] - gt_bboxes[..., :2]).clamp(min=self.min_gt_size) / 2
            cand_boxes = torch.cat([centre - half, centre + half], dim=-1)
        gt4 = torch.cat([cand_boxes[..., :2], -cand_boxes[..., 2:]], dim=-1)
        gt4 = gt4.masked_fill(~pad_mask.bool()[..., None], float('inf'))
        candidates = (prior4 - gt4[:, :, None]).amin(dim=-1) > self.eps

        # Metric and CIoU on the candidate (b, m, a) triples only.
        b, m, a = candidates.nonzero(as_tuple=True)
        ious = bbox_ciou(gt_bboxes[b, m], pred_bboxes[b, a]).clamp_(min=0)
        metrics = pred_scores[b, a, gt_labels[b, m]].pow(self.alpha) * ious.pow(self.beta)
        dense_metric = pred_scores.new_zeros(num_imgs, num_gts, num_priors)
        dense_metric[b, m, a] = metrics

        topk_idx = dense_metric.topk(min(self.topk, num_priors), dim=-1).indices
        in_topk = torch.zeros_like(candidates).scatter_(-1, topk_idx, True)
        is_pos = in_topk[b, m, a]
        pos_key = b[is_pos] * num_priors + a[is_pos]
        num_owners = torch.bincount(pos_key, minlength=num_imgs * num_priors)
        fg_flat = num_owners > 0

        # Per anchor: its positive GT (unique unless claimed several times).
        anchor_gt = torch.zeros(num_imgs * num_priors, dtype=torch.long, device=device)
        anchor_gt[pos_key] = m[is_pos]
        anchor_iou = ious.new_zeros(num_imgs * num_priors)
        anchor_iou[pos_key] = ious[is_pos]
        # Claimed several times: the GT of highest IoU over all GTs, first on
        # ties (argmax); all IoUs 0 -> GT 0, as argmax over zeros.
        cand_key = b * num_priors + a
        best_iou = ious.new_zeros(num_imgs * num_priors).scatter_reduce_(0, cand_key, ious, 'amax')
        is_best = ious == best_iou[cand_key]
        best_gt = torch.full_like(anchor_gt, num_gts).scatter_reduce_(
            0, cand_key[is_best], m[is_best], 'amin')
        best_gt = torch.where(best_iou > 0, best_gt, 0)
        multi = num_owners > 1
        anchor_gt = torch.where(multi, best_gt, anchor_gt)
        anchor_iou = torch.where(multi, best_iou, anchor_iou)

        if self.topk2 is not None and self.topk2 != self.topk:
            fg_flat = self._keep_topk2(fg_flat, anchor_gt, dense_metric)

        # Normalise over each GT's final positives: metric * maxIoU / maxMetric.
        fg_idx = fg_flat.nonzero(as_tuple=True)[0]
        fb, fa = fg_idx // num_priors, fg_idx % num_priors
        fg_gt = anchor_gt[fg_idx]
        fg_metric = dense_metric[fb, fg_gt, fa]
        fg_iou = anchor_iou[fg_idx]
        gt_key = fb * num_gts + fg_gt
        max_metric = fg_metric.new_zeros(num_imgs * num_gts).scatter_reduce_(0, gt_key, fg_metric, 'amax')
        max_iou = fg_iou.new_zeros(num_imgs * num_gts).scatter_reduce_(0, gt_key, fg_iou, 'amax')
        norm_metric = fg_metric * max_iou[gt_key] / (max_metric[gt_key] + self.eps)

        fg_labels = gt_labels.flatten()[gt_key]
        assigned_labels = torch.full((num_imgs, num_priors), num_classes, dtype=torch.long, device=device)
        assigned_labels[fb, fa] = fg_labels
        assigned_gt_inds = torch.full((num_imgs, num_priors), -1, dtype=torch.long, device=device)
        assigned_gt_inds[fb, fa] = fg_gt
        assigned_bboxes = torch.zeros_like(pred_bboxes)
        assigned_bboxes[fb, fa] = gt_bboxes.reshape(-1, 4)[gt_key].to(assigned_bboxes.dtype)
        result = dict(
            assigned_labels=assigned_labels,
            assigned_bboxes=assigned_bboxes,
            fg_scores=norm_metric.to(pred_scores.dtype),
            fg_mask=fg_flat.view(num_imgs, num_priors),
            assigned_gt_inds=assigned_gt_inds)
        if dense_scores:
            result['assigned_scores'] = torch.zeros_like(pred_scores)
            result['assigned_scores'][fb, fa, fg_labels] = result['fg_scores']
        return result

    def _keep_topk2(self, fg_flat: Tensor, anchor_gt: Tensor, dense_metric: Tensor) -> Tensor:
        """Per GT, keep the ``topk2`` positives of highest metric.

        Args:
            fg_flat (Tensor): Positive anchors after the conflict resolution,
                (B * A,) bool.
            anchor_gt (Tensor): GT row of each positive anchor, (B * A,) long.
            dense_metric (Tensor): Align metric of every (image, GT, anchor),
                (B, M, A), 0 off the candidates.

        Returns:
            Tensor: The positives left, (B * A,) bool.
        """
        num_imgs, num_gts, num_priors = dense_metric.shape
        fg_idx = fg_flat.nonzero(as_tuple=True)[0]
        fb, fa = fg_idx // num_priors, fg_idx % num_priors
        fg_gt = anchor_gt[fg_idx]
        # the reference's ``align_metric * mask_pos``: each final positive's
        # metric on its own GT's row, 0 elsewhere
        kept_metric = torch.zeros_like(dense_metric)
        kept_metric[fb, fg_gt, fa] = dense_metric[fb, fg_gt, fa]
        top_idx = kept_metric.topk(min(self.topk2, num_priors), dim=-1).indices
        in_top = torch.zeros(kept_metric.shape, dtype=torch.bool, device=kept_metric.device)
        in_top.scatter_(-1, top_idx, True)
        fg_flat = fg_flat.clone()
        fg_flat[fg_idx] = in_top[fb, fg_gt, fa]
        return fg_flat

    @staticmethod
    def _all_background(pred_scores: Tensor, pred_bboxes: Tensor, dense_scores: bool) -> Dict[str, Tensor]:
        num_imgs, num_priors, num_classes = pred_scores.shape
        result = dict(
            assigned_labels=pred_scores.new_full((num_imgs, num_priors), num_classes, dtype=torch.long),
            assigned_bboxes=torch.zeros_like(pred_bboxes),
            fg_scores=pred_scores.new_zeros(0),
            fg_mask=pred_scores.new_zeros((num_imgs, num_priors), dtype=torch.bool),
            assigned_gt_inds=pred_scores.new_full((num_imgs, num_priors), -1, dtype=torch.long))
        if dense_scores:
            result['assigned_scores'] = torch.zeros_like(pred_scores)
        return result
