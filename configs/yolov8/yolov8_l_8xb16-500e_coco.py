# YOLOv8-l on COCO (80 classes): 43,691,520 parameters, 165.73 GFLOPs at 640x640.
_base_ = './yolov8_n_8xb16-500e_coco.py'

# the reference's scale l (convnextv2_yolo.layers.YOLO_SCALES)
model = dict(backbone=dict(scale='l'), neck=dict(scale='l'))
