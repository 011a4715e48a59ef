"""Convert a YOLO11 / YOLOv8 checkpoint of the reference (Ultralytics) to ours.

Reads either

1. a plain state dict with the reference's names (``model.0.conv.weight``,
   ``model.23.cv2.0.0.conv.weight``, ...), or
2. a released ``.pt`` file (``yolo11n.pt``, ``yolov8s.pt``, a training
   ``best.pt``...): a pickled ``{'model': DetectionModel, 'ema': ...}``,
   often fp16. It is read WITHOUT importing ultralytics and without running
   anything from the file: a restricted unpickler turns every
   ``ultralytics.*`` / ``torch.nn.modules.*`` class into an inert stand-in
   that only stores its attributes, allows torch's tensor-rebuild functions
   and a few plain containers, and refuses every other global (e.g.
   ``os.system``). Parameters and buffers are then collected from the
   stand-ins' ``_parameters`` / ``_buffers`` / ``_modules``. The EMA weights
   are used when the file has them (as the reference does).

and writes ``{'state_dict': ..., 'meta': {...}}`` (fp32) for mmdet's
``load_from`` / ``load_checkpoint``. The converted keys are checked against
our model built from ``configs/{arch}/{arch}_{scale}_8xb16-500e_coco.py``
(with the checkpoint's number of classes): a checkpoint of another scale
fails with the first mismatched key and both shapes. Without ``--scale`` the
scale is found by trying n, s, m, l, x.

Key mapping (reference layer index -> our module; inside a layer the names
are identical, e.g. ``model.6.m.0.m.1.cv2.bn.weight`` ->
``backbone.stage3.1.m.0.m.1.cv2.bn.weight``):

=========================  =======  =======
ours                       yolo11   yolov8
=========================  =======  =======
backbone.stem              0        0
backbone.stage1.0 / .1     1 / 2    1 / 2
backbone.stage2.0 / .1     3 / 4    3 / 4
backbone.stage3.0 / .1     5 / 6    5 / 6
backbone.stage4.0 / .1     7 / 8    7 / 8
backbone.stage4.2 (SPPF)   9        9
backbone.stage4.3 (C2PSA)  10       -
neck.top_down_layers.0     13       12
neck.top_down_layers.1     16       15
neck.downsample_layers.0   17       16
neck.bottom_up_layers.0    19       18
neck.downsample_layers.1   20       19
neck.bottom_up_layers.1    22       21
bbox_head                  23       22
=========================  =======  =======

(layers 11, 12, 14, 15, 18, 21 of yolo11 and 10, 11, 13, 14, 17, 20 of
yolov8 are Upsample / Concat, without weights). Inside the Detect layer:
``cv2.{i}`` -> ``reg_convs.{i}``, ``cv3.{i}`` -> ``cls_convs.{i}``,
``dfl.conv.weight`` -> ``dfl.conv.weight``.

Example::

    python tools/model_converters/ultralytics_to_mmdet.py yolo11n.pt \
        yolo11_n_coco_ultralytics.pth --arch yolo11 --scale n
"""
import argparse
import codecs
import collections
import datetime
import os
import os.path as osp
import pickle
import re
import sys
import types
import zipfile
from collections import OrderedDict
from typing import Any, Dict, Mapping, Optional, Tuple

import torch

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
SCALES = ('n', 's', 'm', 'l', 'x')
ARCHS = ('yolo11', 'yolov8')

# Reference layer index -> our module name.
LAYER_MAPS: Dict[str, Dict[int, str]] = {
    'yolo11': {
        0: 'backbone.stem',
        1: 'backbone.stage1.0', 2: 'backbone.stage1.1',
        3: 'backbone.stage2.0', 4: 'backbone.stage2.1',
        5: 'backbone.stage3.0', 6: 'backbone.stage3.1',
        7: 'backbone.stage4.0', 8: 'backbone.stage4.1',
        9: 'backbone.stage4.2', 10: 'backbone.stage4.3',
        13: 'neck.top_down_layers.0', 16: 'neck.top_down_layers.1',
        17: 'neck.downsample_layers.0', 19: 'neck.bottom_up_layers.0',
        20: 'neck.downsample_layers.1', 22: 'neck.bottom_up_layers.1',
        23: 'bbox_head',
    },
    'yolov8': {
        0: 'backbone.stem',
        1: 'backbone.stage1.0', 2: 'backbone.stage1.1',
        3: 'backbone.stage2.0', 4: 'backbone.stage2.1',
        5: 'backbone.stage3.0', 6: 'backbone.stage3.1',
        7: 'backbone.stage4.0', 8: 'backbone.stage4.1',
        9: 'backbone.stage4.2',
        12: 'neck.top_down_layers.0', 15: 'neck.top_down_layers.1',
        16: 'neck.downsample_layers.0', 18: 'neck.bottom_up_layers.0',
        19: 'neck.downsample_layers.1', 21: 'neck.bottom_up_layers.1',
        22: 'bbox_head',
    },
}
HEAD_INDEX = {'yolo11': 23, 'yolov8': 22}
HEAD_RENAMES = {'cv2': 'reg_convs', 'cv3': 'cls_convs', 'dfl': 'dfl'}
_KEY_RE = re.compile(r'^model\.(\d+)\.(.+)$')


class ConversionError(ValueError):
    """The source checkpoint cannot be converted (names the key/file)."""


# ----------------------------------------------------------------------------
# Reading the reference's pickled files safely
# ----------------------------------------------------------------------------
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
        raise pickle.UnpicklingError(
            f"refusing to load global '{module}.{name}': not a weight, container or "
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
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as zf:
            if any(n.endswith('constants.pkl') or '/code/' in n for n in zf.namelist()):
                raise ConversionError(f'{path} is a TorchScript archive, not a checkpoint')
    try:
        return torch.load(path, map_location='cpu', weights_only=False, pickle_module=restricted_pickle)
    except pickle.UnpicklingError as e:
        raise ConversionError(f'{path}: {e}') from None
    except (RuntimeError, EOFError, zipfile.BadZipFile) as e:
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ConversionError(f'{path} is not a readable torch checkpoint: {msg}') from None


def collect_tensors(module: Any, prefix: str = '') -> 'OrderedDict[str, torch.Tensor]':
    """Flat state dict (dotted names) of an unpickled module tree.

    Works on :class:`InertObject` stand-ins as well as real ``nn.Module``\\ s:
    it reads ``_parameters``, persistent ``_buffers`` and ``_modules``.
    """
    out: 'OrderedDict[str, torch.Tensor]' = OrderedDict()
    attrs = vars(module)
    non_persistent = attrs.get('_non_persistent_buffers_set') or set()
    for kind in ('_parameters', '_buffers'):
        for name, value in (attrs.get(kind) or {}).items():
            if value is None or (kind == '_buffers' and name in non_persistent):
                continue
            if not isinstance(value, torch.Tensor):
                raise ConversionError(f'{prefix}{name} is a {type(value).__name__}, not a tensor')
            out[prefix + name] = value.detach()
    for name, child in (attrs.get('_modules') or {}).items():
        if child is not None:
            out.update(collect_tensors(child, f'{prefix}{name}.'))
    return out


def _is_state_dict(obj: Any) -> bool:
    return isinstance(obj, Mapping) and bool(obj) and all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items())


def load_reference_checkpoint(path: str) -> Tuple['OrderedDict[str, torch.Tensor]', dict]:
    """Reference-named state dict (fp32) and metadata of a reference file.

    Args:
        path (str): A plain state dict file or a released/trained ``.pt``.

    Returns:
        tuple: ``(state_dict, info)``, ``info`` holding what the file says
        about itself (``names``, ``version``, ``source_entry``) when present.
    """
    obj = read_pickled_file(path)
    info: dict = {}
    if _is_state_dict(obj):
        sd, info['source_entry'] = obj, 'state_dict'
    elif isinstance(obj, Mapping):
        entry = 'ema' if obj.get('ema') is not None else 'model'
        if obj.get(entry) is None:
            nested = obj.get('state_dict')
            if _is_state_dict(nested):
                sd, entry = nested, 'state_dict'
            else:
                raise ConversionError(f"{path}: no 'model', 'ema' or 'state_dict' entry "
                                      f'(keys: {sorted(map(str, obj))[:10]})')
        else:
            model = obj[entry]
            if not (_is_state_dict(model) or '_modules' in getattr(model, '__dict__', {})):
                raise ConversionError(f"{path}: entry '{entry}' is a {type(model).__name__}, neither a "
                                      'model nor a state dict')
            sd = model if _is_state_dict(model) else collect_tensors(model)
            names = vars(model).get('names') if hasattr(model, '__dict__') else None
            if isinstance(names, Mapping):
                info['names'] = [str(names[k]) for k in sorted(names)]
            elif isinstance(names, (list, tuple)):
                info['names'] = [str(n) for n in names]
        info['source_entry'] = entry
        if isinstance(obj.get('version'), str):
            info['version'] = obj['version']
    elif hasattr(obj, '__dict__') and '_modules' in vars(obj):
        sd, info['source_entry'] = collect_tensors(obj), 'model'
    else:
        raise ConversionError(f'{path}: holds a {type(obj).__name__}, not a reference checkpoint')
    if not sd:
        raise ConversionError(f'{path}: no tensors found')
    state = OrderedDict(
        (k, v.float() if v.is_floating_point() else v.clone()) for k, v in sd.items())
    return state, info


# ----------------------------------------------------------------------------
# Key mapping
# ----------------------------------------------------------------------------
def detect_arch(state_dict: Mapping[str, torch.Tensor]) -> str:
    """'yolo11' when the reference layers include C2PSA (index 10) and a
    Detect layer at index 23, 'yolov8' for Detect at index 22."""
    heads = {int(m.group(1)) for k in state_dict if (m := _KEY_RE.match(k)) and m.group(2).startswith('cv3.')}
    if heads == {23} and any(k.startswith('model.10.m.0.attn.') for k in state_dict):
        return 'yolo11'
    if heads == {22}:
        return 'yolov8'
    raise ConversionError('cannot tell YOLO11 from YOLOv8: expected a Detect layer (cv3.*) at '
                          f'model.23 (yolo11) or model.22 (yolov8), found at {sorted(heads) or "none"}')


def map_key(key: str, arch: str) -> str:
    """Our name of a reference key, e.g. ``model.2.cv1.conv.weight`` ->
    ``backbone.stage1.1.cv1.conv.weight``."""
    m = _KEY_RE.match(key)
    if m is None:
        raise ConversionError(f"unexpected key '{key}': reference keys look like 'model.<index>.<name>'")
    index, rest = int(m.group(1)), m.group(2)
    layers = LAYER_MAPS[arch]
    if index not in layers:
        raise ConversionError(f"unexpected key '{key}': layer {index} of {arch} has no weights")
    if index == HEAD_INDEX[arch]:
        first, _, tail = rest.partition('.')
        if first not in HEAD_RENAMES:
            raise ConversionError(f"unexpected key '{key}': Detect sub-module '{first}' is not part of "
                                  f'{arch} (expected {sorted(HEAD_RENAMES)})')
        rest = f'{HEAD_RENAMES[first]}.{tail}'
    return f'{layers[index]}.{rest}'


def convert_state_dict(state_dict: Mapping[str, torch.Tensor],
                       arch: Optional[str] = None) -> 'OrderedDict[str, torch.Tensor]':
    """Rename a reference-named state dict to ours (order kept).

    Args:
        state_dict (Mapping[str, Tensor]): Reference names
            (``model.<i>.<...>``).
        arch (str, optional): 'yolo11' or 'yolov8'; detected when None.
    """
    arch = arch or detect_arch(state_dict)
    if arch not in ARCHS:
        raise ConversionError(f'arch must be one of {ARCHS}, got {arch!r}')
    return OrderedDict((map_key(k, arch), v) for k, v in state_dict.items())


def reference_key(key: str, arch: str) -> str:
    """Inverse of :func:`map_key` (for messages and tests)."""
    for index, prefix in LAYER_MAPS[arch].items():
        if key.startswith(prefix + '.'):
            rest = key[len(prefix) + 1:]
            if index == HEAD_INDEX[arch]:
                first, _, tail = rest.partition('.')
                inverse = {v: k for k, v in HEAD_RENAMES.items()}
                rest = f'{inverse.get(first, first)}.{tail}'
            return f'model.{index}.{rest}'
    raise KeyError(key)


def num_classes_of(state_dict: Mapping[str, torch.Tensor], arch: str) -> int:
    """Classes of a converted state dict (rows of the last class conv)."""
    key = 'bbox_head.cls_convs.0.2.weight'
    if key not in state_dict:
        raise ConversionError(f"no '{key}' ('{reference_key(key, arch)}') in the checkpoint")
    return int(state_dict[key].shape[0])


# ----------------------------------------------------------------------------
# Checking against our model
# ----------------------------------------------------------------------------
def config_path(arch: str, scale: str) -> str:
    return osp.join(ROOT, 'configs', arch, f'{arch}_{scale}_8xb16-500e_coco.py')


def model_shapes(arch: str, scale: str, num_classes: int = 80) -> 'OrderedDict[str, torch.Size]':
    """State-dict shapes of our model for a scale (built on the meta device)."""
    from mmengine.config import Config
    try:
        import convnextv2_yolo  # noqa: F401  (registers the modules)
    except ImportError:  # source checkout, not installed
        sys.path.insert(0, osp.join(ROOT, 'projects'))
        import convnextv2_yolo  # noqa: F401
    from mmdet.registry import MODELS
    from mmengine.registry import init_default_scope

    cfg = Config.fromfile(config_path(arch, scale))
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    cfg.model.bbox_head.num_classes = num_classes
    with torch.device('meta'):
        model = MODELS.build(cfg.model)
    return OrderedDict((k, v.shape) for k, v in model.state_dict().items())


def check_shapes(state_dict: Mapping[str, torch.Tensor], expected: Mapping[str, torch.Size],
                 arch: str, scale: str) -> None:
    """Raise a :class:`ConversionError` at the first key that does not fit.

    Missing and unexpected keys are reported too, with reference names.
    """
    for key, value in state_dict.items():
        if key not in expected:
            raise ConversionError(f"unexpected key '{key}' (reference '{reference_key(key, arch)}') "
                                  f'for {arch}-{scale}')
        if tuple(value.shape) != tuple(expected[key]):
            raise ConversionError(
                f"shape mismatch at '{key}' (reference '{reference_key(key, arch)}'): checkpoint "
                f'{tuple(value.shape)} vs {arch}-{scale} model {tuple(expected[key])}; is the '
                f'checkpoint of another scale?')
    missing = [k for k in expected if k not in state_dict]
    if missing:
        raise ConversionError(f'{len(missing)} keys of {arch}-{scale} missing in the checkpoint, first '
                              f"'{missing[0]}' (reference '{reference_key(missing[0], arch)}')")


def infer_scale(state_dict: Mapping[str, torch.Tensor], arch: str, num_classes: int) -> str:
    """The scale whose model the state dict fits."""
    for scale in SCALES:
        try:
            check_shapes(state_dict, model_shapes(arch, scale, num_classes), arch, scale)
        except ConversionError:
            continue
        return scale
    raise ConversionError(f'the checkpoint fits no {arch} scale {SCALES}; pass --scale to see the '
                          'first mismatched key')


def convert(src: str, dst: Optional[str] = None, arch: Optional[str] = None,
            scale: Optional[str] = None, check: bool = True) -> dict:
    """Convert ``src`` and (when ``dst`` is given) save it.

    Args:
        src (str): Reference checkpoint (state dict or pickled ``.pt``).
        dst (str, optional): Output path for ``torch.save``.
        arch (str, optional): 'yolo11' / 'yolov8'; detected when None.
        scale (str, optional): 'n'..'x'; inferred when None (needs check).
        check (bool): Validate keys and shapes against our model built
            from the config. Defaults to True.

    Returns:
        dict: ``{'state_dict': ..., 'meta': {...}}``.
    """
    ref_sd, info = load_reference_checkpoint(src)
    arch = arch or detect_arch(ref_sd)
    state_dict = convert_state_dict(ref_sd, arch)
    num_classes = num_classes_of(state_dict, arch)
    if check:
        if scale is None:
            scale = infer_scale(state_dict, arch, num_classes)
        elif scale not in SCALES:
            raise ConversionError(f'scale must be one of {SCALES}, got {scale!r}')
        else:
            check_shapes(state_dict, model_shapes(arch, scale, num_classes), arch, scale)
    meta = dict(source=osp.basename(src), converted_by='tools/model_converters/ultralytics_to_mmdet.py',
                arch=arch, scale=scale, num_classes=num_classes,
                source_entry=info.get('source_entry'))
    if scale is not None:
        meta['config'] = osp.relpath(config_path(arch, scale), ROOT)
    if 'version' in info:
        meta['ultralytics_version'] = info['version']
    if 'names' in info:
        meta['dataset_meta'] = dict(classes=info['names'])
    out = dict(state_dict=state_dict, meta=meta)
    if dst is not None:
        tmp = f'{dst}.tmp'
        torch.save(out, tmp)
        os.replace(tmp, dst)
    return out


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('src', help='reference checkpoint: released .pt or a state dict file')
    parser.add_argument('dst', help='converted checkpoint to write')
    parser.add_argument('--arch', choices=ARCHS, default=None, help='default: detected')
    parser.add_argument('--scale', choices=SCALES, default=None, help='default: inferred from shapes')
    parser.add_argument('--no-check', action='store_true',
                        help='skip the key/shape check against our model (no mmdet needed)')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        out = convert(args.src, args.dst, args.arch, args.scale, check=not args.no_check)
    except (ConversionError, FileNotFoundError) as e:
        print(f'error: {e}', file=sys.stderr)
        return 1
    meta = out['meta']
    print(f"{args.src} -> {args.dst}: {meta['arch']}-{meta['scale'] or '?'}, "
          f"{len(out['state_dict'])} tensors, {meta['num_classes']} classes")
    return 0


if __name__ == '__main__':
    sys.exit(main())
