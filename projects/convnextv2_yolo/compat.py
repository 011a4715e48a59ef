"""Compatibility fixes for the pinned OpenMMLab stack on current torch/numpy.

Applied once by ``import convnextv2_yolo`` (:func:`apply_all`). Each fix is one
function with a one-line reason; README "Compatibility fixes" lists them.

1. ``allow_mmengine_checkpoint_globals``: torch >= 2.6 loads with
   ``weights_only=True`` and refuses the numpy/mmengine types an mmengine 0.10.7
   checkpoint pickles, so ``--resume``/``load_from`` break; we allow-list
   exactly those types (never turning safe loading off).
2. ``plain_message_hub_state``: the message hub pickled bound methods through
   ``builtins.getattr`` (which cannot be allow-listed without reopening code
   execution); it now saves plain data only, and a loaded ``HistoryBuffer``
   registers its statistics methods (a fresh process has none registered).
3. ``register_safe_local_loader``: mmengine's local checkpoint loader gets clear
   errors (missing, corrupt/truncated, unsafe content) and an explicit per-file
   trust switch, ``CONVNEXTV2_YOLO_TRUSTED_CHECKPOINTS``, for older checkpoints.
4. ``skip_mmpretrain_multimodal_on_new_transformers``: mmpretrain 1.2.0's
   multi-modal models crash at import with transformers >= 5 (and we use none
   of them), so mmpretrain registers its placeholders instead.
5. ``cpu_distributed_launch``: mmengine's pytorch launcher calls
   ``torch.cuda.set_device`` unconditionally and wraps the model in DDP with
   GPU ``device_ids``, so ``dist_train.sh`` cannot run CPU processes (gloo);
   both are skipped when there is no GPU.
6. ``atomic_local_writes``: mmengine writes files (checkpoints) in place, so a
   kill mid-write leaves a truncated file under the final name; local writes
   now go to a temporary file in the same folder, then ``os.replace``.
7. ``remove_old_checkpoints_after_saving``: mmengine's ``CheckpointHook``
   deletes the previous best (and the oldest kept) checkpoint *before* writing
   the new one; the removals now run only once the new file is in place.
8. ``coco_cat_ids_in_requested_order``: mmdet's ``COCO.get_cat_ids(cat_names=...)``
   returns ids in the file's category order, not in the order asked for, so a
   config whose ``classes`` order differs from the JSON's silently swaps labels
   (in ``CocoDataset`` and ``CocoMetric``); ids now follow ``cat_names``.
9. ``coco_empty_results``: pycocotools' ``loadRes`` raises ``IndexError`` on an
   empty result list, which mmdet's ``CocoMetric`` logs at ERROR level and then
   returns no metrics; an empty result set now evaluates (to zeros).
"""
import contextlib
import os
import os.path as osp
import pickle
import struct
import uuid
import zipfile
from typing import Any, Callable, List, Optional, Sequence, Set, Union

import torch

TRUST_ENV = 'CONVNEXTV2_YOLO_TRUSTED_CHECKPOINTS'

_APPLIED = False


class CheckpointLoadError(RuntimeError):
    """A checkpoint file could not be loaded (corrupt, truncated or unsafe)."""


def _numpy_checkpoint_globals() -> List[Any]:
    """numpy types that ``np.ndarray``/numpy scalars pickle through."""
    import numpy as np
    try:  # numpy >= 2
        from numpy._core.multiarray import _reconstruct, scalar
    except ImportError:  # numpy 1.x
        from numpy.core.multiarray import _reconstruct, scalar
    found = [np.ndarray, np.dtype, _reconstruct, scalar]
    dtypes = getattr(np, 'dtypes', None)  # numpy >= 1.25: one class per dtype
    if dtypes is not None:
        found += [getattr(dtypes, n) for n in dir(dtypes) if n.endswith('DType')]
    return found


def mmengine_checkpoint_globals() -> List[Any]:
    """Exactly the non-tensor types an mmengine 0.10.7 checkpoint holds."""
    import codecs

    from mmengine.logging import HistoryBuffer
    return [HistoryBuffer, codecs.encode] + _numpy_checkpoint_globals()


def allow_mmengine_checkpoint_globals() -> None:
    """Allow-list mmengine checkpoint types for ``torch.load(weights_only=True)``."""
    add = getattr(torch.serialization, 'add_safe_globals', None)
    if add is not None:  # torch < 2.4 has no safe-globals API (and loads unsafely anyway)
        add(mmengine_checkpoint_globals())


def plain_message_hub_state() -> None:
    """Make ``MessageHub.state_dict`` hold plain data only (no bound methods)."""
    from mmengine.logging import HistoryBuffer

    if getattr(HistoryBuffer, '_convnextv2_yolo_plain_state', False):
        return

    def __getstate__(self) -> dict:
        # the statistics methods (functions) are class-level and rebuilt on load
        return {k: v for k, v in self.__dict__.items()
                if k not in ('_statistics_methods', 'statistics_methods')}

    def __setstate__(self, state: dict) -> None:
        state = dict(state)
        # a fresh process has registered nothing yet: mmengine's own
        # __setstate__ registers the defaults (min/max/current/mean) here too
        self._set_default_statistics()
        # checkpoints written by plain mmengine (loaded only when trusted)
        for name, method in (state.pop('statistics_methods', None) or {}).items():
            self._statistics_methods.setdefault(name, method)
        self.__dict__.update(state)

    HistoryBuffer.__getstate__ = __getstate__
    HistoryBuffer.__setstate__ = __setstate__
    HistoryBuffer._convnextv2_yolo_plain_state = True


def trusted_checkpoints() -> Set[str]:
    """Real paths listed in ``$CONVNEXTV2_YOLO_TRUSTED_CHECKPOINTS`` (os.pathsep-separated)."""
    value = os.environ.get(TRUST_ENV, '')
    return {osp.realpath(osp.expanduser(p)) for p in value.split(os.pathsep) if p}


def safe_torch_load(filename: str, map_location: Optional[Any] = None, mmap: bool = False) -> Any:
    """``torch.load`` with safe loading and errors that name the file.

    A file listed in ``$CONVNEXTV2_YOLO_TRUSTED_CHECKPOINTS`` is loaded with full
    unpickling (only do that for files you produced or trust).

    Raises:
        FileNotFoundError: the file does not exist.
        CheckpointLoadError: the file is corrupt/truncated or holds objects
            outside the allow-list.
    """
    filename = osp.expanduser(str(filename))
    if not osp.isfile(filename):
        raise FileNotFoundError(f'checkpoint file not found: {filename}')
    trusted = osp.realpath(filename) in trusted_checkpoints()
    try:
        return torch.load(filename, map_location=map_location, weights_only=not trusted, mmap=mmap)
    except pickle.UnpicklingError as e:
        if 'Unsupported global' in str(e) or 'GLOBAL' in str(e):
            raise CheckpointLoadError(
                f'refusing to load {filename}: it holds pickled objects that safe loading '
                f'(torch.load(weights_only=True)) does not allow ({_first_line_with(str(e), "GLOBAL")}). '
                f'If you produced this file '
                f'yourself (e.g. an older mmengine checkpoint), trust it explicitly with '
                f'{TRUST_ENV}={filename}') from None
        raise _corrupt(filename, _first_line_with(str(e), 'error')) from None
    except (RuntimeError, EOFError, OSError, zipfile.BadZipFile, ValueError) as e:
        msg = str(e)
        if isinstance(e, (EOFError, OSError, zipfile.BadZipFile)) or any(
                s in msg for s in ('zip archive', 'PytorchStreamReader', 'Ran out of input',
                                   'invalid load key', 'file not found in archive')):
            raise _corrupt(filename, msg.splitlines()[0] if msg else type(e).__name__) from None
        raise
    except (IndexError, KeyError, TypeError, AssertionError, AttributeError, struct.error) as e:
        # random bytes that pass as a legacy pickle stream fail inside the unpickler
        raise _corrupt(filename, f'{type(e).__name__}: {e}') from None


def load_checkpoint_mmap(filename: str) -> Any:
    """A checkpoint loaded safely with its tensors memory-mapped (not read until used).

    Files in torch's legacy (non-zip) format cannot be mapped and are read whole.

    Raises: as :func:`safe_torch_load`.
    """
    try:
        return safe_torch_load(filename, map_location='cpu', mmap=True)
    except RuntimeError as e:
        if 'mmap can only be used' not in str(e):  # a file in torch's legacy format: read it whole
            raise
        return safe_torch_load(filename, map_location='cpu')


def read_checkpoint_meta(filename: str) -> dict:
    """A checkpoint's ``meta`` (e.g. ``dataset_meta``), memory-mapping the file so its tensors are not read.

    Raises: as :func:`safe_torch_load`.
    """
    checkpoint = load_checkpoint_mmap(filename)
    meta = checkpoint.get('meta') if isinstance(checkpoint, dict) else None
    return meta if isinstance(meta, dict) else {}


def _corrupt(filename: str, detail: str) -> CheckpointLoadError:
    return CheckpointLoadError(f'{filename} is not a valid checkpoint (corrupt or truncated): {detail}')


def _first_line_with(text: str, needle: str) -> str:
    for line in text.splitlines():
        if needle in line:
            return line.strip()
    return text.splitlines()[0] if text else ''


def register_safe_local_loader() -> None:
    """Route mmengine's local-file checkpoint loading through :func:`safe_torch_load`."""
    from mmengine.runner.checkpoint import CheckpointLoader

    def load_from_local(filename: str, map_location: Optional[Any] = None) -> Any:
        return safe_torch_load(filename, map_location)

    CheckpointLoader.register_scheme(prefixes='', loader=load_from_local, force=True)


def skip_mmpretrain_multimodal_on_new_transformers() -> None:
    """Keep ``import mmpretrain.models`` working when transformers >= 5 is installed."""
    import importlib.metadata as md
    try:
        major = int(md.version('transformers').split('.')[0])
    except (md.PackageNotFoundError, ValueError):
        return
    if major >= 5:
        import mmpretrain.utils.dependency as dependency
        dependency.WITH_MULTIMODAL = False


def cpu_distributed_launch() -> None:
    """Let mmengine's pytorch launcher start CPU-only (gloo) processes."""
    import mmengine.dist.utils as dist_utils
    original = dist_utils._init_dist_pytorch
    if getattr(original, '_convnextv2_yolo_cpu_ok', False):
        return

    def _init_dist_pytorch(backend: str = 'nccl', init_backend: str = 'torch', **kwargs) -> None:
        if torch.cuda.is_available():
            return original(backend, init_backend=init_backend, **kwargs)
        set_device = torch.cuda.set_device
        torch.cuda.set_device = lambda *args, **kw: None
        try:
            return original(backend, init_backend=init_backend, **kwargs)
        finally:
            torch.cuda.set_device = set_device

    _init_dist_pytorch._convnextv2_yolo_cpu_ok = True
    dist_utils._init_dist_pytorch = _init_dist_pytorch

    from mmengine.model.wrappers import MMDistributedDataParallel
    ddp_init = MMDistributedDataParallel.__init__

    def __init__(self, module, *args, **kwargs) -> None:
        if not torch.cuda.is_available():  # DDP refuses GPU device ids for a CPU module
            kwargs.pop('device_ids', None)
            kwargs.pop('output_device', None)
        ddp_init(self, module, *args, **kwargs)

    MMDistributedDataParallel.__init__ = __init__


def write_atomic(filepath: Union[str, os.PathLike], data: Union[bytes, str], encoding: str = 'utf-8') -> None:
    """Write ``data`` to ``filepath`` so that readers see the old or the new file, never a part.

    The bytes go to a hidden temporary file in the same folder, are flushed to
    disk, and the file is renamed over ``filepath`` (``os.replace`` is atomic
    on one file system). A failure or kill before the rename leaves the
    previous file untouched (and at worst a ``.<name>.<pid>.<id>.tmp`` file).
    """
    filepath = os.fspath(filepath)
    folder = osp.dirname(filepath) or '.'
    os.makedirs(folder, exist_ok=True)
    tmp = osp.join(folder, f'.{osp.basename(filepath)}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp')
    payload = data.encode(encoding) if isinstance(data, str) else data
    try:
        with open(tmp, 'xb') as f:
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, filepath)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def atomic_local_writes() -> None:
    """Make mmengine's ``LocalBackend.put`` / ``put_text`` (checkpoints, logs' json) atomic."""
    from mmengine.fileio.backends.local_backend import LocalBackend
    if getattr(LocalBackend.put, '_convnextv2_yolo_atomic', False):
        return

    def put(self, obj: bytes, filepath: Union[str, os.PathLike]) -> None:
        write_atomic(filepath, obj)

    def put_text(self, obj: str, filepath: Union[str, os.PathLike], encoding: str = 'utf-8') -> None:
        write_atomic(filepath, obj, encoding=encoding)

    put._convnextv2_yolo_atomic = True
    LocalBackend.put = put
    LocalBackend.put_text = put_text


class _DeferredRemovals:
    """File-backend proxy that records ``remove``/``rmtree`` calls instead of running them."""

    def __init__(self, backend: Any) -> None:
        self._backend = backend
        self.pending: List[tuple] = []

    def remove(self, filepath: str) -> None:
        self.pending.append((self._backend.remove, filepath))

    def rmtree(self, dir_path: str) -> None:
        self.pending.append((self._backend.rmtree, dir_path))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._backend, name)


def remove_old_checkpoints_after_saving() -> None:
    """Run ``CheckpointHook``'s removals of old/best checkpoints after the new one is written."""
    from mmengine.hooks import CheckpointHook

    for name in ('_save_checkpoint_with_step', '_save_best_checkpoint'):
        original = getattr(CheckpointHook, name)
        if getattr(original, '_convnextv2_yolo_deferred', False):
            continue

        def save_then_remove(self, runner, *args, _original=original, **kwargs):
            backend = getattr(self, 'file_backend', None)  # set in before_train
            if backend is None:
                return _original(self, runner, *args, **kwargs)
            proxy = _DeferredRemovals(backend)
            self.file_backend = proxy
            try:
                result = _original(self, runner, *args, **kwargs)
            finally:
                self.file_backend = backend
            # the new files are in place: now drop the old ones (never a file
            # that was just written under the same name)
            current = {getattr(self, 'last_ckpt', None), getattr(self, 'best_ckpt_path', None),
                       *(getattr(self, 'best_ckpt_path_dict', None) or {}).values()}
            for remove, path in proxy.pending:
                if path not in current:
                    remove(path)
            return result

        save_then_remove._convnextv2_yolo_deferred = True
        save_then_remove.__name__ = name
        setattr(CheckpointHook, name, save_then_remove)


def coco_cat_ids_in_requested_order() -> None:
    """``COCO.get_cat_ids(cat_names=...)`` returns ids in the order of ``cat_names``."""
    from mmdet.datasets.api_wrappers import COCO
    original = COCO.get_cat_ids
    if getattr(original, '_convnextv2_yolo_ordered', False):
        return

    def get_cat_ids(self, cat_names: Sequence[str] = [], sup_names: Sequence[str] = [],
                    cat_ids: Sequence[int] = []) -> List[int]:
        ids = original(self, cat_names, sup_names, cat_ids)
        names = [cat_names] if isinstance(cat_names, str) else list(cat_names)
        if not names:
            return ids
        position = {}
        for i, n in enumerate(names):
            position.setdefault(n, i)
        # stable: categories sharing a name keep the file's order
        return sorted(ids, key=lambda cat_id: position[self.cats[cat_id]['name']])

    get_cat_ids._convnextv2_yolo_ordered = True
    COCO.get_cat_ids = get_cat_ids


def coco_empty_results() -> None:
    """``COCO.loadRes([])`` gives an empty result set instead of an ``IndexError``."""
    from mmdet.datasets.api_wrappers import COCO
    original = COCO.loadRes
    if getattr(original, '_convnextv2_yolo_empty_ok', False):
        return

    def loadRes(self, resFile):  # noqa: N802 (pycocotools' name)
        if isinstance(resFile, (list, tuple)) and len(resFile) == 0:
            res = COCO()
            res.dataset['images'] = list(self.dataset.get('images', []))
            res.dataset['categories'] = [dict(c) for c in self.dataset.get('categories', [])]
            res.dataset['annotations'] = []
            res.createIndex()
            return res
        return original(self, resFile)

    loadRes._convnextv2_yolo_empty_ok = True
    COCO.loadRes = loadRes


FIXES: List[Callable[[], None]] = [
    cpu_distributed_launch,
    skip_mmpretrain_multimodal_on_new_transformers,
    allow_mmengine_checkpoint_globals,
    plain_message_hub_state,
    register_safe_local_loader,
    atomic_local_writes,
    remove_old_checkpoints_after_saving,
    coco_cat_ids_in_requested_order,
    coco_empty_results,
]


def apply_all() -> None:
    """Apply every fix once (idempotent)."""
    global _APPLIED
    if _APPLIED:
        return
    for fix in FIXES:
        fix()
    _APPLIED = True
