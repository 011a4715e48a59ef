
from .convnextv2 import ConvNeXtV2  # noqa: F401
from .yolo_csp_darknet import YOLO11CSPDarknet, YOLOCSPDarknet  # noqa: F401
