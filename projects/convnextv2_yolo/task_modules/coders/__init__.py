from .dfl_coder import DFLBBoxCoder, YOLODistanceBBoxCoder

__all__ = ['DFLBBoxCoder', 'YOLODistanceBBoxCoder']
