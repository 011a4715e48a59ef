# YOLO26-x on COCO (80 classes): 58,993,368 parameters (both head branches).
_base_ = './yolo26_n_8xb16-500e_coco.py'

# the reference's scale x (convnextv2_yolo.layers.YOLO_SCALES)
model = dict(backbone=dict(scale='x'), neck=dict(scale='x'))
