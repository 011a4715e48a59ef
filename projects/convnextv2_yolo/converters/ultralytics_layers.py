"""Classes and layer sequence of a pickled reference (Ultralytics) model.

The top-level layer classes must be YOLO11's (YOLO26's are the same; its Detect
layer has one-to-one branches) or YOLOv8's sequence, each class
of its ``ultralytics.nn.modules.<file>`` (a YOLO12 file, RT-DETR, another
task, an extra layer, a renamed or forked block: ``unsupported architecture:
<what was found>``). Also the tables the module-tree comparison
(:mod:`.ultralytics_architecture`) works from.
"""
import re
from collections import OrderedDict
from typing import Any, Dict, List, Mapping, NamedTuple, Tuple

import torch

from .errors import ArchitectureError
from .restricted_unpickler import InertObject
from .ultralytics_keys import E2E_HEAD_RENAMES

VERSION_LABELS = {'yolo11': 'YOLO11', 'yolov8': 'YOLOv8', 'yolo26': 'YOLO26'}
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
# Families whose layer classes and wiring are another's (yolo26.yaml: YOLO11's layers, other
# settings inside; told apart by the Detect layer's one-to-one branches, see check_layer_sequence).
SAME_LAYERS = {'yolo26': 'yolo11'}
E2E_VERSIONS = {'yolo11': 'yolo26'}  # a Detect with one2one_cv2 / one2one_cv3 turns the first into the second
UPSAMPLE_MODULE = 'neck.upsample'  # our one Upsample, used for both reference Upsample layers
OUR_CLASS_RENAMES = {'YOLOHead': 'Detect', 'YOLO11Head': 'Detect', 'YOLOE2EHead': 'Detect'}
# Sub-module renames inside a reference class (reference -> ours). Our
# children outside the table (the head's losses) have no reference
# counterpart and are not compared. The Detect table includes YOLO26's
# one-to-one branches (absent on both sides for YOLO11 / YOLOv8).
CHILD_RENAMES = {'Detect': E2E_HEAD_RENAMES}
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
# Reference attributes, and the value that our computation corresponds to when our
# module lacks them (SPPF ``n`` poolings: ours has it; its residual ``add`` is a
# structure attribute).
REFERENCE_ONLY_ATTRS = {'SPPF': {'n': 3}, 'Concat': {'d': 1}}
# The model-wide activation of the reference's yaml (absent: SiLU).
DEFAULT_ACTIVATION = re.compile(r'^((torch\.)?nn\.)?SiLU(\(.*\))?$')
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
    containers), our layers carry the reference's class names (YOLOHead is
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


def short_class_name(name: str) -> str:
    """'Class' of 'package.module.Class'."""
    return name.rpartition('.')[2]


def _known_family(name: str) -> bool:
    module = name.rpartition('.')[0]
    return (module.startswith(TORCH_MODULES) or module == REFERENCE_PACKAGE
            or module.startswith(REFERENCE_PACKAGE + '.'))


def class_mismatch(path: str, found: str, expected: str) -> Mismatch:
    """Short class names where they tell the classes apart (and the found
    one lives in torch.nn / ultralytics.nn.modules), full names otherwise."""
    if short_class_name(found) != short_class_name(expected) and _known_family(found):
        found_label, expected_label = short_class_name(found), short_class_name(expected)
    else:
        found_label, expected_label = found, expected
    hint = _CLASS_HINTS.get((short_class_name(found), short_class_name(expected)))
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


def _first_difference(names: List[str], version: str) -> str:
    """Where a layer-class sequence leaves the one of ``version``."""
    expected = LAYER_SEQUENCES[version]
    for i, (found, short) in enumerate(zip(names, expected)):
        if not same_class(found, reference_class_name(short)):
            return f'model.{i} is {short_class_name(found)} where {VERSION_LABELS[version]} has {short}'
    if len(names) > len(expected):
        extra = short_class_name(names[len(expected)])
        return f'model.{len(expected)} ({extra}) follows the last {VERSION_LABELS[version]} layer'
    return f'it ends after model.{len(names) - 1}, {VERSION_LABELS[version]} has {len(expected)} layers'


def _common_prefix(names: List[str], version: str) -> int:
    count = 0
    for found, short in zip(names, LAYER_SEQUENCES[version]):
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
    parts = [f"{short_class_name(name)} ({name}) at {', '.join(f'model.{i}' for i in where)}"
             for name, where in foreign.items()]
    if parts:
        parts[-1] += ': not a YOLO11 or YOLOv8 layer class'
    lengths = {version: len(seq) for version, seq in LAYER_SEQUENCES.items()}
    if len(names) not in lengths.values():
        parts.append(f'{len(names)} layers (' + ', '.join(
            f'{VERSION_LABELS[a]} has {n}' for a, n in lengths.items()) + ')')
    if not foreign:
        closest = max(LAYER_SEQUENCES, key=lambda a: (_common_prefix(names, a), len(names) == lengths[a]))
        parts.append(_first_difference(names, closest))
    return '; '.join(parts)


def _has_one2one(layer: Any) -> bool:
    """Whether a (Detect) layer stand-in has the one-to-one branches of an end-to-end head."""
    children = vars(layer).get('_modules') if hasattr(layer, '__dict__') else None
    return isinstance(children, Mapping) and any(
        children.get(name) is not None for name in ('one2one_cv2', 'one2one_cv3'))


def check_layer_sequence(reference: Any) -> str:
    """The version (YOLO family) of a pickled reference model, from its layer classes.

    Args:
        reference: The unpickled (stand-in) model of a reference file.

    Returns:
        str: 'yolo11', 'yolov8', or 'yolo26' (YOLO11's layer classes with a
        Detect layer that has one-to-one branches, ``one2one_cv2`` /
        ``one2one_cv3``, as ``yolo26.yaml`` builds it).

    Raises:
        ArchitectureError: ``unsupported architecture: ...`` naming the layer
            classes that are not part of YOLO11 / YOLO26 / YOLOv8 and where
            they are, or the layer count, or the first layer out of sequence.
    """
    layers = reference_layers(reference)
    names = [pickled_class_name(layer) for layer in layers]
    for version, sequence in LAYER_SEQUENCES.items():
        if len(names) == len(sequence) and all(
                same_class(n, reference_class_name(s)) for n, s in zip(names, sequence)):
            if version in E2E_VERSIONS and _has_one2one(layers[-1]):
                return E2E_VERSIONS[version]
            return version
    raise ArchitectureError(f'unsupported architecture: {describe_layer_sequence(names)}; the converter '
                            'reads YOLO11, YOLO26 and YOLOv8 detection models only')


def layer_sequence(version: str) -> Tuple[str, ...]:
    """The top-level layer classes of ``version`` (YOLO26's are YOLO11's)."""
    return LAYER_SEQUENCES[SAME_LAYERS.get(version, version)]


def layer_inputs(version: str) -> Dict[int, List[int]]:
    """The layers' inputs ``f`` of ``version`` where not -1 (YOLO26's are YOLO11's)."""
    return LAYER_INPUTS[SAME_LAYERS.get(version, version)]
