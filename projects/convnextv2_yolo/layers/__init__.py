from .blocks import (C2PSA, C3, SPPF, YOLO_ARCHS, Attention, Bottleneck, C2f,
                     C3k, C3k2, PSABlock, make_csp_layer)
from .bbox_nms import multiclass_nms, select_candidates
from .conv import Conv, DWConv
from .dfl import DFL
from .ema import YOLOModelEMA
from .grn import GRN
from .scaling import make_divisible, scale_channels, scale_depth

__all__ = [
    'Conv', 'DWConv', 'DFL', 'GRN', 'Bottleneck', 'C2f', 'C3', 'C3k', 'C3k2', 'SPPF',
    'multiclass_nms', 'select_candidates',
    'Attention', 'PSABlock', 'C2PSA', 'YOLO_ARCHS', 'make_csp_layer',
    'make_divisible', 'scale_channels', 'scale_depth', 'YOLOModelEMA'
]
