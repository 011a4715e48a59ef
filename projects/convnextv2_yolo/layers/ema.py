"""The reference's model EMA as an mmengine averaged model."""
import math
from typing import Optional

import torch
import torch.nn as nn
from mmdet.registry import MODELS
from mmengine.model import BaseAveragedModel
from torch import Tensor


@MODELS.register_module()
class YOLOModelEMA(BaseAveragedModel):
    """Exponential moving average of the reference (``ModelEMA`` in
    ``ultralytics/utils/torch_utils.py``).

    Each call of :meth:`update_parameters` is one update: ``updates += 1``,
    ``d = decay * (1 - exp(-updates / tau))`` and every floating-point entry
    of the state dict (parameters and buffers such as BatchNorm statistics)
    becomes ``d * ema + (1 - d) * model``; other entries are copied. Unlike
    mmengine's averaged models, the first update blends too (no copy), so
    the average starts from the model as it was when training started
    (``YOLOEMAHook`` copies it there, after weight init and loading).
    mmdet's ``ExpMomentumEMA(momentum=1 - decay, gamma=tau)`` is the same
    formula except for that first update, and counts updates from 0.

    Args:
        model (nn.Module): The model to average.
        decay (float): Final decay. Defaults to 0.9999.
        tau (float): Warm-up of the decay in updates. Defaults to 2000.
        interval (int): Unused (kept for ``BaseAveragedModel``); update
            frequency is chosen by the hook. Defaults to 1.
        device (torch.device, optional): Where the average lives.
        update_buffers (bool): Average float buffers too (the reference
            does). Defaults to True.
    """

    def __init__(self, model: nn.Module, decay: float = 0.9999, tau: float = 2000, interval: int = 1,
                 device: Optional[torch.device] = None, update_buffers: bool = True) -> None:
        super().__init__(model, interval=interval, device=device, update_buffers=update_buffers)
        if not 0 <= decay < 1 or tau <= 0:
            raise ValueError(f'YOLOModelEMA: need 0 <= decay < 1 and tau > 0, got decay={decay}, tau={tau}')
        self.decay = decay
        self.tau = tau

    def decay_at(self, updates: int) -> float:
        """``d`` after ``updates`` updates."""
        return self.decay * (1 - math.exp(-updates / self.tau))

    def avg_func(self, averaged_param: Tensor, source_param: Tensor, steps: int) -> None:
        """``averaged = d * averaged + (1 - d) * source`` with ``d = decay_at(steps)``."""
        d = self.decay_at(steps)
        averaged_param.mul_(d).add_(source_param, alpha=1 - d)

    @torch.no_grad()
    def update_parameters(self, model: nn.Module) -> None:
        """One EMA update from ``model`` (the ``steps`` buffer counts them)."""
        self.steps += 1
        updates = int(self.steps)
        source = model.state_dict() if self.update_buffers else dict(model.named_parameters())
        for key, avg in self.avg_parameters.items():
            src = source[key].detach().to(avg.device)
            if avg.dtype.is_floating_point:
                self.avg_func(avg, src.to(avg.dtype), updates)
            else:
                avg.copy_(src)
        if not self.update_buffers:
            for b_avg, b_src in zip(self.module.buffers(), model.buffers()):
                b_avg.copy_(b_src.to(b_avg.device))
