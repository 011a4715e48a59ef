# YOLO11-m on COCO (80 classes): 20,114,688 parameters, 68.64 GFLOPs at 640x640.
_base_ = './yolo11_n_8xb16-500e_coco.py'

# the reference's scale m (convnextv2_yolo.layers.YOLO_SCALES)
model = dict(backbone=dict(scale='m'), neck=dict(scale='m'))
