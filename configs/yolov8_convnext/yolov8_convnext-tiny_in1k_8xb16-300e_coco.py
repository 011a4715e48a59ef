# YOLOv8-m neck and head on an ImageNet-1k ConvNeXt (V1) Tiny, as in the second
# design article: the backbone stays frozen for the first epochs while the
# neck/head train, then everything is fine-tuned with layer-wise LR decay.
_base_ = ['../_base_/models/yolov8.py', '../_base_/yolo_convnext_recipe_300e.py']

checkpoint = ('https://download.openmmlab.com/mmclassification/v0/convnext/downstream/'
              'convnext-tiny_3rdparty_32xb128-noema_in1k_20220301-795e9634.pth')
freeze_backbone_epochs = 10
model = dict(
    data_preprocessor=dict(mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375], bgr_to_rgb=True),
    backbone=dict(
        _delete_=True,
        type='ConvNeXtV2',
        version='v1',  # ConvNeXt V1: no GRN, layer scale
        arch='tiny',
        out_indices=(1, 2, 3),
        drop_path_rate=0.2,
        init_cfg=dict(type='Pretrained', checkpoint=checkpoint, prefix='backbone.')),
    neck=dict(scale='m', sppf_c2psa=False))  # YOLOv8's scale m; the neck reads the backbone's channels

custom_hooks = [
    # update_on='iteration': mmengine's EMAHook, except that an iteration whose step was skipped (non-finite
    # loss or gradient) leaves the average untouched
    dict(type='YOLOEMAHook', ema_type='ExpMomentumEMA', update_on='iteration', momentum=0.0001, gamma=2000,
         update_buffers=True, priority=49),
    dict(type='CloseMosaicHook', close_epochs={{_base_.close_mosaic_epochs}},
         switch_pipeline={{_base_.train_pipeline_stage2}}),
    dict(type='NumClassCheckHook'),
    # the reference's class weights: with model.bbox_head.loss_cls.cls_pw > 0 they are computed from the
    # training labels before training (engine/hooks/class_weights_hook.py); nothing to do with cls_pw=0
    dict(type='YOLOClassWeightsHook'),
    dict(type='BackboneFreezeHook', freeze_epochs=freeze_backbone_epochs),
    # <work_dir>/results.csv: one row per epoch with the reference's columns (per-image train losses,
    # mAP50 / mAP50-95, lr/pg0..), resume-safe (engine/hooks/results_csv_hook.py)
    dict(type='ResultsCSVHook'),
    # at the end of training (last validation) and of tools/test.py: confusion_matrix(_normalized).png,
    # BoxPR/F1/P/R_curve.png, results.png in the work dir (engine/hooks/validation_plots_hook.py);
    # enabled=False or --no-plots: none
    dict(type='ValidationPlotsHook', enabled=True),
]
# the frozen backbone gets no gradients in the first epochs
model_wrapper_cfg = dict(type='MMDistributedDataParallel', find_unused_parameters=True)
