"""Data preprocessor for the fast YOLO batch path (see ``yolo_collate``)."""
import math
from typing import Any, Dict

import torch.nn.functional as F
from mmdet.models.data_preprocessors import DetDataPreprocessor
from mmdet.registry import MODELS
from torch import Tensor

from ..structures import pack_gt_instances


@MODELS.register_module()
class YOLODetDataPreprocessor(DetDataPreprocessor):
    """``DetDataPreprocessor`` that hands packed targets to the head.

    In training with a stacked batch from :func:`yolo_collate`, only the
    image tensor and the packed ``bboxes_labels`` (N, 6) go to the device
    (the per-sample ``gt_instances`` are not copied), images are normalised
    as one tensor, and ``data_samples`` becomes
    ``dict(bboxes_labels=..., img_metas=[...])`` for :class:`YOLOHead`.
    Validation/test batches (and batches needing ``batch_augments`` or
    padding of differently sized images) take the parent's path and keep
    the list of data samples; training batches then still get packed
    targets.

    Args: as :class:`mmdet.models.DetDataPreprocessor`; for the reference
        use ``mean=[0, 0, 0], std=[255, 255, 255], bgr_to_rgb=True``.
    """

    def forward(self, data: Dict[str, Any], training: bool = False) -> Dict[str, Any]:
        data = dict(data)
        packed = data.pop('bboxes_labels', None)
        if not training:
            return super().forward(data, training)
        inputs = data['inputs']
        if not isinstance(inputs, Tensor) or self.batch_augments is not None:
            out = super().forward(data, training)
            samples = out['data_samples']
            if packed is None or self.batch_augments is not None:
                packed = pack_gt_instances([s.gt_instances for s in samples])
            return dict(inputs=out['inputs'], data_samples=dict(
                bboxes_labels=packed.to(self.device), img_metas=[s.metainfo for s in samples]))

        if packed is None:
            packed = pack_gt_instances([s.gt_instances for s in data['data_samples']])
        moved = self.cast_data(dict(inputs=inputs, bboxes_labels=packed))
        inputs = moved['inputs']
        if self._channel_conversion and inputs.shape[1] == 3:
            inputs = inputs[:, [2, 1, 0]]
        inputs = inputs.float()
        if self._enable_normalize:
            if inputs.data_ptr() == data['inputs'].data_ptr():
                inputs = inputs.clone()  # never normalise the caller's tensor in place
            inputs.sub_(self.mean).div_(self.std)
        h, w = inputs.shape[-2:]
        pad_h = math.ceil(h / self.pad_size_divisor) * self.pad_size_divisor - h
        pad_w = math.ceil(w / self.pad_size_divisor) * self.pad_size_divisor - w
        if pad_h or pad_w:
            inputs = F.pad(inputs, (0, pad_w, 0, pad_h), 'constant', self.pad_value)
        batch_input_shape = tuple(inputs.shape[-2:])
        img_metas = []
        for sample in data['data_samples']:
            meta = sample.metainfo
            meta['batch_input_shape'] = batch_input_shape
            img_metas.append(meta)
        return dict(inputs=inputs,
                    data_samples=dict(bboxes_labels=moved['bboxes_labels'], img_metas=img_metas))
