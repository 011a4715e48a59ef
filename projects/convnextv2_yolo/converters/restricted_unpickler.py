"""Reading the reference's (Ultralytics') pickled files without running them.

A released ``.pt`` (``yolo11n.pt``, a training ``best.pt``...) is a pickled
``{'model': DetectionModel, 'ema': ...}``. :class:`RestrictedUnpickler` reads
it WITHOUT importing ultralytics and without running anything from the file:
every ``ultralytics.*`` / ``torch.nn.modules.*`` class becomes an inert
stand-in (:class:`InertObject`) that only stores its attributes; torch's
tensor-rebuild functions and a few plain containers are allowed, and every
other global (e.g. ``os.system``) is refused.
"""
import codecs
import collections
import datetime
import os.path as osp
import pickle
import struct
import types
import zipfile
from typing import Any, Dict, Optional, Tuple

import torch

from .errors import ConversionError


class InertObject:
    """Stand-in for a pickled class of the reference (or of ``torch.nn``).

    It runs no code of the class it replaces: construction arguments and the
    pickled state are only stored (``__dict__``).
    """

    _pickled_name = '?'

    def __new__(cls, *args: Any, **kwargs: Any) -> 'InertObject':
        obj = super().__new__(cls)
        if args or kwargs:
            obj.__dict__['_pickle_args'] = (args, kwargs)
        return obj

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        if isinstance(state, tuple) and len(state) == 2 and (
                state[0] is None or isinstance(state[0], dict)):
            state, slots = state
            state = {**(state or {}), **(slots or {})}
        if isinstance(state, dict):
            self.__dict__.update(state)
        else:
            self.__dict__['_pickle_state'] = state

    def __repr__(self) -> str:
        return f'<inert {self._pickled_name}>'


def _torch_dtypes() -> Dict[Tuple[str, str], Any]:
    return {('torch', name): value for name, value in vars(torch).items()
            if isinstance(value, torch.dtype)}


def _numpy_globals() -> Dict[Tuple[str, str], Any]:
    """numpy scalars / arrays / dtypes that training metadata may hold."""
    import numpy as np
    try:
        from numpy._core import multiarray
    except ImportError:  # numpy 1.x
        from numpy.core import multiarray
    found: Dict[Tuple[str, str], Any] = {('numpy', 'dtype'): np.dtype, ('numpy', 'ndarray'): np.ndarray}
    for mod in ('numpy.core.multiarray', 'numpy._core.multiarray'):
        found[(mod, 'scalar')] = multiarray.scalar
        found[(mod, '_reconstruct')] = multiarray._reconstruct
    dtypes = getattr(np, 'dtypes', None)
    if dtypes is not None:
        found.update({('numpy.dtypes', n): getattr(dtypes, n) for n in dir(dtypes) if n.endswith('DType')})
    return found


# dill (which the reference pickles with when installed) names a few builtin
# types through this function; only harmless ones are resolved.
_DILL_TYPES = {'NoneType': type(None), 'EllipsisType': type(Ellipsis),
               'NotImplementedType': type(NotImplemented)}


def _dill_load_type(name: str) -> type:
    if name not in _DILL_TYPES:
        raise pickle.UnpicklingError(f'refusing dill type {name!r}')
    return _DILL_TYPES[name]


def _inert_class(module: str, name: str) -> type:
    return type(name.rpartition('.')[2] or 'attr', (InertObject, ),
                {'__module__': module, '_pickled_name': f'{module}.{name}'})


def _inert_getattr(obj: Any, name: str, *default: Any) -> type:
    """``getattr`` as pickles of the reference use it (attributes of its own
    classes or objects, e.g. bound methods): only on stand-ins, and the result
    is another inert stand-in, never a real attribute."""
    if isinstance(obj, InertObject) or (isinstance(obj, type) and issubclass(obj, InertObject)):
        return _inert_class(type(obj).__module__ if isinstance(obj, InertObject) else obj.__module__,
                            f'{obj._pickled_name.rpartition(".")[2]}.{name}')
    raise pickle.UnpicklingError(
        f'refusing getattr({type(obj).__name__}, {name!r}): only allowed on reference model classes')


def _safe_globals() -> Dict[Tuple[str, str], Any]:
    from torch import _utils as tu
    allowed: Dict[Tuple[str, str], Any] = {
        ('collections', 'OrderedDict'): collections.OrderedDict,
        ('builtins', 'set'): set, ('builtins', 'frozenset'): frozenset,
        ('builtins', 'slice'): slice, ('builtins', 'complex'): complex,
        ('builtins', 'bytearray'): bytearray,
        # protocol-2 pickles store bytes as codecs.encode(str, 'latin1')
        ('_codecs', 'encode'): codecs.encode, ('codecs', 'encode'): codecs.encode,
        ('datetime', 'datetime'): datetime.datetime, ('datetime', 'date'): datetime.date,
        ('datetime', 'timedelta'): datetime.timedelta,
        ('torch', 'Size'): torch.Size, ('torch', 'device'): torch.device,
        ('torch.nn.parameter', 'Parameter'): torch.nn.Parameter,
        ('torch._tensor', '_rebuild_from_type_v2'): torch._tensor._rebuild_from_type_v2,
        ('dill._dill', '_load_type'): _dill_load_type,
        ('builtins', 'getattr'): _inert_getattr,
    }
    for name in ('_rebuild_tensor', '_rebuild_tensor_v2', '_rebuild_tensor_v3', '_rebuild_parameter',
                 '_rebuild_parameter_with_state'):
        if hasattr(tu, name):
            allowed[('torch._utils', name)] = getattr(tu, name)
    allowed.update(_torch_dtypes())
    allowed.update(_numpy_globals())
    return allowed


def _is_inert_module(module: str) -> bool:
    """Classes replaced by :class:`InertObject` (never imported)."""
    return (module == 'ultralytics' or module.startswith('ultralytics.')
            or module.startswith('torch.nn.modules.') or module in ('pathlib', 'types', 'argparse'))


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that never imports or calls anything outside an allow-list.

    ``ultralytics.*`` / ``torch.nn.modules.*`` (and pathlib, SimpleNamespace,
    argparse Namespace) classes become :class:`InertObject` subclasses; the
    tensor-rebuild functions, plain containers, torch/numpy dtypes are
    allowed, ``getattr`` only on those stand-ins (giving stand-ins); any other
    global raises ``pickle.UnpicklingError``.
    """

    _allowed: Optional[Dict[Tuple[str, str], Any]] = None

    def find_class(self, module: str, name: str) -> Any:
        import _compat_pickle
        if (module, name) in _compat_pickle.NAME_MAPPING:
            module, name = _compat_pickle.NAME_MAPPING[(module, name)]
        module = _compat_pickle.IMPORT_MAPPING.get(module, module)
        cls = type(self)
        if cls._allowed is None:
            cls._allowed = _safe_globals()
        if (module, name) in cls._allowed:
            return cls._allowed[(module, name)]
        if _is_inert_module(module) and all(part.isidentifier() for part in name.split('.')):
            return _inert_class(module, name)
        raise RefusedGlobal(module, name)


class RefusedGlobal(pickle.UnpicklingError):
    """A pickled global that is neither a weight, a container nor a reference model class."""

    def __init__(self, module: str, name: str) -> None:
        self.module = module
        super().__init__(f"refusing to load global '{module}.{name}': not a weight, container or "
                         'reference model class')


# ``torch.load(pickle_module=...)`` takes a module-like object with Unpickler.
restricted_pickle = types.ModuleType('ultralytics_restricted_pickle')
restricted_pickle.Unpickler = RestrictedUnpickler  # type: ignore[attr-defined]
restricted_pickle.load = lambda f, **kw: RestrictedUnpickler(f, **kw).load()  # type: ignore[attr-defined]
restricted_pickle.__name__ = 'ultralytics_restricted_pickle'


def read_pickled_file(path: str) -> Any:
    """Load a torch-saved file with :class:`RestrictedUnpickler`.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ConversionError: TorchScript archive, unsafe content or corrupt file.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'checkpoint file not found: {path}')
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as zf:
                if any(n.endswith('constants.pkl') or '/code/' in n for n in zf.namelist()):
                    raise ConversionError(f'{path} is a TorchScript archive, not a checkpoint')
        return torch.load(path, map_location='cpu', weights_only=False, pickle_module=restricted_pickle)
    except RefusedGlobal as e:
        if e.module.split('.')[0] in ('mmengine', 'mmdet', 'mmcv', 'mmpretrain'):
            raise ConversionError(
                f'{path}: {e}. It pickles OpenMMLab objects: an mmdet checkpoint (this project\'s format '
                'already: give it to load_from or tools/test.py), not a reference checkpoint') from None
        raise ConversionError(f'{path}: {e}') from None
    except (pickle.UnpicklingError, RuntimeError, EOFError, zipfile.BadZipFile, KeyError, IndexError, ValueError,
            UnicodeDecodeError, TypeError, AttributeError, OverflowError, OSError, struct.error,
            MemoryError) as e:  # corrupt, truncated or not a pickle at all: the opcodes of random bytes fail anyhow
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ConversionError(f'{path} is not a readable torch checkpoint: {msg}') from None
