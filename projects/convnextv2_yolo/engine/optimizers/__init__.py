from .yolo_optim_constructor import YOLOOptimWrapperConstructor

__all__ = ['YOLOOptimWrapperConstructor']
