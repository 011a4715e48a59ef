# YOLO11-l on COCO (80 classes): 25,372,160 parameters, 87.85 GFLOPs at 640x640.
_base_ = './yolo11_n_8xb16-500e_coco.py'

# the reference's scale l (convnextv2_yolo.layers.YOLO_SCALES)
model = dict(backbone=dict(scale='l'), neck=dict(scale='l'))

# the reference's augmentation of YOLO11-l on COCO: mixup 0.15, copy_paste 0.50 (mosaic 1.0). Not in
# the package's default.yaml (0.0 / 0.0, what custom data trains with: --data resets both); given by
# the maintainers in ultralytics issue #16607 (https://github.com/ultralytics/ultralytics/issues/16607)
mixup = dict(_base_.mixup, prob=0.15)
copy_paste = dict(_base_.copy_paste, ratio=0.5)
train_pipeline = [
    *_base_.train_load,
    dict(mixup, transforms=[_base_.mosaic, copy_paste, _base_.random_affine]),
    *_base_.post_transform,
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
