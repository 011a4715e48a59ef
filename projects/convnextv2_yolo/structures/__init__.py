"""Data structures shared by the models and the data pipeline (lowest layer with ``utils``)."""
from .gt_packing import pack_gt_instances

__all__ = ['pack_gt_instances']
