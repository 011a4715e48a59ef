# YOLO11-n on COCO (80 classes): 2,624,080 parameters, 6.67 GFLOPs at 640x640.
# The reference's scale n (convnextv2_yolo.layers.YOLO_SCALES); the other scales inherit this
# config and change only model.backbone.scale and model.neck.scale.
_base_ = ['../_base_/models/yolo11.py', '../_base_/yolo_recipe_500e.py']
