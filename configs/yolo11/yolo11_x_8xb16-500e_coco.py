# YOLO11-x on COCO (80 classes): 56,966,176 parameters, 196.32 GFLOPs at 640x640.
_base_ = './yolo11_n_8xb16-500e_coco.py'

# the reference's scale x (convnextv2_yolo.layers.YOLO_SCALES)
model = dict(backbone=dict(scale='x'), neck=dict(scale='x'))
