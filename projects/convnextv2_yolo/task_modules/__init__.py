from .assigners import BatchTaskAlignedAssigner
from .coders import DFLBBoxCoder, YOLODistanceBBoxCoder

__all__ = ['BatchTaskAlignedAssigner', 'DFLBBoxCoder', 'YOLODistanceBBoxCoder']
