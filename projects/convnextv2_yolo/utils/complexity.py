"""Model size and compute: parameter count and FLOPs (2 x multiply-adds).

Convolutions and matrix products (attention included) are counted by
PyTorch's ``FlopCounterMode`` at the operator level, so any backbone, neck
or head is covered without per-module rules. Normalisation layers are
counted as the reference's profiler (thop) counts them, 4 multiply-adds per
output element of an affine norm layer (2 without affine), so the totals
match the published YOLO GFLOPs (within 0.1% for YOLOv8/YOLO11 n..x).
Activations, pooling, upsampling and elementwise ops count zero, as there.
A model built on the ``meta`` device is counted without computing.
"""
from typing import Optional, Sequence

import torch
import torch.nn as nn
from torch.utils.flop_counter import FlopCounterMode


def count_params(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters of ``model`` (shared ones counted once).

    Args:
        model (nn.Module): The model.
        trainable_only (bool): Only those with ``requires_grad``.
            Defaults to False (all, as the reference counts them).
    """
    return sum(p.numel() for p in model.parameters()
               if p.requires_grad or not trainable_only)


NORM_LAYERS = (nn.modules.batchnorm._BatchNorm, nn.LayerNorm, nn.GroupNorm,
               nn.modules.instancenorm._InstanceNorm)


def _norm_macs(module: nn.Module, output: torch.Tensor) -> int:
    affine = getattr(module, 'affine', False) or getattr(module, 'elementwise_affine', False)
    return output.numel() * (4 if affine else 2)


def _run(model: nn.Module, inputs: torch.Tensor) -> None:
    """Forward pass; mmengine models are called in their 'tensor' mode."""
    try:
        from mmengine.model import BaseModel
    except ImportError:  # pragma: no cover - mmengine is a dependency
        BaseModel = ()  # type: ignore[assignment]
    if isinstance(model, BaseModel):
        model(inputs, mode='tensor')
    else:
        model(inputs)


def count_flops(model: nn.Module, input_shape: Sequence[int] = (3, 640, 640),
                inputs: Optional[torch.Tensor] = None,
                count_norm: bool = True) -> int:
    """FLOPs (``2 x`` multiply-adds) of one forward pass at batch size 1.

    Args:
        model (nn.Module): A plain module called as ``model(x)`` or an
            mmengine model (then called with ``mode='tensor'``, i.e.
            backbone, neck and head without post-processing).
        input_shape (Sequence[int]): ``(C, H, W)``. Defaults to
            (3, 640, 640).
        inputs (torch.Tensor, optional): Use this input instead of zeros of
            ``input_shape``.
        count_norm (bool): Add the normalisation layers' operations the
            way the reference counts them. Defaults to True.

    Returns:
        int: Floating-point operations, 2 per multiply-add.
    """
    if inputs is None:
        if len(input_shape) != 3:
            raise ValueError(f'input_shape must be (C, H, W), got {tuple(input_shape)}')
        param = next(model.parameters(), None)
        device = param.device if param is not None else torch.device('cpu')
        dtype = param.dtype if param is not None and param.is_floating_point() else torch.float32
        inputs = torch.zeros((1, *input_shape), device=device, dtype=dtype)
    norm_macs = [0]

    def norm_hook(module: nn.Module, args: tuple, output: torch.Tensor) -> None:
        norm_macs[0] += _norm_macs(module, output)

    handles = [m.register_forward_hook(norm_hook) for m in model.modules()
               if count_norm and isinstance(m, NORM_LAYERS)]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            _run(model, inputs)
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()
    return int(counter.get_total_flops()) + 2 * norm_macs[0]
