# The reference optimiser: SGD lr 0.01, momentum 0.937, Nesterov, weight decay
# 5e-4 scaled by (total batch x accumulation) / 64, no decay on biases and norm
# (BatchNorm / LayerNorm / GRN) parameters, gradient clipping at 10.
_base_ = 'mmdet::_base_/schedules/schedule_1x.py'

max_epochs = 500
close_mosaic_epochs = 10

# mmengine's epoch loop whose checkpoints resume exactly, inside an epoch too (engine/loops.py)
train_cfg = dict(type='YOLOEpochBasedTrainLoop', max_epochs=max_epochs, val_interval=10,
                 dynamic_intervals=[(max_epochs - close_mosaic_epochs, 1)])

# the LR/momentum schedule lives in YOLOParamSchedulerHook (see yolo_runtime.py)
param_scheduler = None

# YOLOOptimWrapper: the gradient accumulation (to the nominal batch of 64) and the
# weight-decay scale follow train_dataloader.batch_size x world size; the
# accumulated gradients are summed, as in the reference
optim_wrapper = dict(
    type='YOLOOptimWrapper',
    constructor='YOLOOptimWrapperConstructor',
    clip_grad=dict(max_norm=10.0),
    optimizer=dict(type='SGD', lr=0.01, momentum=0.937, nesterov=True, weight_decay=5e-4),
    paramwise_cfg=dict(nominal_batch_size=64),
    # written out although they are the wrapper's defaults, so that the recipe shows them:
    accumulative_counts=None,  # None: max(round(64 / total batch), 1), derived when training starts
    nominal_batch_size=64,
    sum_accumulated_grads=True,  # the reference sums accumulated gradients (mmengine averages: False)
    # optimizer=dict(type='auto') (set by --data): above 10,000 iterations ultralytics 8.4's MuSGD;
    # 'SGD' is 8.3's choice (SGD lr 0.01, momentum 0.9, Nesterov)
    auto_large_optimizer='MuSGD',
    # a step with a non-finite loss or gradient is skipped (weights, optimizer state, EMA untouched; logged);
    # 10 skipped steps in a row stop the run (engine/optimizers/nonfinite_skip.py)
    nonfinite_skip=dict(max_consecutive=10))

# the reference keeps lr 0.01 for any batch (it accumulates up to 64); 8 GPUs x 16 here
auto_scale_lr = dict(enable=False, base_batch_size=128)
