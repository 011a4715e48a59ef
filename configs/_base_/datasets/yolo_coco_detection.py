# COCO detection with the reference's YOLO augmentation:
# mosaic(1.0) -> copy-paste (0.0) -> random affine (scale 0.5, translate 0.1), inside
# mixup (0.0) -> HSV (0.015/0.7/0.4) -> horizontal flip 0.5; letterbox 640 with pad
# value 114; the last `close_mosaic_epochs` epochs train without mosaic, copy-paste and
# mixup (CloseMosaicHook), as the reference's close_mosaic.
_base_ = 'mmdet::_base_/datasets/coco_detection.py'

# CocoDataset + clear errors for missing files, non-COCO JSON and class names
# that are not categories of the annotation file
dataset_type = 'CheckedCocoDataset'
img_scale = (640, 640)  # (w, h)
train_batch_size_per_gpu = 16
train_num_workers = 8
val_batch_size_per_gpu = 1
val_num_workers = 2
backend_args = None
# a training image that fails to load (missing, unreadable, no longer decoding) is skipped
# with a warning naming it and replaced by another sample; more than this fraction of the
# image loads of a data-loader worker skipped (once it made 100 loads, or the dataset size)
# stops the run listing the files. strict=True raises at the first such image instead;
# validation/test images are never skipped (a clear error naming the file)
max_skip_fraction = 0.01

pre_transform = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='LoadAnnotations', with_bbox=True),
]
post_transform = [
    dict(type='YOLOHSVRandomAug', hue_gain=0.015, saturation_gain=0.7, value_gain=0.4),
    dict(type='RandomFlip', prob=0.5),
    dict(type='FilterAnnotations', min_gt_bbox_wh=(1, 1), keep_empty=True),
    dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                                          'scale_factor', 'flip', 'flip_direction')),
]
# the reference's mosaic buffer: min(dataset size, batch x 8, 1000) recently loaded images
# per data-loader worker (the dataset size is not known here; a smaller dataset simply
# never fills it). Derived when this file is parsed: a child config that changes
# train_batch_size_per_gpu should set it again.
mosaic_max_cached_images = min(train_batch_size_per_gpu * 8, 1000)
# training images load their instance polygons too (PolygonMasks, only where every
# instance of the image has one) for CopyPaste; boxes as LoadAnnotations
train_load = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='YOLOLoadAnnotations', with_bbox=True, with_polygons=True),
]
# every image resized to long side 640 into a FIFO buffer; 3 partners drawn from it
# with replacement (the current image included) onto a 1280x1280 canvas
mosaic = dict(type='YOLOMosaic', img_scale=img_scale, pad_val=114.0, prob=1.0,
              max_cached_images=mosaic_max_cached_images)
# the reference's CopyPaste, 'flip' mode, between mosaic and affine: `ratio` of the mirrored
# instances that overlap no box by >= 30% are pasted through their polygons (no-op without
# polygons). 0.0 = the reference's default.yaml copy_paste; the YOLO11 COCO configs set theirs
copy_paste = dict(type='YOLOCopyPaste', ratio=0.0, mode='flip')
# the reference's centred affine (1280 -> 640 centre region) + its box filter
random_affine = dict(type='YOLORandomAffine', max_rotate_degree=0.0, max_shear_degree=0.0,
                     max_translate_ratio=0.1, scaling_ratio_range=(0.5, 1.5),
                     border=(-img_scale[0] // 2, -img_scale[1] // 2), border_val=(114, 114, 114))
# the reference's MixUp: with probability `prob` a random image made by the SAME mosaic,
# copy-paste and affine (sharing the mosaic buffer) is blended in, r ~ Beta(32, 32).
# 0.0 = the reference's default.yaml mixup; the YOLO11 COCO configs set theirs
mixup = dict(type='YOLOMixUp', prob=0.0, pre_transform=train_load)
train_pipeline = [
    *train_load,
    dict(mixup, transforms=[mosaic, copy_paste, random_affine]),
    *post_transform,
]
# without mosaic (last epochs): letterbox to 640, then the same affine (border 0)/HSV/flip
train_pipeline_stage2 = [
    *pre_transform,
    dict(type='LetterResize', scale=img_scale, pad_val=dict(img=114), allow_scale_up=True),
    dict(type='YOLORandomAffine', max_rotate_degree=0.0, max_shear_degree=0.0,
         max_translate_ratio=0.1, scaling_ratio_range=(0.5, 1.5), border_val=(114, 114, 114)),
    *post_transform,
]
test_pipeline = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='LetterResize', scale=img_scale, pad_val=dict(img=114), allow_scale_up=False),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                                          'scale_factor', 'pad_param', 'instances')),
]

train_dataloader = dict(
    batch_size=train_batch_size_per_gpu,
    num_workers=train_num_workers,
    persistent_workers=True,
    pin_memory=True,
    collate_fn=dict(type='yolo_collate'),
    batch_sampler=None,
    dataset=dict(type=dataset_type, filter_cfg=dict(filter_empty_gt=False, min_size=0),
                 strict=False, max_skip_fraction=max_skip_fraction, pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=val_batch_size_per_gpu,
    num_workers=val_num_workers,
    persistent_workers=True,
    pin_memory=True,
    collate_fn=dict(type='yolo_collate'),
    dataset=dict(type=dataset_type, pipeline=test_pipeline))
test_dataloader = val_dataloader

# mmdet's CocoMetric on a checked annotation file (missing 'area' computed, malformed
# fields named). mmdet's detection limits: bbox_mAP at 100 detections per image (as
# pycocotools), bbox_mAP_50/75/s/m/l at 1000 (its proposal_nums[-1]; max_per_img is 300).
# YOLODetMetric adds the reference's validation table (Class Images Instances Box(P R
# mAP50 mAP50-95), per class) and the yolo/... scalars; the coco/... numbers are unchanged.
# match_boxes='unclipped': the YOLO numbers match boxes not clipped to the image, as the
# reference's validator does (reproduces its P, R, mAP; 'clipped' matches what COCO evaluates)
val_evaluator = dict(type='YOLODetMetric', metric='bbox', match_boxes='unclipped')
test_evaluator = val_evaluator
