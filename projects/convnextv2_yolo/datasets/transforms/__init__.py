from .letter_resize import LetterResize  # noqa: F401
from .yolo_augment import YOLOHSVRandomAug, YOLORandomAffine  # noqa: F401
from .yolo_loading import YOLOLoadAnnotations  # noqa: F401
from .yolo_mix import YOLOCopyPaste, YOLOMixUp  # noqa: F401
from .yolo_mosaic import YOLOMosaic  # noqa: F401
