# Train YOLO11-n on your own COCO-format dataset: inherit any model config and
# set classes, data root, annotation files, epochs and batch size.
_base_ = '../yolo11/yolo11_n_8xb16-500e_coco.py'
data_root, classes = 'data/my_dataset/', ('cat', 'dog')
train_dataloader = dict(batch_size=16, dataset=dict(data_root=data_root, metainfo=dict(classes=classes),
                        ann_file='annotations/train.json', data_prefix=dict(img='images/train/')))
val_dataloader = dict(dataset=dict(data_root=data_root, metainfo=dict(classes=classes),
                      ann_file='annotations/val.json', data_prefix=dict(img='images/val/')))
test_dataloader, val_evaluator = val_dataloader, dict(ann_file=data_root + 'annotations/val.json')
test_evaluator, model, train_cfg = val_evaluator, dict(bbox_head=dict(num_classes=len(classes))), dict(max_epochs=100)
