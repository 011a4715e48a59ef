"""The reference's (Ultralytics) dataset layout: ``data.yaml``, image folders / lists, ``labels/*.txt``.

Facts followed (``ultralytics/data/utils.py``: ``check_det_dataset``, ``img2label_paths``,
``verify_image_label``; ``ultralytics/data/base.py``: ``get_img_files``):

- ``data.yaml`` keys: ``path`` (dataset root), ``train`` / ``val`` / ``test`` (a folder, a ``.txt``
  list of images, or a list of either), ``names`` (list, or index -> name mapping), ``nc``;
- a folder split holds its images anywhere below it; a ``.txt`` list names one image per line,
  ``./x`` relative to the list's folder;
- the label of ``.../images/.../a.jpg`` is ``.../labels/.../a.txt`` (the last ``/images/`` becomes
  ``/labels/``, the extension ``.txt``);
- a label row is ``class cx cy w h`` (normalised to [0, 1]) or ``class x1 y1 x2 y2 ...``
  (a polygon of a segmentation label, normalised), whose bounding box is the box (its points are
  kept too, as float32 as the reference's ``segments``); a missing or empty label file means an
  image without objects.
"""
import os
import os.path as osp
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

IMG_EXTENSIONS = ('.bmp', '.dng', '.jpeg', '.jpg', '.mpo', '.png', '.tif', '.tiff', '.webp', '.pfm', '.heic')
SPLITS = ('train', 'val', 'test')
# coordinates this far outside [0, 1] are rounding of the exporter: clipped with a warning;
# farther is an error for the file
COORD_TOLERANCE = 0.01
# corners outside [0, 1] by at most this are rounding (float arithmetic of ``cx + w / 2`` for a box
# touching the border, or an exporter's 6 printed decimals): clipped without a warning
ROUNDING = 1e-6
# 'nc' without 'names' above this is refused (a typo or a corrupt file: the names would fill the memory)
MAX_CLASSES = 100_000
# images smaller than this on a side are refused, as the reference does (its assert > 9 px)
MIN_IMAGE_SIDE = 10


class DataYamlError(ValueError):
    """A ``data.yaml`` is unreadable or names paths that do not exist (names the yaml and key)."""


@dataclass
class DataYaml:
    """A parsed ``data.yaml``.

    Attributes:
        file (str): The yaml file.
        root (str): The dataset root (``path``), absolute.
        names (tuple[str]): Class names, index order.
        splits (dict[str, list[str]]): Per split whose paths exist, its
            sources (absolute folders or ``.txt`` list files).
        unresolved (dict[str, str]): Per split whose paths do not exist, the
            error (naming the yaml, the key and the paths tried). A split is
            only needed when it is used, as in the reference (an export's
            missing ``test`` folder does not stop training).
    """
    file: str
    root: str
    names: Tuple[str, ...]
    splits: Dict[str, List[str]] = field(default_factory=dict)
    unresolved: Dict[str, str] = field(default_factory=dict)

    @property
    def declared(self) -> List[str]:
        """The splits the yaml names, found or not, in train/val/test order."""
        return [s for s in SPLITS if s in self.splits or s in self.unresolved]

    def sources(self, split: str) -> List[str]:
        """The folders / lists of a split.

        Raises:
            DataYamlError: the yaml has no such split, or its path does not exist.
        """
        if split in self.unresolved:
            raise DataYamlError(self.unresolved[split])
        if split not in self.splits:
            raise DataYamlError(f'{self.file}: no {split!r} split (it has {self.declared})')
        return list(self.splits[split])

    def images(self, split: str, missing: Optional[List[str]] = None) -> List[str]:
        """Sorted absolute image paths of a split (see :func:`list_images`).

        Raises:
            DataYamlError: see :meth:`sources`.
        """
        return list_images(self.sources(split), missing)


def _names(data: dict, file: str) -> Tuple[str, ...]:
    names = data.get('names')
    if isinstance(names, dict):
        try:
            keys = sorted(int(k) for k in names)
        except (TypeError, ValueError, OverflowError):  # OverflowError: int(.inf)
            raise DataYamlError(f"{file}: 'names' keys must be class indices 0..n-1, got {list(names)}") from None
        if keys != list(range(len(keys))):
            raise DataYamlError(f"{file}: 'names' indices must be 0..{len(keys) - 1} without gaps, got {keys}")
        by_index = {int(k): v for k, v in names.items()}
        names = [by_index[i] for i in keys]
    elif isinstance(names, (list, tuple)):
        names = list(names)
    elif names is None and isinstance(data.get('nc'), int) and not isinstance(data['nc'], bool):
        if not 0 < data['nc'] <= MAX_CLASSES:
            raise DataYamlError(f"{file}: 'nc' must be a number of classes in 1..{MAX_CLASSES}, got {data['nc']}")
        names = [f'class_{i}' for i in range(data['nc'])]  # the reference's names
    else:
        raise DataYamlError(f"{file}: 'names' must be a list or an index -> name mapping, got {names!r}")
    if not names:
        raise DataYamlError(f"{file}: 'names' is empty")
    names = tuple(str(n) for n in names)
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise DataYamlError(f"{file}: 'names' repeats {repeated}")
    nc = data.get('nc')
    if nc is not None and nc != len(names):
        raise DataYamlError(f"{file}: 'nc' is {nc} but 'names' lists {len(names)} classes")
    return names


def _resolve_source(value: Any, key: str, root: str, yaml_dir: str, file: str) -> str:
    """An existing folder or list file for one entry of a split, else an error naming what was tried."""
    if not isinstance(value, str) or not value.strip():
        raise DataYamlError(f"{file}: '{key}' entries must be paths, got {value!r}")
    value = osp.expanduser(value.strip())
    if osp.isabs(value):
        tried = [value]
    else:
        tried = [osp.join(root, value), osp.join(yaml_dir, value)]
        if value.startswith('../'):  # Roboflow exports: '../train/images' meant relative to the root
            tried.append(osp.join(root, value[3:]))
    for path in dict.fromkeys(osp.normpath(p) for p in tried):
        if osp.isdir(path) or osp.isfile(path):
            return path
    raise DataYamlError(f"{file}: '{key}' path not found: {value!r} (tried "
                        f"{', '.join(dict.fromkeys(osp.normpath(p) for p in tried))})")


def load_data_yaml(file: str) -> DataYaml:
    """Read a ``data.yaml`` and check that its split paths exist.

    ``path`` (default: the yaml's folder) is taken relative to the yaml's folder
    when relative. Each split entry is tried relative to ``path``, then to the
    yaml's folder (and, for ``../x``, as ``x`` under ``path``, which Roboflow
    exports mean).

    Args:
        file (str): The yaml.

    Returns:
        DataYaml: Root, class names and the split sources; a split whose path
        does not exist is kept as an error raised when the split is used
        (:meth:`DataYaml.sources`), naming the yaml, the key and the paths tried.

    Raises:
        FileNotFoundError: the yaml does not exist.
        DataYamlError: unreadable yaml, bad ``names``/``nc``, or no split.
    """
    import yaml
    file = osp.abspath(osp.expanduser(file))
    if not osp.isfile(file):
        raise FileNotFoundError(f'data yaml not found: {file}')
    try:
        with open(file, encoding='utf-8') as f:
            data = yaml.safe_load(f)
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise DataYamlError(f'{file} is not a readable yaml file: {e}') from None
    except RecursionError:
        raise DataYamlError(f'{file} is not a readable yaml file: it is nested too deeply') from None
    if not isinstance(data, dict):
        raise DataYamlError(f'{file}: expected a mapping with train/val/names keys, got {type(data).__name__}')
    yaml_dir = osp.dirname(file)
    root = data.get('path') or yaml_dir
    if not isinstance(root, str):
        raise DataYamlError(f"{file}: 'path' must be a folder, got {root!r}")
    root = osp.normpath(osp.join(yaml_dir, osp.expanduser(root)))
    if not osp.isdir(root):
        raise DataYamlError(f"{file}: 'path' folder not found: {root}")
    names = _names(data, file)
    if data.get('val') in (None, '', []) and data.get('validation') not in (None, '', []):
        data['val'] = data['validation']  # an alias the reference accepts
    result = DataYaml(file=file, root=root, names=names)
    for key in SPLITS:
        value = data.get(key)
        if value in (None, '', []):
            continue
        values = value if isinstance(value, (list, tuple)) else [value]
        try:
            result.splits[key] = [_resolve_source(v, key, root, yaml_dir, file) for v in values]
        except DataYamlError as e:  # raised when the split is used
            result.unresolved[key] = str(e)
    if not result.declared:
        raise DataYamlError(f"{file}: names no split: it needs 'train' and 'val' (and may have 'test')")
    return result


def list_images(sources: Sequence[str], missing: Optional[List[str]] = None) -> List[str]:
    """Sorted, de-duplicated absolute image paths of folders and ``.txt`` lists.

    Args:
        sources (Sequence[str]): Folders (searched recursively) and lists.
        missing (list, optional): When given, an image that a list names but
            that does not exist is appended to it as ``'list.txt:row: image not
            found: name'`` and skipped (the reference warns and skips);
            otherwise it is an error.

    Raises:
        FileNotFoundError: a source does not exist, or (without ``missing``)
            an image a list names.
    """
    found: List[str] = []
    for src in sources:
        if osp.isdir(src):
            for folder, _, files in os.walk(src, followlinks=True):
                found += [osp.join(folder, f) for f in files if f.lower().endswith(IMG_EXTENSIONS)]
        elif osp.isfile(src):
            base = osp.dirname(osp.abspath(src))
            with open(src, encoding='utf-8-sig') as f:  # a byte-order mark is fine
                for n, line in enumerate(f, start=1):
                    line = line.strip()
                    if not line or line.startswith('#'):
                        continue
                    path = line if osp.isabs(line) else osp.join(base, line)
                    if not osp.isfile(path):
                        if missing is None:
                            raise FileNotFoundError(f'{src}:{n}: image not found: {line}')
                        missing.append(f'{src}:{n}: image not found: {line}')
                        continue
                    if path.lower().endswith(IMG_EXTENSIONS):
                        found.append(osp.normpath(path))
        else:
            raise FileNotFoundError(f'image folder or list not found: {src}')
    return sorted(dict.fromkeys(osp.abspath(p) for p in found))


def img2label_path(img_path: str) -> str:
    """The reference's label path: last ``/images/`` -> ``/labels/``, extension -> ``.txt``."""
    sa, sb = f'{os.sep}images{os.sep}', f'{os.sep}labels{os.sep}'
    head, sep, tail = img_path.rpartition(sa)
    path = head + sb + tail if sep else img_path
    return osp.splitext(path)[0] + '.txt'


@dataclass
class LabelRows:
    """The parsed rows of one label file.

    Attributes:
        classes (np.ndarray): (N,) int64 class indices.
        boxes (np.ndarray): (N, 4) float64 normalised ``cx, cy, w, h`` (clipped
            to [0, 1] when slightly outside).
        errors (list[str]): Problems that make the file unusable (``row k: ...``).
        warnings (list[str]): Fixed problems (clipped coordinates, duplicate rows
            dropped, polygons turned into boxes is not a warning).
        num_polygons (int): Rows that were polygons.
        segments (list[np.ndarray | None]): Per box, the points of its polygon
            row as a flat float32 array ``x1, y1, x2, y2, ...`` (normalised,
            clipped to [0, 1] as its box), None for a box row.
    """
    classes: np.ndarray
    boxes: np.ndarray
    errors: List[str] = field(default_factory=list)
    warnings: List[str] = field(default_factory=list)
    num_polygons: int = 0
    segments: List[Optional[np.ndarray]] = field(default_factory=list)


def _corners_of_row(values: List[float]) -> Tuple[Optional[np.ndarray], bool]:
    """(x1, y1, x2, y2) of a box row (``cx cy w h``) or of a polygon row (>= 3 points); None if neither."""
    if len(values) == 4:
        cx, cy, w, h = values
        return np.array([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]), False
    if len(values) >= 6 and len(values) % 2 == 0:
        pts = np.asarray(values, dtype=np.float64).reshape(-1, 2)
        return np.concatenate([pts.min(0), pts.max(0)]), True
    return None, False


def parse_label_text(text: str, num_classes: int) -> LabelRows:
    """Parse the text of a label file (see the module docstring for the format).

    Checks every row: field count (5 for a box, 1 + an even number >= 6 for a
    polygon), numbers, class index in ``[0, num_classes)`` and integral, the
    values (``cx cy w h`` or the points) in [0, 1] as the reference checks
    them (within ``COORD_TOLERANCE``: clipped, with a warning above
    ``ROUNDING``), positive width and height; the box is then clipped to the
    image (a warning when it reached more than ``COORD_TOLERANCE`` past the
    edge); duplicate rows (by value) are dropped with a warning.

    Args:
        text (str): The file's content.
        num_classes (int): Number of classes of the dataset.

    Returns:
        LabelRows: Classes, boxes, the points of polygon rows (clipped as
        their box) and the problems found (errors make the file unusable, the
        caller decides whether to skip it or stop).
    """
    classes: List[int] = []
    boxes: List[np.ndarray] = []
    segments: List[Optional[np.ndarray]] = []
    errors: List[str] = []
    warnings: List[str] = []
    num_polygons = 0
    seen = set()
    for row, line in enumerate(text.splitlines(), start=1):
        parts = line.split()
        if not parts:
            continue
        try:
            numbers = [float(p) for p in parts]
        except ValueError:
            bad = next(p for p in parts if not _is_float(p))
            errors.append(f'row {row}: not a number: {bad!r}')
            continue
        if not all(np.isfinite(numbers)):
            errors.append(f'row {row}: not a finite number: {line.strip()!r}')
            continue
        cls, values = numbers[0], numbers[1:]
        corners, is_polygon = _corners_of_row(values)
        if corners is None:
            errors.append(f'row {row}: {len(parts)} fields; expected 5 (class cx cy w h) or a polygon '
                          '(class x1 y1 x2 y2 x3 y3 ...)')
            continue
        if cls != int(cls) or not 0 <= cls < num_classes:
            errors.append(f'row {row}: class {parts[0]} is not a class index in [0, {num_classes})')
            continue
        key = tuple(numbers)  # by value, as the reference's np.unique: '0.5' and '0.50' are the same row
        if key in seen:
            warnings.append(f'row {row}: duplicate of an earlier row, dropped')
            continue
        seen.add(key)
        if corners[2] <= corners[0] or corners[3] <= corners[1]:
            # the reference keeps the file (and its augmentations drop such a box): the row is dropped
            warnings.append(f'row {row}: box has no area ({line.strip()!r}), dropped')
            continue
        # the values themselves must be normalised, as the reference checks them (cx, cy, w, h or points)
        outside = max(0.0, -min(values), max(values) - 1)
        if outside > COORD_TOLERANCE:
            errors.append(f'row {row}: coordinates outside [0, 1] by {outside:.3g} (normalised labels expected)')
            continue
        # a box may still reach past the image edge (cx 0.99, w 0.1): the reference accepts it and its
        # augmentations clip it; clipped here so that training and evaluation see the same box
        past_edge = max(0.0, -corners.min(), corners.max() - 1)
        if outside > ROUNDING:
            warnings.append(f'row {row}: coordinates outside [0, 1] by {outside:.2g}, clipped')
        elif past_edge > COORD_TOLERANCE:
            warnings.append(f'row {row}: box reaches {past_edge:.2g} past the image edge, clipped to the image')
        if past_edge > 0:
            corners = np.clip(corners, 0, 1)
        if is_polygon:  # its box is the bounding box of these points (clipped alike)
            points = np.asarray(values, dtype=np.float64)
            segments.append((np.clip(points, 0, 1) if past_edge > 0 else points).astype(np.float32))
        else:
            segments.append(None)
        num_polygons += is_polygon
        classes.append(int(cls))
        boxes.append(np.array([(corners[0] + corners[2]) / 2, (corners[1] + corners[3]) / 2,
                               corners[2] - corners[0], corners[3] - corners[1]]))
    return LabelRows(classes=np.asarray(classes, dtype=np.int64),
                     boxes=np.asarray(boxes, dtype=np.float64).reshape(-1, 4),
                     errors=errors, warnings=warnings, num_polygons=num_polygons, segments=segments)


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def verify_image(path: str) -> Tuple[Optional[Tuple[int, int]], Optional[str]]:
    """``((width, height), None)`` of a usable image (after EXIF orientation), else ``(None, reason)``.

    Reads the header (and, for JPEG, its last two bytes): unreadable files,
    formats other than ``IMG_EXTENSIONS``, images under ``MIN_IMAGE_SIDE`` px
    and JPEGs without their end-of-image marker that do not decode completely
    (truncated) are refused; a JPEG with data after its marker is decoded
    once to tell; BMP and TIFF files, whose ``verify()`` reads no pixels, are
    decoded. The reference rewrites truncated JPEGs in place; user files are
    never modified here.
    """
    from PIL import Image, UnidentifiedImageError

    from .image_size import read_image_size
    try:
        width, height, _ = read_image_size(path)
        with Image.open(path) as img:  # a second open: Pillow's verify() must come right after open()
            fmt = (img.format or '').lower()
            img.verify()
    except FileNotFoundError:
        return None, 'file not found'
    except (ValueError, UnidentifiedImageError, OSError, SyntaxError) as e:
        return None, f'unreadable image ({e})'
    if f'.{fmt}' not in IMG_EXTENSIONS and fmt not in ('jpeg', 'mpo'):
        return None, f'unsupported image format {fmt!r}'
    if min(width, height) < MIN_IMAGE_SIDE:
        return None, f'image too small ({width}x{height} px, under {MIN_IMAGE_SIDE} px)'
    if fmt in ('jpeg', 'mpo') and not _jpeg_complete(path):
        return None, 'truncated JPEG (no end-of-image marker)'
    if fmt in ('bmp', 'tiff') and not _decodes(path):  # their verify() reads no pixels
        return None, f'truncated or corrupt {fmt.upper()} (does not decode)'
    return (width, height), None


def _decodes(path: str) -> bool:
    """Whether Pillow decodes the whole image."""
    from PIL import Image
    try:
        with Image.open(path) as img:
            img.load()
    except (OSError, ValueError, SyntaxError):
        return False
    return True


def _jpeg_complete(path: str) -> bool:
    """Whether a JPEG ends with its end-of-image marker or, failing that, still decodes completely.

    Files with data after the marker (e.g. phones' motion photos append a
    video) decode fine and are kept; a file cut short does not decode.
    """
    with open(path, 'rb') as f:
        f.seek(-2, os.SEEK_END)
        if f.read() == b'\xff\xd9':
            return True
    return _decodes(path)


def read_label_file(path: str, num_classes: int) -> Union[LabelRows, None]:
    """:func:`parse_label_text` of a file; ``None`` when the file does not exist.

    Raises:
        ValueError: the file is not text (names it).
    """
    if not osp.isfile(path):
        return None
    try:
        with open(path, encoding='utf-8-sig') as f:  # a byte-order mark (Windows editors) is not part of row 1
            text = f.read()
    except UnicodeDecodeError as e:
        raise ValueError(f'{path}: not a text label file ({e})') from None
    return parse_label_text(text, num_classes)
