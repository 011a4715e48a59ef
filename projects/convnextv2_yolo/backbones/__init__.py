
from .convnextv2 import ConvNeXtV2  # noqa: F401
from .yolo11_csp_darknet import YOLO11CSPDarknet  # noqa: F401
