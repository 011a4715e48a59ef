from .bbox_nms import multiclass_nms, select_candidates
from .blocks import (C2PSA, C2PSA_VERSIONS, C3, SPPF, SPPF_SETTINGS, YOLO_ARCHS, YOLO_VERSIONS, Attention, Bottleneck,
                     C2f, C3k, C3k2, PSABlock, make_csp_layer)
from .conv import Conv, DWConv
from .dfl import DFL
from .ema import YOLOModelEMA
from .grn import GRN
from .scaling import UNSCALED, YOLO_SCALES, YOLOScale, make_divisible, resolve_scale, scale_channels, scale_depth

__all__ = [
    'Conv', 'DWConv', 'DFL', 'GRN', 'Bottleneck', 'C2f', 'C3', 'C3k', 'C3k2', 'SPPF',
    'multiclass_nms', 'select_candidates',
    'Attention', 'PSABlock', 'C2PSA', 'YOLO_ARCHS', 'YOLO_VERSIONS', 'SPPF_SETTINGS', 'C2PSA_VERSIONS',
    'make_csp_layer', 'make_divisible', 'scale_channels', 'scale_depth',
    'YOLOScale', 'YOLO_SCALES', 'UNSCALED', 'resolve_scale', 'YOLOModelEMA'
]
