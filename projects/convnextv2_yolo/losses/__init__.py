from .bce_loss import YOLOBCELoss
from .ciou_loss import YOLOCIoULoss, bbox_ciou

__all__ = ['YOLOBCELoss', 'YOLOCIoULoss', 'bbox_ciou']
