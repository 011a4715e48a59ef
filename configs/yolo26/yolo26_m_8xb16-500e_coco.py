# YOLO26-m on COCO (80 classes): 21,896,248 parameters (both head branches).
_base_ = './yolo26_n_8xb16-500e_coco.py'

# the reference's scale m (convnextv2_yolo.layers.YOLO_SCALES)
model = dict(backbone=dict(scale='m'), neck=dict(scale='m'))
