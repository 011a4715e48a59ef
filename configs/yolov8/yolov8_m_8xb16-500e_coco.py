# YOLOv8-m on COCO (80 classes): 25,902,640 parameters, 79.31 GFLOPs at 640x640.
_base_ = './yolov8_n_8xb16-500e_coco.py'

# the reference's scale m (convnextv2_yolo.layers.YOLO_SCALES)
model = dict(backbone=dict(scale='m'), neck=dict(scale='m'))
