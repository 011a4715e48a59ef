"""The module tree of a pickled reference (Ultralytics) model compared with ours.

Weights alone do not fix the computation: a pickled model also records its
module classes and settings, and those are checked before any key mapping:

1. the top-level layer classes must be YOLO11's (YOLO26: the same, with a
   Detect layer that has one-to-one branches) or YOLOv8's sequence, each
   class of its ``ultralytics.nn.modules.<file>`` (a YOLO12 file, RT-DETR,
   another task, an extra layer, a renamed or forked block: ``unsupported
   architecture: <what was found>``);
2. the reference tree is walked in parallel with our model (by the shared
   child names) comparing classes (activations, C3k vs Bottleneck = ``c3k``,
   containers interchangeable, Detect = our YOLOHead / YOLOE2EHead; YOLO26's
   SPPF cv1 without activation and C3k2 attention blocks are classes too),
   hooks / replaced
   ``forward``, the layers' inputs ``f``, the yaml's ``activation`` and a
   whitelist of attributes: conv/pool geometry (kernel_size, stride,
   padding, dilation, padding_mode, output_padding, transposed, ceil_mode,
   return_indices), BatchNorm eps/affine/track_running_stats, Upsample
   scale_factor/mode/align_corners/size/recompute_scale_factor, residual
   ``add`` (Bottleneck / PSABlock / SPPF), ``reg_max`` / DFL ``c1``, Detect
   ``stride``; after the shapes: groups, num_heads, head_dim, key_dim, scale,
   ``c``, Detect ``nc``; and SPPF ``n`` (ours, 3 where absent) and the
   reference-only Concat ``d`` (1). Only
   attributes present on both sides are compared (BatchNorm momentum and
   ``inplace`` are not: they do not change the converted model's outputs).
   All differences are reported in one ``architecture mismatch at ...``.
"""
import math
import numbers
from collections import OrderedDict
from typing import Any, Dict, List, Mapping, Optional, Tuple

import torch

from .errors import ArchitectureError
from .ultralytics_keys import LAYER_MAPS
from .ultralytics_layers import (ATTR_RENAMES, CHILD_RENAMES, DEFAULT_ACTIVATION, REFERENCE_ONLY_ATTRS, SIZE_ATTRS,
                                 STRUCTURE_ATTRS, UPSAMPLE_MODULE, VERSION_LABELS, Mismatch, check_layer_sequence,
                                 class_mismatch, expected_reference_class, layer_inputs, layer_sequence,
                                 pickled_class_name, reference_layers, same_class, short_class_name)


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
            out.append(Mismatch(f'{path}.{name}', short_class_name(pickled_class_name(child)), 'no such sub-module',
                                name.isdigit()))
        else:
            out.extend(module_mismatches(child, our_children[our_name], f'{path}.{name}'))
    ref_children = _children(ref)
    for our_name, child in our_children.items():
        name = inverse.get(our_name, our_name)
        if name not in ref_children:
            out.append(Mismatch(f'{path}.{name}', 'missing', short_class_name(expected_reference_class(child)),
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
        return [class_mismatch(path, found, expected)]
    ref_class = short_class_name(expected)
    return (hook_mismatches(ref, path) + attribute_mismatches(ref, ours, path, ref_class)
            + children_mismatches(ref, ours, path, ref_class))


def yaml_mismatches(yaml: Any) -> List[Mismatch]:
    """A model-wide activation other than SiLU in the reference's yaml (the
    file's build recipe; it is optional, and absent means SiLU)."""
    activation = yaml.get('activation') if isinstance(yaml, Mapping) else None
    if activation is None or DEFAULT_ACTIVATION.match(str(activation).replace(' ', '')):
        return []
    return [Mismatch('yaml.activation', str(activation), 'nn.SiLU() (or no entry)')]


def our_layer_modules(version: str) -> Dict[int, Optional[str]]:
    """Reference layer index -> our module (None for Concat layers)."""
    out: Dict[int, Optional[str]] = {}
    for index, short in enumerate(layer_sequence(version)):
        out[index] = {'Upsample': UPSAMPLE_MODULE, 'Concat': None}.get(short, LAYER_MAPS[version].get(index))
    return out


def input_mismatches(layer: Any, index: int, version: str) -> List[Mismatch]:
    """The layer's inputs (``f``, when the file records it) against the
    reference yaml's wiring, which our neck implements."""
    if 'f' not in vars(layer):
        return []
    expected = layer_inputs(version).get(index, -1)
    if same_value(vars(layer)['f'], expected):
        return []
    return [Mismatch(f'model.{index}.f', _show(vars(layer)['f']), _show(expected))]


def architecture_mismatches(reference: Any, model: torch.nn.Module, version: str) -> List[Mismatch]:
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
        version (str): 'yolo11', 'yolov8' or 'yolo26'.

    Returns:
        list[Mismatch]: Empty when the architectures agree.

    Raises:
        ArchitectureError: The reference's layers are not those of ``version``.
    """
    found = check_layer_sequence(reference)
    if found != version:
        raise ArchitectureError(f'the checkpoint holds a {VERSION_LABELS[found]} model, not {version}')
    out = yaml_mismatches(vars(reference).get('yaml'))
    layers = reference_layers(reference)
    for index, our_name in our_layer_modules(version).items():
        layer, path = layers[index], f'model.{index}'
        out += input_mismatches(layer, index, version)
        if our_name is None:  # Concat: no module of ours, only its settings
            out += (hook_mismatches(layer, path)
                    + attribute_mismatches(layer, None, path, short_class_name(pickled_class_name(layer)))
                    + [Mismatch(f'{path}.{name}', short_class_name(pickled_class_name(child)), 'no such sub-module')
                       for name, child in _children(layer).items()])
        else:
            out += module_mismatches(layer, model.get_submodule(our_name), path)
    return out
