"""Ground truth of a batch as one tensor: the layout the YOLO head, the collate function and the data
preprocessor share."""
from typing import Sequence

import torch
from mmdet.structures.bbox import get_box_tensor
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
