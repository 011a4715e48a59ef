"""The reference's optimizer parameter groups and weight-decay scaling."""
from typing import List, Optional

import torch.nn as nn
from mmengine.dist import get_world_size
from mmengine.model import is_model_wrapper
from mmengine.optim import DefaultOptimWrapperConstructor, OptimWrapper
from mmdet.registry import OPTIM_WRAPPER_CONSTRUCTORS, OPTIM_WRAPPERS, OPTIMIZERS

NORM_TYPES = tuple(v for k, v in nn.__dict__.items() if 'Norm' in k and isinstance(v, type))


def is_norm(module: nn.Module) -> bool:
    """torch norm layers (BN/LN/GN/...) and ConvNeXt V2's GRN."""
    return isinstance(module, NORM_TYPES) or type(module).__name__ in ('GRN', 'GlobalResponseNorm')


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class YOLOOptimWrapperConstructor(DefaultOptimWrapperConstructor):
    """Three parameter groups as in the reference trainer.

    - biases: no weight decay, tagged ``yolo_bias=True`` (their warmup starts
      at ``warmup_bias_lr``, see ``YOLOParamSchedulerHook``);
    - weights of norm layers (BatchNorm, LayerNorm, GroupNorm, GRN): no decay;
    - all other weights: ``weight_decay`` scaled by
      ``total_batch * accumulate / nominal_batch_size``.

    With ``optimizer.batch_size_per_gpu`` set, gradients are accumulated over
    ``accumulate = max(round(nominal_batch_size / total_batch), 1)`` steps, as
    the reference does for batches smaller than 64 (the optim wrapper's
    ``accumulative_counts``, unless the config sets it).

    ``paramwise_cfg`` accepts only ``nominal_batch_size`` (default 64).
    """

    def __call__(self, model: nn.Module) -> OptimWrapper:
        if is_model_wrapper(model):
            model = model.module
        optimizer_cfg = self.optimizer_cfg.copy()
        wrapper_cfg = self.optim_wrapper_cfg.copy()
        unknown = set(self.paramwise_cfg) - {'nominal_batch_size'}
        if unknown:
            raise KeyError(f'YOLOOptimWrapperConstructor: unknown paramwise_cfg keys {sorted(unknown)}')
        nbs = self.paramwise_cfg.get('nominal_batch_size', 64)
        weight_decay = optimizer_cfg.pop('weight_decay', 0.0)
        batch_size_per_gpu: Optional[int] = optimizer_cfg.pop('batch_size_per_gpu', None)
        if batch_size_per_gpu is not None:
            total = batch_size_per_gpu * get_world_size()
            accumulate = wrapper_cfg.setdefault('accumulative_counts', max(round(nbs / total), 1))
            weight_decay *= total * accumulate / nbs

        bias: List[nn.Parameter] = []
        norm: List[nn.Parameter] = []
        decay: List[nn.Parameter] = []
        for module in model.modules():
            for name, param in module.named_parameters(recurse=False):
                if name == 'bias' or name.endswith('bias'):
                    bias.append(param)
                elif is_norm(module) or param.ndim <= 1:
                    norm.append(param)
                else:
                    decay.append(param)
        optimizer_cfg['params'] = [
            dict(params=bias, weight_decay=0.0, yolo_bias=True),
            dict(params=decay, weight_decay=weight_decay),
            dict(params=norm, weight_decay=0.0),
        ]
        optimizer = OPTIMIZERS.build(optimizer_cfg)
        return OPTIM_WRAPPERS.build(wrapper_cfg, default_args=dict(optimizer=optimizer))
