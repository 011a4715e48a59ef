from .checked_coco_metric import CheckedCocoMetric
from .yolo_det_metric import YOLODetMetric, YOLODetResults, yolo_ap_per_class

__all__ = ['CheckedCocoMetric', 'YOLODetMetric', 'YOLODetResults', 'yolo_ap_per_class']
