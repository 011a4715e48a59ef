# YOLO11 detector (native CSP backbone + PAFPN + decoupled DFL head), scale n.
# A scale is one word: configs/yolo11/yolo11_{s,m,l,x}_8xb16-500e_coco.py set
# model.backbone.scale and model.neck.scale (the reference's scales: table, in
# convnextv2_yolo.layers.YOLO_SCALES); the neck reads its input channels from
# the backbone and the head from the neck (in_channels='auto').
custom_imports = dict(imports=['convnextv2_yolo'], allow_failed_imports=False)

num_classes = 80

model = dict(
    type='YOLODetector',
    data_preprocessor=dict(
        type='YOLODetDataPreprocessor',
        mean=[0., 0., 0.],
        std=[255., 255., 255.],
        bgr_to_rgb=True,
        pad_size_divisor=32),
    backbone=dict(
        type='YOLOCSPDarknet',
        version='yolo11',
        scale='n',
        out_indices=(2, 3, 4),
        frozen_stages=-1,
        norm_eval=False),
    neck=dict(
        type='YOLOPAFPN',
        version='yolo11',
        scale='n',
        in_channels='auto',  # the backbone's real P3/P4/P5 channels, read from it
        sppf_c2psa='auto'),  # on unless the backbone ends with SPPF (+ C2PSA): the native one does
    bbox_head=dict(
        type='YOLOHead',
        num_classes=num_classes,
        in_channels='auto',  # the neck's output channels, read from it
        featmap_strides=(8, 16, 32),
        reg_max=16,
        cls_branch='yolo11',
        loss_cls=dict(
            type='YOLOBCELoss',
            reduction='sum',
            loss_weight=0.5,
            # the reference's cls_pw (8.4): class weights (1 / count) ** cls_pw from the training labels,
            # set by YOLOClassWeightsHook; 0.0 = off, its default
            cls_pw=0.0),
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
