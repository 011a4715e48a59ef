"""The reference's optimizer parameter groups and weight-decay scaling."""
import logging
from typing import List

import torch.nn as nn
from mmdet.registry import OPTIM_WRAPPER_CONSTRUCTORS, OPTIM_WRAPPERS, OPTIMIZERS
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper
from mmengine.optim import DefaultOptimWrapperConstructor, OptimWrapper

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
    - all other weights: ``weight_decay``, tagged ``yolo_base_weight_decay``:
      the optimizer wrapper scales it by ``total_batch * accumulate /
      nominal_batch_size`` once the real batch size is known.

    The wrapper is a :class:`YOLOOptimWrapper` (``type='OptimWrapper'`` or
    ``'AmpOptimWrapper'``, as ``--amp`` sets it, become ``YOLOOptimWrapper`` /
    ``YOLOAmpOptimWrapper``): it derives the gradient accumulation (up to the
    nominal batch of 64) and the weight-decay scale from the training data
    loader's batch size and the world size before training, so no batch size
    is written in the optimizer config.

    ``optimizer=dict(type='auto', weight_decay=5e-4)`` is the reference's
    ``optimizer=auto``: the wrapper is told so (``auto_optimizer=True``, part of
    its :class:`~.optimizer_decision.OptimizerPolicy`) and the groups sit in a
    placeholder SGD until the decision (``decide_optimizer``, made by
    ``YOLOParamSchedulerHook`` before the run, when the dataset size and the
    schedule are known) replaces it by AdamW or MuSGD.

    ``paramwise_cfg`` accepts only ``nominal_batch_size`` (default 64).
    ``optimizer.batch_size_per_gpu`` (older configs) is ignored with a warning.
    """

    WRAPPER_TYPES = {'OptimWrapper': 'YOLOOptimWrapper', 'AmpOptimWrapper': 'YOLOAmpOptimWrapper',
                     'YOLOOptimWrapper': 'YOLOOptimWrapper', 'YOLOAmpOptimWrapper': 'YOLOAmpOptimWrapper',
                     'SkipNonFiniteOptimWrapper': 'YOLOOptimWrapper',
                     'SkipNonFiniteAmpOptimWrapper': 'YOLOAmpOptimWrapper'}

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
        if optimizer_cfg.pop('batch_size_per_gpu', None) is not None:
            print_log('YOLOOptimWrapperConstructor: optimizer.batch_size_per_gpu is ignored: the gradient '
                      'accumulation and weight decay follow train_dataloader.batch_size x world size',
                      logger='current', level=logging.WARNING)
        wrapper_type = wrapper_cfg.get('type', 'OptimWrapper')
        wrapper_cfg['type'] = self.WRAPPER_TYPES.get(wrapper_type, wrapper_type)
        if wrapper_cfg['type'] not in self.WRAPPER_TYPES.values():
            raise ValueError(f"YOLOOptimWrapperConstructor: optim_wrapper.type must be one of "
                             f"{sorted(set(self.WRAPPER_TYPES))}, got {wrapper_type!r}")
        wrapper_cfg.setdefault('nominal_batch_size', nbs)

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
            dict(params=decay, weight_decay=weight_decay, yolo_base_weight_decay=weight_decay),
            dict(params=norm, weight_decay=0.0),
        ]
        if optimizer_cfg.get('type') == 'auto':
            unknown = set(optimizer_cfg) - {'type', 'params'}
            if unknown:
                raise KeyError(f"YOLOOptimWrapperConstructor: optimizer type 'auto' chooses lr and momentum "
                               f'itself; remove {sorted(unknown)} (weight_decay is allowed)')
            optimizer_cfg = dict(type='SGD', lr=0.01, momentum=0.9, nesterov=True, params=optimizer_cfg['params'])
            wrapper_cfg['auto_optimizer'] = True
        optimizer = OPTIMIZERS.build(optimizer_cfg)
        return OPTIM_WRAPPERS.build(wrapper_cfg, default_args=dict(optimizer=optimizer))
