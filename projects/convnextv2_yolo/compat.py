"""Compatibility fixes for the pinned OpenMMLab stack on current torch/numpy.

Applied once by ``import convnextv2_yolo`` (:func:`apply_all`). Each fix is one
function with a one-line reason; README "Compatibility fixes" lists them.

1. ``allow_mmengine_checkpoint_globals``: torch >= 2.6 loads with
   ``weights_only=True`` and refuses the numpy/mmengine types an mmengine 0.10.7
   checkpoint pickles, so ``--resume``/``load_from`` break; we allow-list
   exactly those types (never turning safe loading off).
2. ``plain_message_hub_state``: the message hub pickled bound methods through
   ``builtins.getattr`` (which cannot be allow-listed without reopening code
   execution); it now saves plain data only.
3. ``register_safe_local_loader``: mmengine's local checkpoint loader gets clear
   errors (missing, corrupt/truncated, unsafe content) and an explicit per-file
   trust switch, ``CONVNEXTV2_YOLO_TRUSTED_CHECKPOINTS``, for older checkpoints.
5. ``cpu_distributed_launch``: mmengine's pytorch launcher calls
   ``torch.cuda.set_device`` unconditionally and wraps the model in DDP with
   GPU ``device_ids``, so ``dist_train.sh`` cannot run CPU processes (gloo);
   both are skipped when there is no GPU.
4. ``skip_mmpretrain_multimodal_on_new_transformers``: mmpretrain 1.2.0's
   multi-modal models crash at import with transformers >= 5 (and we use none
   of them), so mmpretrain registers its placeholders instead.
"""
import os
import os.path as osp
import pickle
import struct
import zipfile
from typing import Any, Callable, List, Optional, Set

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
        # instance statistics methods (bound methods) are rebuilt on load
        return {k: v for k, v in self.__dict__.items() if k != '_statistics_methods'}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)

    HistoryBuffer.__getstate__ = __getstate__
    HistoryBuffer.__setstate__ = __setstate__
    HistoryBuffer._convnextv2_yolo_plain_state = True


def trusted_checkpoints() -> Set[str]:
    """Real paths listed in ``$CONVNEXTV2_YOLO_TRUSTED_CHECKPOINTS`` (os.pathsep-separated)."""
    value = os.environ.get(TRUST_ENV, '')
    return {osp.realpath(osp.expanduser(p)) for p in value.split(os.pathsep) if p}


def safe_torch_load(filename: str, map_location: Optional[Any] = None) -> Any:
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
        return torch.load(filename, map_location=map_location, weights_only=not trusted)
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


FIXES: List[Callable[[], None]] = [
    cpu_distributed_launch,
    skip_mmpretrain_multimodal_on_new_transformers,
    allow_mmengine_checkpoint_globals,
    plain_message_hub_state,
    register_safe_local_loader,
]


def apply_all() -> None:
    """Apply every fix once (idempotent)."""
    global _APPLIED
    if _APPLIED:
        return
    for fix in FIXES:
        fix()
    _APPLIED = True
