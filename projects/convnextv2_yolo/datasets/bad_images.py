"""Images that fail to load while training: skipped with a warning, counted, and limited.

Used by :class:`~.checked_coco.CheckedCocoDataset` and :class:`~.yolo_dataset.YOLODataset`
(``prepare_data``) and by ``YOLOMixUp`` for its partner image. See :class:`SkipBadImagesMixin`.
"""
import logging
import math
from typing import Any, Callable, Dict, List, Optional

from mmengine.logging import print_log

# the default limit on the fraction of skipped loads (see SkipBadImagesMixin)
DEFAULT_MAX_SKIP_FRACTION = 0.01
# loads a process must have made before the limit applies (or the dataset size, when smaller)
MIN_LOADS_FOR_LIMIT = 100
# a recap line every this many skips (each file is named once per process)
RECAP_EVERY = 100
# files spelled out in the limit's error (the rest are counted)
MAX_LISTED_FILES = 20


class BadImageError(RuntimeError):
    """An image failed to load where it is not skipped (``strict=True``, ``test_mode``)."""


class TooManyBadImagesError(BadImageError):
    """More than ``max_skip_fraction`` of the loads of a process failed."""


def image_load_fault(exc: BaseException) -> Optional[str]:
    """Why ``exc``, raised while loading an image, means a bad file; None: any other error (re-raised).

    What mmcv's ``LoadImageFromFile`` raises for a bad file (OpenCV and Pillow backends):
    ``FileNotFoundError`` (missing), another ``OSError`` (a folder, no permission, I/O error, Pillow's
    ``UnidentifiedImageError`` and truncated-file errors), ``AssertionError('failed to load image: ...')``
    (OpenCV decodes nothing: not an image, truncated, corrupt) and ``cv2.error`` ``!buf.empty()``
    (a 0-byte file). Any other exception (a programming or configuration error) is not a bad file.
    """
    if isinstance(exc, BadImageError):
        return None
    if isinstance(exc, FileNotFoundError):
        return 'is missing (deleted or moved since the dataset was built)'
    if isinstance(exc, OSError):
        return f'cannot be read ({type(exc).__name__}: {exc})'
    if isinstance(exc, AssertionError) and str(exc).startswith('failed to load image'):
        return 'does not decode (not an image, truncated or corrupt)'
    if type(exc).__name__ == 'error' and type(exc).__module__.startswith('cv2') and '!buf.empty()' in str(exc):
        return 'is empty (0 bytes)'
    return None


def _loaders_sharing_the_data() -> int:
    """Processes that share one epoch's samples: data-loader workers x distributed ranks."""
    from mmengine.dist import get_world_size
    from torch.utils.data import get_worker_info
    info = get_worker_info()
    return (1 if info is None else info.num_workers) * max(get_world_size(), 1)


def _process_name() -> str:
    from torch.utils.data import get_worker_info
    info = get_worker_info()
    if info is None:
        return 'the main process (num_workers=0)'
    return f'data-loader worker {info.id} of {info.num_workers}'


class SkipBadImagesMixin:
    """Skips images that fail to load during training (missing, unreadable, undecodable files).

    A training sample whose image fails to load (:func:`image_load_fault`: other errors are raised
    as they are) is skipped: a WARNING names the file and the reason (once per file and process),
    and ``prepare_data`` returns None, so mmengine's ``BaseDataset.__getitem__`` fetches another
    index in its place (``_rand_another``: numpy's RNG, which mmengine's ``worker_init_fn`` seeds
    per worker from the run's seed, so a seeded run with the same bad files is reproducible).
    A ``YOLOMixUp`` partner that fails to load is skipped the same way and that sample is not mixed.

    Counts are kept per process (each data-loader worker holds its own copy of the dataset, and with
    ``persistent_workers=False`` a new copy each epoch): loads (samples and MixUp partners) and
    skips. Once a process has made 100 loads, or its share of an epoch (``len(dataset)`` / (workers x
    distributed ranks)) when that is smaller, more than ``max_skip_fraction``
    of them skipped stops the run with :class:`TooManyBadImagesError` listing the files (many
    failing files point at a failing disk or mount, or data rewritten under the run, rather than at
    a few bad files; the default 1% loses at most that share of the data's samples).

    ``strict=True`` raises :class:`BadImageError` at the first bad file instead, and so does
    ``test_mode`` (validation, testing): a skipped image would silently leave the metrics.
    """

    strict: bool = False
    max_skip_fraction: float = DEFAULT_MAX_SKIP_FRACTION

    def _init_skip_bad_images(self, strict: bool, max_skip_fraction: float) -> None:
        if not (isinstance(max_skip_fraction, (int, float)) and 0 <= max_skip_fraction <= 1):
            raise ValueError(f'{type(self).__name__}: max_skip_fraction must be a number in [0, 1], '
                             f'got {max_skip_fraction!r}')
        self.strict = bool(strict)
        self.max_skip_fraction = float(max_skip_fraction)
        self.loads_seen = 0
        self.loads_skipped = 0
        self.skipped_files: Dict[str, int] = {}  # path -> skips, in first-skip order

    @property
    def skip_stats(self) -> Dict[str, Any]:
        """This process's counts: ``loads``, ``skipped``, ``files`` (path -> skips)."""
        return dict(loads=self.loads_seen, skipped=self.loads_skipped, files=dict(self.skipped_files))

    def load_or_skip(self, load: Callable[[], Any], img_path: str, role: str = 'sample') -> Any:
        """``load()``, or None when it fails on a bad image file (counted, warned; see the class).

        Args:
            load: Loads (and transforms) the image at ``img_path``.
            img_path (str): The image file (named in the messages).
            role (str): ``'sample'`` or ``'MixUp partner'`` (for the messages).

        Raises:
            BadImageError: ``strict=True`` or ``test_mode``, and a bad file.
            TooManyBadImagesError: more than ``max_skip_fraction`` of the loads skipped.
        """
        self.loads_seen += 1
        try:
            result = load()
        except Exception as exc:
            reason = image_load_fault(exc)
            if reason is None:
                raise
            path = getattr(exc, 'filename', None) or img_path
            self._skip(str(path), reason, role, exc)
            return None
        self._check_skip_fraction()
        return result

    def full_init(self) -> None:
        """As the dataset's base class, then a line on the images CopyPaste can use
        (:func:`~.transforms.yolo_mix.report_copy_paste_inputs`); shared here by both training datasets."""
        if self._fully_initialized:
            return
        super().full_init()
        from .transforms.yolo_mix import report_copy_paste_inputs
        report_copy_paste_inputs(self)

    def prepare_or_skip(self, idx: int) -> Any:
        """``prepare_data``: the pipeline on sample ``idx`` (with ``results['dataset']`` for ``YOLOMixUp``),
        or None when its image fails to load (:meth:`load_or_skip`)."""
        from .transforms.yolo_mix import prepare_with_dataset
        info = self.get_data_info(idx)
        return self.load_or_skip(lambda: prepare_with_dataset(self, idx, info), info.get('img_path'))

    # ---------------------------------------------------------------- internals
    @property
    def _skip_name(self) -> str:
        name = getattr(self, '_log_name', None)
        if isinstance(name, str):
            return name
        ann_file = getattr(self, 'ann_file', None)
        return f'{type(self).__name__} ({ann_file})' if ann_file else type(self).__name__

    def _skip(self, path: str, reason: str, role: str, exc: Exception) -> None:
        if getattr(self, 'test_mode', False):
            raise BadImageError(f'{self._skip_name}: image {path} {reason}. In test_mode (validation, testing) '
                                'images are not skipped (the metrics would silently leave it out): replace the '
                                'file or remove it from the split') from exc
        if self.strict:
            raise BadImageError(f'{self._skip_name}: strict=True and image {path} {reason} (strict=False skips '
                                'such images while training, up to max_skip_fraction of the loads)') from exc
        self.loads_skipped += 1
        first = path not in self.skipped_files
        self.skipped_files[path] = self.skipped_files.get(path, 0) + 1
        counts = (f'{self.loads_skipped} of {self.loads_seen} loads ({self.loads_skipped / self.loads_seen:.1%}, '
                  f'{len(self.skipped_files)} files) skipped in {_process_name()}')
        if first:
            action = ('this sample is not mixed' if role != 'sample'
                      else 'another sample takes its place in the batch')
            print_log(f'{self._skip_name}: skipped {role} image {path}: it {reason}; {action}. {counts} '
                      f'(each file is named once per process; the run stops above max_skip_fraction='
                      f'{self.max_skip_fraction:g})', logger='current', level=logging.WARNING)
        elif self.loads_skipped % RECAP_EVERY == 0:
            print_log(f'{self._skip_name}: {counts}: {self._listed_files()}', logger='current',
                      level=logging.WARNING)
        self._check_skip_fraction()

    def _check_skip_fraction(self) -> None:
        if not self.loads_skipped:
            return
        if self.loads_seen < MIN_LOADS_FOR_LIMIT and self.loads_seen < self._loads_per_epoch():
            return
        if self.loads_skipped > self.max_skip_fraction * self.loads_seen:
            raise TooManyBadImagesError(
                f'{self._skip_name}: {self.loads_skipped} of {self.loads_seen} image loads '
                f'({self.loads_skipped / self.loads_seen:.1%}) failed in {_process_name()}, more than '
                f'max_skip_fraction={self.max_skip_fraction:g}; stopping. The {len(self.skipped_files)} files '
                f'(skips):\n  {self._listed_files(sep=chr(10) + "  ")}\nReplace or remove them, or raise the '
                "dataset's max_skip_fraction")

    def _loads_per_epoch(self) -> int:
        """About the samples this process loads per epoch (its share of the dataset), at least 1."""
        return max(1, math.ceil(len(self) / _loaders_sharing_the_data()))

    def _listed_files(self, sep: str = ', ') -> str:
        items: List[str] = [f'{p} ({n})' for p, n in list(self.skipped_files.items())[:MAX_LISTED_FILES]]
        more = len(self.skipped_files) - MAX_LISTED_FILES
        return sep.join(items) + (f'{sep}... and {more} more' if more > 0 else '')
