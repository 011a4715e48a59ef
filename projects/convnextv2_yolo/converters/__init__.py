"""Checkpoint converters: the reference's (Ultralytics) YOLO11 / YOLO26 / YOLOv8 checkpoints to ours.

One module per job: :mod:`.restricted_unpickler` (reading pickled files
without running them), :mod:`.ultralytics_checkpoint` (their weights and
metadata), :mod:`.ultralytics_keys` (key mapping), :mod:`.ultralytics_layers`
and :mod:`.ultralytics_architecture` (the pickled model's classes and
settings against ours), :mod:`.ultralytics_model_check` (keys and shapes
against our config's model) and :mod:`.ultralytics_to_mmdet` (the
conversion). The command line is ``tools/model_converters/ultralytics_to_mmdet.py``.
"""
from .errors import ArchitectureError, ConversionError
from .restricted_unpickler import InertObject, RestrictedUnpickler, read_pickled_file
from .ultralytics_architecture import architecture_mismatches, same_value
from .ultralytics_checkpoint import collect_tensors, load_reference_checkpoint
from .ultralytics_keys import (ARCHS, HEAD_INDEX, LAYER_MAPS, SCALES, VERSIONS, cls_channels_of, convert_state_dict,
                               detect_arch, detect_version, map_key, num_classes_of, reference_key)
from .ultralytics_layers import MAX_REPORTED, Mismatch, check_layer_sequence, same_class
from .ultralytics_model_check import (architecture_error, build_model, check_against_config, check_shapes, config_path,
                                      find_scale, infer_scale, model_shapes)
from .ultralytics_to_mmdet import convert, resolve_arch, resolve_version

__all__ = [
    'ArchitectureError', 'ConversionError', 'HEAD_INDEX', 'InertObject', 'LAYER_MAPS', 'MAX_REPORTED',
    'Mismatch', 'RestrictedUnpickler', 'SCALES', 'VERSIONS', 'architecture_error', 'architecture_mismatches',
    'build_model', 'check_against_config', 'check_layer_sequence', 'check_shapes', 'cls_channels_of',
    'collect_tensors', 'config_path', 'convert', 'convert_state_dict', 'detect_version', 'find_scale',
    'infer_scale', 'load_reference_checkpoint', 'map_key', 'model_shapes', 'num_classes_of', 'read_pickled_file',
    'reference_key', 'resolve_version', 'same_class', 'same_value',
    # deprecated names of VERSIONS, detect_version, resolve_version (the YOLO family is ``version``; ``arch``
    # is a ConvNeXt V2 size in this project)
    'ARCHS', 'detect_arch', 'resolve_arch'
]
