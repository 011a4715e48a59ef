"""``YOLODataset``: train and validate on the reference's (Ultralytics) dataset layout as it is.

The layout (``data.yaml`` + image folders or ``.txt`` lists + ``labels/*.txt``)
and its rules live in :mod:`.yolo_format`; this module indexes one split of it
for mmdet: every image's size (header, EXIF orientation applied) and label rows
are read once, checked, turned into mmdet ``data_info`` dicts and cached in a
JSON file beside the labels.

Reference behaviour followed (``ultralytics/data/dataset.py``
``YOLODataset.cache_labels`` / ``get_labels``, ``ultralytics/data/utils.py``
``verify_image_label`` / ``get_hash``):

- a broken image or label file is left out with a message naming the file, the
  others are used; the messages are shown again when the cache is used;
- an image without a label file, or with an empty one, is a background image;
- the scan result is cached per image source and rebuilt when any image or
  label file changes.

Deviations (on purpose): the cache is JSON under a name of ours
(``<labels folder>.convnextv2_yolo.cache``, never the reference's pickled
``labels.cache``, which is never read); it is keyed by every file's path, size
and ``mtime_ns`` (the reference hashes the summed sizes and the paths); each
label row is read on its own (the reference turns all rows of a file with one
polygon into polygons, which garbles the box rows); truncated JPEGs are left
out, not rewritten in place.
"""
import base64
import contextlib
import gc
import hashlib
import json
import logging
import os
import os.path as osp
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
from mmdet.datasets import BaseDetDataset
from mmdet.registry import DATASETS
from mmengine.logging import print_log

from ..utils.checkpoint_io import write_atomic
from ..utils.class_names import as_class_names
from . import yolo_format
from .bad_images import DEFAULT_MAX_SKIP_FRACTION, SkipBadImagesMixin

# the cache: '<labels folder>' + CACHE_SUFFIX beside the labels (never the reference's 'labels.cache')
CACHE_SUFFIX = '.convnextv2_yolo.cache'
CACHE_FORMAT = 'convnextv2_yolo.YOLODataset.index'
# bump when the scan's rules (yolo_format) or the record layout change: older caches are then rebuilt
# (3: the points of polygon rows, 'segments')
CACHE_VERSION = 3
# one record per image, a JSON list in this order (see ImageRecord)
RECORD_FIELDS = ('width', 'height', 'label', 'classes', 'boxes', 'polygons', 'segments', 'skip_file', 'skip_reason',
                 'fixes')
LABEL_STATES = ('missing', 'empty', 'boxes', 'unread')
# images per task of the scan's thread pool
SCAN_CHUNK = 256
# files spelled out in the strict-mode error (the rest are counted)
MAX_LISTED_FILES = 20
# default threads of the first scan: header and label reads wait on the disk when the files are not in
# the page cache (20,000 small images, 2 cores, evicted files: 5.7-8.7 s with 1 thread, 4.3-5.4 s with 8;
# files in the page cache: 2.7-5 s either way, the parsing holds the GIL)
SCAN_THREADS = 8


class YOLODatasetError(ValueError):
    """A split is unusable (no image, every image skipped) or ``strict=True`` found problems."""


# ----------------------------------------------------------------------------- one image
@dataclass
class ImageRecord:
    """What the scan learnt about one image and its label file.

    Attributes:
        width (int | None): Width in px after EXIF orientation (None when the
            image is unusable).
        height (int | None): Height in px, likewise.
        label (str): ``'missing'`` (no label file: background), ``'empty'``
            (no rows: background), ``'boxes'``, or ``'unread'`` (the image was
            unusable, so its label file was not read).
        classes (list[int]): Class index per box, in the yaml's ``names`` order.
        boxes (list[float]): 4 numbers per box, normalised ``cx, cy, w, h`` in
            [0, 1] of the displayed (EXIF-oriented) image.
        polygons (int): Boxes that came from polygon rows.
        segments (list[np.ndarray | None]): Empty when no box came from a
            polygon row (box-only labels cost nothing), else one entry per box:
            the polygon's points as a flat float32 array ``x1, y1, x2, y2, ...``
            (normalised, at least 3 points), None for a box row. In the cache
            each array is the base64 of its little-endian float32 bytes (exact
            and compact).
        skip_file (str | None): ``'image'`` or ``'label'``: which file made the
            image unusable (None: usable).
        skip_reason (str | None): Why.
        fixes (list[str]): Problems of the label file that were fixed
            (``'row k: ...'``: clipped coordinates, duplicate rows dropped).
    """
    width: Optional[int] = None
    height: Optional[int] = None
    label: str = 'unread'
    classes: List[int] = field(default_factory=list)
    boxes: List[float] = field(default_factory=list)
    polygons: int = 0
    segments: List[Optional[np.ndarray]] = field(default_factory=list)
    skip_file: Optional[str] = None
    skip_reason: Optional[str] = None
    fixes: List[str] = field(default_factory=list)

    def __eq__(self, other: Any) -> bool:
        """Field by field, the segments by value (the dataclass' ``==`` cannot compare arrays)."""
        if not isinstance(other, ImageRecord):
            return NotImplemented
        return all(getattr(self, n) == getattr(other, n) for n in RECORD_FIELDS if n != 'segments') \
            and len(self.segments) == len(other.segments) \
            and all((a is None and b is None) or (a is not None and b is not None and np.array_equal(a, b))
                    for a, b in zip(self.segments, other.segments))

    def to_json(self) -> list:
        """The record as a JSON list in ``RECORD_FIELDS`` order."""
        row = [getattr(self, name) for name in RECORD_FIELDS]
        row[RECORD_FIELDS.index('segments')] = [None if s is None else _encode_points(s) for s in self.segments]
        return row

    @classmethod
    def from_json(cls, row: Any, num_classes: int) -> 'ImageRecord':
        """Rebuild a record from :meth:`to_json`'s list, checking every field.

        Raises:
            ValueError: any field has the wrong type or an impossible value
                (the cache is then rebuilt, never trusted).
        """
        if not isinstance(row, list) or len(row) != len(RECORD_FIELDS):
            raise ValueError(f'a record is not a list of {len(RECORD_FIELDS)} fields')
        rec = cls(*row)
        usable = rec.skip_file is None
        if usable != (rec.skip_reason is None) or rec.skip_file not in (None, 'image', 'label'):
            raise ValueError('bad skip fields')
        if usable and not (_is_int(rec.width) and _is_int(rec.height) and 0 < rec.width < 2**32
                           and 0 < rec.height < 2**32):  # no image format has sides of 2**32 px
            raise ValueError('a usable image without a positive integer size (under 2**32 px)')
        if rec.label not in LABEL_STATES or (usable and rec.label == 'unread'):
            raise ValueError(f'bad label state {rec.label!r}')
        if not isinstance(rec.classes, list) or not isinstance(rec.boxes, list) \
                or len(rec.boxes) != 4 * len(rec.classes) or (rec.label == 'boxes') != bool(rec.classes):
            raise ValueError('classes and boxes do not match')
        if not all(_is_int(c) and 0 <= c < num_classes for c in rec.classes):
            raise ValueError('a class index out of range')
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v <= 1 for v in rec.boxes):
            raise ValueError('a box coordinate outside [0, 1]')
        if not _is_int(rec.polygons) or not 0 <= rec.polygons <= len(rec.classes):
            raise ValueError('bad polygon count')
        if not isinstance(rec.segments, list) or len(rec.segments) != (len(rec.classes) if rec.polygons else 0) \
                or sum(s is not None for s in rec.segments) != rec.polygons:
            raise ValueError('segments do not match the boxes and the polygon count')
        rec.segments = [None if s is None else _decode_points(s) for s in rec.segments]
        if not isinstance(rec.fixes, list) or not all(isinstance(f, str) for f in rec.fixes) \
                or not (rec.skip_reason is None or isinstance(rec.skip_reason, str)):
            raise ValueError('bad messages')
        return rec


@contextlib.contextmanager
def _gc_paused():
    """No cyclic garbage collection inside (the objects built here hold no cycles)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _encode_points(points: np.ndarray) -> str:
    """A polygon's flat float32 points as the base64 of their little-endian bytes (for the JSON cache)."""
    return base64.b64encode(np.ascontiguousarray(points, dtype='<f4').tobytes()).decode('ascii')


def _decode_points(text: Any) -> np.ndarray:
    """:func:`_encode_points` undone, checked: >= 3 points, finite, in [0, 1].

    Raises:
        ValueError: anything else.
    """
    if not isinstance(text, str):
        raise ValueError('a polygon is not a string')
    try:
        raw = base64.b64decode(text, validate=True)
    except ValueError:  # binascii.Error, or not ASCII
        raise ValueError('a polygon is not base64') from None
    if len(raw) % 8 or len(raw) < 24:
        raise ValueError('a polygon of fewer than 3 points or an odd number of values')
    points = np.frombuffer(raw, dtype='<f4')
    low, high = points.min(), points.max()  # NaN propagates and fails both tests
    if not (low >= 0 and high <= 1):
        raise ValueError('a polygon point outside [0, 1] or not finite')
    return points.astype(np.float32)  # native, writable, owns its memory


def scan_image(img_path: str, label_path: str, num_classes: int) -> ImageRecord:
    """Check one image and read its label file.

    The image header is checked by :func:`.yolo_format.verify_image` (size
    after EXIF orientation; unreadable, truncated JPEG, under 10 px: unusable)
    and the label file by :func:`.yolo_format.read_label_file` (any error row,
    or a file that is not text: unusable). Follows the reference's
    ``verify_image_label`` (``ultralytics/data/utils.py``).

    Args:
        img_path (str): The image.
        label_path (str): Its label file (:func:`.yolo_format.img2label_path`).
        num_classes (int): Classes of the dataset (valid indices 0..n-1).

    Returns:
        ImageRecord: Size, boxes and problems (never raises for bad files).
    """
    try:
        size, reason = yolo_format.verify_image(img_path)
    except Exception as e:  # any decoder failure (e.g. PIL's DecompressionBombError) is this file's problem
        size, reason = None, f'unreadable image ({type(e).__name__}: {e})'
    if size is None:
        return ImageRecord(skip_file='image', skip_reason=reason)
    rec = ImageRecord(width=int(size[0]), height=int(size[1]))
    try:
        rows = yolo_format.read_label_file(label_path, num_classes)
    except ValueError as e:  # not text
        rec.skip_file, rec.skip_reason = 'label', str(e).replace(f'{label_path}: ', '', 1)
        return rec
    except OSError as e:
        rec.skip_file, rec.skip_reason = 'label', f'unreadable label file ({e.strerror or e})'
        return rec
    if rows is None:
        rec.label = 'missing'
        return rec
    if rows.errors:
        rec.skip_file, rec.skip_reason = 'label', '; '.join(rows.errors)
        return rec
    rec.fixes = list(rows.warnings)
    rec.classes = [int(c) for c in rows.classes]
    rec.boxes = [float(v) for v in rows.boxes.reshape(-1)]
    rec.polygons = int(rows.num_polygons)
    rec.segments = list(rows.segments) if rec.polygons else []
    rec.label = 'boxes' if rec.classes else 'empty'
    return rec


def _scan_chunk(pairs: Sequence[Tuple[str, str]], num_classes: int) -> List[ImageRecord]:
    return [scan_image(img, lab, num_classes) for img, lab in pairs]


def scan_images(img_paths: Sequence[str], label_paths: Sequence[str], num_classes: int,
                threads: int = 1) -> List[ImageRecord]:
    """:func:`scan_image` of every image, in order, in ``threads`` threads.

    Args:
        img_paths (Sequence[str]): Images.
        label_paths (Sequence[str]): Their label files (same length).
        num_classes (int): Classes of the dataset.
        threads (int): Worker threads (chunks of ``SCAN_CHUNK`` images); 1 or
            fewer: in this thread. Threads pay off when file reads wait on the
            disk (cold or network storage); on files in the page cache the
            header parsing holds the GIL.

    Returns:
        list[ImageRecord]: One per image, in order.
    """
    pairs = list(zip(img_paths, label_paths))
    if threads <= 1 or len(pairs) <= SCAN_CHUNK:
        return _scan_chunk(pairs, num_classes)
    chunks = [pairs[i:i + SCAN_CHUNK] for i in range(0, len(pairs), SCAN_CHUNK)]
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix='yolo-scan') as pool:
        return [rec for part in pool.map(_scan_chunk, chunks, [num_classes] * len(chunks)) for rec in part]


# ----------------------------------------------------------------------------- the cache
def _stat(path: str) -> Tuple[int, int, int]:
    """(size in bytes, mtime_ns, ctime_ns) of a file; (-1, 0, 0) when it does not exist.

    ``ctime`` changes with every write even when a tool restores the size and
    mtime (``cp -p``, ``rsync -t``, ``touch -d``).
    """
    try:
        st = os.stat(path)
    except OSError:
        return -1, 0, 0
    return st.st_size, st.st_mtime_ns, st.st_ctime_ns


def index_key(img_paths: Sequence[str], label_paths: Sequence[str], num_classes: int) -> str:
    """The cache key: sha256 of the format version, the rules' constants and every file's state.

    Args:
        img_paths (Sequence[str]): Images of the source, in order.
        label_paths (Sequence[str]): Their label files.
        num_classes (int): Classes (the valid class indices depend on it).

    Returns:
        str: Hex digest over ``(image path, size, mtime_ns, ctime_ns)`` and
        ``(label path, size or -1 when missing, mtime_ns, ctime_ns)`` of every image,
        plus ``CACHE_VERSION``, ``num_classes``, ``COORD_TOLERANCE``,
        ``ROUNDING`` and ``MIN_IMAGE_SIDE``: a touched, added, removed or
        renamed file changes it.
    """
    lines = [f'{CACHE_FORMAT}|{CACHE_VERSION}|{num_classes}|{yolo_format.COORD_TOLERANCE}|'
             f'{yolo_format.ROUNDING}|{yolo_format.MIN_IMAGE_SIDE}']
    for img, lab in zip(img_paths, label_paths):
        lines.append('%s\0%d\0%d\0%d\0%s\0%d\0%d\0%d' % (img, *_stat(img), lab, *_stat(lab)))
    return hashlib.sha256('\n'.join(lines).encode('utf-8', 'surrogateescape')).hexdigest()


def cache_file_for(source: str, cache: Union[bool, str]) -> Optional[str]:
    """Where the index of one image source is cached.

    Args:
        source (str): An image folder or a ``.txt`` image list (absolute).
        cache (bool | str): False: no cache; True: beside the labels, i.e.
            ``<labels folder of the source>.convnextv2_yolo.cache`` for a folder
            (``train/images`` -> ``train/labels.convnextv2_yolo.cache``; the
            folder itself when its path has no ``images`` part) and
            ``<list>.convnextv2_yolo.cache`` for a list (``train.txt`` ->
            ``train.txt.convnextv2_yolo.cache``); a folder path: in that folder,
            named after the source and a hash of its path (for read-only data).

    Returns:
        str | None: The cache file, None when caching is off.
    """
    if cache is False or cache is None:
        return None
    source = osp.normpath(source)
    if isinstance(cache, (str, os.PathLike)) and not isinstance(cache, bool):
        digest = hashlib.sha1(source.encode('utf-8', 'surrogateescape')).hexdigest()[:10]
        name = '_'.join(source.strip(os.sep).split(os.sep)[-2:]) or 'root'
        return osp.join(osp.abspath(os.fspath(cache)), f'{name}-{digest}{CACHE_SUFFIX}')
    if osp.isdir(source):
        return osp.dirname(yolo_format.img2label_path(osp.join(source, 'x.jpg'))) + CACHE_SUFFIX
    return source + CACHE_SUFFIX


def load_index_cache(path: str, key: str, num_images: int,
                     num_classes: int) -> Tuple[Optional[List[ImageRecord]], str, bool]:
    """Read a cache written by :func:`save_index_cache`, trusting nothing.

    The file is parsed as JSON only (never unpickled): a file that is not
    UTF-8 JSON (e.g. the reference's ``labels.cache``, a numpy pickle), that
    is truncated, of another format or version, or whose records do not
    check out is refused; so is one whose key differs (stale).

    Args:
        path (str): The cache file.
        key (str): :func:`index_key` of the source now.
        num_images (int): Images of the source now.
        num_classes (int): Classes of the dataset.

    Returns:
        tuple: ``(records, why, corrupt)``: the records (None when refused),
        why it was refused (``''`` when used) and whether the file was
        corrupt or foreign (as opposed to missing or stale).
    """
    try:
        with open(path, 'rb') as f:
            raw = f.read()
    except FileNotFoundError:
        return None, 'no cache yet', False
    except OSError as e:
        return None, f'unreadable ({e.strerror or e})', True
    try:
        text = raw.decode('utf-8')
    except UnicodeDecodeError:
        return None, "not a text file (a foreign cache, e.g. a copy of the reference's pickled labels.cache?)", True
    try:
        data = json.loads(text)
    except ValueError as e:
        return None, f'not valid JSON (truncated or corrupt: {e})', True
    except RecursionError:
        return None, 'not valid JSON (nested too deeply: corrupt)', True
    if not isinstance(data, dict) or data.get('format') != CACHE_FORMAT:
        return None, 'not a cache of convnextv2_yolo (format tag missing)', True
    if data.get('version') != CACHE_VERSION or data.get('fields') != list(RECORD_FIELDS):
        return None, f'written by another version (format {data.get("version")!r}, this one reads {CACHE_VERSION})', \
            False
    if data.get('key') != key:
        return None, 'stale (an image or label file changed, appeared or disappeared)', False
    rows = data.get('records')
    if not isinstance(rows, list) or len(rows) != num_images:
        return None, 'its records do not match the images', True
    try:
        records = [ImageRecord.from_json(row, num_classes) for row in rows]
    except (TypeError, ValueError) as e:
        return None, f'corrupt record ({e})', True
    return records, '', False


def save_index_cache(path: str, key: str, source: str, records: Sequence[ImageRecord]) -> Optional[str]:
    """Write the records as JSON with ``write_atomic`` (readers never see a partial file).

    Args:
        path (str): The cache file.
        key (str): :func:`index_key`.
        source (str): The image source (recorded for people reading the file).
        records (Sequence[ImageRecord]): One per image of the source, in order.

    Returns:
        str | None: None when written, else why not (the caller warns and goes on).
    """
    data = dict(format=CACHE_FORMAT, version=CACHE_VERSION, key=key, source=source, fields=list(RECORD_FIELDS),
                records=[r.to_json() for r in records])
    try:
        write_atomic(path, json.dumps(data, separators=(',', ':')))
    except OSError as e:
        return f'{e.strerror or e} ({getattr(e, "filename", None) or path})'
    return None


# ----------------------------------------------------------------------------- one source
@dataclass
class SourceIndex:
    """The scan of one image source (a folder or a ``.txt`` list) of a split.

    Attributes:
        source (str): The folder or list.
        images (list[str]): Its images, sorted, absolute.
        labels (list[str]): Their label files.
        records (list[ImageRecord]): One per image.
        cache_file (str | None): Where the index is cached (None: off, or it
            could not be written).
        from_cache (bool): Whether the records came from the cache.
        seconds (float): Time to index the source.
        missing (list[str]): Images a ``.txt`` list names that do not exist
            (``'list.txt:row: image not found: name'``), skipped.
    """
    source: str
    images: List[str]
    labels: List[str]
    records: List[ImageRecord]
    cache_file: Optional[str]
    from_cache: bool
    seconds: float
    missing: List[str] = field(default_factory=list)


def index_source(source: str, num_classes: int, cache: Union[bool, str] = True, threads: int = 1,
                 log_prefix: str = 'YOLODataset') -> SourceIndex:
    """List, scan (or load from the cache) and cache one image source.

    Args:
        source (str): An image folder or a ``.txt`` image list.
        num_classes (int): Classes of the label files (the yaml's ``names``).
        cache (bool | str): See :func:`cache_file_for`.
        threads (int): Threads of the scan (:func:`scan_images`).
        log_prefix (str): Start of the log lines.

    Returns:
        SourceIndex: Images, label files and records.

    Raises:
        FileNotFoundError: the source, or an image a list names, does not exist.
    """
    start = time.perf_counter()
    missing: List[str] = []
    images = yolo_format.list_images([source], missing)
    labels = [yolo_format.img2label_path(p) for p in images]
    cache_file = cache_file_for(source, cache)
    key = index_key(images, labels, num_classes) if cache_file else ''
    records = None
    if cache_file:
        records, why, corrupt = load_index_cache(cache_file, key, len(images), num_classes)
        if records is None:
            print_log(f'{log_prefix}: index cache {cache_file}: {why}; scanning {len(images)} images',
                      logger='current', level=logging.WARNING if corrupt else logging.INFO)
    from_cache = records is not None
    if records is None:
        records = scan_images(images, labels, num_classes, threads)
        if cache_file:
            error = save_index_cache(cache_file, key, source, records)
            if error:
                print_log(f'{log_prefix}: cannot write the index cache {cache_file}: {error}; going on without it '
                          f'(the next start scans again; cache=<a writable folder> puts it elsewhere)',
                          logger='current', level=logging.WARNING)
                cache_file = None
    return SourceIndex(source=source, images=images, labels=labels, records=records, cache_file=cache_file,
                       from_cache=from_cache, seconds=time.perf_counter() - start, missing=missing)


# ----------------------------------------------------------------------------- the dataset
@DATASETS.register_module()
class YOLODataset(SkipBadImagesMixin, BaseDetDataset):
    """One split of a dataset in the reference's (Ultralytics) layout, as it is.

    Two ways to name the data:

    - ``data_yaml``: the reference's ``data.yaml`` (read by
      :func:`.yolo_format.load_data_yaml`: ``path``, split folders / ``.txt``
      lists / lists of them, ``names``, ``nc``); the images of ``split``;
      class names from the yaml's ``names``. A relative ``data_yaml`` is
      looked up under ``data_root`` first (when given), then as given;
    - an explicit root: ``data_root`` plus ``data_prefix=dict(img='images/train/')``
      (an image folder) or ``ann_file='train.txt'`` (an image list);
      ``metainfo=dict(classes=...)`` is then required (the label files'
      class indices are positions in it).

    Label files are found by the reference's rule
    (:func:`.yolo_format.img2label_path`: the last ``/images/`` becomes
    ``/labels/``, extension ``.txt``). Rows are ``class cx cy w h`` or
    ``class x1 y1 ... xn yn`` (a polygon: its bounding box; its points are
    kept as the instance's ``mask``), normalised.

    Classes: without ``metainfo.classes`` in the config, the yaml's ``names``
    become ``metainfo['classes']``. With them, each must be a name of the yaml
    (else ``ValueError``) and labels follow the config's order by name; boxes
    of the yaml's other classes are left out (as ``CheckedCocoDataset``).

    Bad input: an image that is unreadable, truncated (JPEG without its end
    marker) or under 10 px, and a label file with any bad row (field count,
    not a number, class out of range, box outside [0, 1] by more than 0.01,
    no area) or that is not text, leave the image out with a WARNING naming
    the file and the reason. Coordinates at most 0.01 outside [0, 1] are
    clipped and exact duplicate rows dropped, with a WARNING naming the file
    and rows. An image without a label file, or with an empty one, is a
    background image. One line per split logs the counts (images,
    backgrounds, boxes, skipped, fixed). ``strict=True`` raises one
    ``YOLODatasetError`` listing every such file instead of training on.

    While training, an image that fails to load (deleted, unreadable or no
    longer decoding since the index was built) is skipped with a warning
    naming it, counted, and replaced by another sample; more than
    ``max_skip_fraction`` of the loads skipped stops the run listing the
    files (:class:`~.bad_images.SkipBadImagesMixin`). ``strict=True`` and
    ``test_mode`` raise ``BadImageError`` at the first such file.

    Cache: the scan (sizes, boxes, polygon points, problems) is kept per
    image source in ``<labels folder>.convnextv2_yolo.cache`` (JSON, written
    atomically), keyed by every image's and label file's path, size and
    mtime; a stale, foreign or corrupt cache is rebuilt; the problems of a
    cached scan are logged again at every start.

    ``data_info`` per image: ``img_path``, ``img_id`` (int: index in the
    split's sorted image list, skipped images included, so ids are unique and
    stable), ``height``, ``width`` (px, EXIF orientation applied),
    ``label_path``, ``instances`` (``bbox`` = [x1, y1, x2, y2] float px in
    the displayed image, ``bbox_label``, ``ignore_flag`` = 0, and for a
    polygon row ``mask`` = ``[[x1, y1, x2, y2, ...]]``, its points in px as
    ``CocoDataset`` gives a COCO polygon ``segmentation``; a box row has no
    ``mask``) and ``seg_map_path`` = None. ``YOLOLoadAnnotations`` turns the
    masks into ``gt_masks`` (images whose rows are all polygons).

    Args:
        data_yaml (str, optional): The reference's ``data.yaml``. Defaults to None.
        split (str): ``'train'``, ``'val'`` or ``'test'`` (with ``data_yaml``).
            Defaults to ``'train'``.
        strict (bool): Raise on any bad or fixed file instead of warning,
            and on an image that fails to load while training instead of
            skipping it. Defaults to False.
        max_skip_fraction (float): Largest fraction of image loads (per
            data-loader process) that may be skipped while training.
            Defaults to 0.01.
        cache (bool | str): Cache the index beside the labels (True), not at
            all (False), or in this folder (str; for read-only datasets).
            Defaults to True.
        scan_threads (int, optional): Threads reading image headers and label
            files on the first start; None: ``SCAN_THREADS`` (8).
        **kwargs: :class:`mmdet.datasets.BaseDetDataset` arguments
            (``data_root``, ``data_prefix``, ``ann_file``, ``metainfo``,
            ``filter_cfg`` = ``dict(filter_empty_gt, min_size)`` as
            ``CocoDataset``'s, ``test_mode``, ``pipeline``, ...).

    Raises:
        FileNotFoundError: the yaml, a folder, a list or a listed image is missing.
        DataYamlError: a bad yaml, or no such split in it (naming the yaml).
        ValueError: missing, repeated or unknown ``metainfo.classes``.
        YOLODatasetError: no image in the split, every image unusable, or
            ``strict=True`` and a bad or fixed file.
    """

    METAINFO: dict = dict()

    def __init__(self, data_yaml: Optional[str] = None, split: str = 'train', strict: bool = False,
                 cache: Union[bool, str] = True, scan_threads: Optional[int] = None,
                 max_skip_fraction: float = DEFAULT_MAX_SKIP_FRACTION, **kwargs) -> None:
        self.split = split
        self._init_skip_bad_images(strict, max_skip_fraction)
        self.cache = cache
        self.scan_threads = SCAN_THREADS if scan_threads is None else int(scan_threads)
        self.data_yaml: Optional[yolo_format.DataYaml] = None
        metainfo = dict(kwargs.pop('metainfo', None) or {})
        config_classes = metainfo.get('classes')
        if data_yaml is not None:
            self.data_yaml = yolo_format.load_data_yaml(self._find_yaml(data_yaml, kwargs.get('data_root') or ''))
            self.data_yaml.sources(split)  # the split exists and its paths too, or a DataYamlError naming them
            self.label_names = self.data_yaml.names
            classes = self.label_names if config_classes is None else self._classes_of_yaml(config_classes)
        else:
            if config_classes is None:
                raise ValueError('YOLODataset without data_yaml needs metainfo=dict(classes=(...)): the class '
                                 'names, in the order of the label files\' class indices')
            classes = as_class_names(config_classes)
            self.label_names = classes
        metainfo['classes'] = tuple(classes)
        # label file class index -> position in metainfo.classes (-1: left out)
        self.label_map = [classes.index(n) if n in classes else -1 for n in self.label_names]
        self.index_stats: Dict[str, Any] = {}
        self.problems: List[str] = []
        self._source_names: List[str] = []
        super().__init__(metainfo=metainfo, **kwargs)

    # ------------------------------------------------------------ configuration
    @staticmethod
    def _find_yaml(data_yaml: str, data_root: str) -> str:
        path = osp.expanduser(os.fspath(data_yaml))
        tried = [osp.join(data_root, path)] if data_root and not osp.isabs(path) else []
        tried.append(path)
        for p in tried:
            if osp.isfile(p):
                return p
        raise FileNotFoundError(f'data_yaml not found: {data_yaml!r} (tried {", ".join(tried)})')

    def _classes_of_yaml(self, config_classes: Any) -> Tuple[str, ...]:
        classes = as_class_names(config_classes)
        unknown = [c for c in classes if c not in self.label_names]
        if unknown:
            raise ValueError(f'metainfo.classes {unknown} are not names of {self.data_yaml.file}; '
                             f'its names are {list(self.label_names)}')
        return classes

    def _sources(self) -> List[str]:
        """The image folders / lists of this split (absolute)."""
        if self.data_yaml is not None:
            return self.data_yaml.sources(self.split)
        if self.ann_file:
            if not str(self.ann_file).endswith('.txt'):
                raise ValueError(f'YOLODataset: ann_file must be a .txt image list, got {self.ann_file!r} '
                                 '(or give data_prefix=dict(img=<image folder>), or data_yaml)')
            if not osp.isfile(self.ann_file):
                raise FileNotFoundError(f'image list not found: {self.ann_file} (data_root={self.data_root!r}, '
                                        'ann_file key)')
            return [osp.abspath(self.ann_file)]
        folder = self.data_prefix.get('img') or self.data_prefix.get('img_path')
        if not folder:
            raise ValueError('YOLODataset needs data_yaml, or data_root with data_prefix=dict(img=<image folder>) '
                             'or ann_file=<.txt image list>')
        if not osp.isdir(folder):
            raise FileNotFoundError(f'image folder not found: {folder} (data_root={self.data_root!r}, '
                                    'data_prefix.img key)')
        return [osp.abspath(folder)]

    @property
    def _log_name(self) -> str:
        """How log lines and errors name this dataset: the split and yaml, or the image sources."""
        if self.data_yaml is not None:
            return f'YOLODataset {self.split!r} ({self.data_yaml.file})'
        return f'YOLODataset ({", ".join(self._source_names)})'

    # ------------------------------------------------------------ loading
    def load_data_list(self) -> List[dict]:
        """Index the split's sources (scan or cache) and build the ``data_info`` dicts.

        Returns:
            list[dict]: One per usable image, sorted by path.

        Raises:
            YOLODatasetError: no image, every image unusable, or
                ``strict=True`` and a bad or fixed file.
        """
        sources = self._sources()
        self._source_names = sources
        with _gc_paused():  # GC passes over the ~10^5 small objects built here: 40% of a cached start
            indexes = [index_source(src, len(self.label_names), self.cache, self.scan_threads,
                                    log_prefix=self._log_name) for src in sources]
            return self._build_data_list(sources, indexes)

    def _build_data_list(self, sources: List[str], indexes: List[SourceIndex]) -> List[dict]:
        entries: Dict[str, Tuple[str, ImageRecord]] = {}
        for idx in indexes:
            for img, lab, rec in zip(idx.images, idx.labels, idx.records):
                entries.setdefault(img, (lab, rec))
        if not entries:
            raise YOLODatasetError(f'{self._log_name}: no images found in {", ".join(sources)} '
                                   f'(image extensions: {", ".join(yolo_format.IMG_EXTENSIONS)})')
        data_list, stats = [], dict(images=len(entries), usable=0, backgrounds=0, missing_labels=0, boxes=0,
                                    polygons=0, other_class_boxes=0, skipped=0, fixed=0)
        self.problems = []
        for missing in (m for idx in indexes for m in idx.missing):
            stats['images'] += 1
            stats['skipped'] += 1
            self.problems.append(missing)
            print_log(f'{self._log_name}: skipped the image {missing}', logger='current', level=logging.WARNING)
        for img_id, img in enumerate(sorted(entries)):
            lab, rec = entries[img]
            self._note_problems(img, lab, rec, stats)
            if rec.skip_file is None:
                info = self._data_info(img_id, img, lab, rec)
                data_list.append(info)
                self._count(info, rec, stats)
        stats['first_label'] = entries[min(entries)][0]
        stats['from_cache'] = all(i.from_cache for i in indexes)
        stats['cache_files'] = [i.cache_file for i in indexes]
        stats['seconds'] = sum(i.seconds for i in indexes)
        self.index_stats = stats
        self._log_summary(stats)
        if self.strict and self.problems:
            raise YOLODatasetError(self._strict_message())
        if not data_list:
            raise YOLODatasetError(f'{self._log_name}: all {stats["images"]} images were skipped (see the '
                                   'warnings above)')
        return data_list

    def _data_info(self, img_id: int, img: str, lab: str, rec: ImageRecord) -> dict:
        """mmdet's ``data_info`` of a usable image: boxes to px, classes to config positions."""
        w, h = rec.width, rec.height
        scale = np.array([w, h], dtype=np.float64)
        instances = []
        for k, cls in enumerate(rec.classes):
            label = self.label_map[cls]
            if label < 0:
                continue
            cx, cy, bw, bh = rec.boxes[4 * k:4 * k + 4]
            instance = dict(bbox=[(cx - bw / 2) * w, (cy - bh / 2) * h, (cx + bw / 2) * w, (cy + bh / 2) * h],
                            bbox_label=label, ignore_flag=0)
            points = rec.segments[k] if rec.segments else None
            if points is not None:  # as CocoDataset's instance['mask'] of a polygon: [[x1, y1, x2, y2, ...]] px
                instance['mask'] = [(points.reshape(-1, 2) * scale).ravel().tolist()]
            instances.append(instance)
        return dict(img_path=img, img_id=img_id, height=h, width=w, label_path=lab, instances=instances,
                    seg_map_path=None)

    @staticmethod
    def _count(info: dict, rec: ImageRecord, stats: dict) -> None:
        kept = len(info['instances'])
        stats['usable'] += 1
        stats['boxes'] += kept
        stats['other_class_boxes'] += len(rec.classes) - kept
        stats['polygons'] += rec.polygons
        stats['backgrounds'] += kept == 0
        stats['missing_labels'] += rec.label == 'missing'

    def _note_problems(self, img: str, lab: str, rec: ImageRecord, stats: dict) -> None:
        """Log (and remember for strict mode) a skipped file or a fixed label file."""
        if rec.skip_file is not None:
            stats['skipped'] += 1
            file = img if rec.skip_file == 'image' else lab
            what = 'image' if rec.skip_file == 'image' else f'label file (of {osp.basename(img)})'
            msg = f'{file}: {rec.skip_reason}'
            self.problems.append(msg)
            print_log(f'{self._log_name}: skipped the {what} {msg}', logger='current', level=logging.WARNING)
        elif rec.fixes:
            stats['fixed'] += 1
            msg = f'{lab}: {"; ".join(rec.fixes)}'
            self.problems.append(msg)
            print_log(f'{self._log_name}: fixed {msg}', logger='current', level=logging.WARNING)

    def _log_summary(self, stats: dict) -> None:
        cache = 'off' if not any(stats['cache_files']) else (
            'loaded from ' if stats['from_cache'] else 'built, ') + ', '.join(f for f in stats['cache_files'] if f)
        other = (f', {stats["other_class_boxes"]} of classes not in metainfo.classes left out'
                 if stats['other_class_boxes'] else '')
        cached = ' (as found by the cached scan)' if stats['from_cache'] and stats['skipped'] + stats['fixed'] else ''
        print_log(f'{self._log_name}: {stats["images"]} images, {stats["backgrounds"]} backgrounds '
                  f'({stats["missing_labels"]} without a label file), {stats["boxes"]} boxes '
                  f'({stats["polygons"]} from polygons{other}), {stats["skipped"]} skipped, '
                  f'{stats["fixed"]} label files fixed{cached}; {stats["seconds"]:.2f} s, index cache {cache}',
                  logger='current', level=logging.WARNING if stats['skipped'] + stats['fixed'] else logging.INFO)
        if stats['usable'] and stats['missing_labels'] == stats['usable']:
            print_log(f'{self._log_name}: none of the {stats["usable"]} images has a label file (the first would be '
                      f'{stats["first_label"]}): all are backgrounds. Labels are found by replacing the last '
                      '/images/ of an image path with /labels/ and its extension with .txt', logger='current',
                      level=logging.WARNING)

    def _strict_message(self) -> str:
        listed = '\n  '.join(self.problems[:MAX_LISTED_FILES])
        more = len(self.problems) - MAX_LISTED_FILES
        return (f'{self._log_name}: strict=True and {len(self.problems)} files have problems (fix them, or set '
                f'strict=False to skip bad files and use the fixed ones):\n  {listed}'
                + (f'\n  ... and {more} more (see the warnings above)' if more > 0 else ''))

    def prepare_data(self, idx: int) -> Any:
        """mmengine's, plus ``results['dataset']`` for a pipeline with ``YOLOMixUp`` (its partner image);
        None for an image that fails to load (skipped: :class:`~.bad_images.SkipBadImagesMixin`)."""
        return self.prepare_or_skip(idx)

    # ------------------------------------------------------------ filtering
    def filter_data(self) -> List[dict]:
        """``filter_cfg`` as mmdet's ``CocoDataset``: ``filter_empty_gt`` drops images
        without boxes (of ``metainfo.classes``), ``min_size`` drops images whose
        shorter side is under it (px); nothing is filtered in ``test_mode``.

        Returns:
            list[dict]: The kept ``data_info`` dicts.

        Raises:
            YOLODatasetError: no image is left.
        """
        if self.test_mode or not self.filter_cfg:
            return self.data_list
        filter_empty_gt = self.filter_cfg.get('filter_empty_gt', False)
        min_size = self.filter_cfg.get('min_size', 0)
        kept = [info for info in self.data_list
                if not (filter_empty_gt and not info['instances']) and min(info['width'], info['height']) >= min_size]
        if not kept:
            raise YOLODatasetError(f'{self._log_name}: filter_cfg {dict(self.filter_cfg)} left no image of '
                                   f'{len(self.data_list)} (filter_empty_gt drops backgrounds, min_size drops '
                                   'images with a shorter side under it, in px)')
        if len(kept) < len(self.data_list):
            print_log(f'{self._log_name}: filter_cfg {dict(self.filter_cfg)} left out '
                      f'{len(self.data_list) - len(kept)} of {len(self.data_list)} images', logger='current',
                      level=logging.INFO)
        return kept
