"""YOLOMixUp, YOLOCopyPaste (the reference's ``MixUp`` / ``CopyPaste`` flip mode) and the cls_pw class
weights, on pixels and boxes."""
import os
import random
import subprocess

import numpy as np
import pytest
import torch
from mmdet.structures.bbox import HorizontalBoxes
from mmdet.structures.mask import PolygonMasks

from convnextv2_yolo.datasets.transforms import YOLOCopyPaste, YOLOMixUp
from convnextv2_yolo.datasets.transforms.yolo_mix import bbox_ioa
from convnextv2_yolo.losses import YOLOBCELoss, class_weights_from_counts

REF_PY = '/work/refvenv/bin/python'


def _sample(img, boxes, labels, polys=None):
    h, w = img.shape[:2]
    r = dict(img=img, img_shape=(h, w),
             gt_bboxes=HorizontalBoxes(torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4)),
             gt_bboxes_labels=np.asarray(labels, np.int64), gt_ignore_flags=np.zeros(len(labels), bool))
    if polys is not None:
        r['gt_masks'] = PolygonMasks([[np.asarray(p, np.float64).ravel()] for p in polys], h, w)
    return r


class _Dataset:
    """Data infos whose 'img' the (empty) loading passes through."""

    def __init__(self, samples):
        self.samples = samples

    def __len__(self):
        return len(self.samples)

    def get_data_info(self, i):
        s = self.samples[i]
        return dict(s, gt_bboxes=s['gt_bboxes'].clone(), img=s['img'].copy())


def test_mixup_blends_pixels_and_concatenates_labels():
    rng = np.random.default_rng(0)
    img1 = rng.integers(0, 256, (32, 48, 3), dtype=np.uint8)
    img2 = rng.integers(0, 256, (32, 48, 3), dtype=np.uint8)
    partner = _sample(img2, [[1, 2, 10, 12], [20, 5, 40, 30]], [3, 4])
    mix = YOLOMixUp(transforms=[], prob=1.0)
    results = _sample(img1.copy(), [[0, 0, 5, 5]], [7])
    results['dataset'] = _Dataset([partner])
    random.seed(1), np.random.seed(1)
    out = mix(results)
    np.random.seed(1)
    r = np.random.beta(32.0, 32.0)
    np.testing.assert_array_equal(out['img'], (img1 * r + img2 * (1 - r)).astype(np.uint8))
    assert 'dataset' not in out
    np.testing.assert_array_equal(out['gt_bboxes'].tensor.numpy(), [[0, 0, 5, 5], [1, 2, 10, 12], [20, 5, 40, 30]])
    np.testing.assert_array_equal(out['gt_bboxes_labels'], [7, 3, 4])
    assert out['gt_ignore_flags'].tolist() == [False] * 3


def test_mixup_prob_zero_is_the_wrapped_transforms_and_draws_nothing():
    img = np.full((8, 8, 3), 9, np.uint8)
    mix = YOLOMixUp(transforms=[dict(type='YOLOCopyPaste', ratio=0.5)], prob=0.0)
    state = random.getstate(), np.random.get_state()[1].copy()
    out = mix(_sample(img.copy(), [[0, 0, 4, 4]], [1]))
    assert random.getstate() == state[0] and (np.random.get_state()[1] == state[1]).all()
    np.testing.assert_array_equal(out['img'], img)
    assert len(out['gt_bboxes']) == 1


def test_mixup_needs_the_dataset():
    with pytest.raises(KeyError, match='dataset'):
        YOLOMixUp(transforms=[], prob=1.0)(_sample(np.zeros((4, 4, 3), np.uint8), [], []))


def _square(x1, y1, x2, y2):
    return [[x1, y1], [x2, y1], [x2, y2], [x1, y2]]


def test_copy_paste_flips_unoccluded_instances_with_boxes_and_polygons():
    h, w = 40, 100
    img = np.zeros((h, w, 3), np.uint8)
    img[5:15, 10:30] = (255, 0, 0)  # object 0: mirrored to x 70..90, free
    img[20:35, 40:55] = (0, 255, 0)  # object 1: mirrored to x 45..60, overlaps itself (ioa 10/15 > 0.3)
    boxes = [[10, 5, 30, 15], [40, 20, 55, 35]]
    polys = [_square(*b) for b in boxes]
    out = YOLOCopyPaste(ratio=1.0)(_sample(img.copy(), boxes, [2, 5], polys))
    np.testing.assert_array_equal(out['gt_bboxes'].tensor.numpy(), boxes + [[70, 5, 90, 15]])
    np.testing.assert_array_equal(out['gt_bboxes_labels'], [2, 5, 2])
    assert len(out['gt_masks']) == 3
    np.testing.assert_array_equal(out['gt_masks'].masks[2][0].reshape(-1, 2), [[90, 5], [70, 5], [70, 15], [90, 15]])
    # pixels: the mirrored object where its filled polygon is (cv2 fills the closed integer contour)
    assert (out['img'][5:15, 70:90] == (255, 0, 0)).all()  # the object's 20 x 10 mirrored pixels
    expected = img.copy()
    expected[5:16, 70:91] = np.flip(img, 1)[5:16, 70:91]
    np.testing.assert_array_equal(out['img'], expected)


def test_copy_paste_selection_is_the_reference_rule():
    rng = np.random.default_rng(3)
    xy = rng.uniform(0, 90, (30, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(2, 30, (30, 2))], 1)
    flipped = boxes.copy()
    flipped[:, 0], flipped[:, 2] = 120 - boxes[:, 2], 120 - boxes[:, 0]
    for ratio in (0.1, 0.5, 1.0):
        sel = YOLOCopyPaste(ratio=ratio).select(boxes, flipped)
        ioa = bbox_ioa(flipped, boxes)
        ok = [i for i in range(30) if (ioa[i] < 0.3).all()]
        ok = sorted(ok, key=lambda i: ioa[i].max())
        assert sel.tolist() == ok[:round(ratio * len(ok))]


def test_copy_paste_without_polygons_or_ratio_zero_does_nothing():
    img = np.arange(300, dtype=np.uint8).reshape(10, 10, 3)
    for t, r in ((YOLOCopyPaste(ratio=0.5), _sample(img.copy(), [[0, 0, 3, 3]], [1])),
                 (YOLOCopyPaste(ratio=0.0), _sample(img.copy(), [[0, 0, 3, 3]], [1], [_square(0, 0, 3, 3)]))):
        out = t(r)
        np.testing.assert_array_equal(out['img'], img)
        assert len(out['gt_bboxes']) == 1


def test_class_weights_formula():
    counts = np.array([10, 0, 40, 5], np.float32)
    w = (1 / np.where(counts > 0, counts, 1)) ** 0.5
    w = np.where(counts > 0, w, w[counts > 0].mean())
    np.testing.assert_allclose(class_weights_from_counts(counts, 0.5), w / w.mean(), rtol=1e-6)
    np.testing.assert_allclose(class_weights_from_counts(counts, 0.0), np.ones(4))


@pytest.mark.skipif(not os.path.exists(REF_PY), reason='reference venv absent')
def test_class_weights_equal_the_reference():
    code = ('import numpy as np, types\n'
            'from ultralytics.models.yolo.detect.train import DetectionTrainer as T\n'
            'c = np.array([10, 0, 40, 5, 1], np.float32)\n'
            'w = T.compute_class_weights(types.SimpleNamespace(args=types.SimpleNamespace(cls_pw=0.7)), c)\n'
            'print(" ".join(repr(float(x)) for x in w / w.mean()))')
    res = subprocess.run([REF_PY, '-c', code], capture_output=True, text=True, timeout=300,
                         env=dict(os.environ, PYTHONPATH='', YOLO_OFFLINE='1'))
    assert res.returncode == 0, res.stderr[-2000:]
    ref = np.array([float(x) for x in res.stdout.split()[-5:]])
    np.testing.assert_allclose(class_weights_from_counts([10, 0, 40, 5, 1], 0.7), ref, rtol=1e-6)


def test_bce_class_weights_dense_and_sparse():
    torch.manual_seed(0)
    pred = torch.randn(2, 7, 4, dtype=torch.float64)
    mask = torch.zeros(2, 7, dtype=torch.bool)
    mask[0, 1] = mask[1, 3] = mask[1, 6] = True
    labels = torch.tensor([2, 0, 3])
    scores = torch.tensor([0.5, 0.9, 0.3], dtype=torch.float64)
    target = torch.zeros_like(pred)
    target[mask] = torch.nn.functional.one_hot(labels, 4).double() * scores[:, None]
    loss = YOLOBCELoss(reduction='sum', cls_pw=1.0)
    with pytest.raises(RuntimeError, match='YOLOClassWeightsHook'):
        loss(pred, target)
    w = loss.set_class_weight([1, 2, 4, 8]).double()
    ref = (torch.nn.functional.binary_cross_entropy_with_logits(pred, target, reduction='none') * w).sum()
    torch.testing.assert_close(loss(pred, target), ref)
    torch.testing.assert_close(loss.sum_sparse(pred, mask, labels, scores), ref)
    torch.testing.assert_close(loss(pred, target, reduction_override='none').sum(), ref)
    off = YOLOBCELoss(reduction='sum')
    torch.testing.assert_close(off(pred, target), torch.nn.functional.binary_cross_entropy_with_logits(
        pred, target, reduction='sum'))
    assert 'class_weight' not in loss.state_dict()
    # not a buffer either: set after EMA hooks copied the model, a new buffer would shift the EMA's pairing
    assert 'class_weight' not in dict(loss.named_buffers())
    with pytest.raises(ValueError, match='cls_pw must be a number'):
        YOLOBCELoss(cls_pw='abc')
