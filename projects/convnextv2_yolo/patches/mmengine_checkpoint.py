"""mmengine 0.10.7 checkpoints under torch >= 2.6's safe loading (``torch.load(weights_only=True)``)."""
from typing import Any, List, Optional

import torch

from ..utils import checkpoint_io
from ._util import replace


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
    """Allow-list the non-tensor types of mmengine checkpoints for ``torch.load(weights_only=True)``.

    Upstream defect: torch >= 2.6 made ``weights_only=True`` the default of
    ``torch.load``, and mmengine (<= 0.10.7) checkpoints pickle numpy arrays and
    scalars (``meta``, the message hub) and ``mmengine.logging.HistoryBuffer``,
    which safe loading refuses (``UnpicklingError: Unsupported global``), so
    ``--resume`` and ``load_from`` of the package's own checkpoints break.
    Exactly those types are allow-listed; safe loading stays on.

    Applies to: torch >= 2.4 (has ``add_safe_globals``; needed from 2.6), mmengine 0.10.x.
    """
    add = getattr(torch.serialization, 'add_safe_globals', None)
    if add is not None:  # torch < 2.4 has no safe-globals API (and loads unsafely anyway)
        add(mmengine_checkpoint_globals())


def plain_message_hub_state() -> None:
    """Make ``HistoryBuffer`` pickle plain data only (no bound methods).

    Upstream defect: ``mmengine.logging.HistoryBuffer.__getstate__`` (0.10.7)
    pickles its registered statistics methods, i.e. functions reached through
    ``builtins.getattr``; every checkpoint's ``message_hub`` then holds a global
    that cannot be allow-listed for safe loading without reopening code
    execution. The methods are class-level, so they are now left out when
    saving and rebuilt when loading (a fresh process has none registered until
    ``_set_default_statistics``). Checkpoints written by plain mmengine (loaded
    only when trusted) keep their methods.

    Applies to: mmengine 0.10.x with torch >= 2.6.
    """
    from mmengine.logging import HistoryBuffer

    def make_getstate(original):
        def __getstate__(self) -> dict:
            # the statistics methods (functions) are class-level and rebuilt on load
            return {k: v for k, v in self.__dict__.items()
                    if k not in ('_statistics_methods', 'statistics_methods')}
        return __getstate__

    def make_setstate(original):
        def __setstate__(self, state: dict) -> None:
            state = dict(state)
            # a fresh process has registered nothing yet: mmengine's own
            # __setstate__ registers the defaults (min/max/current/mean) here too
            self._set_default_statistics()
            # checkpoints written by plain mmengine (loaded only when trusted)
            for name, method in (state.pop('statistics_methods', None) or {}).items():
                self._statistics_methods.setdefault(name, method)
            self.__dict__.update(state)
        return __setstate__

    replace(HistoryBuffer, '__getstate__', make_getstate)
    replace(HistoryBuffer, '__setstate__', make_setstate)


def register_safe_local_loader() -> None:
    """Route mmengine's local-file checkpoint loading through ``utils.checkpoint_io.safe_torch_load``.

    Upstream defect: ``mmengine.runner.checkpoint.load_from_local`` (0.10.7)
    calls bare ``torch.load(filename, map_location)``: on torch < 2.6 that
    unpickles anything (code execution from a downloaded file), on torch >= 2.6
    a refused or truncated file raises torch's generic error without the file
    name, and there is no way to load a trusted older checkpoint. Local loads
    now use safe loading, errors name the file, and a per-file trust switch
    (``$CONVNEXTV2_YOLO_TRUSTED_CHECKPOINTS``) allows full unpickling.

    Applies to: mmengine 0.10.x, any torch.
    """
    from mmengine.runner.checkpoint import CheckpointLoader
    CheckpointLoader.register_scheme(prefixes='', loader=load_from_local, force=True)


def load_from_local(filename: str, map_location: Optional[Any] = None) -> Any:
    """mmengine's local-file loader, through :func:`~convnextv2_yolo.utils.checkpoint_io.safe_torch_load`."""
    return checkpoint_io.safe_torch_load(filename, map_location)
