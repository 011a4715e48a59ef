# YOLO11-n neck and head on a ConvNeXt V2-femto backbone with FCMAE
# self-supervised weights (mmpretrain's conversion; CC-BY-NC 4.0). The neck
# adds SPPF + C2PSA on P5, which the native YOLO11 backbone has inside.
_base_ = ['../_base_/models/yolo11.py', '../_base_/yolo_convnext_recipe_300e.py']

checkpoint = ('https://download.openmmlab.com/mmclassification/v0/convnext-v2/'
              'convnext-v2-femto_3rdparty-fcmae_in1k_20230104-adbe2082.pth')
# YOLO11-n scale of the neck/head: [depth, width, max_channels]
deepen_factor, widen_factor, max_channels, c3k_all = 0.5, 0.25, 1024, False

model = dict(
    # ImageNet statistics, as the backbone was pretrained with them
    data_preprocessor=dict(mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375], bgr_to_rgb=True),
    backbone=dict(
        _delete_=True,
        type='ConvNeXtV2',
        arch='femto',
        out_indices=(1, 2, 3),
        drop_path_rate=0.1,
        init_cfg=dict(type='Pretrained', checkpoint=checkpoint, prefix='backbone.')),
    neck=dict(
        in_channels=[96, 192, 384],  # the backbone's real P3/P4/P5 channels
        deepen_factor=deepen_factor,
        widen_factor=widen_factor,
        max_channels=max_channels,
        c3k_all=c3k_all,
        sppf_c2psa=True),
    bbox_head=dict(in_channels=[64, 128, 256]))

# layer-wise LR decay: 6 layers (the third stage has <= 9 blocks)
optim_wrapper = dict(paramwise_cfg=dict(num_layers=6))
