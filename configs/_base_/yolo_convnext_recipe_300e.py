# YOLO11 recipe for pretrained ConvNeXt (V1/V2) backbones: the YOLO data
# pipeline and hooks, with the AdamW + layer-wise LR decay schedule
# (schedules/convnext_adamw_300e.py) driven by mmengine's ParamSchedulerHook.
_base_ = ['./yolo_runtime.py', './datasets/yolo_coco_detection.py', './schedules/convnext_adamw_300e.py']

default_hooks = dict(param_scheduler=dict(_delete_=True, type='ParamSchedulerHook'))

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
    # <work_dir>/results.csv: one row per epoch with the reference's columns (per-image train losses,
    # mAP50 / mAP50-95, lr/pg0..), resume-safe (engine/hooks/results_csv_hook.py)
    dict(type='ResultsCSVHook'),
    # at the end of training (last validation) and of tools/test.py: confusion_matrix(_normalized).png,
    # BoxPR/F1/P/R_curve.png, results.png in the work dir (engine/hooks/validation_plots_hook.py);
    # enabled=False or --no-plots: none
    dict(type='ValidationPlotsHook', enabled=True),
]
