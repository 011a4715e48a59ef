# YOLOv8-m on COCO (80 classes): 25,902,640 parameters, 79.31 GFLOPs at 640x640.
_base_ = ['../_base_/models/yolov8.py', '../_base_/yolo_recipe_500e.py']

# [depth, width, max_channels] of scale m
deepen_factor = 0.67
widen_factor = 0.75
max_channels = 768
# the backbone's real P3/P4/P5 channels, [192, 384, 576], are read by the neck (in_channels='auto')
neck_out_channels = [192, 384, 576]
num_classes = 80

model = dict(
    backbone=dict(
        deepen_factor=deepen_factor,
        widen_factor=widen_factor,
        max_channels=max_channels),
    neck=dict(
        deepen_factor=deepen_factor,
        widen_factor=widen_factor,
        max_channels=max_channels),
    bbox_head=dict(num_classes=num_classes, in_channels=neck_out_channels))
