"""L1 loss on box-side distances normalised by the image size: the box term that replaces DFL in heads
without distance bins (``reg_max=1``, YOLO26)."""
from typing import Optional, Sequence, Union

import torch.nn as nn
from mmdet.registry import MODELS
from torch import Tensor

from .utils import weight_reduce


@MODELS.register_module()
class YOLODistanceL1Loss(nn.Module):
    """Mean over the 4 sides of ``|pred - target|``, sides divided by the image size.

    The (left, top, right, bottom) distances from an anchor point to the box
    sides, in pixels, are divided by the image width (left, right) and height
    (top, bottom); per box the loss is the mean of the 4 absolute differences,
    times its weight. Targets are not clamped (a target side may be negative
    for an anchor outside a small GT that the assigner's ``min_gt_size``
    enlargement admitted). As ultralytics 8.4 ``BboxLoss.forward`` with
    ``reg_max <= 1`` (utils/loss.py), whose head config reuses the DFL gain
    (``hyp.dfl`` = 1.5) for this term.

    Args:
        reduction (str): 'none', 'mean' or 'sum'. Defaults to 'mean'.
        loss_weight (float): Multiplier of the loss. Defaults to 1.0.
    """

    def __init__(self, reduction: str = 'mean', loss_weight: float = 1.0) -> None:
        super().__init__()
        if reduction not in ('none', 'mean', 'sum'):
            raise ValueError(f"YOLODistanceL1Loss: reduction must be 'none', 'mean' or 'sum', got {reduction!r}")
        self.reduction = reduction
        self.loss_weight = loss_weight

    def forward(self, pred: Tensor, target: Tensor, img_shape: Union[Tensor, Sequence[float]],
                weight: Optional[Tensor] = None, avg_factor: Optional[float] = None,
                reduction_override: Optional[str] = None) -> Tensor:
        """Loss of predicted vs target side distances.

        Args:
            pred (Tensor): Predicted (l, t, r, b) distances in pixels, (N, 4).
            target (Tensor): Target distances in pixels, (N, 4).
            img_shape (Tensor | sequence): Image (height, width) in pixels
                (the padded batch input's).
            weight (Tensor, optional): Per-box weight, (N,).
            avg_factor (float, optional): Divisor of the sum for 'mean'
                (exact, no epsilon added).
            reduction_override (str, optional): Overrides ``reduction``.

        Returns:
            Tensor: (N,) per box for 'none', else a scalar.
        """
        if pred.shape != target.shape or pred.shape[-1] != 4:
            raise ValueError(f'YOLODistanceL1Loss: pred {tuple(pred.shape)} and target {tuple(target.shape)} '
                             'must both be (N, 4)')
        reduction = reduction_override or self.reduction
        if isinstance(img_shape, Tensor):
            size = img_shape.to(pred)[[1, 0, 1, 0]]
        else:
            h, w = (float(v) for v in img_shape)
            size = pred.new_tensor([w, h, w, h])
        loss = (pred / size - target.to(pred.dtype) / size).abs().mean(-1)
        return self.loss_weight * weight_reduce(loss, weight, reduction, avg_factor)
