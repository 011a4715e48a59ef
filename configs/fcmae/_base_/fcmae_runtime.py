# FCMAE self-supervised pretraining of a ConvNeXt V2 encoder on unlabeled images (the official recipe of
# facebookresearch/ConvNeXt-V2: masking ratio 0.6 of 32-px patches, AdamW (0.9, 0.95), weight decay 0.05,
# lr 1.5e-4 x total batch / 256 (auto_scale_lr), linear warmup then cosine to 0, RandomResizedCrop(0.2-1) +
# flip). No validation: the log holds the reconstruction loss; checkpoints keep the encoder as `backbone.*`,
# ready for any detection config's `model.backbone.init_cfg.checkpoint`.
#   python tools/train.py configs/fcmae/fcmae_convnextv2-atto_8xb64-800e.py \
#       --cfg-options train_dataloader.dataset.source=path/to/images_or_list_or_data.yaml
# A shorter schedule: a child config that sets max_epochs / warmup_epochs and rebuilds param_scheduler
# (see docs/fcmae.md), or --cfg-options on train_cfg.max_epochs and the param_scheduler entries.
_base_ = 'mmdet::_base_/default_runtime.py'

custom_imports = dict(imports=['convnextv2_yolo'], allow_failed_imports=False)

arch = 'atto'
img_size = 224                    # a multiple of 32 (the masking patch)
batch_size = 64                   # per GPU / process
max_epochs = 800
warmup_epochs = 40
base_lr = 1.5e-4                  # for a total batch of 256; scaled by auto_scale_lr to the real batch
data_source = 'data/unlabeled/'   # folder(s) (recursive), .txt list(s) or data.yaml(s): the labels are ignored

model = dict(
    type='FCMAE', arch=arch, patch_size=32, mask_ratio=0.6, decoder_dim=512, decoder_depth=1, norm_pix_loss=True,
    # use the normalisation of the detection config you will fine-tune (ImageNet statistics here, as the
    # official FCMAE weights and configs/convnextv2_yolo; the demo feeds pixels / 255)
    data_preprocessor=dict(type='ImgDataPreprocessor', mean=[123.675, 116.28, 103.53],
                           std=[58.395, 57.12, 57.375], bgr_to_rgb=True))

train_pipeline = [
    dict(type='LoadImageFromFile', ignore_empty=True),  # an image that fails to decode: another one is drawn
    dict(type='mmpretrain.RandomResizedCrop', scale=img_size, crop_ratio_range=(0.2, 1.0),
         interpolation='bicubic', backend='pillow'),
    dict(type='mmpretrain.RandomFlip', prob=0.5),
    dict(type='mmpretrain.PackInputs'),
]
train_dataloader = dict(
    batch_size=batch_size, num_workers=8, persistent_workers=True, pin_memory=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(type='UnlabeledImageDataset', source=data_source, splits=('train', ), pipeline=train_pipeline))
val_dataloader = val_evaluator = val_cfg = None
test_dataloader = test_evaluator = test_cfg = None

# mmengine's epoch loop whose checkpoints resume exactly, inside an epoch too (engine/loops.py)
train_cfg = dict(type='YOLOEpochBasedTrainLoop', max_epochs=max_epochs)
optim_wrapper = dict(
    # mmengine's OptimWrapper that skips a step with a non-finite loss or gradient (logged); 10 skipped
    # steps in a row stop the run (engine/optimizers/nonfinite_skip.py)
    type='SkipNonFiniteOptimWrapper',
    nonfinite_skip=dict(max_consecutive=10),
    optimizer=dict(type='AdamW', lr=base_lr, betas=(0.9, 0.95), weight_decay=0.05),
    # no decay on biases, norms, GRN (the official add_weight_decay: 1-D parameters and biases)
    paramwise_cfg=dict(norm_decay_mult=0.0, bias_decay_mult=0.0, custom_keys={'.grn.': dict(decay_mult=0.0)}))
auto_scale_lr = dict(enable=True, base_batch_size=256)
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-4, by_epoch=True, begin=0, end=warmup_epochs, convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=max_epochs - warmup_epochs, eta_min=0., by_epoch=True,
         begin=warmup_epochs, end=max_epochs, convert_to_iter_based=True),
]
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=50),
    checkpoint=dict(type='YOLOCheckpointHook', interval=20, max_keep_ckpts=3, save_last=True,
                    on_save_error='continue', iter_interval=0))
log_processor = dict(type='LogProcessor', window_size=50, by_epoch=True)

# glibc malloc settings of the detection recipe (configs/_base_/yolo_runtime.py), applied by YOLORunner
# before anything is built (convnextv2_yolo/utils/malloc.py); env_cfg.malloc=None keeps glibc's defaults
runner_type = 'YOLORunner'
env_cfg = dict(malloc=dict(trim_threshold=-1, mmap_max=0))
