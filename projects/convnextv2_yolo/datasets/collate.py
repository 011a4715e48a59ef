"""Batch collation that stacks images and packs all GT boxes into one tensor."""
from typing import Any, Dict, List, Sequence

import torch
from mmdet.structures.bbox import get_box_tensor
from mmengine.registry import FUNCTIONS
from mmengine.structures import InstanceData
from torch import Tensor


def pack_gt_instances(batch_gt_instances: Sequence[InstanceData]) -> Tensor:
    """Per-image GT instances -> one (N, 6) [batch_idx, label, x1, y1, x2, y2].

    Args:
        batch_gt_instances (Sequence[InstanceData | None]): ``bboxes`` (n, 4)
            tensor or box structure and ``labels`` (n,) per image; None for
            an image without annotations.
    """
    rows = []
    for i, inst in enumerate(batch_gt_instances):
        if inst is None:
            continue
        boxes = get_box_tensor(inst.bboxes).float().reshape(-1, 4)
        labels = inst.labels
        if labels.numel() != boxes.shape[0]:
            raise ValueError(f'gt_instances of image {i}: {boxes.shape[0]} boxes but '
                             f'{labels.numel()} labels')
        rows.append(torch.cat([boxes.new_full((boxes.shape[0], 1), i),
                               labels.reshape(-1, 1).to(boxes.dtype), boxes], dim=1))
    if not rows:
        return torch.zeros(0, 6)
    return torch.cat(rows)


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
    return dict(inputs=torch.stack(imgs) if same_size else imgs, data_samples=samples,
                bboxes_labels=packed)
