# YOLOv8 detector (native CSP backbone with C2f + PAFPN + decoupled DFL head), scale n: the YOLO11 dict of
# ./yolo11.py with the YOLOv8 family (version='yolov8': C2f blocks, no C2PSA, residual-free neck blocks;
# the YOLOv8 class branch). configs/yolov8/yolov8_{s,m,l,x}_8xb16-500e_coco.py set model.backbone.scale and
# model.neck.scale (the reference's scales: table, in convnextv2_yolo.layers.YOLO_SCALES).
_base_ = './yolo11.py'

model = dict(
    backbone=dict(version='yolov8'),
    neck=dict(version='yolov8'),
    bbox_head=dict(cls_branch='yolov8'))
