from .yolo_e2e_head import YOLOE2EHead, topk_detections
from .yolo_head import DFL, YOLO11Head, YOLOHead

__all__ = ['DFL', 'YOLOHead', 'YOLO11Head', 'YOLOE2EHead', 'topk_detections']
