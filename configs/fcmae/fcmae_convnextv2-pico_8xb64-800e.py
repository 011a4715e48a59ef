# FCMAE pretraining of ConvNeXt V2-pico on your unlabeled images (see _base_/fcmae_runtime.py).
# Continue from the official FCMAE weights (any layout the backbone reads, the sparse .pt included):
#   --cfg-options model.init_cfg.type=Pretrained model.init_cfg.checkpoint=convnextv2_pico_1k_224_fcmae.pt
_base_ = './_base_/fcmae_runtime.py'

arch = 'pico'
batch_size = 64
model = dict(arch=arch)
train_dataloader = dict(batch_size=batch_size)
