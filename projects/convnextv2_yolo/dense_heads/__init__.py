from .yolo11_head import DFL, YOLO11Head

__all__ = ['DFL', 'YOLO11Head']
