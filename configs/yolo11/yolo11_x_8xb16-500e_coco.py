# YOLO11-x on COCO (80 classes): 56,966,176 parameters, 196.32 GFLOPs at 640x640.
_base_ = ['../_base_/models/yolo11.py', '../_base_/yolo_recipe_500e.py']

# [depth, width, max_channels] of scale x
deepen_factor = 1.0
widen_factor = 1.5
max_channels = 512
c3k_all = True  # every C3k2 uses C3k blocks at m/l/x
# the backbone's real P3/P4/P5 channels, [768, 768, 768], are read by the neck (in_channels='auto')
neck_out_channels = [384, 768, 768]
num_classes = 80

model = dict(
    backbone=dict(
        deepen_factor=deepen_factor,
        widen_factor=widen_factor,
        max_channels=max_channels,
        c3k_all=c3k_all),
    neck=dict(
        deepen_factor=deepen_factor,
        widen_factor=widen_factor,
        max_channels=max_channels,
        c3k_all=c3k_all),
    bbox_head=dict(num_classes=num_classes, in_channels=neck_out_channels))
