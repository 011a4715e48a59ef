# YOLO26-s on COCO (80 classes): 10,009,784 parameters (both head branches).
_base_ = './yolo26_n_8xb16-500e_coco.py'

# the reference's scale s (convnextv2_yolo.layers.YOLO_SCALES)
model = dict(backbone=dict(scale='s'), neck=dict(scale='s'))
