# YOLO26-l on COCO (80 classes): 26,299,704 parameters (both head branches).
_base_ = './yolo26_n_8xb16-500e_coco.py'

# the reference's scale l (convnextv2_yolo.layers.YOLO_SCALES)
model = dict(backbone=dict(scale='l'), neck=dict(scale='l'))
