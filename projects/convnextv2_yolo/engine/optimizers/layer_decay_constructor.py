"""Layer-wise LR decay for ConvNeXt backbones with the layer count read from the backbone."""
from typing import List

import torch.nn as nn
from mmdet.engine.optimizers import LearningRateDecayOptimizerConstructor
from mmdet.registry import OPTIM_WRAPPER_CONSTRUCTORS


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class ConvNeXtLayerDecayOptimizerConstructor(LearningRateDecayOptimizerConstructor):
    """mmdet's ``LearningRateDecayOptimizerConstructor`` whose ``num_layers`` comes from the model.

    ``paramwise_cfg.num_layers`` may be left out (or ``'auto'``): it is then the
    backbone's ``lr_decay_num_layers`` (:class:`ConvNeXtV2`: 6 when the third
    stage has at most 9 blocks, else 12, as mmdet's ConvNeXt configs write by
    hand), so a config that changes the backbone's ``arch`` needs no other
    line. An explicit integer is used as written. The parameter groups are
    mmdet's (``decay_rate``, ``decay_type``).

    Raises:
        ValueError: ``num_layers`` is automatic but the backbone has no
            ``lr_decay_num_layers``.
    """

    def add_params(self, params: List[dict], module: nn.Module, **kwargs) -> None:
        """Resolve ``num_layers`` from ``module.backbone``, then group as mmdet does."""
        if self.paramwise_cfg.get('num_layers', 'auto') == 'auto':
            backbone = getattr(module, 'backbone', None)
            num_layers = getattr(backbone, 'lr_decay_num_layers', None)
            if not isinstance(num_layers, int):
                raise ValueError(f'{type(self).__name__}: paramwise_cfg.num_layers is automatic but the '
                                 f'backbone {type(backbone).__name__} has no lr_decay_num_layers: write it')
            self.paramwise_cfg = dict(self.paramwise_cfg, num_layers=num_layers)
        super().add_params(params, module, **kwargs)
