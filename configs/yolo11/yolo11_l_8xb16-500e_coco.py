# YOLO11-l on COCO (80 classes): 25,372,160 parameters, 87.85 GFLOPs at 640x640.
_base_ = './yolo11_n_8xb16-500e_coco.py'

# the reference's scale l (convnextv2_yolo.layers.YOLO_SCALES)
model = dict(backbone=dict(scale='l'), neck=dict(scale='l'))
