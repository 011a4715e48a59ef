"""The scalar side of the head loss tests (YOLOHead's DFL branch and the reg_max=1 branch): anchors, flattened
outputs, the assignment on padded GTs, and the BCE sum written out with floats."""
import math

import torch

from .box_formulas import ciou_scalar


def anchor_points(cls_scores, level_strides=(8, 16, 32)):
    """(points, strides): every anchor's centre in its level's stride units, (A, 2) float64, level by level and
    row by row, and its stride, (A, 1) float64."""
    points, strides = [], []
    for m, s in zip(cls_scores, level_strides):
        h, w = m.shape[-2:]
        points += [[x + 0.5, y + 0.5] for y in range(h) for x in range(w)]
        strides += [s] * (h * w)
    return torch.tensor(points, dtype=torch.float64), torch.tensor(strides, dtype=torch.float64)[:, None]


def flatten_levels(maps) -> torch.Tensor:
    """The (B, C, H, W) outputs of every level as one (B, A, C) float64 tensor."""
    return torch.cat([m.flatten(2) for m in maps], 2).transpose(1, 2).double()


def assign_packed(assigner, logits, pred, points, strides, packed) -> dict:
    """``assigner``'s result for sigmoid(``logits``) and ``pred`` boxes (stride units; scaled to pixels) vs the
    GTs of ``packed`` (img, label, x1, y1, x2, y2) rows, padded per image."""
    B = logits.shape[0]
    M = max(int((packed[:, 0] == b).sum()) for b in range(B))
    gt_b = torch.zeros(B, M, 4, dtype=torch.float64)
    gt_l = torch.zeros(B, M, dtype=torch.long)
    mask = torch.zeros(B, M, dtype=torch.bool)
    for b in range(B):
        rows = packed[packed[:, 0] == b]
        gt_b[b, :len(rows)] = rows[:, 2:].double()
        gt_l[b, :len(rows)] = rows[:, 1].long()
        mask[b, :len(rows)] = True
    return assigner.assign(logits.sigmoid(), pred * strides, points * strides, gt_l, gt_b, mask)


def bce_sum(logits: torch.Tensor, targets: torch.Tensor) -> float:
    """Summed binary cross-entropy of ``logits`` vs ``targets``, element by element with floats."""
    bce = 0.0
    for x, y in zip(logits.flatten().tolist(), targets.flatten().tolist()):
        p = 1 / (1 + math.exp(-x))
        bce -= y * math.log(p) + (1 - y) * math.log(1 - p)
    return bce


def positives(res: dict, t: torch.Tensor, pred: torch.Tensor, points: torch.Tensor, strides: torch.Tensor):
    """Per positive of the assignment ``res`` (assigned scores ``t``): (b, a, weight, stride, 1 - CIoU, sides),
    the weight the sum of its assigned scores, the CIoU of ``pred`` vs the target and the (l, t, r, b) distances
    from the anchor point to the target's sides, unclamped, both in stride units."""
    for b, a in res['fg_mask'].nonzero().tolist():
        s = strides[a, 0].item()
        tgt = (res['assigned_bboxes'][b, a] / s).tolist()
        px, py = points[a].tolist()
        yield (b, a, t[b, a].sum().item(), s, 1 - ciou_scalar(pred[b, a].tolist(), tgt),
               [px - tgt[0], py - tgt[1], tgt[2] - px, tgt[3] - py])
