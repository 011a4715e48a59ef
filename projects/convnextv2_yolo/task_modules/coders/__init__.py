from .dfl_coder import DFLBBoxCoder

__all__ = ['DFLBBoxCoder']
