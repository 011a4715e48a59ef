from .ciou_loss import YOLOCIoULoss, bbox_ciou

__all__ = ['YOLOCIoULoss', 'bbox_ciou']
