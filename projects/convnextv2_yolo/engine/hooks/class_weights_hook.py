"""The reference's class weights (``cls_pw``) set on the class losses before training."""
import logging

import numpy as np
from mmdet.registry import HOOKS
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper

from ...losses.bce_loss import YOLOBCELoss


def count_classes(dataset, num_classes: int) -> np.ndarray:
    """Training labels per class of an mmdet dataset (its annotations, not augmented samples).

    Counts every instance of ``get_data_info(i)['instances']`` that is not ignored (COCO crowd boxes
    are not in the reference's labels), as the reference's ``DetectionTrainer.get_class_counts``
    counts ``dataset.labels``.
    """
    labels = []
    for i in range(len(dataset)):
        for inst in dataset.get_data_info(i).get('instances', ()):
            if not inst.get('ignore_flag', 0):
                labels.append(int(inst['bbox_label']))
    return np.bincount(np.asarray(labels, dtype=np.int64), minlength=num_classes).astype(np.float32)


@HOOKS.register_module()
class YOLOClassWeightsHook(Hook):
    """Class weights from the training labels for every ``YOLOBCELoss`` with ``cls_pw > 0``.

    The reference (Ultralytics 8.4, ``models/yolo/detect/train.py`` ``set_class_weights``, called by
    ``engine/trainer.py`` after the data loaders are built) sets ``model.class_weights =
    normalise((1 / count) ** cls_pw)`` and ``v8DetectionLoss`` multiplies its BCE map by them.
    Here the power is the loss's ``cls_pw`` (``model.bbox_head.loss_cls.cls_pw``); with 0 (the
    default everywhere) the hook does nothing, so it costs nothing in the recipes. Recomputed at
    every start (resume included): the weights are not saved in checkpoints.
    """

    priority = 'NORMAL'

    def before_train(self, runner) -> None:
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        losses = [m for m in model.modules() if isinstance(m, YOLOBCELoss) and m.cls_pw > 0]
        if not losses:
            return
        num_classes = getattr(getattr(model, 'bbox_head', None), 'num_classes', None)
        if num_classes is None:
            raise ValueError('YOLOClassWeightsHook: the model has no bbox_head.num_classes')
        counts = count_classes(runner.train_dataloader.dataset, num_classes)
        if len(counts) > num_classes:
            raise ValueError(f'YOLOClassWeightsHook: labels up to class {len(counts) - 1} for a head of '
                             f'{num_classes} classes')
        if not counts.any():  # the reference keeps the default (no) weights
            print_log('YOLOClassWeightsHook: no training label counted; class weights not set',
                      logger='current', level=logging.WARNING)
            for loss in losses:
                loss.cls_pw = 0.0
            return
        for loss in losses:
            weights = loss.set_class_weight(counts)
        names = (getattr(runner.train_dataloader.dataset, 'metainfo', None) or {}).get('classes') or []
        names = list(names) if len(names) == num_classes else [str(c) for c in range(num_classes)]
        listed = ', '.join(f'{n}: {float(w):.3f} ({int(c)} labels)' for n, w, c in zip(names, weights, counts))
        print_log(f'Class weights (cls_pw={losses[0].cls_pw}): {listed}', logger='current')
