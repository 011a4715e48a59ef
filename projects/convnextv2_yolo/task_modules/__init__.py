from .assigners import BatchTaskAlignedAssigner
from .coders import DFLBBoxCoder

__all__ = ['BatchTaskAlignedAssigner', 'DFLBBoxCoder']
