"""Batch collation that stacks images and packs all GT boxes into one tensor."""
from typing import Any, Dict, List

import torch
from mmengine.registry import FUNCTIONS

from ..structures import pack_gt_instances


@FUNCTIONS.register_module()
def yolo_collate(data_batch: List[Dict[str, Any]]) -> Dict[str, Any]:
    """Collate ``PackDetInputs`` outputs for :class:`YOLODetDataPreprocessor`.

    Images are stacked into one (B, 3, H, W) tensor when they share a size
    (else kept as a list, which the preprocessor pads), data samples are kept
    as a list, and every GT box of the batch is packed into ``bboxes_labels``
    (N, 6) = [batch_idx, label, x1, y1, x2, y2] (float32). Works for
    train, val and test batches (val/test samples may have no GT).

    Args:
        data_batch (list[dict]): Items with ``inputs`` (3, H, W) and
            ``data_samples`` (DetDataSample).

    Returns:
        dict: ``inputs``, ``data_samples``, ``bboxes_labels``.
    """
    if not data_batch:
        raise ValueError('yolo_collate: empty batch')
    for key in ('inputs', 'data_samples'):
        if key not in data_batch[0]:
            raise KeyError(f'yolo_collate: dataset items need {key!r} (end the pipeline with '
                           f'PackDetInputs), got keys {sorted(data_batch[0])}')
    imgs = [item['inputs'] for item in data_batch]
    samples = [item['data_samples'] for item in data_batch]
    same_size = all(img.shape == imgs[0].shape for img in imgs)
    packed = pack_gt_instances([s.gt_instances if 'gt_instances' in s else None for s in samples])
    out = dict(inputs=torch.stack(imgs) if same_size else imgs, data_samples=samples, bboxes_labels=packed)
    worker = torch.utils.data.get_worker_info()
    if worker is not None and getattr(worker.dataset, 'track_data_state', False):
        # the worker's state after this batch, for an exact --resume (YOLOEpochBasedTrainLoop pops it)
        from .data_state import capture_data_state
        out['data_state'] = (worker.id, capture_data_state(worker.dataset))
    return out
