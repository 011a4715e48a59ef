# YOLO11-n on COCO (80 classes): 2,624,080 parameters, 6.67 GFLOPs at 640x640.
# The reference's scale n (convnextv2_yolo.layers.YOLO_SCALES); the other scales inherit this
# config and change only model.backbone.scale and model.neck.scale.
_base_ = ['../_base_/models/yolo11.py', '../_base_/yolo_recipe_500e.py']

# the reference's augmentation of YOLO11-n on COCO: mixup 0.0, copy_paste 0.10 (mosaic 1.0). Not in
# the package's default.yaml (0.0 / 0.0, what custom data trains with: --data resets both); given by
# the maintainers in ultralytics issue #16607 (https://github.com/ultralytics/ultralytics/issues/16607)
mixup = dict(_base_.mixup, prob=0.0)
copy_paste = dict(_base_.copy_paste, ratio=0.1)
train_pipeline = [
    *_base_.train_load,
    dict(mixup, transforms=[_base_.mosaic, copy_paste, _base_.random_affine]),
    *_base_.post_transform,
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
