# YOLO26-n neck and end-to-end head on a ConvNeXt V2-femto backbone with FCMAE
# self-supervised weights (mmpretrain's conversion; CC-BY-NC 4.0); the rest as the atto config.
_base_ = './yolo26_convnextv2-atto_fcmae_8xb16-300e_coco.py'

checkpoint = ('https://download.openmmlab.com/mmclassification/v0/convnext-v2/'
              'convnext-v2-femto_3rdparty-fcmae_in1k_20230104-adbe2082.pth')

model = dict(backbone=dict(arch='femto', init_cfg=dict(checkpoint=checkpoint)), neck=dict(scale='n'))
