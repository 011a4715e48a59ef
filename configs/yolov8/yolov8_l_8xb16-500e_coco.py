# YOLOv8-l on COCO (80 classes): 43,691,520 parameters, 165.73 GFLOPs at 640x640.
_base_ = ['../_base_/models/yolov8.py', '../_base_/yolo_recipe_500e.py']

# [depth, width, max_channels] of scale l
deepen_factor = 1.0
widen_factor = 1.0
max_channels = 512
# the backbone's real P3/P4/P5 channels, [256, 512, 512], are read by the neck (in_channels='auto')
neck_out_channels = [256, 512, 512]
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
