# YOLO26 detector (native CSP backbone + PAFPN + end-to-end head without DFL), scale n
# (ultralytics/cfg/models/26/yolo26.yaml): configs/_base_/models/yolo11.py with
# version='yolo26' (residual SPPF without cv1 activation; neck C3k2 with C3k blocks at
# every scale and attention in the last one) and the YOLOE2EHead: one-to-many and
# one-to-one branches, reg_max=1, top-k detections without NMS at test time.
# configs/yolo26/yolo26_{s,m,l,x}_8xb16-500e_coco.py set the scale (one word).
_base_ = './yolo11.py'

model = dict(
    backbone=dict(version='yolo26'),
    neck=dict(version='yolo26'),
    bbox_head=dict(
        type='YOLOE2EHead',
        reg_max=1,  # no DFL: the box convs predict 4 distances in stride units
        # the reference's gains (cfg/default.yaml: box 7.5, cls 0.5, dfl 1.5, reused for the L1
        # distance loss without DFL: sides in px / image width or height, mean of 4, x target score)
        loss_dfl=None,
        loss_l1=dict(type='YOLODistanceL1Loss', reduction='sum', loss_weight=1.5),
        # E2ELoss: o2m x L_one2many + (1 - o2m) x L_one2one; o2m is 0.8 in the first epoch and set
        # before every epoch by the E2ELossScheduleHook of the configs (0.8 -> 0.1)
        o2m_weight=0.8),
    train_cfg=dict(
        # the one-to-many branch keeps YOLO11's assigner (the reference's E2ELoss one2many, tal_topk=10);
        # one-to-one branch: the reference's one2one (tal_topk=7, tal_topk2=1): after the conflicts
        # between GTs are resolved among the 7 best, each GT keeps its single best-aligned anchor
        o2o_assigner=dict(
            type='BatchTaskAlignedAssigner',
            topk=7,
            topk2=1,
            alpha=0.5,
            beta=6.0,
            eps=1e-9,
            min_gt_size=16)),
    test_cfg=dict(
        # True: the one-to-one branch, top max_per_img (anchor, class) pairs, no NMS (the reference's
        # nms=False / end2end=True; an nms key here would be ignored, with a warning). False: the
        # one-to-many branch with NMS (the reference's default nms=None), by default the head's
        # NMS_DEFAULTS: nms_pre=30000, nms=dict(type='nms', iou_threshold=0.7), multi_label=True
        # (e.g. --cfg-options model.test_cfg.end2end=False model.test_cfg.nms.iou_threshold=0.6)
        _delete_=True,
        end2end=True,
        score_thr=0.001,
        max_per_img=300))
