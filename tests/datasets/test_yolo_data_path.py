"""LetterResize, yolo_collate, YOLODetDataPreprocessor and a tiny end-to-end
train / predict step of YOLODetector through that path."""
import copy

import numpy as np
import pytest
import torch

pytest.importorskip('mmcv.ops')

from mmdet.datasets.transforms import PackDetInputs  # noqa: E402
from mmdet.models.data_preprocessors import DetDataPreprocessor  # noqa: E402,F401  (registers it)
from mmdet.registry import MODELS, TRANSFORMS  # noqa: E402
from mmdet.structures.bbox import HorizontalBoxes  # noqa: E402
from mmengine.dataset import pseudo_collate  # noqa: E402
from mmengine.optim import OptimWrapper  # noqa: E402
from mmengine.registry import FUNCTIONS, init_default_scope  # noqa: E402

import convnextv2_yolo  # noqa: E402,F401

META_KEYS = ('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor', 'pad_param')


def raw_item(h, w, boxes, labels, seed=0):
    rng = np.random.default_rng(seed)
    return dict(img=rng.integers(0, 255, (h, w, 3), dtype=np.uint8), img_id=seed, img_path=f'img{seed}.jpg',
                ori_shape=(h, w), img_shape=(h, w),
                gt_bboxes=HorizontalBoxes(np.asarray(boxes, dtype=np.float32).reshape(-1, 4)),
                gt_bboxes_labels=np.asarray(labels, dtype=np.int64),
                gt_ignore_flags=np.zeros(len(labels), dtype=bool))


def packed_item(h, w, boxes, labels, seed=0, scale=64):
    results = TRANSFORMS.build(dict(type='LetterResize', scale=(scale, scale)))(raw_item(h, w, boxes, labels, seed))
    return PackDetInputs(meta_keys=META_KEYS)(results)


def test_letter_resize_reference_rounding_and_padding():
    lr = TRANSFORMS.build(dict(type='LetterResize', scale=(64, 64)))
    out = lr(raw_item(45, 100, [[10, 5, 50, 40]], [1]))
    # r = 0.64 -> 64 x 29 (round(28.8)); dh = 17.5 -> top round(17.4)=17, bottom round(17.6)=18
    assert out['img'].shape == (64, 64, 3) and out['img_shape'] == (64, 64)
    np.testing.assert_array_equal(out['pad_param'], [17, 18, 0, 0])
    # per-axis ratios of the rounded size: 64/100 and 29/45 (not 0.64 on both axes)
    assert out['scale_factor'] == pytest.approx((0.64, 29 / 45))
    assert (out['img'][:17] == 114).all() and (out['img'][-18:] == 114).all()
    np.testing.assert_allclose(out['gt_bboxes'].numpy(), [[6.4, 5 * 29 / 45 + 17, 32, 40 * 29 / 45 + 17]],
                               rtol=1e-6)
    # no enlarging without allow_scale_up: 20 x 10 stays, padded centred
    small = TRANSFORMS.build(dict(type='LetterResize', scale=64, allow_scale_up=False))(
        raw_item(10, 20, [[0, 0, 20, 10]], [0]))
    np.testing.assert_array_equal(small['pad_param'], [27, 27, 22, 22])
    assert small['scale_factor'] == (1.0, 1.0)
    np.testing.assert_allclose(small['gt_bboxes'].numpy(), [[22, 27, 42, 37]])
    with pytest.raises(ValueError, match='scale'):
        TRANSFORMS.build(dict(type='LetterResize', scale=(0, 64)))


def test_letterbox_then_head_rescale_recovers_original_boxes():
    from convnextv2_yolo.dense_heads import YOLOHead
    boxes = [[10., 5., 50., 40.], [0., 0., 100., 45.]]
    out = TRANSFORMS.build(dict(type='LetterResize', scale=(96, 64)))(raw_item(45, 100, boxes, [0, 1]))
    back = YOLOHead._rescale(torch.as_tensor(out['gt_bboxes'].numpy()), out)
    torch.testing.assert_close(back, torch.tensor(boxes), atol=1e-4, rtol=0)


def test_yolo_collate_packs_boxes_and_keeps_samples():
    items = [packed_item(64, 64, [[1, 2, 30, 40], [5, 5, 9, 9]], [2, 0], seed=0),
             packed_item(64, 64, np.zeros((0, 4)), [], seed=1),
             packed_item(32, 64, [[0, 0, 64, 32]], [1], seed=2)]
    collate = FUNCTIONS.get('yolo_collate')
    batch = collate(items)
    assert batch['inputs'].shape == (3, 3, 64, 64) and batch['inputs'].dtype == torch.uint8
    assert len(batch['data_samples']) == 3
    torch.testing.assert_close(batch['bboxes_labels'], torch.tensor(
        [[0, 2, 1, 2, 30, 40], [0, 0, 5, 5, 9, 9], [2, 1, 0, 16, 64, 48]], dtype=torch.float32))
    # different sizes stay a list (the preprocessor pads them)
    odd = [items[0], PackDetInputs(meta_keys=META_KEYS)(raw_item(48, 64, [[1, 1, 5, 5]], [0]))]
    assert isinstance(collate(odd)['inputs'], list)
    with pytest.raises(KeyError, match='PackDetInputs'):
        collate([dict(img=np.zeros((2, 2, 3)))])


def preprocessor(cls=None):
    cfg = dict(type='YOLODetDataPreprocessor', mean=[0., 0., 0.], std=[255., 255., 255.], bgr_to_rgb=True)
    if cls is not None:
        cfg['type'] = cls
    return MODELS.build(cfg)


def test_preprocessor_train_and_val_outputs():
    items = [packed_item(64, 64, [[1, 2, 30, 40]], [2], seed=0), packed_item(50, 64, [[3, 3, 20, 20]], [1], seed=1)]
    batch = FUNCTIONS.get('yolo_collate')(items)
    pre = preprocessor()
    out = pre(copy.copy(batch), training=True)
    want = batch['inputs'][:, [2, 1, 0]].float() / 255
    torch.testing.assert_close(out['inputs'], want)
    assert set(out['data_samples']) == {'bboxes_labels', 'img_metas'}
    torch.testing.assert_close(out['data_samples']['bboxes_labels'], batch['bboxes_labels'])
    assert out['data_samples']['img_metas'][1]['pad_param'].tolist() == [7, 7, 0, 0]
    assert out['data_samples']['img_metas'][0]['batch_input_shape'] == (64, 64)
    # same result as mmdet's DetDataPreprocessor on the pseudo_collate batch
    ref = preprocessor('mmdet.DetDataPreprocessor')(pseudo_collate(items), training=True)
    torch.testing.assert_close(out['inputs'], ref['inputs'])
    val = pre(copy.copy(batch), training=False)
    assert isinstance(val['data_samples'], list) and val['data_samples'][0].pad_param.tolist() == [0, 0, 0, 0]
    torch.testing.assert_close(val['inputs'], want)
    # differently sized images: padded like mmdet, targets still packed
    odd = [items[0], PackDetInputs(meta_keys=META_KEYS)(raw_item(48, 64, [[1, 1, 5, 5]], [0]))]
    out = pre(FUNCTIONS.get('yolo_collate')(odd), training=True)
    assert out['inputs'].shape == (2, 3, 64, 64)
    assert out['data_samples']['bboxes_labels'].shape == (2, 6)


def tiny_detector():
    init_default_scope('mmdet')  # as a runner does (default_scope='mmdet')
    model = MODELS.build(dict(
        type='YOLODetector',
        data_preprocessor=dict(type='YOLODetDataPreprocessor', mean=[0., 0., 0.], std=[255., 255., 255.],
                               bgr_to_rgb=True),
        backbone=dict(type='mmdet.CSPDarknet', deepen_factor=0.33, widen_factor=0.125, out_indices=(2, 3, 4)),
        neck=None,
        bbox_head=dict(type='YOLOHead', num_classes=3, in_channels=[32, 64, 128]),
        train_cfg=dict(assigner=dict(type='BatchTaskAlignedAssigner', topk=10, alpha=0.5, beta=6.0, eps=1e-9)),
        test_cfg=dict(score_thr=0.001, nms_pre=1000, nms=dict(type='nms', iou_threshold=0.7), max_per_img=50,
                      multi_label=True)))
    model.init_weights()
    return model


def test_end_to_end_train_step_and_predict_through_fast_path():
    torch.manual_seed(0)
    model = tiny_detector()
    items = [packed_item(64, 64, [[4, 6, 40, 50], [30, 20, 62, 60]], [1, 2], seed=0),
             packed_item(48, 80, [[10, 10, 70, 40]], [0], seed=1)]
    collate = FUNCTIONS.get('yolo_collate')

    # the fast path and mmdet's default path give the same losses
    model.eval()  # frozen BN statistics so both passes see the same network
    fast = model(**model.data_preprocessor(collate(items), True), mode='loss')
    slow_pre = preprocessor('mmdet.DetDataPreprocessor')
    slow = model(**slow_pre(pseudo_collate(items), True), mode='loss')
    for key in fast:
        torch.testing.assert_close(fast[key], slow[key])

    model.train()
    optim = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9))
    before = model.bbox_head.reg_convs[0][2].weight.detach().clone()
    log_vars = model.train_step(collate(items), optim)
    assert {'loss', 'loss_cls', 'loss_bbox', 'loss_dfl'} <= set(log_vars)
    assert all(torch.isfinite(v) for v in log_vars.values())
    assert not torch.equal(before, model.bbox_head.reg_convs[0][2].weight)
    # an image without boxes trains too
    log_vars = model.train_step(collate([packed_item(64, 64, np.zeros((0, 4)), [], seed=3)]), optim)
    assert torch.isfinite(log_vars['loss'])

    model.eval()
    preds = model.val_step(collate(items))
    assert len(preds) == 2 and preds[1].pred_instances.bboxes.shape[1] == 4
    b = preds[1].pred_instances.bboxes
    assert (b[:, 0] >= 0).all() and (b[:, 2] <= 80).all() and (b[:, 3] <= 48).all()
