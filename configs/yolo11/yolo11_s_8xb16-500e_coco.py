# YOLO11-s on COCO (80 classes): 9,458,752 parameters, 21.84 GFLOPs at 640x640.
_base_ = './yolo11_n_8xb16-500e_coco.py'

# the reference's scale s (convnextv2_yolo.layers.YOLO_SCALES)
model = dict(backbone=dict(scale='s'), neck=dict(scale='s'))
