from .layer_decay_constructor import ConvNeXtLayerDecayOptimizerConstructor
from .musgd import MuSGD, musgd_param_groups, newton_schulz_orthogonalize
from .nonfinite_skip import NonFiniteStepSkip, SkipNonFiniteAmpOptimWrapper, SkipNonFiniteOptimWrapper
from .optimizer_decision import (OptimizerChoice, OptimizerDecision, OptimizerPolicy, TrainingRun, auto_choice,
                                 decide_optimizer, explicit_choice)
from .yolo_optim_constructor import YOLOOptimWrapperConstructor
from .yolo_optim_wrapper import YOLOAmpOptimWrapper, YOLOGradAccumulation, YOLOOptimWrapper

__all__ = ['ConvNeXtLayerDecayOptimizerConstructor', 'MuSGD', 'musgd_param_groups', 'newton_schulz_orthogonalize',
           'OptimizerChoice', 'OptimizerDecision',
           'OptimizerPolicy', 'TrainingRun', 'auto_choice', 'decide_optimizer', 'explicit_choice',
           'YOLOOptimWrapperConstructor', 'YOLOGradAccumulation', 'YOLOOptimWrapper', 'YOLOAmpOptimWrapper',
           'NonFiniteStepSkip', 'SkipNonFiniteOptimWrapper', 'SkipNonFiniteAmpOptimWrapper']
