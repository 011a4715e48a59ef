from .yolo_head import DFL, YOLO11Head, YOLOHead

__all__ = ['DFL', 'YOLOHead', 'YOLO11Head']
