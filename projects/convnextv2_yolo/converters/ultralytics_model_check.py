"""Checking a converted checkpoint against our model built from its config.

The converted keys are checked against our model built from
``configs/{version}/{version}_{scale}_8xb16-500e_coco.py`` (with the checkpoint's
number of classes and class-branch width, read from its tensors): a
checkpoint of another scale fails with the first mismatched key and both
shapes. :func:`find_scale` finds the scale by trying n, s, m, l, x.
"""
import functools
import os.path as osp
from collections import OrderedDict
from typing import Any, List, Mapping, Optional

import torch

from ..utils.paths import repo_root
from .errors import ArchitectureError, ConversionError
from .ultralytics_architecture import architecture_mismatches
from .ultralytics_keys import SCALES, cls_channels_of, reference_key
from .ultralytics_layers import MAX_REPORTED, Mismatch


def architecture_error(mismatches: List[Mismatch], version: str, scale: str) -> ArchitectureError:
    """One error for all the mismatches (the first :data:`MAX_REPORTED`
    shown, with the count)."""
    shown = '; '.join(map(str, mismatches[:MAX_REPORTED]))
    if len(mismatches) == 1:
        where = shown
    else:
        more = len(mismatches) - MAX_REPORTED
        where = f'{len(mismatches)} places: {shown}' + (f'; and {more} more' if more > 0 else '')
    cfg = osp.relpath(config_path(version, scale), repo_root())
    return ArchitectureError(f'architecture mismatch at {where} (our {cfg}): the converted weights would '
                             "not reproduce the checkpoint's outputs")


def config_path(version: str, scale: str) -> str:
    """Our config of a version (YOLO family) and scale (absolute path)."""
    return osp.join(repo_root(), 'configs', version, f'{version}_{scale}_8xb16-500e_coco.py')


@functools.lru_cache(maxsize=16)
def build_model(version: str, scale: str, num_classes: int = 80, cls_channels: Optional[int] = None) -> torch.nn.Module:
    """Our detector for a scale, built from its config on the meta device
    (no memory, no init; shapes, classes and settings only). Cached: one
    build serves the architecture and the shape checks. Do not modify it.

    Args:
        version (str): 'yolo11', 'yolov8' or 'yolo26'.
        scale (str): 'n', 's', 'm', 'l' or 'x'.
        num_classes (int): Classes of the head. Defaults to 80.
        cls_channels (int, optional): Class-branch width of the head; None: the reference's rule.

    Returns:
        nn.Module: The detector (meta tensors).
    """
    from mmdet.registry import MODELS  # importing convnextv2_yolo registered our modules
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    cfg = Config.fromfile(config_path(version, scale))
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    cfg.model.bbox_head.num_classes = num_classes
    if cls_channels is not None:
        cfg.model.bbox_head.cls_channels = cls_channels
    with torch.device('meta'):
        return MODELS.build(cfg.model)


def model_shapes(version: str, scale: str, num_classes: int = 80,
                 cls_channels: Optional[int] = None) -> 'OrderedDict[str, torch.Size]':
    """State-dict shapes of our model for a scale (built on the meta device)."""
    return OrderedDict((k, v.shape) for k, v in
                       build_model(version, scale, num_classes, cls_channels).state_dict().items())


def check_shapes(state_dict: Mapping[str, torch.Tensor], expected: Mapping[str, torch.Size],
                 version: str, scale: str) -> None:
    """Raise a :class:`ConversionError` at the first key that does not fit.

    Missing and unexpected keys are reported too, with reference names.
    """
    for key, value in state_dict.items():
        if key not in expected:
            raise ConversionError(f"unexpected key '{key}' (reference '{reference_key(key, version)}') "
                                  f'for {version}-{scale}')
        if tuple(value.shape) != tuple(expected[key]):
            raise ConversionError(
                f"shape mismatch at '{key}' (reference '{reference_key(key, version)}'): checkpoint "
                f'{tuple(value.shape)} vs {version}-{scale} model {tuple(expected[key])}; is the '
                f'checkpoint of another scale?')
    missing = [k for k in expected if k not in state_dict]
    if missing:
        raise ConversionError(f'{len(missing)} keys of {version}-{scale} missing in the checkpoint, first '
                              f"'{missing[0]}' (reference '{reference_key(missing[0], version)}')")


def check_against_config(state_dict: Mapping[str, torch.Tensor], reference: Any, version: str, scale: str,
                         num_classes: int, cls_channels: Optional[int] = None) -> None:
    """Check a converted state dict (and, when known, the reference model it
    came from) against our model of ``version``-``scale``.

    Order: differences of architecture (classes, activations, block types,
    settings that do not follow the size), then keys and shapes, then the
    size-dependent settings (groups, attention heads...): a checkpoint of
    another scale fails on its shapes, one of another architecture on its
    architecture even where the shapes differ too.

    Args:
        state_dict (Mapping[str, Tensor]): Our names (converted).
        reference: The pickled reference model (stand-in), or None for a
            plain state dict (then only keys and shapes are checked).
        version (str): 'yolo11', 'yolov8' or 'yolo26'.
        scale (str): 'n'..'x'.
        num_classes (int): Classes of the checkpoint.
        cls_channels (int, optional): Its class-branch width (None: the reference's rule).

    Raises:
        ArchitectureError: Architecture differences (all, in one message).
        ConversionError: Key or shape mismatch.
    """
    model = build_model(version, scale, num_classes, cls_channels)
    mismatches = architecture_mismatches(reference, model, version) if reference is not None else []
    structural = [m for m in mismatches if not m.sized]
    if structural:
        raise architecture_error(structural, version, scale)
    check_shapes(state_dict, model_shapes(version, scale, num_classes, cls_channels), version, scale)
    if mismatches:
        raise architecture_error(mismatches, version, scale)


def _fitting_keys(state_dict: Mapping[str, torch.Tensor], shapes: Mapping[str, torch.Size]) -> int:
    return sum(k in shapes and tuple(v.shape) == tuple(shapes[k]) for k, v in state_dict.items())


def find_scale(state_dict: Mapping[str, torch.Tensor], reference: Any, version: str, num_classes: int,
               cls_channels: Optional[int] = None) -> str:
    """The scale whose model the checkpoint fits (architecture and shapes).

    Args:
        state_dict (Mapping[str, Tensor]): Our names (converted).
        reference: The pickled reference model (stand-in) or None.
        version (str): 'yolo11', 'yolov8' or 'yolo26'.
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
            check_against_config(state_dict, reference, version, scale, num_classes, cls_channels)
        except ConversionError as e:
            errors[scale] = e
            continue
        return scale
    closest = max(SCALES, key=lambda s: _fitting_keys(state_dict, model_shapes(version, s, num_classes, cls_channels)))
    if isinstance(errors[closest], ArchitectureError):
        raise errors[closest]
    raise ConversionError(f'the checkpoint fits no {version} scale {SCALES}; closest {version}-{closest}: '
                          f'{errors[closest]}')


def infer_scale(state_dict: Mapping[str, torch.Tensor], version: str, num_classes: int) -> str:
    """The scale whose model a state dict fits by keys and shapes."""
    return find_scale(state_dict, None, version, num_classes, cls_channels_of(state_dict))


def other_scale_hint(state_dict: Mapping[str, torch.Tensor], reference: Any, version: str, scale: str,
                     num_classes: int, cls_channels: Optional[int] = None) -> str:
    """'; it fits yolo11-n' when another scale fits the checkpoint entirely."""
    for other in SCALES:
        if other == scale:
            continue
        try:
            check_against_config(state_dict, reference, version, other, num_classes, cls_channels)
        except ConversionError:
            continue
        return f'; the checkpoint fits {version}-{other}: pass --scale {other} or leave --scale out'
    return ''
