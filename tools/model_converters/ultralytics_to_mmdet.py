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
(with the checkpoint's number of classes and class-branch width, read from
its tensors: a model the reference fine-tuned from a checkpoint keeps that
checkpoint's width, e.g. 80 for a 5-class YOLO11-n fine-tuned from COCO,
where the rule for 5 classes gives 64): a checkpoint of another scale
fails with the first mismatched key and both shapes. Without ``--scale`` the
scale is found by trying n, s, m, l, x.

Weights alone do not fix the computation: a pickled model also records its
module classes and settings, and those are checked before any key mapping:

1. the top-level layer classes must be YOLO11's or YOLOv8's sequence, each
   class of its ``ultralytics.nn.modules.<file>`` (a YOLO12 file, RT-DETR,
   another task, an extra layer, a renamed or forked block: ``unsupported
   architecture: <what was found>``);
2. the reference tree is walked in parallel with our model (by the shared
   child names) comparing classes (activations, C3k vs Bottleneck = ``c3k``,
   containers interchangeable, Detect = our YOLO11Head), hooks / replaced
   ``forward``, the layers' inputs ``f``, the yaml's ``activation`` and a
   whitelist of attributes: conv/pool geometry (kernel_size, stride,
   padding, dilation, padding_mode, output_padding, transposed, ceil_mode,
   return_indices), BatchNorm eps/affine/track_running_stats, Upsample
   scale_factor/mode/align_corners/size/recompute_scale_factor, residual
   ``add``, ``reg_max`` / DFL ``c1``, Detect ``stride``; after the shapes:
   groups, num_heads, head_dim, key_dim, scale, ``c``, Detect ``nc``; and the
   reference-only SPPF ``n`` (3) / ``add`` (False) and Concat ``d`` (1). Only
   attributes present on both sides are compared (BatchNorm momentum and
   ``inplace`` are not: they do not change the converted model's outputs).
   All differences are reported in one ``architecture mismatch at ...``.

A plain state dict has no classes: it is checked by keys and shapes only and
the result says so (``meta['architecture_verified']`` False, a note).

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
import functools
import math
import numbers
import os
import os.path as osp
import pickle
import re
import sys
import types
import zipfile
from collections import OrderedDict
from typing import Any, Dict, List, Mapping, NamedTuple, Optional, Tuple

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
        about itself (``names``, ``version``, ``source_entry``) when present,
        and, when the tensors come from a pickled model (not a plain state
        dict), ``model``: that model's inert stand-in tree, for
        :func:`check_layer_sequence` / :func:`architecture_mismatches`.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ConversionError: Unreadable or unsafe file, or no weights in it.
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
            if _is_state_dict(model):
                sd = model
            else:
                sd, info['model'] = collect_tensors(model), model
            names = vars(model).get('names') if hasattr(model, '__dict__') else None
            if isinstance(names, Mapping):
                info['names'] = [str(names[k]) for k in sorted(names)]
            elif isinstance(names, (list, tuple)):
                info['names'] = [str(n) for n in names]
        info['source_entry'] = entry
        if isinstance(obj.get('version'), str):
            info['version'] = obj['version']
    elif hasattr(obj, '__dict__') and '_modules' in vars(obj):
        sd, info['source_entry'], info['model'] = collect_tensors(obj), 'model', obj
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


def cls_channels_of(state_dict: Mapping[str, torch.Tensor]) -> Optional[int]:
    """Class-branch width ``c3`` of a converted state dict (input channels of level 0's last class
    conv). The reference's rule is ``max(ch[0], min(nc, 100))``, but a model it fine-tuned from a
    checkpoint keeps the checkpoint's width (80 for a COCO YOLO11-n with 5 classes)."""
    weight = state_dict.get('bbox_head.cls_convs.0.2.weight')
    return int(weight.shape[1]) if weight is not None and weight.dim() == 4 else None


# ----------------------------------------------------------------------------
# Architecture of a pickled reference model
# ----------------------------------------------------------------------------
class ArchitectureError(ConversionError):
    """The checkpoint's model is not the architecture of our config: an
    unsupported model, or module classes / settings that differ."""


ARCH_LABELS = {'yolo11': 'YOLO11', 'yolov8': 'YOLOv8'}
DETECTION_MODEL = 'ultralytics.nn.tasks.DetectionModel'
REFERENCE_PACKAGE = 'ultralytics.nn.modules'
# The reference classes of YOLO11 / YOLOv8 and their file in the package
# (``ultralytics.nn.modules.conv.Conv``...). Early 8.0 releases kept all of
# them in one module, ``ultralytics.nn.modules``: accepted as well.
REFERENCE_CLASSES = {
    'Conv': 'conv', 'DWConv': 'conv', 'Concat': 'conv',
    'Bottleneck': 'block', 'C2f': 'block', 'C3k': 'block', 'C3k2': 'block', 'SPPF': 'block',
    'Attention': 'block', 'PSABlock': 'block', 'C2PSA': 'block', 'DFL': 'block',
    'Detect': 'head',
}
TORCH_MODULES = 'torch.nn.modules.'
CONTAINERS = ('torch.nn.modules.container.Sequential', 'torch.nn.modules.container.ModuleList')
# Top-level layers (``model.model``) as the reference's yaml files build them.
LAYER_SEQUENCES: Dict[str, Tuple[str, ...]] = {
    'yolo11': ('Conv', 'Conv', 'C3k2', 'Conv', 'C3k2', 'Conv', 'C3k2', 'Conv', 'C3k2', 'SPPF', 'C2PSA',
               'Upsample', 'Concat', 'C3k2', 'Upsample', 'Concat', 'C3k2', 'Conv', 'Concat', 'C3k2',
               'Conv', 'Concat', 'C3k2', 'Detect'),
    'yolov8': ('Conv', 'Conv', 'C2f', 'Conv', 'C2f', 'Conv', 'C2f', 'Conv', 'C2f', 'SPPF',
               'Upsample', 'Concat', 'C2f', 'Upsample', 'Concat', 'C2f', 'Conv', 'Concat', 'C2f',
               'Conv', 'Concat', 'C2f', 'Detect'),
}
# The layers' inputs (the reference's ``f``, "from") where it is not -1.
LAYER_INPUTS: Dict[str, Dict[int, List[int]]] = {
    'yolo11': {12: [-1, 6], 15: [-1, 4], 18: [-1, 13], 21: [-1, 10], 23: [16, 19, 22]},
    'yolov8': {11: [-1, 6], 14: [-1, 4], 17: [-1, 12], 20: [-1, 9], 22: [15, 18, 21]},
}
UPSAMPLE_MODULE = 'neck.upsample'  # our one Upsample, used for both reference Upsample layers
OUR_CLASS_RENAMES = {'YOLO11Head': 'Detect'}
# Sub-module renames inside a reference class (reference -> ours). Our
# children outside the table (the head's losses) have no reference
# counterpart and are not compared.
CHILD_RENAMES = {'Detect': HEAD_RENAMES}
# Attributes compared where both modules have them (the whitelist). They
# change the computation while names and shapes stay the same.
#   Conv2d / MaxPool2d geometry, BatchNorm2d eps/affine/running stats,
#   Upsample settings, residual flags (Bottleneck / PSABlock ``add``), DFL bins.
STRUCTURE_ATTRS = ('kernel_size', 'stride', 'padding', 'dilation', 'padding_mode', 'output_padding',
                   'transposed', 'ceil_mode', 'return_indices', 'eps', 'affine', 'track_running_stats',
                   'scale_factor', 'mode', 'align_corners', 'size', 'recompute_scale_factor', 'add',
                   'reg_max')
#   Settings that follow the channels (they differ between scales, so they are
#   compared once the shapes fit): conv groups (DWConv), attention heads, the
#   CSP blocks' hidden channels, the number of classes.
SIZE_ATTRS = ('groups', 'num_heads', 'head_dim', 'key_dim', 'scale', 'c')
# Reference attributes that we store under another name: (ours, size-dependent).
ATTR_RENAMES = {
    'Detect': {'stride': ('featmap_strides', False), 'nc': ('num_classes', True)},
    'DFL': {'c1': ('reg_max', False)},
}
# Reference attributes without a counterpart here, and the value that our
# computation corresponds to (newer SPPF: ``n`` poolings, optional residual).
REFERENCE_ONLY_ATTRS = {'SPPF': {'n': 3, 'add': False}, 'Concat': {'d': 1}}
# The model-wide activation of the reference's yaml (absent: SiLU).
_DEFAULT_ACTIVATION = re.compile(r'^((torch\.)?nn\.)?SiLU(\(.*\))?$')
_CLASS_HINTS = {('C3k', 'Bottleneck'): 'a C3k2 built with c3k=True where our config has c3k=False',
                ('Bottleneck', 'C3k'): 'a C3k2 built with c3k=False where our config has c3k=True'}
MAX_REPORTED = 5


class Mismatch(NamedTuple):
    """One difference between the reference model and ours.

    ``sized``: a setting that follows the model's channels/depth (it differs
    between scales, so it is reported after the shape check).
    """

    path: str
    found: str
    expected: str
    sized: bool = False

    def __str__(self) -> str:
        return f'{self.path}: {self.found}, expected {self.expected}'


def pickled_class_name(obj: Any) -> str:
    """'module.Class' of an unpickled stand-in (or of a real object)."""
    if isinstance(obj, InertObject):
        return obj._pickled_name
    return f'{type(obj).__module__}.{type(obj).__qualname__}'


def reference_class_name(short: str) -> str:
    """The reference's full class name of a layer name of
    :data:`LAYER_SEQUENCES`, e.g. 'C3k2' -> 'ultralytics.nn.modules.block.C3k2'."""
    if short == 'Upsample':
        return 'torch.nn.modules.upsampling.Upsample'
    return f'{REFERENCE_PACKAGE}.{REFERENCE_CLASSES[short]}.{short}'


def expected_reference_class(module: torch.nn.Module) -> str:
    """The reference class that one of our modules stands for.

    ``torch.nn`` classes are themselves (Sequential and ModuleList as plain
    containers), our layers carry the reference's class names (YOLO11Head is
    its Detect); anything else has no reference counterpart and is named
    by its own path, so that it never matches.
    """
    if isinstance(module, torch.nn.ModuleList):
        return CONTAINERS[1]
    if isinstance(module, torch.nn.Sequential):
        return CONTAINERS[0]
    cls = type(module)
    if cls.__module__.startswith(TORCH_MODULES):
        return f'{cls.__module__}.{cls.__name__}'
    name = OUR_CLASS_RENAMES.get(cls.__name__, cls.__name__)
    if name in REFERENCE_CLASSES:
        return reference_class_name(name)
    return f'{cls.__module__}.{cls.__qualname__}'


def same_class(found: str, expected: str) -> bool:
    """Whether a pickled class name ``found`` is the ``expected`` class.

    Names and module paths must agree (a ``C3k2x``, or a ``C3k2`` outside
    ``ultralytics.nn.modules.block``, is another class); Sequential and
    ModuleList are interchangeable containers; the single-file
    ``ultralytics.nn.modules`` of old releases counts as each of its files.
    """
    if found == expected or (found in CONTAINERS and expected in CONTAINERS):
        return True
    module, _, name = found.rpartition('.')
    expected_module, _, expected_name = expected.rpartition('.')
    return (name == expected_name and module == REFERENCE_PACKAGE
            and expected_module.startswith(REFERENCE_PACKAGE + '.'))


def _short(name: str) -> str:
    return name.rpartition('.')[2]


def _known_family(name: str) -> bool:
    module = name.rpartition('.')[0]
    return (module.startswith(TORCH_MODULES) or module == REFERENCE_PACKAGE
            or module.startswith(REFERENCE_PACKAGE + '.'))


def _class_mismatch(path: str, found: str, expected: str) -> Mismatch:
    """Short class names where they tell the classes apart (and the found
    one lives in torch.nn / ultralytics.nn.modules), full names otherwise."""
    if _short(found) != _short(expected) and _known_family(found):
        found_label, expected_label = _short(found), _short(expected)
    else:
        found_label, expected_label = found, expected
    hint = _CLASS_HINTS.get((_short(found), _short(expected)))
    return Mismatch(path, found_label, f'{expected_label} ({hint})' if hint else expected_label)


def reference_layers(reference: Any) -> List[Any]:
    """The top-level layers (``model.model``) of a pickled DetectionModel.

    Args:
        reference: The unpickled (stand-in) model of a reference file.

    Returns:
        list: The layer stand-ins, in order.

    Raises:
        ArchitectureError: Not a DetectionModel or no numbered layer list.
    """
    name = pickled_class_name(reference)
    if name != DETECTION_MODEL:
        raise ArchitectureError(f"unsupported architecture: the checkpoint's model is {name}, not "
                                f'{DETECTION_MODEL} (YOLO11 / YOLOv8 detection)')
    container = (vars(reference).get('_modules') or {}).get('model')
    layers = vars(container).get('_modules') if hasattr(container, '__dict__') else None
    if not isinstance(layers, Mapping) or list(layers) != [str(i) for i in range(len(layers))]:
        raise ArchitectureError('unsupported architecture: the DetectionModel has no numbered layer list '
                                "'model.model'")
    return list(layers.values())


def _first_difference(names: List[str], arch: str) -> str:
    """Where a layer-class sequence leaves the one of ``arch``."""
    expected = LAYER_SEQUENCES[arch]
    for i, (found, short) in enumerate(zip(names, expected)):
        if not same_class(found, reference_class_name(short)):
            return f'model.{i} is {_short(found)} where {ARCH_LABELS[arch]} has {short}'
    if len(names) > len(expected):
        return f'model.{len(expected)} ({_short(names[len(expected)])}) follows the last {ARCH_LABELS[arch]} layer'
    return f'it ends after model.{len(names) - 1}, {ARCH_LABELS[arch]} has {len(expected)} layers'


def _common_prefix(names: List[str], arch: str) -> int:
    count = 0
    for found, short in zip(names, LAYER_SEQUENCES[arch]):
        if not same_class(found, reference_class_name(short)):
            break
        count += 1
    return count


def describe_layer_sequence(names: List[str]) -> str:
    """Why a sequence of layer classes is neither YOLO11 nor YOLOv8: the
    layer classes foreign to both (and where), the layer count, or the first
    layer that differs from the closer of the two."""
    known = {reference_class_name(s) for seq in LAYER_SEQUENCES.values() for s in seq}
    foreign: Dict[str, List[int]] = OrderedDict()
    for i, name in enumerate(names):
        if not any(same_class(name, k) for k in known):
            foreign.setdefault(name, []).append(i)
    parts = [f"{_short(name)} ({name}) at {', '.join(f'model.{i}' for i in where)}"
             for name, where in foreign.items()]
    if parts:
        parts[-1] += ': not a YOLO11 or YOLOv8 layer class'
    lengths = {arch: len(seq) for arch, seq in LAYER_SEQUENCES.items()}
    if len(names) not in lengths.values():
        parts.append(f'{len(names)} layers (' + ', '.join(
            f'{ARCH_LABELS[a]} has {n}' for a, n in lengths.items()) + ')')
    if not foreign:
        closest = max(LAYER_SEQUENCES, key=lambda a: (_common_prefix(names, a), len(names) == lengths[a]))
        parts.append(_first_difference(names, closest))
    return '; '.join(parts)


def check_layer_sequence(reference: Any) -> str:
    """The architecture of a pickled reference model, from its layer classes.

    Args:
        reference: The unpickled (stand-in) model of a reference file.

    Returns:
        str: 'yolo11' or 'yolov8'.

    Raises:
        ArchitectureError: ``unsupported architecture: ...`` naming the layer
            classes that are not part of YOLO11 / YOLOv8 and where they are,
            or the layer count, or the first layer out of sequence.
    """
    names = [pickled_class_name(layer) for layer in reference_layers(reference)]
    for arch, sequence in LAYER_SEQUENCES.items():
        if len(names) == len(sequence) and all(
                same_class(n, reference_class_name(s)) for n, s in zip(names, sequence)):
            return arch
    raise ArchitectureError(f'unsupported architecture: {describe_layer_sequence(names)}; the converter '
                            'reads YOLO11 and YOLOv8 detection models only')


def _plain(value: Any) -> Any:
    """Tensors and lists as tuples of numbers, for comparisons and messages."""
    if isinstance(value, torch.Tensor):
        return tuple(value.flatten().tolist()) if value.dim() else value.item()
    if isinstance(value, (list, tuple)):
        return tuple(_plain(v) for v in value)
    return value


def same_value(a: Any, b: Any) -> bool:
    """Equality of two attribute values: numbers with a relative tolerance
    of 1e-6 (``2`` equals ``2.0``), sequences and tensors element-wise, bools
    only with bools."""
    a, b = _plain(a), _plain(b)
    if isinstance(a, tuple) or isinstance(b, tuple):
        return (isinstance(a, tuple) and isinstance(b, tuple) and len(a) == len(b)
                and all(map(same_value, a, b)))
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, numbers.Real) and isinstance(b, numbers.Real):
        return math.isclose(a, b, rel_tol=1e-6)
    try:
        return bool(a == b)
    except Exception:  # noqa: BLE001  (a stand-in or other odd value)
        return False


def _show(value: Any) -> str:
    """An attribute value for messages (floats to 6 significant digits)."""
    value = _plain(value)
    if isinstance(value, float):
        return f'{value:.6g}'
    if isinstance(value, tuple):
        return '(' + ', '.join(map(_show, value)) + (',)' if len(value) == 1 else ')')
    return repr(value)


def _attribute_pairs(ref_class: str) -> Dict[str, Tuple[str, bool]]:
    """Whitelisted reference attribute -> (our attribute, size-dependent)."""
    pairs = {name: (name, False) for name in STRUCTURE_ATTRS}
    pairs.update({name: (name, True) for name in SIZE_ATTRS})
    pairs.update(ATTR_RENAMES.get(ref_class, {}))
    return pairs


def attribute_mismatches(ref: Any, ours: Optional[torch.nn.Module], path: str,
                         ref_class: str) -> List[Mismatch]:
    """Whitelisted attributes of one module that differ from ours.

    Args:
        ref: The reference module (stand-in).
        ours (nn.Module, optional): Our module; None for reference layers
            that we have no module for (Concat).
        path (str): The reference module's path, for messages.
        ref_class (str): The reference class's short name.

    Returns:
        list[Mismatch]: ``<path>.<attribute>: found, expected ours``. Only
        attributes that both sides have are compared, plus
        :data:`REFERENCE_ONLY_ATTRS` against the value we compute with.
    """
    ref_attrs, our_attrs = vars(ref), vars(ours) if ours is not None else {}
    out = []
    for ref_attr, (our_attr, sized) in _attribute_pairs(ref_class).items():
        if ref_attr in ref_attrs and our_attr in our_attrs and not same_value(
                ref_attrs[ref_attr], our_attrs[our_attr]):
            out.append(Mismatch(f'{path}.{ref_attr}', _show(ref_attrs[ref_attr]),
                                _show(our_attrs[our_attr]), sized))
    for attr, value in REFERENCE_ONLY_ATTRS.get(ref_class, {}).items():
        expected = our_attrs.get(attr, value)
        if attr in ref_attrs and not same_value(ref_attrs[attr], expected):
            out.append(Mismatch(f'{path}.{attr}', _show(ref_attrs[attr]), _show(expected)))
    return out


def hook_mismatches(ref: Any, path: str) -> List[Mismatch]:
    """Code attached to a reference module instance: forward (pre-)hooks
    or a replaced ``forward`` (e.g. a fused Conv's ``forward_fuse``)."""
    attrs, out = vars(ref), []
    for kind in ('_forward_pre_hooks', '_forward_hooks'):
        if attrs.get(kind):
            out.append(Mismatch(f'{path}.{kind}', f'{len(attrs[kind])} registered', 'none'))
    if 'forward' in attrs:
        replaced = attrs['forward']
        label = getattr(replaced, '_pickled_name', type(replaced).__name__)
        out.append(Mismatch(f'{path}.forward', f'replaced by {label}', "the class's own forward"))
    return out


def _children(module: Any) -> 'OrderedDict[str, Any]':
    return OrderedDict((k, v) for k, v in (vars(module).get('_modules') or {}).items() if v is not None)


def children_mismatches(ref: Any, ours: torch.nn.Module, path: str, ref_class: str) -> List[Mismatch]:
    """Compare the sub-modules of two modules of the same class, by name
    (recursively, see :func:`module_mismatches`). A numbered child present
    on one side only is a depth difference (size-dependent)."""
    renames = CHILD_RENAMES.get(ref_class)
    our_children = _children(ours)
    if renames is not None:
        our_children = OrderedDict((k, v) for k, v in our_children.items() if k in renames.values())
    inverse = {v: k for k, v in (renames or {}).items()}
    out: List[Mismatch] = []
    for name, child in _children(ref).items():
        our_name = (renames or {}).get(name, name)
        if our_name not in our_children:
            out.append(Mismatch(f'{path}.{name}', _short(pickled_class_name(child)), 'no such sub-module',
                                name.isdigit()))
        else:
            out.extend(module_mismatches(child, our_children[our_name], f'{path}.{name}'))
    ref_children = _children(ref)
    for our_name, child in our_children.items():
        name = inverse.get(our_name, our_name)
        if name not in ref_children:
            out.append(Mismatch(f'{path}.{name}', 'missing', _short(expected_reference_class(child)),
                                name.isdigit()))
    return out


def module_mismatches(ref: Any, ours: torch.nn.Module, path: str) -> List[Mismatch]:
    """Differences between a reference module (tree) and ours.

    Compares the classes (a different class is reported once, without
    descending into it), attached hooks, the whitelisted attributes and the
    sub-modules, recursively.

    Args:
        ref: The reference module (stand-in).
        ours (nn.Module): The module of ours it maps to.
        path (str): The reference module's path (``model.4.m.0``).

    Returns:
        list[Mismatch]: Every difference found, in module order.
    """
    found, expected = pickled_class_name(ref), expected_reference_class(ours)
    if not same_class(found, expected):
        return [_class_mismatch(path, found, expected)]
    ref_class = _short(expected)
    return (hook_mismatches(ref, path) + attribute_mismatches(ref, ours, path, ref_class)
            + children_mismatches(ref, ours, path, ref_class))


def yaml_mismatches(yaml: Any) -> List[Mismatch]:
    """A model-wide activation other than SiLU in the reference's yaml (the
    file's build recipe; it is optional, and absent means SiLU)."""
    activation = yaml.get('activation') if isinstance(yaml, Mapping) else None
    if activation is None or _DEFAULT_ACTIVATION.match(str(activation).replace(' ', '')):
        return []
    return [Mismatch('yaml.activation', str(activation), 'nn.SiLU() (or no entry)')]


def our_layer_modules(arch: str) -> Dict[int, Optional[str]]:
    """Reference layer index -> our module (None for Concat layers)."""
    out: Dict[int, Optional[str]] = {}
    for index, short in enumerate(LAYER_SEQUENCES[arch]):
        out[index] = {'Upsample': UPSAMPLE_MODULE, 'Concat': None}.get(short, LAYER_MAPS[arch].get(index))
    return out


def input_mismatches(layer: Any, index: int, arch: str) -> List[Mismatch]:
    """The layer's inputs (``f``, when the file records it) against the
    reference yaml's wiring, which our neck implements."""
    if 'f' not in vars(layer):
        return []
    expected = LAYER_INPUTS[arch].get(index, -1)
    if same_value(vars(layer)['f'], expected):
        return []
    return [Mismatch(f'model.{index}.f', _show(vars(layer)['f']), _show(expected))]


def architecture_mismatches(reference: Any, model: torch.nn.Module, arch: str) -> List[Mismatch]:
    """Every difference between a pickled reference model and our model.

    Walks the reference's layers in parallel with our modules (layer index
    -> module by :data:`LAYER_MAPS`; inside a layer by the shared child
    names) and compares module classes, activations and block types (as
    classes), attached hooks, the layer wiring (``f``), the whitelisted
    attributes (:data:`STRUCTURE_ATTRS`, :data:`SIZE_ATTRS`,
    :data:`ATTR_RENAMES`, :data:`REFERENCE_ONLY_ATTRS`) and the yaml's
    activation. Tensor shapes are left to :func:`check_shapes`.

    Args:
        reference: The unpickled (stand-in) DetectionModel.
        model (nn.Module): Our detector built from the config (any device).
        arch (str): 'yolo11' or 'yolov8'.

    Returns:
        list[Mismatch]: Empty when the architectures agree.

    Raises:
        ArchitectureError: The reference's layers are not those of ``arch``.
    """
    found = check_layer_sequence(reference)
    if found != arch:
        raise ArchitectureError(f'the checkpoint holds a {ARCH_LABELS[found]} model, not {arch}')
    out = yaml_mismatches(vars(reference).get('yaml'))
    layers = reference_layers(reference)
    for index, our_name in our_layer_modules(arch).items():
        layer, path = layers[index], f'model.{index}'
        out += input_mismatches(layer, index, arch)
        if our_name is None:  # Concat: no module of ours, only its settings
            out += (hook_mismatches(layer, path)
                    + attribute_mismatches(layer, None, path, _short(pickled_class_name(layer)))
                    + [Mismatch(f'{path}.{name}', _short(pickled_class_name(child)), 'no such sub-module')
                       for name, child in _children(layer).items()])
        else:
            out += module_mismatches(layer, model.get_submodule(our_name), path)
    return out


def architecture_error(mismatches: List[Mismatch], arch: str, scale: str) -> ArchitectureError:
    """One error for all the mismatches (the first :data:`MAX_REPORTED`
    shown, with the count)."""
    shown = '; '.join(map(str, mismatches[:MAX_REPORTED]))
    if len(mismatches) == 1:
        where = shown
    else:
        more = len(mismatches) - MAX_REPORTED
        where = f'{len(mismatches)} places: {shown}' + (f'; and {more} more' if more > 0 else '')
    cfg = osp.relpath(config_path(arch, scale), ROOT)
    return ArchitectureError(f'architecture mismatch at {where} (our {cfg}): the converted weights would '
                             "not reproduce the checkpoint's outputs")


# ----------------------------------------------------------------------------
# Checking against our model
# ----------------------------------------------------------------------------
def config_path(arch: str, scale: str) -> str:
    """Our config of an architecture and scale (absolute path)."""
    return osp.join(ROOT, 'configs', arch, f'{arch}_{scale}_8xb16-500e_coco.py')


@functools.lru_cache(maxsize=16)
def build_model(arch: str, scale: str, num_classes: int = 80, cls_channels: Optional[int] = None) -> torch.nn.Module:
    """Our detector for a scale, built from its config on the meta device
    (no memory, no init; shapes, classes and settings only). Cached: one
    build serves the architecture and the shape checks. Do not modify it.

    Args:
        arch (str): 'yolo11' or 'yolov8'.
        scale (str): 'n', 's', 'm', 'l' or 'x'.
        num_classes (int): Classes of the head. Defaults to 80.
        cls_channels (int, optional): Class-branch width of the head; None: the reference's rule.

    Returns:
        nn.Module: The detector (meta tensors).
    """
    import importlib

    from mmengine.config import Config
    try:
        importlib.import_module('convnextv2_yolo')  # registers the modules
    except ImportError:  # source checkout, not installed
        sys.path.insert(0, osp.join(ROOT, 'projects'))
        importlib.import_module('convnextv2_yolo')
    from mmdet.registry import MODELS
    from mmengine.registry import init_default_scope

    cfg = Config.fromfile(config_path(arch, scale))
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    cfg.model.bbox_head.num_classes = num_classes
    if cls_channels is not None:
        cfg.model.bbox_head.cls_channels = cls_channels
    with torch.device('meta'):
        return MODELS.build(cfg.model)


def model_shapes(arch: str, scale: str, num_classes: int = 80,
                 cls_channels: Optional[int] = None) -> 'OrderedDict[str, torch.Size]':
    """State-dict shapes of our model for a scale (built on the meta device)."""
    return OrderedDict((k, v.shape) for k, v in
                       build_model(arch, scale, num_classes, cls_channels).state_dict().items())


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


def check_against_config(state_dict: Mapping[str, torch.Tensor], reference: Any, arch: str, scale: str,
                         num_classes: int, cls_channels: Optional[int] = None) -> None:
    """Check a converted state dict (and, when known, the reference model it
    came from) against our model of ``arch``-``scale``.

    Order: differences of architecture (classes, activations, block types,
    settings that do not follow the size), then keys and shapes, then the
    size-dependent settings (groups, attention heads...): a checkpoint of
    another scale fails on its shapes, one of another architecture on its
    architecture even where the shapes differ too.

    Args:
        state_dict (Mapping[str, Tensor]): Our names (converted).
        reference: The pickled reference model (stand-in), or None for a
            plain state dict (then only keys and shapes are checked).
        arch (str): 'yolo11' or 'yolov8'.
        scale (str): 'n'..'x'.
        num_classes (int): Classes of the checkpoint.
        cls_channels (int, optional): Its class-branch width (None: the reference's rule).

    Raises:
        ArchitectureError: Architecture differences (all, in one message).
        ConversionError: Key or shape mismatch.
    """
    model = build_model(arch, scale, num_classes, cls_channels)
    mismatches = architecture_mismatches(reference, model, arch) if reference is not None else []
    structural = [m for m in mismatches if not m.sized]
    if structural:
        raise architecture_error(structural, arch, scale)
    check_shapes(state_dict, model_shapes(arch, scale, num_classes, cls_channels), arch, scale)
    if mismatches:
        raise architecture_error(mismatches, arch, scale)


def _fitting_keys(state_dict: Mapping[str, torch.Tensor], shapes: Mapping[str, torch.Size]) -> int:
    return sum(k in shapes and tuple(v.shape) == tuple(shapes[k]) for k, v in state_dict.items())


def find_scale(state_dict: Mapping[str, torch.Tensor], reference: Any, arch: str, num_classes: int,
               cls_channels: Optional[int] = None) -> str:
    """The scale whose model the checkpoint fits (architecture and shapes).

    Args:
        state_dict (Mapping[str, Tensor]): Our names (converted).
        reference: The pickled reference model (stand-in) or None.
        arch (str): 'yolo11' or 'yolov8'.
        num_classes (int): Classes of the checkpoint.
        cls_channels (int, optional): Its class-branch width (None: the reference's rule).

    Returns:
        str: The first of n, s, m, l, x that fits.

    Raises:
        ArchitectureError: At the scale whose shapes fit best, the
            architecture differs (reported before any shape problem).
        ConversionError: No scale fits; names the closest one's problem.
    """
    errors = {}
    for scale in SCALES:
        try:
            check_against_config(state_dict, reference, arch, scale, num_classes, cls_channels)
        except ConversionError as e:
            errors[scale] = e
            continue
        return scale
    closest = max(SCALES, key=lambda s: _fitting_keys(state_dict, model_shapes(arch, s, num_classes, cls_channels)))
    if isinstance(errors[closest], ArchitectureError):
        raise errors[closest]
    raise ConversionError(f'the checkpoint fits no {arch} scale {SCALES}; closest {arch}-{closest}: '
                          f'{errors[closest]}')


def infer_scale(state_dict: Mapping[str, torch.Tensor], arch: str, num_classes: int) -> str:
    """The scale whose model a state dict fits by keys and shapes."""
    return find_scale(state_dict, None, arch, num_classes, cls_channels_of(state_dict))


def _other_scale_hint(state_dict: Mapping[str, torch.Tensor], reference: Any, arch: str, scale: str,
                      num_classes: int, cls_channels: Optional[int] = None) -> str:
    """'; it fits yolo11-n' when another scale fits the checkpoint entirely."""
    for other in SCALES:
        if other == scale:
            continue
        try:
            check_against_config(state_dict, reference, arch, other, num_classes, cls_channels)
        except ConversionError:
            continue
        return f'; the checkpoint fits {arch}-{other}: pass --scale {other} or leave --scale out'
    return ''


def _architecture_note(reference: Any, check: bool) -> Optional[str]:
    """Why the architecture was not verified (None when it was)."""
    if reference is None:
        return ('the source is a plain state dict: it carries no module classes, so the architecture '
                '(activations, block types, attention settings) could not be verified'
                + ('; keys and shapes were checked' if check else ' (nor keys and shapes: --no-check)'))
    if not check:
        return ('--no-check: only the layer sequence was checked, not the modules and settings; the '
                "converted weights may not reproduce the checkpoint's outputs")
    return None


def resolve_arch(reference: Any, ref_sd: Mapping[str, torch.Tensor], arch: Optional[str]) -> str:
    """The checkpoint's architecture: from the pickled model's layer classes
    when there is one (refusing unsupported models), else from the keys.

    Raises:
        ArchitectureError: Unsupported model, or not the ``arch`` asked for.
        ConversionError: Keys of neither architecture.
    """
    if arch is not None and arch not in ARCHS:
        raise ConversionError(f'arch must be one of {ARCHS}, got {arch!r}')
    if reference is None:
        return arch or detect_arch(ref_sd)
    found = check_layer_sequence(reference)
    if arch is not None and arch != found:
        raise ArchitectureError(f'the checkpoint holds a {ARCH_LABELS[found]} model (its layer classes), '
                                f'not {arch} as asked')
    return found


def convert(src: str, dst: Optional[str] = None, arch: Optional[str] = None,
            scale: Optional[str] = None, check: bool = True) -> dict:
    """Convert ``src`` and (when ``dst`` is given) save it.

    For a pickled model, its layer classes are checked first (YOLO11 or
    YOLOv8, else ``unsupported architecture``); with ``check``, its modules
    are then compared with our model's (see :func:`architecture_mismatches`)
    before keys and shapes. A plain state dict is checked by keys and shapes
    only (``meta['architecture_verified']`` is False, with a note).

    Args:
        src (str): Reference checkpoint (state dict or pickled ``.pt``).
        dst (str, optional): Output path for ``torch.save``.
        arch (str, optional): 'yolo11' / 'yolov8'; detected when None.
        scale (str, optional): 'n'..'x'; inferred when None (needs check).
        check (bool): Validate the architecture, keys and shapes against
            our model built from the config. Defaults to True.

    Returns:
        dict: ``{'state_dict': ..., 'meta': {...}}``; ``meta`` holds ``arch``, ``scale``,
        ``num_classes``, ``cls_channels`` (the class-branch width, from the tensors: a model the
        reference fine-tuned from a checkpoint keeps that checkpoint's), ``cfg_options`` (the head
        settings that build our config to fit), ``dataset_meta.classes`` (the ``.pt``'s names).

    Raises:
        FileNotFoundError: ``src`` does not exist.
        ArchitectureError: Unsupported architecture or mismatching modules.
        ConversionError: Unreadable file, keys or shapes that do not fit.
    """
    ref_sd, info = load_reference_checkpoint(src)
    reference = info.get('model')
    arch = resolve_arch(reference, ref_sd, arch)
    state_dict = convert_state_dict(ref_sd, arch)
    num_classes = num_classes_of(state_dict, arch)
    # the width is the checkpoint's: the rule's for its nc, or another for a model fine-tuned from a checkpoint
    cls_channels = cls_channels_of(state_dict)
    if check:
        if scale is None:
            scale = find_scale(state_dict, reference, arch, num_classes, cls_channels)
        elif scale not in SCALES:
            raise ConversionError(f'scale must be one of {SCALES}, got {scale!r}')
        else:
            try:
                check_against_config(state_dict, reference, arch, scale, num_classes, cls_channels)
            except ArchitectureError as e:
                hint = _other_scale_hint(state_dict, reference, arch, scale, num_classes, cls_channels)
                raise ArchitectureError(f'{e}{hint}') from None
    meta = dict(source=osp.basename(src), converted_by='tools/model_converters/ultralytics_to_mmdet.py',
                arch=arch, scale=scale, num_classes=num_classes, cls_channels=cls_channels,
                source_entry=info.get('source_entry'),
                architecture_verified=check and reference is not None)
    note = _architecture_note(reference, check)
    if note is not None:
        meta['architecture_note'] = note
    if scale is not None:
        meta['config'] = osp.relpath(config_path(arch, scale), ROOT)
    if 'version' in info:
        meta['ultralytics_version'] = info['version']
    if 'names' in info:
        meta['dataset_meta'] = dict(classes=info['names'])
    # what builds our config to fit (YOLORunner reads the width from the tensors by itself)
    meta['cfg_options'] = {'model.bbox_head.num_classes': num_classes, 'model.bbox_head.cls_channels': cls_channels}
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
                        help='skip the comparison with our model (module classes and settings, keys, '
                        'shapes; no mmdet needed): the result may not reproduce the checkpoint')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    """Command line: convert, print a summary (and a note on stderr when the
    architecture could not be verified); exit code 1 with ``error: ...`` on
    stderr when the checkpoint is refused."""
    args = parse_args(argv)
    try:
        out = convert(args.src, args.dst, args.arch, args.scale, check=not args.no_check)
    except (ConversionError, FileNotFoundError) as e:
        print(f'error: {e}', file=sys.stderr)
        return 1
    meta = out['meta']
    print(f"{args.src} -> {args.dst}: {meta['arch']}-{meta['scale'] or '?'}, "
          f"{len(out['state_dict'])} tensors, {meta['num_classes']} classes, class-branch width "
          f"{meta['cls_channels']}")
    if 'architecture_note' in meta:
        print(f"note: architecture not verified: {meta['architecture_note']}", file=sys.stderr)
    return 0


if __name__ == '__main__':
    sys.exit(main())
