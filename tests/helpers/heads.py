"""Small YOLOHead instances and hand-made raw outputs (shared by the head and NMS tests), and a
test-only end-to-end head for the YOLO26 loss tests."""
import copy
import math

import torch
from mmdet.registry import TASK_UTILS

from convnextv2_yolo.dense_heads import YOLOHead
from convnextv2_yolo.dense_heads.yolo_e2e_head_loss import YOLOE2EHeadLossMixin

TRAIN_CFG = dict(assigner=dict(type='BatchTaskAlignedAssigner', topk=10, alpha=0.5, beta=6.0, eps=1e-9))


# YOLO26's assigners (the reference's E2ELoss: one-to-many topk 10, one-to-one topk 7 then 1 per GT)
E2E_O2M_ASSIGNER = dict(type='BatchTaskAlignedAssigner', topk=10, alpha=0.5, beta=6.0, eps=1e-9, min_gt_size=16)
E2E_O2O_ASSIGNER = dict(E2E_O2M_ASSIGNER, topk=7, topk2=1)

TEST_CFG = dict(score_thr=0.001, nms_pre=30000, nms=dict(type='nms', iou_threshold=0.7), max_per_img=300,
                multi_label=True)


def make_head(num_classes=3, in_channels=(8, 16, 32), **kwargs):
    head = YOLOHead(
        num_classes=num_classes, in_channels=list(in_channels), train_cfg=TRAIN_CFG, test_cfg=TEST_CFG, **kwargs)
    head.init_weights()
    return head


def dist_logits(d):
    """(4,) distances -> (64,) logits whose DFL integral is d."""
    logits = torch.full((4, 16), -1e4)
    for k, v in enumerate(d):
        lo = int(math.floor(v))
        logits[k, lo] = math.log(max(lo + 1 - v, 1e-30))
        if lo + 1 < 16:
            logits[k, lo + 1] = math.log(max(v - lo, 1e-30))
    return logits.flatten()


def crafted_outputs(head, num_classes=3, size=64):
    """All anchors near-zero score except a few hand-placed detections."""
    cls_scores = [torch.full((1, num_classes, size // s, size // s), -20.) for s in (8, 16, 32)]
    bbox_dists = [dist_logits([1., 1., 1., 1.]).view(1, 64, 1, 1).repeat(1, 1, size // s, size // s)
                  for s in (8, 16, 32)]
    # stride 8, cell (x=3, y=2): centre (28, 20); box = centre -/+ ltrb * 8
    bbox_dists[0][0, :, 2, 3] = dist_logits([2., 1.5, 2., 1.5])  # (12, 8, 44, 32)
    cls_scores[0][0, 1, 2, 3] = 3.0
    cls_scores[0][0, 2, 2, 3] = 1.0  # same box, other class (multi-label)
    # neighbour cell (x=4, y=2): centre (36, 20), box (20, 8, 52, 32): IoU with the first 0.6
    bbox_dists[0][0, :, 2, 4] = dist_logits([2., 1.5, 2., 1.5])
    cls_scores[0][0, 1, 2, 4] = 2.0
    # heavily overlapping (IoU > 0.7) lower-score box of class 1 at cell (x=3, y=3)
    bbox_dists[0][0, :, 3, 3] = dist_logits([2., 2.4, 2., 0.6])  # (12, 8.8, 44, 32.8)
    cls_scores[0][0, 1, 3, 3] = 0.5
    return cls_scores, bbox_dists


class E2ETestHead(YOLOE2EHeadLossMixin, YOLOHead):
    """The shape of the end-to-end head (reg_max=1, o2o branches = copies run on detached features),
    enough to drive the loss; the real head lives in dense_heads/yolo_e2e_head.py."""

    def __init__(self, o2m_weight=0.8, **kwargs):
        # YOLOHead's DFL coder needs >= 2 bins; with reg_max=1 the loss never uses it
        super().__init__(reg_max=1, bbox_coder=dict(type='DFLBBoxCoder', reg_max=16), **kwargs)
        self.o2o_cls_convs = copy.deepcopy(self.cls_convs)
        self.o2o_reg_convs = copy.deepcopy(self.reg_convs)
        self.o2o_assigner = TASK_UTILS.build(self.train_cfg['o2o_assigner'])
        self.o2m_weight = o2m_weight

    def forward(self, x):
        cls_scores, bbox_preds = super().forward(x)
        x = [f.detach() for f in x]
        return (cls_scores, bbox_preds, [m(f) for m, f in zip(self.o2o_cls_convs, x)],
                [m(f) for m, f in zip(self.o2o_reg_convs, x)])
