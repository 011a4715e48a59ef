from .yolo_optim_constructor import YOLOOptimWrapperConstructor
from .yolo_optim_wrapper import YOLOAmpOptimWrapper, YOLOGradAccumulation, YOLOOptimWrapper

__all__ = ['YOLOOptimWrapperConstructor', 'YOLOGradAccumulation', 'YOLOOptimWrapper', 'YOLOAmpOptimWrapper']
