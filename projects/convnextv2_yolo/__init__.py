"""convnextv2_yolo: ConvNeXt V2 backbones under a YOLO11 neck and head for MMDetection 3.x.

Importing this package applies the stack's compatibility fixes (see
:mod:`convnextv2_yolo.patches`) and registers every module into MMDetection's
registries, so a config only needs::

    custom_imports = dict(imports=['convnextv2_yolo'], allow_failed_imports=False)
"""
from . import patches  # noqa: F401  (must run before anything loads checkpoints)
from .version import __version__

patches.apply_all()

from . import (backbones, datasets, dense_heads, detectors, engine, evaluation, layers, losses,  # noqa: E402,F401
               necks, selfsup, task_modules)
from .utils import get_config_path  # noqa: E402

__all__ = ['__version__', 'get_config_path']
