"""Sigmoid binary cross-entropy with soft targets, lean on memory.

mmdet's ``CrossEntropyLoss(use_sigmoid=True)`` gives the same values but
builds an ignore mask and a weight map the size of the (B, A, C) score map
first; torch's fused BCE still allocates three temporaries of that size.
Summed, ``BCE(x, t) = softplus(x) - x * t`` needs one.
"""
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmdet.registry import MODELS
from torch import Tensor

from .utils import weight_reduce


def _dot(a: Tensor, b: Tensor) -> Tensor:
    """``(a * b).sum()`` without the product tensor when both share a dense layout."""
    if a.stride() == b.stride() and a.is_contiguous() == b.is_contiguous():
        order = sorted(range(a.dim()), key=lambda i: -a.stride(i))
        fa, fb = a.permute(order), b.permute(order)
        if fa.is_contiguous() and fb.is_contiguous():
            return torch.dot(fa.reshape(-1), fb.reshape(-1))
    return (a * b).sum()


@MODELS.register_module()
class YOLOBCELoss(nn.Module):
    """``BCEWithLogits`` of logits vs (soft) targets of the same shape.

    Args:
        use_sigmoid (bool): Must be True; accepted so that a
            ``CrossEntropyLoss(use_sigmoid=True)`` config can switch type only.
        reduction (str): 'none', 'mean' or 'sum'. Defaults to 'mean'.
        loss_weight (float): Multiplier of the loss. Defaults to 1.0.
    """

    def __init__(self, use_sigmoid: bool = True, reduction: str = 'mean', loss_weight: float = 1.0) -> None:
        super().__init__()
        if not use_sigmoid:
            raise ValueError('YOLOBCELoss: only the sigmoid form exists (use_sigmoid=True)')
        if reduction not in ('none', 'mean', 'sum'):
            raise ValueError(f"YOLOBCELoss: reduction must be 'none', 'mean' or 'sum', got {reduction!r}")
        self.reduction = reduction
        self.loss_weight = loss_weight

    def forward(self, pred: Tensor, target: Tensor, weight: Optional[Tensor] = None,
                avg_factor: Optional[float] = None,
                reduction_override: Optional[str] = None) -> Tensor:
        """Loss of logits ``pred`` vs targets in [0, 1] of the same shape.

        Args:
            pred (Tensor): Logits.
            target (Tensor): Targets, same shape as ``pred``.
            weight (Tensor, optional): Element weights, broadcastable.
            avg_factor (float, optional): Divisor of the sum for 'mean'
                (exact, no epsilon added).
            reduction_override (str, optional): Overrides ``reduction``.
        """
        if pred.shape != target.shape:
            raise ValueError(f'YOLOBCELoss: pred {tuple(pred.shape)} and target {tuple(target.shape)} differ')
        reduction = reduction_override or self.reduction
        target = target.to(pred.dtype)
        if weight is None and reduction == 'sum':
            return self.loss_weight * (F.softplus(pred).sum() - _dot(pred, target))
        loss = F.binary_cross_entropy_with_logits(pred, target, reduction='none')
        return self.loss_weight * weight_reduce(loss, weight, reduction, avg_factor)

    def sum_sparse(self, pred: Tensor, pos_mask: Tensor, pos_labels: Tensor, pos_targets: Tensor) -> Tensor:
        """Summed loss vs targets that are 0 except one class per positive.

        Equals ``forward(pred, dense_target, reduction_override='sum')``
        without building the dense target.

        Args:
            pred (Tensor): Logits (..., C).
            pos_mask (Tensor): Bool mask over ``pred.shape[:-1]``.
            pos_labels (Tensor): Class of each positive (P,), in mask order.
            pos_targets (Tensor): Target of each positive (P,).
        """
        pos_logits = pred[pos_mask].gather(-1, pos_labels[:, None]).squeeze(-1)
        return self.loss_weight * (F.softplus(pred).sum() - (pos_logits * pos_targets.to(pred.dtype)).sum())
