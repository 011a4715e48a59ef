# Runtime of the YOLO11 recipe: mmdet's default runtime + the reference's
# warmup/LR/momentum schedule. (custom_imports lives in the model bases; the
# custom hooks in yolo_recipe_*.py, which can see the dataset's pipelines.)
_base_ = 'mmdet::_base_/default_runtime.py'

default_hooks = dict(
    logger=dict(type='LoggerHook', interval=50),
    # warmup min(3, max_epochs - 1) epochs (ultralytics 8.4; 8.3: max(3 epochs, 100 iters) =
    # warmup_min_iters=100, warmup_leave_last_epoch=False): bias lr 0.1 -> lr, momentum 0.8 -> 0.937,
    # accumulation 1 -> nominal; then linear decay to lr x 0.01 (replaces mmengine's ParamSchedulerHook)
    param_scheduler=dict(
        type='YOLOParamSchedulerHook',
        lr_factor=0.01,
        warmup_epochs=3,
        warmup_min_iters=0,
        warmup_leave_last_epoch=True,
        warmup_bias_lr=0.1,
        warmup_momentum=0.8,
        # the reference's accumulation ramp 1 -> 64 / batch over the warmup iterations
        warmup_accumulate=True),
    # save_best names the metric: 'auto' takes the first key, a per-class AP with classwise=True
    # YOLOCheckpointHook: mmengine's CheckpointHook; a failed write (a full disk) keeps the previous checkpoints
    # and training goes on (on_save_error='stop': stops); iter_interval=N also saves iter_{n}.pth every N
    # iterations (the newest kept), so --resume loses at most N iterations
    checkpoint=dict(type='YOLOCheckpointHook', interval=10, max_keep_ckpts=3, save_best='coco/bbox_mAP',
                    rule='greater', on_save_error='continue', iter_interval=0))

# YOLORunner (convnextv2_yolo/engine/runner.py): load_from a checkpoint with other classes as the
# reference fine-tunes (its class-branch width, class rows copied by name); otherwise mmengine's Runner
runner_type = 'YOLORunner'

# malloc (applied by YOLORunner, convnextv2_yolo/utils/malloc.py): freed tensors stay in the process
# (glibc's M_TRIM_THRESHOLD=-1, M_MMAP_MAX=0) instead of returning as page faults every iteration:
# -34% time per iteration at 640 px on CPU (docs/reference_recipe.md, "Throughput"); malloc=None for glibc's defaults
env_cfg = dict(cudnn_benchmark=True, malloc=dict(trim_threshold=-1, mmap_max=0))
log_processor = dict(type='LogProcessor', window_size=50, by_epoch=True)
