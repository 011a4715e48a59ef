# YOLOv8-n on COCO (80 classes): 3,157,200 parameters, 8.86 GFLOPs at 640x640.
# The reference's scale n (convnextv2_yolo.layers.YOLO_SCALES); the other scales inherit this
# config and change only model.backbone.scale and model.neck.scale.
_base_ = ['../_base_/models/yolov8.py', '../_base_/yolo_recipe_500e.py']
