# YOLOv8 detector (native CSP backbone with C2f + PAFPN + decoupled DFL head), scale n.
# The scale configs configs/yolov8/yolov8_{n,s,m,l,x}_8xb16-500e_coco.py set
# the scale variables below and apply them to backbone / neck / head.
custom_imports = dict(imports=['convnextv2_yolo'], allow_failed_imports=False)

num_classes = 80
# Scale n: [depth, width, max_channels] = [0.33, 0.25, 1024].
deepen_factor = 0.33
widen_factor = 0.25
max_channels = 1024
# Real channels (after scaling) of the backbone's P3/P4/P5 and of the neck's
# outputs; the neck never rescales its in_channels.
# backbone P3/P4/P5 channels at this scale: [64, 128, 256] (the neck reads them itself)
neck_out_channels = [64, 128, 256]

model = dict(
    type='YOLODetector',
    data_preprocessor=dict(
        type='YOLODetDataPreprocessor',
        mean=[0., 0., 0.],
        std=[255., 255., 255.],
        bgr_to_rgb=True,
        pad_size_divisor=32),
    backbone=dict(
        type='YOLO11CSPDarknet',
        arch='yolov8',
        deepen_factor=deepen_factor,
        widen_factor=widen_factor,
        max_channels=max_channels,
        out_indices=(2, 3, 4),
        frozen_stages=-1,
        norm_eval=False),
    neck=dict(
        type='YOLO11PAFPN',
        arch='yolov8',
        in_channels='auto',  # the backbone's real P3/P4/P5 channels, read from it
        out_channels=[256, 512, 1024],  # at width 1.0
        deepen_factor=deepen_factor,
        widen_factor=widen_factor,
        max_channels=max_channels,
        sppf_c2psa='auto'),  # on unless the backbone ends with SPPF: the native one does
    bbox_head=dict(
        type='YOLO11Head',
        num_classes=num_classes,
        in_channels=neck_out_channels,
        featmap_strides=(8, 16, 32),
        reg_max=16,
        cls_branch='yolov8',
        loss_cls=dict(
            type='YOLOBCELoss',
            reduction='sum',
            loss_weight=0.5),
        loss_bbox=dict(type='YOLOCIoULoss', reduction='sum', loss_weight=7.5),
        loss_dfl=dict(
            type='mmdet.DistributionFocalLoss',
            reduction='sum',
            loss_weight=1.5)),
    train_cfg=dict(
        assigner=dict(
            type='BatchTaskAlignedAssigner',
            topk=10,
            alpha=0.5,
            beta=6.0,
            eps=1e-9,
            # GT sides < 16 px enlarged for the candidate test (ultralytics 8.4: strides[1])
            min_gt_size=16)),
    test_cfg=dict(
        score_thr=0.001,
        nms_pre=30000,
        nms=dict(type='nms', iou_threshold=0.7),
        max_per_img=300,
        multi_label=True))
