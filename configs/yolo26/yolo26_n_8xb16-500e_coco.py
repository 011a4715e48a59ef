# YOLO26-n on COCO (80 classes): 2,572,280 parameters (both head branches, as the reference's
# training model). The reference's scale n (convnextv2_yolo.layers.YOLO_SCALES['yolo26'], YOLO11's
# table); the other scales inherit this config and change only model.backbone.scale and model.neck.scale.
_base_ = ['../_base_/models/yolo26.py', '../_base_/yolo_recipe_500e.py']

# the reference's per-epoch E2ELoss weights: one-to-many 0.8 in the first epoch to 0.1 in the last
# (linear over max_epochs - 1), one-to-one 1 - that (ultralytics/utils/loss.py E2ELoss.update / decay)
custom_hooks = _base_.custom_hooks + [dict(type='E2ELossScheduleHook', start=0.8, final=0.1)]
# the per-branch items (o2o_cls, o2m_bbox, ...) averaged over the logging window like the loss_* keys
# (mmengine averages only keys matching its mean_pattern), so that loss_x = w * o2m_x + (1 - w) * o2o_x
log_processor = dict(mean_pattern=r'.*(loss|time|data_time|grad_norm|o2o_|o2m_(cls|bbox|l1)).*')
