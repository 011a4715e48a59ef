"""What a dataset check counts and reports: problem kinds by severity, a split's source and statistics.

- errors (exit status 1 of ``tools/misc/check_dataset.py``): unusable images (unreadable, truncated JPEG,
  under 10 px, missing), label rows the loader refuses (wrong field count, not a number, class id out of range,
  coordinates outside [0, 1] by more than 0.01, no area; the image is then skipped), label files that are not
  text, a malformed COCO file, a config class that is not a category of the COCO file, a COCO image whose
  recorded size differs from the decoded one (EXIF orientation: its boxes are misplaced);
- warnings: coordinates slightly outside [0, 1] (clipped), duplicate rows (dropped), label files without an
  image (ignored), COCO boxes outside the image or under 1 px (dropped by ``CocoDataset``), categories not in
  the config's classes;
- notes: images without a label file (YOLO: trained as backgrounds), COCO images without annotations
  (``filter_empty_gt`` drops them from training), crowd annotations (ignore regions).
"""
import re
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

ERROR, WARNING, NOTE = 'error', 'warning', 'note'
# problem kind -> severity (the report's headings)
UNREADABLE, TRUNCATED, TOO_SMALL, MISSING_IMAGE = ('unreadable image', 'truncated image', 'image too small',
                                                   'missing image')
NOT_TEXT, FIELDS, NOT_NUMBER, CLASS_RANGE, OUTSIDE, NO_AREA, BAD_ROW = (
    'label file not text', 'wrong field count', 'not a number', 'class id out of range',
    'coordinates outside [0, 1]', 'box without area, dropped', 'bad label row')
BAD_ANNOTATIONS, SIZE_MISMATCH = 'malformed annotation file', 'recorded image size differs from the image'
CLASS_NOT_IN_FILE = 'class not a category of the file'
CLIPPED, DUPLICATE, ORPHAN = ('coordinates slightly outside [0, 1], clipped', 'duplicate row, dropped',
                              'label file without image')
PAST_EDGE = 'box reaching past the image edge, clipped to the image'
BOX_OUTSIDE, BOX_UNDER_1PX, OTHER_CATEGORY = ('box outside the image', 'box under 1 px, dropped by CocoDataset',
                                              'category not in the classes')
NO_LABEL, NO_ANNOTATIONS, CROWD = ('image without label file, trains as background',
                                   'image without annotations', 'crowd annotation, an ignore region')
SEVERITY = {**dict.fromkeys((UNREADABLE, TRUNCATED, TOO_SMALL, MISSING_IMAGE, NOT_TEXT, FIELDS, NOT_NUMBER,
                             CLASS_RANGE, OUTSIDE, BAD_ROW, BAD_ANNOTATIONS, SIZE_MISMATCH, CLASS_NOT_IN_FILE),
                            ERROR),
            **dict.fromkeys((CLIPPED, PAST_EDGE, DUPLICATE, NO_AREA, ORPHAN, BOX_OUTSIDE, BOX_UNDER_1PX,
                             OTHER_CATEGORY), WARNING),
            **dict.fromkeys((NO_LABEL, NO_ANNOTATIONS, CROWD), NOTE)}
# yolo_format's row messages -> kind (first match)
ROW_KINDS = (('past the image edge', PAST_EDGE), ('clipped', CLIPPED), ('duplicate', DUPLICATE),
             ('fields; expected', FIELDS),
             ('not a number', NOT_NUMBER), ('not a finite number', NOT_NUMBER), ('not a class index', CLASS_RANGE),
             ('outside [0, 1]', OUTSIDE), ('no area', NO_AREA))
_ROW = re.compile(r'^row (\d+): (.*)$')
# tiny boxes: a side under these many px; sides within SIZE_TOLERANCE px of a threshold count as equal
TINY_SIDES = (4, 8)
SIZE_TOLERANCE = 1e-6
# COCO boxes outside the image by at most this (px) are float rounding, not reported
ROUNDING_PX = 1e-6
MAX_LISTED = 20
# items per kind kept in summary.json (the count is always complete)
MAX_JSON_ITEMS = 1000


@dataclass
class SplitSource:
    """Where one split's data is.

    Attributes:
        split (str): Name in the report (``train``, ``val``, ``test``, ``train.1``...).
        kind (str): ``'yolo'`` or ``'coco'``.
        names (tuple[str]): Class names (YOLO: the label files' index order).
        sources (list[str]): YOLO: image folders / lists.
        ann_file (str): COCO: the annotation file.
        img_dir (str): COCO: the folder ``file_name`` is relative to.
        classes (tuple[str] | None): COCO: the config's classes (None: the file's categories by id).
    """
    split: str
    kind: str
    names: Tuple[str, ...] = ()
    sources: List[str] = field(default_factory=list)
    ann_file: str = ''
    img_dir: str = ''
    classes: Optional[Tuple[str, ...]] = None

    @property
    def description(self) -> str:
        if self.kind == 'yolo':
            return ', '.join(self.sources)
        return f'{self.ann_file} (images in {self.img_dir})'


@dataclass
class SplitStats:
    """Counts and problems of one split.

    Attributes:
        source (SplitSource): The split.
        images (int): Images listed (YOLO) / in the file (COCO).
        skipped (int): Images the loader leaves out (unusable image or label file).
        label_files (int): YOLO: label files found; COCO: annotations.
        backgrounds (int): Usable images without a box.
        instances (np.ndarray): Boxes per class (usable images).
        images_with (np.ndarray): Usable images containing each class.
        sizes (list): ``(width, height, class)`` in px per counted box.
        problems (dict[str, list[str]]): Kind -> ``file[:row]: message`` lines.
        same_as (str): The earlier split whose data this split is ('' if none).
    """
    source: SplitSource
    images: int = 0
    skipped: int = 0
    label_files: int = 0
    backgrounds: int = 0
    instances: np.ndarray = None
    images_with: np.ndarray = None
    sizes: List[Tuple[float, float, int]] = field(default_factory=list)
    problems: Dict[str, List[str]] = field(default_factory=lambda: defaultdict(list))
    same_as: str = ''

    def __post_init__(self) -> None:
        n = len(self.source.names)
        if self.instances is None:
            self.instances = np.zeros(n, dtype=np.int64)
        if self.images_with is None:
            self.images_with = np.zeros(n, dtype=np.int64)

    def add(self, kind: str, line: str) -> None:
        self.problems[kind].append(line)

    def count_boxes(self, classes: Sequence[int], wh: np.ndarray) -> None:
        """Count the boxes of one usable image (classes and px sizes)."""
        classes = np.asarray(classes, dtype=np.int64)
        self.instances += np.bincount(classes, minlength=len(self.instances))
        self.images_with += np.bincount(np.unique(classes), minlength=len(self.instances))
        self.sizes += [(float(w), float(h), int(c)) for (w, h), c in zip(wh, classes)]
        self.backgrounds += not len(classes)

    def tiny(self, side: float) -> int:
        """Boxes with a side under ``side`` px (within ``SIZE_TOLERANCE``)."""
        if not self.sizes:
            return 0
        wh = np.asarray(self.sizes)[:, :2]
        return int((wh.min(1) < side - SIZE_TOLERANCE).sum())

    def severity_counts(self) -> Dict[str, int]:
        counts = dict.fromkeys((ERROR, WARNING, NOTE), 0)
        for kind, lines in self.problems.items():
            counts[SEVERITY[kind]] += len(lines)
        return counts


def where_rows(path: str, messages: Sequence[str]) -> List[Tuple[str, str]]:
    """``(kind, 'path:row: message')`` for yolo_format's ``row k: message`` lines."""
    out = []
    for msg in messages:
        kind = next((k for pattern, k in ROW_KINDS if pattern in msg), BAD_ROW)
        m = _ROW.match(msg)
        out.append((kind, f'{path}:{m.group(1)}: {m.group(2)}' if m else f'{path}: {msg}'))
    return out


def image_problem_kind(reason: str) -> str:
    """The kind of a :func:`yolo_format.verify_image` reason."""
    if 'not found' in reason:
        return MISSING_IMAGE
    if 'truncated' in reason:
        return TRUNCATED
    if 'too small' in reason:
        return TOO_SMALL
    return UNREADABLE


# ----------------------------------------------------------------------------- YOLO
