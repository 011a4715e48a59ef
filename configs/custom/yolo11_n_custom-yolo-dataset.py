# Your data in the reference's layout (images/ + labels/ + data.yaml), as it is: no conversion.
# (Or, with any config: python tools/train.py CONFIG --data data/my_dataset/data.yaml --imgsz 640)
_base_ = '../yolo11/yolo11_n_8xb16-500e_coco.py'
yolo_data = dict(type='YOLODataset', data_yaml='data/my_dataset/data.yaml')  # classes come from its `names`
train_dataloader = dict(batch_size=16, dataset=dict(yolo_data, split='train'))
val_dataloader = test_dataloader = dict(dataset=dict(yolo_data, split='val', test_mode=True))
val_evaluator = test_evaluator = dict(ann_file=None)  # COCO metrics, ground truth from the labels
model, train_cfg = dict(bbox_head=dict(num_classes=2)), dict(max_epochs=100)  # num_classes = len(names)
optim_wrapper = dict(optimizer=dict(_delete_=True, type='auto', weight_decay=5e-4))  # the reference's optimizer=auto
