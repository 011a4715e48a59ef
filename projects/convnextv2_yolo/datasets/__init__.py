
from .synthetic import (SHAPES, SyntheticConfig, make_synthetic_dataset,  # noqa: F401
                        synthetic_metainfo)
from .collate import pack_gt_instances, yolo_collate  # noqa: F401
from .data_preprocessor import YOLODetDataPreprocessor  # noqa: F401
from . import transforms  # noqa: F401
from .checked_coco import CheckedCocoDataset  # noqa: F401
