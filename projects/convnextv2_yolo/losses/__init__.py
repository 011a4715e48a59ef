from .bce_loss import YOLOBCELoss, class_weights_from_counts
from .ciou_loss import YOLOCIoULoss, bbox_ciou
from .distance_l1_loss import YOLODistanceL1Loss

__all__ = ['YOLOBCELoss', 'class_weights_from_counts', 'YOLOCIoULoss', 'YOLODistanceL1Loss', 'bbox_ciou']
