# Backbone swap in one line: YOLO11-n neck/head on ConvNeXt V2-atto. The neck
# reads the backbone's real channels and adds SPPF + C2PSA on P5 (the native
# backbone has them inside). Any mmdet/mmpretrain backbone works the same way.
_base_ = '../yolo11/yolo11_n_8xb16-500e_coco.py'
model = dict(backbone=dict(_delete_=True, type='ConvNeXtV2', arch='atto'))
