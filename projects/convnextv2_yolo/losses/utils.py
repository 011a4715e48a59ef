"""The weighting and reduction shared by the YOLO losses.

Not mmdet's ``weight_reduce_loss``: that one adds an epsilon to ``avg_factor``
and refuses ``avg_factor`` with 'sum'; here the mean divides by ``avg_factor``
exactly and 'sum' ignores it.
"""
from typing import Optional

from torch import Tensor


def weight_reduce(loss: Tensor, weight: Optional[Tensor], reduction: str, avg_factor: Optional[float]) -> Tensor:
    """``loss * weight`` (when given) reduced by ``reduction``.

    Args:
        loss (Tensor): Element-wise loss.
        weight (Tensor, optional): Element weights, broadcastable.
        reduction (str): 'none', 'mean' or 'sum'.
        avg_factor (float, optional): Divisor of the sum for 'mean' (exact,
            no epsilon added); without it 'mean' is the plain mean.

    Returns:
        Tensor: ``loss``'s shape for 'none', else a scalar.
    """
    if weight is not None:
        loss = loss * weight
    if reduction == 'sum':
        loss = loss.sum()
    elif reduction == 'mean':
        loss = loss.sum() / avg_factor if avg_factor is not None else loss.mean()
    return loss
