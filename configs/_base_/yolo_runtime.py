# Runtime of the YOLO11 recipe: mmdet's default runtime + the reference's
# warmup/LR/momentum schedule. (custom_imports lives in the model bases; the
# custom hooks in yolo_recipe_*.py, which can see the dataset's pipelines.)
_base_ = 'mmdet::_base_/default_runtime.py'

default_hooks = dict(
    logger=dict(type='LoggerHook', interval=50),
    # warmup max(3 epochs, 100 iters): bias lr 0.1 -> lr, momentum 0.8 -> 0.937;
    # then linear decay to lr x 0.01 (replaces mmengine's ParamSchedulerHook)
    param_scheduler=dict(
        type='YOLOParamSchedulerHook',
        lr_factor=0.01,
        warmup_epochs=3,
        warmup_min_iters=100,
        warmup_bias_lr=0.1,
        warmup_momentum=0.8),
    # save_best names the metric: 'auto' takes the first key, a per-class AP with classwise=True
    checkpoint=dict(type='CheckpointHook', interval=10, max_keep_ckpts=3, save_best='coco/bbox_mAP',
                    rule='greater'))

env_cfg = dict(cudnn_benchmark=True)
log_processor = dict(type='LogProcessor', window_size=50, by_epoch=True)
