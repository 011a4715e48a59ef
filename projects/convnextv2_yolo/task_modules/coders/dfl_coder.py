"""Box <-> (left, top, right, bottom) distance coder for DFL heads.

mmdet's ``DistancePointBBoxCoder`` clamps targets to ``max_dis - 0.1`` and has
no stride; the reference clamps to ``reg_max - 1 - 0.01`` in stride units.
"""
from typing import Optional, Union

import torch
from mmdet.registry import TASK_UTILS
from torch import Tensor


@TASK_UTILS.register_module()
class DFLBBoxCoder:
    """Encode boxes as ltrb distances from anchor points, in stride units.

    Args:
        reg_max (int): Number of DFL bins; distances are encoded in
            ``[0, reg_max - 1 - clamp_eps]``. Defaults to 16.
        clamp_eps (float): Margin below the last bin. Defaults to 0.01.
    """

    def __init__(self, reg_max: int = 16, clamp_eps: float = 0.01) -> None:
        if reg_max < 2:
            raise ValueError(f'DFLBBoxCoder: reg_max must be >= 2, got {reg_max}')
        self.reg_max = reg_max
        self.clamp_eps = clamp_eps

    def encode(self, points: Tensor, gt_bboxes: Tensor,
               strides: Optional[Union[Tensor, float]] = None) -> Tensor:
        """(x1, y1, x2, y2) boxes -> clamped ltrb distances in stride units.

        Args:
            points (Tensor): Anchor points (..., 2), same units as the boxes.
            gt_bboxes (Tensor): Boxes (..., 4).
            strides (Tensor | float, optional): Divisor turning distances
                into stride units, broadcastable to (..., 1); None = 1.
        """
        dist = torch.cat([points - gt_bboxes[..., :2], gt_bboxes[..., 2:] - points], dim=-1)
        if strides is not None:
            dist = dist / strides
        return dist.clamp(0, self.reg_max - 1 - self.clamp_eps)

    def decode(self, points: Tensor, distances: Tensor,
               strides: Optional[Union[Tensor, float]] = None) -> Tensor:
        """ltrb distances -> (x1, y1, x2, y2) boxes.

        Args:
            points (Tensor): Anchor points (..., 2).
            distances (Tensor): ltrb distances (..., 4) in stride units.
            strides (Tensor | float, optional): Multiplier applied to the
                decoded boxes (points are then in stride units too); None = 1.
        """
        boxes = torch.cat([points - distances[..., :2], points + distances[..., 2:]], dim=-1)
        if strides is not None:
            boxes = boxes * strides
        return boxes


@TASK_UTILS.register_module()
class YOLODistanceBBoxCoder(DFLBBoxCoder):
    """ltrb distances in stride units without a bin range: the box coder of
    heads without DFL (``reg_max=1``, YOLO26).

    ``decode`` is :meth:`DFLBBoxCoder.decode` (``anchor -/+ distance``, times
    the stride: the reference's ``dist2bbox(..., xywh=False) * strides``,
    ultralytics/utils/tal.py); ``encode`` does not clamp (the reference's
    ``bbox2dist`` with ``reg_max=None``): distances may be negative.

    Args:
        reg_max (int): Accepted for the heads' interface; must be 1.
    """

    def __init__(self, reg_max: int = 1) -> None:
        if reg_max != 1:
            raise ValueError(f'YOLODistanceBBoxCoder: reg_max must be 1 (no DFL bins), got {reg_max}')
        self.reg_max = reg_max
        self.clamp_eps = 0.0

    def encode(self, points: Tensor, gt_bboxes: Tensor,
               strides: Optional[Union[Tensor, float]] = None) -> Tensor:
        """(x1, y1, x2, y2) boxes -> ltrb distances (unclamped), divided by
        ``strides`` when given."""
        dist = torch.cat([points - gt_bboxes[..., :2], gt_bboxes[..., 2:] - points], dim=-1)
        return dist / strides if strides is not None else dist
