from .layer_decay_constructor import ConvNeXtLayerDecayOptimizerConstructor
from .musgd import MuSGD, musgd_param_groups, newton_schulz_orthogonalize
from .yolo_optim_constructor import YOLOOptimWrapperConstructor
from .yolo_optim_wrapper import YOLOAmpOptimWrapper, YOLOGradAccumulation, YOLOOptimWrapper

__all__ = ['ConvNeXtLayerDecayOptimizerConstructor', 'MuSGD', 'musgd_param_groups', 'newton_schulz_orthogonalize',
           'YOLOOptimWrapperConstructor', 'YOLOGradAccumulation', 'YOLOOptimWrapper', 'YOLOAmpOptimWrapper']
