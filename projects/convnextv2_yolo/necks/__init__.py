from .yolo_pafpn import YOLO11PAFPN, YOLOPAFPN

__all__ = ['YOLOPAFPN', 'YOLO11PAFPN']
