"""Convert a YOLO11 / YOLO26 / YOLOv8 checkpoint of the reference (Ultralytics) to ours.

Reads either a plain state dict with the reference's names or a released /
trained ``.pt`` (read safely by :mod:`.restricted_unpickler`), checks a
pickled model's module classes and settings before any key mapping
(:mod:`.ultralytics_layers`, :mod:`.ultralytics_architecture`), maps the keys
(:mod:`.ultralytics_keys`), checks them against our model
(:mod:`.ultralytics_model_check`) and returns
``{'state_dict': ..., 'meta': {...}}`` (fp32) for mmdet's ``load_from`` /
``load_checkpoint``. A plain state dict has no classes: it is checked by keys
and shapes only and the result says so (``meta['architecture_verified']``
False, a note). The command line is
``tools/model_converters/ultralytics_to_mmdet.py``.
"""
import os
import os.path as osp
from typing import Any, Mapping, Optional

import torch

from ..utils.paths import repo_root
from .errors import ArchitectureError, ConversionError
from .ultralytics_checkpoint import load_reference_checkpoint
from .ultralytics_keys import (SCALES, VERSIONS, cls_channels_of, convert_state_dict, detect_version, num_classes_of,
                               version_keyword)
from .ultralytics_layers import VERSION_LABELS, check_layer_sequence
from .ultralytics_model_check import check_against_config, config_path, find_scale, other_scale_hint


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


def resolve_version(reference: Any, ref_sd: Mapping[str, torch.Tensor], version: Optional[str]) -> str:
    """The checkpoint's version (YOLO family): from the pickled model's layer
    classes when there is one (refusing unsupported models), else from the keys.

    Raises:
        ArchitectureError: Unsupported model, or not the ``version`` asked for.
        ConversionError: Keys of no known version.
    """
    if version is not None and version not in VERSIONS:
        raise ConversionError(f'version must be one of {VERSIONS}, got {version!r}')
    if reference is None:
        return version or detect_version(ref_sd)
    found = check_layer_sequence(reference)
    if version is not None and version != found:
        raise ArchitectureError(f'the checkpoint holds a {VERSION_LABELS[found]} model (its layer classes), '
                                f'not {version} as asked')
    return found


resolve_arch = resolve_version  # deprecated name


def convert(src: str, dst: Optional[str] = None, version: Optional[str] = None,
            scale: Optional[str] = None, check: bool = True, *, arch: Optional[str] = None) -> dict:
    """Convert ``src`` and (when ``dst`` is given) save it.

    For a pickled model, its layer classes are checked first (YOLO11, YOLO26 or
    YOLOv8, else ``unsupported architecture``); with ``check``, its modules
    are then compared with our model's (see :func:`architecture_mismatches`)
    before keys and shapes. A plain state dict is checked by keys and shapes
    only (``meta['architecture_verified']`` is False, with a note).

    Args:
        src (str): Reference checkpoint (state dict or pickled ``.pt``).
        dst (str, optional): Output path for ``torch.save``.
        version (str, optional): The YOLO family, 'yolo11' / 'yolov8' / 'yolo26'; detected when None.
        scale (str, optional): 'n'..'x'; inferred when None (needs check).
        check (bool): Validate the architecture, keys and shapes against
            our model built from the config. Defaults to True.
        arch (str, optional): Deprecated name of ``version`` (FutureWarning).

    Returns:
        dict: ``{'state_dict': ..., 'meta': {...}}``; ``meta`` holds ``version`` (also under its old
        name ``arch``, for readers written for older converted files), ``scale``,
        ``num_classes``, ``cls_channels`` (the class-branch width, from the tensors: a model the
        reference fine-tuned from a checkpoint keeps that checkpoint's), ``cfg_options`` (the head
        settings that build our config to fit), ``dataset_meta.classes`` (the ``.pt``'s names).

    Raises:
        FileNotFoundError: ``src`` does not exist.
        ArchitectureError: Unsupported architecture or mismatching modules.
        ConversionError: Unreadable file, keys or shapes that do not fit
            (every message names ``src``).
    """
    version = version_keyword(version, arch, 'convert')
    try:
        ref_sd, info = load_reference_checkpoint(src)
        return _convert_loaded(src, dst, ref_sd, info, version, scale, check)
    except ConversionError as e:  # the messages after loading name keys and modules: add the file
        if src in str(e):
            raise
        raise type(e)(f'{e} (checkpoint {src})') from None


def _convert_loaded(src: str, dst: Optional[str], ref_sd: Mapping[str, torch.Tensor], info: dict,
                    version: Optional[str], scale: Optional[str], check: bool) -> dict:
    """:func:`convert` after loading ``src``."""
    reference = info.get('model')
    version = resolve_version(reference, ref_sd, version)
    state_dict = convert_state_dict(ref_sd, version)
    num_classes = num_classes_of(state_dict, version)
    # the width is the checkpoint's: the rule's for its nc, or another for a model fine-tuned from a checkpoint
    cls_channels = cls_channels_of(state_dict)
    if check:
        if scale is None:
            scale = find_scale(state_dict, reference, version, num_classes, cls_channels)
        elif scale not in SCALES:
            raise ConversionError(f'scale must be one of {SCALES}, got {scale!r}')
        else:
            try:
                check_against_config(state_dict, reference, version, scale, num_classes, cls_channels)
            except ArchitectureError as e:
                hint = other_scale_hint(state_dict, reference, version, scale, num_classes, cls_channels)
                raise ArchitectureError(f'{e}{hint}') from None
    meta = dict(source=osp.basename(src), converted_by='tools/model_converters/ultralytics_to_mmdet.py',
                version=version, arch=version, scale=scale, num_classes=num_classes, cls_channels=cls_channels,
                source_entry=info.get('source_entry'),
                architecture_verified=check and reference is not None)
    note = _architecture_note(reference, check)
    if note is not None:
        meta['architecture_note'] = note
    if scale is not None:
        meta['config'] = osp.relpath(config_path(version, scale), repo_root())
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
