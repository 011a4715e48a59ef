# YOLOv8-x on COCO (80 classes): 68,229,648 parameters, 258.54 GFLOPs at 640x640.
_base_ = './yolov8_n_8xb16-500e_coco.py'

# the reference's scale x (convnextv2_yolo.layers.YOLO_SCALES)
model = dict(backbone=dict(scale='x'), neck=dict(scale='x'))
