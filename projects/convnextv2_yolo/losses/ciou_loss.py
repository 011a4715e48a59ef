"""Complete-IoU exactly as the YOLO reference computes it.

mmdet's ``ciou_loss`` gates ``alpha`` with ``IoU > 0.5``, drops the ``eps`` from
the ``alpha`` denominator and clamps the result, so it is not the reference
formula: this module implements the reference one.
"""
import math
from typing import Optional

import torch
import torch.nn as nn
from mmdet.registry import MODELS
from torch import Tensor

from .utils import weight_reduce

_V_FACTOR = 4 / math.pi**2


def bbox_ciou(box1: Tensor, box2: Tensor, eps: float = 1e-7) -> Tensor:
    """Complete IoU of two broadcastable sets of (x1, y1, x2, y2) boxes.

    ``CIoU = IoU - (rho^2 / c^2 + alpha * v)`` with the aspect term
    ``v = 4/pi^2 (atan(w2/h2) - atan(w1/h1))^2`` and
    ``alpha = v / (v - IoU + 1 + eps)`` (no gradient through ``alpha``);
    ``eps`` is added to the heights, the union and ``c^2``. Symmetric in its
    two arguments.

    Args:
        box1 (Tensor): Boxes of shape (..., 4).
        box2 (Tensor): Boxes of shape (..., 4), broadcastable with ``box1``.
        eps (float): Numerical stabiliser. Defaults to 1e-7.

    Returns:
        Tensor: CIoU of shape (...), in [-1.5, 1].
    """
    b1_x1, b1_y1, b1_x2, b1_y2 = box1.unbind(-1)
    b2_x1, b2_y1, b2_x2, b2_y2 = box2.unbind(-1)
    w1, h1 = b1_x2 - b1_x1, b1_y2 - b1_y1 + eps
    w2, h2 = b2_x2 - b2_x1, b2_y2 - b2_y1 + eps

    inter = ((torch.minimum(b1_x2, b2_x2) - torch.maximum(b1_x1, b2_x1)).clamp(0) *
             (torch.minimum(b1_y2, b2_y2) - torch.maximum(b1_y1, b2_y1)).clamp(0))
    union = w1 * h1 + w2 * h2 - inter + eps
    iou = inter / union

    cw = torch.maximum(b1_x2, b2_x2) - torch.minimum(b1_x1, b2_x1)
    ch = torch.maximum(b1_y2, b2_y2) - torch.minimum(b1_y1, b2_y1)
    c2 = cw.pow(2) + ch.pow(2) + eps
    rho2 = ((b2_x1 + b2_x2 - b1_x1 - b1_x2).pow(2) +
            (b2_y1 + b2_y2 - b1_y1 - b1_y2).pow(2)) / 4
    v = _V_FACTOR * (torch.atan(w2 / h2) - torch.atan(w1 / h1)).pow(2)
    with torch.no_grad():
        alpha = v / (v - iou + (1 + eps))
    return iou - (rho2 / c2 + v * alpha)


@MODELS.register_module()
class YOLOCIoULoss(nn.Module):
    """``1 - CIoU`` box loss with the reference CIoU (see :func:`bbox_ciou`).

    Args:
        eps (float): CIoU stabiliser. Defaults to 1e-7.
        reduction (str): 'none', 'mean' or 'sum'. Defaults to 'mean'.
        loss_weight (float): Multiplier of the loss. Defaults to 1.0.
    """

    def __init__(self, eps: float = 1e-7, reduction: str = 'mean',
                 loss_weight: float = 1.0) -> None:
        super().__init__()
        if reduction not in ('none', 'mean', 'sum'):
            raise ValueError(f"YOLOCIoULoss: reduction must be 'none', 'mean' or 'sum', got {reduction!r}")
        self.eps = eps
        self.reduction = reduction
        self.loss_weight = loss_weight

    def forward(self, pred: Tensor, target: Tensor, weight: Optional[Tensor] = None,
                avg_factor: Optional[float] = None,
                reduction_override: Optional[str] = None) -> Tensor:
        """Loss of (N, 4) predicted vs target boxes.

        Args:
            pred (Tensor): Predicted (x1, y1, x2, y2) boxes, shape (N, 4).
            target (Tensor): Target boxes, shape (N, 4).
            weight (Tensor, optional): Per-box weight, shape (N,).
            avg_factor (float, optional): Divisor of the sum for 'mean'
                (exact, no epsilon added).
            reduction_override (str, optional): Overrides ``reduction``.
        """
        reduction = reduction_override or self.reduction
        loss = 1.0 - bbox_ciou(pred, target, self.eps)
        return self.loss_weight * weight_reduce(loss, weight, reduction, avg_factor)
