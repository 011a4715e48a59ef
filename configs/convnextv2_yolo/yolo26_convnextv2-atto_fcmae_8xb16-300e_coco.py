# YOLO26-n neck and end-to-end head on a ConvNeXt V2-atto backbone with FCMAE
# self-supervised weights (mmpretrain's conversion; CC-BY-NC 4.0). The same file as
# yolo11_convnextv2-atto_fcmae_8xb16-300e_coco.py but for its first base: the YOLO26 model
# (neck version='yolo26', YOLOE2EHead, its train/test settings). The neck reads the
# backbone's channels and adds YOLO26's SPPF + C2PSA on P5 (no SPPF residual: its input and
# output channels differ after this backbone).
# The other ConvNeXt V2 sizes inherit this config: backbone arch, weights, neck scale.
_base_ = ['../_base_/models/yolo26.py', '../_base_/yolo_convnext_recipe_300e.py']

# the reference's per-epoch E2ELoss weights: one-to-many 0.8 in the first epoch to 0.1 in the last
# (linear over max_epochs - 1), one-to-one 1 - that (ultralytics/utils/loss.py E2ELoss.update / decay)
custom_hooks = _base_.custom_hooks + [dict(type='E2ELossScheduleHook', start=0.8, final=0.1)]
# the per-branch items (o2o_cls, o2m_bbox, ...) averaged over the logging window like the loss_* keys
# (mmengine averages only keys matching its mean_pattern), so that loss_x = w * o2m_x + (1 - w) * o2o_x
log_processor = dict(mean_pattern=r'.*(loss|time|data_time|grad_norm|o2o_|o2m_(cls|bbox|l1)).*')

checkpoint = ('https://download.openmmlab.com/mmclassification/v0/convnext-v2/'
              'convnext-v2-atto_3rdparty-fcmae_in1k_20230104-07514db4.pth')

model = dict(
    # ImageNet statistics, as the backbone was pretrained with them
    data_preprocessor=dict(mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375], bgr_to_rgb=True),
    backbone=dict(
        _delete_=True,
        type='ConvNeXtV2',
        arch='atto',
        out_indices=(1, 2, 3),
        drop_path_rate=0.1,
        init_cfg=dict(type='Pretrained', checkpoint=checkpoint, prefix='backbone.')),
    neck=dict(scale='n'))  # YOLO26's scale n (convnextv2_yolo.layers.YOLO_SCALES)
