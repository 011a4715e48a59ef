"""Deployment: ONNX export (raw outputs, NMS inside, or end-to-end top-k without NMS) and ONNX Runtime inference.

Needs the ``deploy`` extra (``pip install -e ".[deploy]"``: onnx, onnxruntime,
onnxscript, onnxslim); nothing here is imported by ``import convnextv2_yolo``.
"""
from .onnx_export import (METADATA_KEY, DenseOutputs, EndToEndOutputs, ExportError, add_nms, append_nms,
                          check_state_dict, export_onnx, fuse_batchnorm, load_detector, raw_to_nms, read_onnx_metadata,
                          resolve_postprocess)
from .onnx_runtime import (ORTDetector, e2e_to_instances, make_inferencer, make_session, raw_to_instances,
                           select_providers)

__all__ = ['METADATA_KEY', 'DenseOutputs', 'EndToEndOutputs', 'ExportError', 'ORTDetector', 'add_nms', 'append_nms',
           'check_state_dict', 'e2e_to_instances', 'export_onnx', 'fuse_batchnorm', 'load_detector', 'make_inferencer',
           'make_session', 'raw_to_instances', 'raw_to_nms', 'read_onnx_metadata', 'resolve_postprocess',
           'select_providers']
