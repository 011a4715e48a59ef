# The demo (README's first command): ConvNeXt V2-atto + YOLO11 PAFPN (with
# SPPF + C2PSA on P5) + YOLO11 head, trained from scratch on the synthetic
# shapes dataset (tools/misc/make_synthetic_dataset.py), on 2 CPU cores.
_base_ = ['../_base_/yolo_runtime.py', '../_base_/datasets/yolo_coco_detection.py']

custom_imports = dict(imports=['convnextv2_yolo'], allow_failed_imports=False)

# ---- data: generated on first use by tools/demo.py
data_root = 'data/synthetic_shapes/'
img_size = 160
synthetic_dataset = dict(num_train=800, num_val=100, seed=0, img_size=img_size,
                         classes=4, min_size=8, max_objects=6)
classes = ('rectangle', 'ellipse', 'triangle', 'star')
metainfo = dict(classes=classes)
num_classes = len(classes)
img_scale = (img_size, img_size)
max_epochs = 12
close_mosaic_epochs = 3
batch_size = 16

# ---- model
model = dict(
    type='YOLODetector',
    data_preprocessor=dict(type='YOLODetDataPreprocessor', mean=[0., 0., 0.], std=[255., 255., 255.],
                           bgr_to_rgb=True, pad_size_divisor=32),
    backbone=dict(type='ConvNeXtV2', arch='atto', out_indices=(1, 2, 3), drop_path_rate=0.0),
    neck=dict(type='YOLO11PAFPN', arch='yolo11', in_channels=[80, 160, 320],
              out_channels=[256, 512, 1024], deepen_factor=0.5, widen_factor=0.25,
              max_channels=1024, c3k_all=False, sppf_c2psa=True),
    bbox_head=dict(
        type='YOLO11Head', num_classes=num_classes, in_channels=[64, 128, 256],
        featmap_strides=(8, 16, 32), reg_max=16, cls_branch='yolo11',
        loss_cls=dict(type='YOLOBCELoss', reduction='sum', loss_weight=0.5),
        loss_bbox=dict(type='YOLOCIoULoss', reduction='sum', loss_weight=7.5),
        loss_dfl=dict(type='mmdet.DistributionFocalLoss', reduction='sum', loss_weight=1.5)),
    train_cfg=dict(assigner=dict(type='BatchTaskAlignedAssigner', topk=10, alpha=0.5, beta=6.0, eps=1e-9)),
    test_cfg=dict(score_thr=0.001, nms_pre=30000, nms=dict(type='nms', iou_threshold=0.7),
                  max_per_img=300, multi_label=True))

# ---- pipelines at the demo's image size (mosaic for most epochs, then plain)
pre_transform = [dict(type='LoadImageFromFile'), dict(type='LoadAnnotations', with_bbox=True)]
post_transform = [
    dict(type='YOLOHSVRandomAug', hue_gain=0.015, saturation_gain=0.7, value_gain=0.4),
    dict(type='RandomFlip', prob=0.5),
    dict(type='FilterAnnotations', min_gt_bbox_wh=(1, 1), keep_empty=True),
    dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                                          'scale_factor', 'flip', 'flip_direction')),
]
train_pipeline = [
    *pre_transform,
    dict(type='CachedMosaic', img_scale=img_scale, pad_val=114.0, prob=1.0, max_cached_images=20,
         random_pop=False),
    dict(type='YOLORandomAffine', max_rotate_degree=0.0, max_shear_degree=0.0, max_translate_ratio=0.1,
         scaling_ratio_range=(0.75, 1.25), border=(-img_size // 2, -img_size // 2),
         border_val=(114, 114, 114)),
    *post_transform,
]
train_pipeline_stage2 = [
    *pre_transform,
    dict(type='LetterResize', scale=img_scale, pad_val=dict(img=114), allow_scale_up=True),
    *post_transform,
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LetterResize', scale=img_scale, pad_val=dict(img=114), allow_scale_up=False),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                                          'scale_factor', 'pad_param')),
]
train_dataloader = dict(
    batch_size=batch_size, num_workers=2, persistent_workers=True, pin_memory=False,
    dataset=dict(data_root=data_root, metainfo=metainfo, ann_file='annotations/instances_train.json',
                 data_prefix=dict(img='images/train/'), pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=16, num_workers=1, persistent_workers=True, pin_memory=False,
    dataset=dict(data_root=data_root, metainfo=metainfo, ann_file='annotations/instances_val.json',
                 data_prefix=dict(img='images/val/'), pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/instances_val.json')
test_evaluator = val_evaluator

# ---- schedule: AdamW suits a from-scratch ConvNeXt in a few epochs
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs, val_interval=4)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
optim_wrapper = dict(
    type='OptimWrapper', clip_grad=dict(max_norm=10.0),
    optimizer=dict(type='AdamW', lr=0.002, betas=(0.9, 0.999), weight_decay=0.05),
    paramwise_cfg=dict(norm_decay_mult=0.0, bias_decay_mult=0.0, custom_keys={'.grn.': dict(decay_mult=0.0)}))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=100),
    dict(type='CosineAnnealingLR', eta_min=0.002 * 0.05, begin=1, end=max_epochs, T_max=max_epochs - 1,
         by_epoch=True, convert_to_iter_based=True),
]
default_hooks = dict(
    param_scheduler=dict(_delete_=True, type='ParamSchedulerHook'),
    logger=dict(type='LoggerHook', interval=10),
    checkpoint=dict(type='CheckpointHook', interval=1, max_keep_ckpts=2, save_best='coco/bbox_mAP',
                    rule='greater'))
custom_hooks = [
    dict(type='EMAHook', ema_type='ExpMomentumEMA', momentum=0.0002, gamma=200, update_buffers=True,
         priority=49),
    dict(type='CloseMosaicHook', close_epochs=close_mosaic_epochs, switch_pipeline=train_pipeline_stage2),
    dict(type='NumClassCheckHook'),
]
env_cfg = dict(cudnn_benchmark=False, mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0))
log_processor = dict(window_size=10)
visualizer = dict(vis_backends=[dict(type='LocalVisBackend')])
