from .bce_loss import YOLOBCELoss
from .ciou_loss import YOLOCIoULoss, bbox_ciou
from .distance_l1_loss import YOLODistanceL1Loss

__all__ = ['YOLOBCELoss', 'YOLOCIoULoss', 'YOLODistanceL1Loss', 'bbox_ciou']
