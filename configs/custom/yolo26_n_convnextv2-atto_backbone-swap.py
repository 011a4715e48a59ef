# Backbone swap in one line: YOLO26-n neck and end-to-end head on ConvNeXt V2-atto. The
# neck reads the backbone's real channels and adds SPPF + C2PSA on P5 (no SPPF residual
# when its input and output channels differ). Any mmdet/mmpretrain backbone works the same way.
_base_ = '../yolo26/yolo26_n_8xb16-500e_coco.py'
model = dict(backbone=dict(_delete_=True, type='ConvNeXtV2', arch='atto'))
