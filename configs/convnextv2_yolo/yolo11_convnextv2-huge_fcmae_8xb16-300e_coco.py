# YOLO11-x neck and head on a ConvNeXt V2-huge backbone with FCMAE self-supervised
# weights (mmpretrain's conversion; CC-BY-NC 4.0); the rest as the atto config.
_base_ = './yolo11_convnextv2-atto_fcmae_8xb16-300e_coco.py'

checkpoint = ('https://download.openmmlab.com/mmclassification/v0/convnext-v2/'
              'convnext-v2-huge_3rdparty-fcmae_in1k_20230104-fe43ae6c.pth')

model = dict(backbone=dict(arch='huge', init_cfg=dict(checkpoint=checkpoint)), neck=dict(scale='x'))
