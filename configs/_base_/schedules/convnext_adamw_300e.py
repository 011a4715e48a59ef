# Fine-tuning schedule for pretrained ConvNeXt (V1/V2) backbones under the YOLO
# neck/head. AdamW + layer-wise LR decay rather than the YOLO SGD recipe:
# ConvNeXt and its FCMAE fine-tuning were trained with AdamW, and SGD at
# lr 0.01 with momentum quickly wipes out the pretrained LayerNorm/GRN
# statistics (mmdet's own ConvNeXt detectors, e.g. RTMDet + ConvNeXt-B and
# Mask R-CNN + ConvNeXt-V2, use AdamW with layer decay for the same reason).
_base_ = 'mmdet::_base_/schedules/schedule_1x.py'

max_epochs = 300
close_mosaic_epochs = 10
base_lr = 0.001

# mmengine's epoch loop whose checkpoints resume exactly, inside an epoch too (engine/loops.py)
train_cfg = dict(type='YOLOEpochBasedTrainLoop', max_epochs=max_epochs, val_interval=10,
                 dynamic_intervals=[(max_epochs - close_mosaic_epochs, 1)])

optim_wrapper = dict(
    _delete_=True,
    # mmengine's OptimWrapper that skips a step with a non-finite loss or gradient (logged); 10 skipped
    # steps in a row stop the run (engine/optimizers/nonfinite_skip.py)
    type='SkipNonFiniteOptimWrapper',
    nonfinite_skip=dict(max_consecutive=10),
    # mmdet's layer-wise LR decay; its num_layers is read from the backbone (ConvNeXtV2.lr_decay_num_layers:
    # 6 when the third stage has <= 9 blocks, atto..tiny, 12 otherwise)
    constructor='ConvNeXtLayerDecayOptimizerConstructor',
    paramwise_cfg=dict(decay_rate=0.8, decay_type='layer_wise'),
    clip_grad=dict(max_norm=10.0),
    optimizer=dict(type='AdamW', lr=base_lr, betas=(0.9, 0.999), weight_decay=0.05))

param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=1000),
    dict(type='CosineAnnealingLR', eta_min=base_lr * 0.05, begin=max_epochs // 2, end=max_epochs,
         T_max=max_epochs // 2, by_epoch=True, convert_to_iter_based=True),
]

auto_scale_lr = dict(enable=False, base_batch_size=128)
