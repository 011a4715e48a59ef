# YOLO11-n on COCO (80 classes): 2,624,080 parameters, 6.67 GFLOPs at 640x640.
_base_ = ['../_base_/models/yolo11.py', '../_base_/yolo_recipe_500e.py']

# [depth, width, max_channels] of scale n
deepen_factor = 0.5
widen_factor = 0.25
max_channels = 1024
c3k_all = False
# the backbone's real P3/P4/P5 channels, [128, 128, 256], are read by the neck (in_channels='auto')
neck_out_channels = [64, 128, 256]
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
