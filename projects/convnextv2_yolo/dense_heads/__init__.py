from mmdet.registry import MODELS

from .yolo11_head import DFL, YOLO11Head

# The head builds YOLO11 and YOLOv8 (``cls_branch``): configs name it
# 'YOLOHead'; 'YOLO11Head' stays registered for older configs.
YOLOHead = YOLO11Head
MODELS.register_module(name='YOLOHead', module=YOLOHead)

__all__ = ['DFL', 'YOLOHead', 'YOLO11Head']
