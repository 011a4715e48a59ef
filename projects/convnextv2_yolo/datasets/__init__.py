
from ..structures import pack_gt_instances  # noqa: F401  (re-exported: tools use it from here)
from . import transforms  # noqa: F401
from .bad_images import BadImageError, SkipBadImagesMixin, TooManyBadImagesError  # noqa: F401
from .checked_coco import CheckedCocoDataset  # noqa: F401
from .coco_api import CheckedCOCO, COCOFormatError, check_coco_dict, load_coco_json  # noqa: F401
from .collate import yolo_collate  # noqa: F401
from .data_preprocessor import YOLODetDataPreprocessor  # noqa: F401
from .image_size import read_image_size  # noqa: F401
from .synthetic import SHAPES, SyntheticConfig, make_synthetic_dataset, synthetic_metainfo  # noqa: F401
from .unlabeled_images import UnlabeledImageDataset  # noqa: F401
from .yolo_dataset import YOLODataset, YOLODatasetError  # noqa: F401
from .yolo_format import DataYaml, DataYamlError, load_data_yaml  # noqa: F401
