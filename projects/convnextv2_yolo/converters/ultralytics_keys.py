"""Key mapping of the reference's (Ultralytics) YOLO11 / YOLO26 / YOLOv8 checkpoints to our modules.

Reference layer index -> our module; inside a layer the names are identical, e.g.
``model.6.m.0.m.1.cv2.bn.weight`` -> ``backbone.stage3.1.m.0.m.1.cv2.bn.weight``:

=========================  =======  =======
ours                       yolo11   yolov8
                           yolo26
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
``dfl.conv.weight`` -> ``dfl.conv.weight``; YOLO26 (its layers are YOLO11's)
has no DFL weights and its one-to-one branches: ``one2one_cv2.{i}`` ->
``one2one_reg_convs.{i}``, ``one2one_cv3.{i}`` -> ``one2one_cls_convs.{i}``
(our :class:`YOLOE2EHead`).
"""
import re
import warnings
from collections import OrderedDict
from typing import Dict, Mapping, Optional

import torch

from .errors import ConversionError

SCALES = ('n', 's', 'm', 'l', 'x')
# The reference families (``version``, as ``YOLOCSPDarknet(version=...)`` / ``layers.YOLO_VERSIONS``; in
# this project ``arch`` is a ConvNeXt V2 size).
VERSIONS = ('yolo11', 'yolov8', 'yolo26')
ARCHS = VERSIONS  # deprecated name of VERSIONS

# Reference layer index -> our module name. Layers 0-9 (stem, four stages, SPPF) are the same in every
# family; YOLO11 adds C2PSA (10), so its neck and head sit one index later than YOLOv8's.
BACKBONE_LAYERS: Dict[int, str] = {
    0: 'backbone.stem',
    1: 'backbone.stage1.0', 2: 'backbone.stage1.1',
    3: 'backbone.stage2.0', 4: 'backbone.stage2.1',
    5: 'backbone.stage3.0', 6: 'backbone.stage3.1',
    7: 'backbone.stage4.0', 8: 'backbone.stage4.1',
    9: 'backbone.stage4.2',
}
_NECK_HEAD = ('neck.top_down_layers.0', 'neck.top_down_layers.1', 'neck.downsample_layers.0',
              'neck.bottom_up_layers.0', 'neck.downsample_layers.1', 'neck.bottom_up_layers.1', 'bbox_head')
LAYER_MAPS: Dict[str, Dict[int, str]] = {
    'yolo11': {**BACKBONE_LAYERS, 10: 'backbone.stage4.3',
               **dict(zip((13, 16, 17, 19, 20, 22, 23), _NECK_HEAD))},
    'yolov8': {**BACKBONE_LAYERS, **dict(zip((12, 15, 16, 18, 19, 21, 22), _NECK_HEAD))},
}
LAYER_MAPS['yolo26'] = LAYER_MAPS['yolo11']  # yolo26.yaml has YOLO11's layers (other blocks inside)
HEAD_INDEX = {'yolo11': 23, 'yolov8': 22, 'yolo26': 23}
HEAD_RENAMES = {'cv2': 'reg_convs', 'cv3': 'cls_convs', 'dfl': 'dfl'}
# YOLO26's Detect: the one-to-one copies of cv2 / cv3 (its dfl is an Identity, without weights)
E2E_HEAD_RENAMES = {**HEAD_RENAMES, 'one2one_cv2': 'one2one_reg_convs', 'one2one_cv3': 'one2one_cls_convs'}
HEAD_RENAMES_BY_VERSION = {'yolo11': HEAD_RENAMES, 'yolov8': HEAD_RENAMES, 'yolo26': E2E_HEAD_RENAMES}
_KEY_RE = re.compile(r'^model\.(\d+)\.(.+)$')


def detect_version(state_dict: Mapping[str, torch.Tensor]) -> str:
    """'yolo11' when the reference layers include C2PSA (index 10) and a
    Detect layer at index 23, 'yolo26' when that Detect layer also has
    one-to-one branches (``one2one_cv3``), 'yolov8' for Detect at index 22."""
    heads = {int(m.group(1)) for k in state_dict if (m := _KEY_RE.match(k)) and m.group(2).startswith('cv3.')}
    if heads == {23} and any(k.startswith('model.10.m.0.attn.') for k in state_dict):
        if any(k.startswith('model.23.one2one_cv3.') for k in state_dict):
            return 'yolo26'
        return 'yolo11'
    if heads == {22}:
        return 'yolov8'
    raise ConversionError('cannot tell YOLO11 from YOLOv8: expected a Detect layer (cv3.*) at '
                          f'model.23 (yolo11) or model.22 (yolov8), found at {sorted(heads) or "none"}')


detect_arch = detect_version  # deprecated name


def version_keyword(version: Optional[str], arch: Optional[str], owner: str) -> Optional[str]:
    """``version``, or the deprecated keyword ``arch`` (its old name) with a FutureWarning.

    Raises:
        ConversionError: both are given and differ.
    """
    if arch is None:
        return version
    warnings.warn(f"{owner}: the keyword 'arch' is deprecated, use 'version' (the YOLO family)",
                  FutureWarning, stacklevel=3)
    if version is not None and version != arch:
        raise ConversionError(f'{owner}: arch={arch!r} (the old name of version) and version={version!r} differ')
    return arch


def map_key(key: str, version: str) -> str:
    """Our name of a reference key, e.g. ``model.2.cv1.conv.weight`` ->
    ``backbone.stage1.1.cv1.conv.weight``."""
    m = _KEY_RE.match(key)
    if m is None:
        raise ConversionError(f"unexpected key '{key}': reference keys look like 'model.<index>.<name>'")
    index, rest = int(m.group(1)), m.group(2)
    layers = LAYER_MAPS[version]
    if index not in layers:
        raise ConversionError(f"unexpected key '{key}': layer {index} of {version} has no weights")
    if index == HEAD_INDEX[version]:
        first, _, tail = rest.partition('.')
        renames = HEAD_RENAMES_BY_VERSION[version]
        if first not in renames:
            raise ConversionError(f"unexpected key '{key}': Detect sub-module '{first}' is not part of "
                                  f'{version} (expected {sorted(renames)})')
        rest = f'{renames[first]}.{tail}'
    return f'{layers[index]}.{rest}'


def convert_state_dict(state_dict: Mapping[str, torch.Tensor], version: Optional[str] = None, *,
                       arch: Optional[str] = None) -> 'OrderedDict[str, torch.Tensor]':
    """Rename a reference-named state dict to ours (order kept).

    Args:
        state_dict (Mapping[str, Tensor]): Reference names
            (``model.<i>.<...>``).
        version (str, optional): 'yolo11', 'yolov8' or 'yolo26'; detected when None.
        arch (str, optional): Deprecated name of ``version`` (FutureWarning).
    """
    version = version_keyword(version, arch, 'convert_state_dict') or detect_version(state_dict)
    if version not in VERSIONS:
        raise ConversionError(f'version must be one of {VERSIONS}, got {version!r}')
    return OrderedDict((map_key(k, version), v) for k, v in state_dict.items())


def reference_key(key: str, version: str) -> str:
    """Inverse of :func:`map_key` (for messages and tests)."""
    for index, prefix in LAYER_MAPS[version].items():
        if key.startswith(prefix + '.'):
            rest = key[len(prefix) + 1:]
            if index == HEAD_INDEX[version]:
                first, _, tail = rest.partition('.')
                inverse = {v: k for k, v in HEAD_RENAMES_BY_VERSION[version].items()}
                rest = f'{inverse.get(first, first)}.{tail}'
            return f'model.{index}.{rest}'
    raise KeyError(key)


def num_classes_of(state_dict: Mapping[str, torch.Tensor], version: str) -> int:
    """Classes of a converted state dict (rows of the last class conv)."""
    key = 'bbox_head.cls_convs.0.2.weight'
    if key not in state_dict:
        raise ConversionError(f"no '{key}' ('{reference_key(key, version)}') in the checkpoint")
    weight = state_dict[key]
    if weight.dim() != 4:
        raise ConversionError(f"'{reference_key(key, version)}' has shape {tuple(weight.shape)}: expected the "
                              '(classes, channels, 1, 1) weight of a conv')
    return int(weight.shape[0])


def cls_channels_of(state_dict: Mapping[str, torch.Tensor]) -> Optional[int]:
    """Class-branch width ``c3`` of a converted state dict (input channels of level 0's last class
    conv). The reference's rule is ``max(ch[0], min(nc, 100))``, but a model it fine-tuned from a
    checkpoint keeps the checkpoint's width (80 for a COCO YOLO11-n with 5 classes)."""
    weight = state_dict.get('bbox_head.cls_convs.0.2.weight')
    return int(weight.shape[1]) if weight is not None and weight.dim() == 4 else None
