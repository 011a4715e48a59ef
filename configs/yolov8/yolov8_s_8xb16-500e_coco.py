# YOLOv8-s on COCO (80 classes): 11,166,560 parameters, 28.81 GFLOPs at 640x640.
_base_ = './yolov8_n_8xb16-500e_coco.py'

# the reference's scale s (convnextv2_yolo.layers.YOLO_SCALES)
model = dict(backbone=dict(scale='s'), neck=dict(scale='s'))
