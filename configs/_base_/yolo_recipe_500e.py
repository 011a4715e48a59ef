# The reference's YOLO11/YOLOv8 training recipe on mmdet's base configs:
# runtime + COCO data with YOLO augmentation + SGD schedule, and the custom
# hooks: EMA (0.9999, tau 2000), close mosaic for the last 10 epochs, class-count check.
_base_ = ['./yolo_runtime.py', './datasets/yolo_coco_detection.py', './schedules/yolo_sgd_500e.py']

custom_hooks = [
    # the reference's EMA: d = 0.9999 * (1 - exp(-updates / 2000)), one update per optimizer step (so
    # under gradient accumulation it warms up as slowly as the reference's); update_on='iteration'
    # updates every iteration (mmengine's way, the default before the training-parity measurements)
    dict(type='YOLOEMAHook', ema_type='YOLOModelEMA', decay=0.9999, tau=2000, update_on='optimizer_step',
         update_buffers=True, priority=49),
    dict(type='CloseMosaicHook', close_epochs={{_base_.close_mosaic_epochs}},
         switch_pipeline={{_base_.train_pipeline_stage2}}),
    # fails at start-up when the dataset's classes and the head's num_classes differ
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
