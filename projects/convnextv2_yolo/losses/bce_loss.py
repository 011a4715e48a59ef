"""Sigmoid binary cross-entropy with soft targets, lean on memory.

mmdet's ``CrossEntropyLoss(use_sigmoid=True)`` gives the same values but
builds an ignore mask and a weight map the size of the (B, A, C) score map
first; torch's fused BCE still allocates three temporaries of that size.
Summed, ``BCE(x, t) = softplus(x) - x * t`` needs one.
"""
from typing import Optional, Sequence

import numpy as np
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


def class_weights_from_counts(class_counts: Sequence[float], cls_pw: float) -> np.ndarray:
    """The reference's class weights (Ultralytics 8.4, ``models/yolo/detect/train.py``
    ``DetectionTrainer.compute_class_weights`` + ``set_class_weights``).

    ``(1 / count) ** cls_pw`` per class; classes without a training label get the mean weight of the
    others; then normalised to mean 1. ``cls_pw`` 0 gives all ones (the reference then sets no weights).

    Args:
        class_counts (Sequence[float]): Training labels per class (C,).
        cls_pw (float): Power in [0, 1]: 0 off, 1 full inverse frequency.

    Returns:
        np.ndarray: (C,) float32 weights with mean 1.
    """
    if not 0 <= cls_pw <= 1:
        raise ValueError(f'cls_pw must be in [0, 1] (the reference asserts it), got {cls_pw}')
    counts = np.asarray(class_counts, dtype=np.float32)
    if not counts.any():
        raise ValueError('class weights: no training label was counted')
    present = counts > 0
    weights = (1.0 / np.where(present, counts, 1.0)) ** cls_pw
    weights = np.where(present, weights, weights[present].mean())
    return (weights / weights.mean()).astype(np.float32)


@MODELS.register_module()
class YOLOBCELoss(nn.Module):
    """``BCEWithLogits`` of logits vs (soft) targets of the same shape.

    With ``cls_pw > 0``, the loss of class c is multiplied by ``class_weight[c]`` (the last axis), as
    the reference's ``v8DetectionLoss`` multiplies its BCE map by ``model.class_weights`` (Ultralytics
    8.4 ``cls_pw``). The weights come from the training labels' class frequencies
    (:func:`class_weights_from_counts`), set before training by ``YOLOClassWeightsHook`` through
    :meth:`set_class_weight`; a loss with ``cls_pw > 0`` and no weights set refuses to run.

    Args:
        use_sigmoid (bool): Must be True; accepted so that a
            ``CrossEntropyLoss(use_sigmoid=True)`` config can switch type only.
        reduction (str): 'none', 'mean' or 'sum'. Defaults to 'mean'.
        loss_weight (float): Multiplier of the loss. Defaults to 1.0.
        cls_pw (float): The reference's class weights power in [0, 1]: 0 (default) off, 1 full
            inverse frequency.
    """

    def __init__(self, use_sigmoid: bool = True, reduction: str = 'mean', loss_weight: float = 1.0,
                 cls_pw: float = 0.0) -> None:
        super().__init__()
        if not use_sigmoid:
            raise ValueError('YOLOBCELoss: only the sigmoid form exists (use_sigmoid=True)')
        if reduction not in ('none', 'mean', 'sum'):
            raise ValueError(f"YOLOBCELoss: reduction must be 'none', 'mean' or 'sum', got {reduction!r}")
        if isinstance(cls_pw, bool) or not isinstance(cls_pw, (int, float)) or not 0 <= cls_pw <= 1:
            raise ValueError(f'YOLOBCELoss: cls_pw must be a number in [0, 1], got {cls_pw!r}')
        self.reduction = reduction
        self.loss_weight = loss_weight
        self.cls_pw = float(cls_pw)
        # a plain attribute, not a buffer: recomputed from the labels before each training (as the reference),
        # so not in the state dict; and set after EMA hooks copied the model, so a buffer would shift the
        # pairing of the EMA's buffers (mmengine pairs them by position)
        self.class_weight: Optional[Tensor] = None

    def set_class_weight(self, class_counts: Sequence[float]) -> Tensor:
        """Set the weights from per-class training label counts (:func:`class_weights_from_counts`)."""
        self.class_weight = torch.from_numpy(class_weights_from_counts(class_counts, self.cls_pw))
        return self.class_weight

    def _class_weight(self, pred: Tensor) -> Optional[Tensor]:
        if self.cls_pw == 0:
            return None
        if self.class_weight is None:
            raise RuntimeError('YOLOBCELoss: cls_pw > 0 but no class weights were set: add '
                               "dict(type='YOLOClassWeightsHook') to custom_hooks")
        if self.class_weight.numel() != pred.shape[-1]:
            raise ValueError(f'YOLOBCELoss: {self.class_weight.numel()} class weights for '
                             f'{pred.shape[-1]} classes')
        if self.class_weight.device != pred.device:  # moved once, not at every step
            self.class_weight = self.class_weight.to(pred.device)
        return self.class_weight.to(pred.dtype)

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
        class_weight = self._class_weight(pred)
        if weight is None and reduction == 'sum':
            if class_weight is not None:  # sum over classes last: one (C,) dot product
                per_class = (F.softplus(pred) - pred * target).reshape(-1, pred.shape[-1]).sum(0)
                return self.loss_weight * (per_class @ class_weight)
            return self.loss_weight * (F.softplus(pred).sum() - _dot(pred, target))
        loss = F.binary_cross_entropy_with_logits(pred, target, reduction='none')
        if class_weight is not None:
            loss = loss * class_weight
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
        class_weight = self._class_weight(pred)
        if class_weight is None:
            return self.loss_weight * (F.softplus(pred).sum() - (pos_logits * pos_targets.to(pred.dtype)).sum())
        neg = F.softplus(pred).reshape(-1, pred.shape[-1]).sum(0) @ class_weight
        pos = (pos_logits * pos_targets.to(pred.dtype) * class_weight[pos_labels]).sum()
        return self.loss_weight * (neg - pos)
