"""YOLOMosaic, the centred YOLORandomAffine and LetterResize's per-axis box scaling against the reference.

The reference (Ultralytics): every image is resized to long side s (size rounded up, capped at s)
into a FIFO buffer; the mosaic draws its 3 partners from that buffer with replacement, the current
image included, so no sample passes through; the affine warps about the image centre.
"""
import json
import math
import os.path as osp
import random

import cv2
import numpy as np
import pytest
import torch
from mmcv.transforms import Compose
from mmdet.registry import TRANSFORMS
from mmdet.structures.bbox import HorizontalBoxes
from mmengine.registry import init_default_scope

import convnextv2_yolo  # noqa: F401
from convnextv2_yolo.datasets.transforms import LetterResize, YOLOMosaic, YOLORandomAffine
from convnextv2_yolo.dense_heads import YOLOHead
from tests.helpers.paths import ROOT

S = 160  # small image size: the recipe's transforms at 160 instead of 640 keep the tests fast


@pytest.fixture(autouse=True)
def _scope():
    init_default_scope('mmdet')


def item(h, w, boxes=None, labels=None, img=None, channels=3, seed=0, idx=0):
    if img is None:
        shape = (h, w) if channels == 0 else (h, w, channels)
        img = np.random.default_rng(seed).integers(0, 255, shape, dtype=np.uint8)
    boxes = np.zeros((0, 4), np.float32) if boxes is None else np.asarray(boxes, np.float32).reshape(-1, 4)
    labels = np.zeros(len(boxes), np.int64) if labels is None else np.asarray(labels, np.int64)
    return dict(img=img, img_shape=img.shape[:2], ori_shape=img.shape[:2], img_id=idx, img_path=f'{idx}.png',
                gt_bboxes=HorizontalBoxes(torch.as_tensor(boxes)), gt_bboxes_labels=labels,
                gt_ignore_flags=np.zeros(len(boxes), bool))


def full_box(h, w):
    return [[0, 0, w, h]]


def recipe_pipeline(size=S):
    """The default YOLO11-n training pipeline (configs/yolo11) with its sizes scaled to ``size`` (as --imgsz)."""
    from mmengine.config import Config

    from convnextv2_yolo.datasets.data_overrides import set_image_size
    cfg = Config.fromfile(osp.join(ROOT, 'configs', 'yolo11', 'yolo11_n_8xb16-500e_coco.py'))
    set_image_size(cfg, size)
    return cfg, [dict(t) for t in cfg.train_dataloader.dataset.pipeline]


# ---------------------------------------------------------------------------------------------------
# Defect A: no sample passes through the mosaic, the first samples of a worker included
# ---------------------------------------------------------------------------------------------------
def test_recipe_pipeline_uses_the_reference_mosaic_and_buffer_rule():
    from mmengine.config import Config
    cfg = Config.fromfile(osp.join(ROOT, 'configs', 'yolo11', 'yolo11_n_8xb16-500e_coco.py'))
    mixup = cfg.train_dataloader.dataset.pipeline[2]
    types = [t['type'] for t in mixup['transforms']]  # inside YOLOMixUp, as the reference's pre_transform
    assert mixup['type'] == 'YOLOMixUp' and types == ['YOLOMosaic', 'YOLOCopyPaste', 'YOLORandomAffine']
    mosaic = mixup['transforms'][0]
    assert mosaic['max_cached_images'] == min(cfg.train_batch_size_per_gpu * 8, 1000) == 128
    assert mosaic['prob'] == 1.0 and tuple(mosaic['img_scale']) == (640, 640)


def test_every_sample_from_sample_0_keeps_boxes_and_has_the_output_size(tmp_path):
    """One 160x120 image with one large box through the default pipeline (at s = 160)."""
    path = str(tmp_path / 'img.png')
    cv2.imwrite(path, np.random.default_rng(0).integers(0, 255, (120, 160, 3), dtype=np.uint8))
    _, pipeline = recipe_pipeline()
    pipeline = Compose([TRANSFORMS.build(t) for t in pipeline[2:]])  # after LoadImage/LoadAnnotations
    random.seed(0)
    np.random.seed(0)
    counts = []
    for i in range(24):
        img = cv2.imread(path)
        out = pipeline(item(120, 160, [[8, 6, 152, 114]], img=img, idx=0))
        assert tuple(out['inputs'].shape) == (3, S, S), i
        counts.append(len(out['data_samples'].gt_instances.bboxes))
    assert min(counts) >= 1, counts  # before the fix: samples 0-3 had 0 boxes (raw 160x120 image)


def _write_coco(root, n=16, w=160, h=120):
    """n images, each with 1-2 large boxes (every training sample must keep a box)."""
    import os
    os.makedirs(osp.join(root, 'images'), exist_ok=True)
    rng = np.random.default_rng(1)
    images, anns = [], []
    for i in range(n):
        name = f'{i:03d}.png'
        cv2.imwrite(osp.join(root, 'images', name), rng.integers(0, 255, (h, w, 3), dtype=np.uint8))
        images.append(dict(id=i + 1, file_name=name, width=w, height=h))
        for k in range(1 + i % 2):
            x, y = float(rng.integers(0, 12)), float(rng.integers(0, 10))
            bw, bh = w - 2 * x - 10 * k, h - 2 * y - 8 * k
            anns.append(dict(id=len(anns) + 1, image_id=i + 1, category_id=1 + k, bbox=[x, y, bw, bh],
                             area=bw * bh, iscrowd=0))
    cats = [dict(id=1, name='a'), dict(id=2, name='b')]
    with open(osp.join(root, 'ann.json'), 'w') as f:
        json.dump(dict(images=images, annotations=anns, categories=cats), f)


def test_multi_worker_loader_first_epoch_every_sample_has_boxes(tmp_path):
    """2 workers, persistent_workers=False, one epoch of 16 samples (before the fix: 8 had no box)."""
    from mmdet.registry import DATASETS
    from mmengine.dataset import pseudo_collate
    from torch.utils.data import DataLoader
    _write_coco(str(tmp_path))
    _, pipeline = recipe_pipeline()
    dataset = DATASETS.build(dict(type='CheckedCocoDataset', data_root=str(tmp_path) + '/', ann_file='ann.json',
                                  data_prefix=dict(img='images/'), metainfo=dict(classes=('a', 'b')),
                                  filter_cfg=dict(filter_empty_gt=False, min_size=0), pipeline=pipeline))
    assert len(dataset) == 16
    loader = DataLoader(dataset, batch_size=4, num_workers=2, persistent_workers=False, shuffle=False,
                        collate_fn=pseudo_collate)
    counts, shapes = [], set()
    for batch in loader:
        for inputs, sample in zip(batch['inputs'], batch['data_samples']):
            shapes.add(tuple(inputs.shape))
            counts.append(len(sample.gt_instances.bboxes))
    assert len(counts) == 16 and shapes == {(3, S, S)}
    assert min(counts) >= 1, counts


def _entries(n, h=120, w=160):
    """n images with a box that fills the image, label = image index."""
    return [item(h, w, full_box(h, w), [i], seed=i, idx=i) for i in range(n)]


def test_first_sample_is_a_mosaic_of_four_copies_of_itself():
    random.seed(0)
    mosaic = YOLOMosaic(img_scale=(S, S), max_cached_images=8)
    out = mosaic(_entries(1)[0])
    assert out['img'].shape == (2 * S, 2 * S, 3)
    assert out['gt_bboxes_labels'].tolist() == [0, 0, 0, 0]  # 4 copies, each box partly visible
    assert (out['img'] != 114).any(axis=-1).mean() > 0.25


def test_buffer_is_fifo_with_max_length_and_partners_come_from_it():
    random.seed(1)
    mosaic = YOLOMosaic(img_scale=(S, S), max_cached_images=4)
    seen_partner_self = False
    for i, results in enumerate(_entries(12)):
        out = mosaic(results)
        ids = [e['img_id'] for e in mosaic.buffer]
        assert ids == list(range(max(0, i - 3), i + 1))  # FIFO, at most 4, the current image last
        labels = out['gt_bboxes_labels'].tolist()  # full-image boxes: all 4 survive, in quadrant order
        assert len(labels) == 4 and labels[0] == i
        assert set(labels[1:]) <= set(ids)
        seen_partner_self |= i in labels[1:]
    assert seen_partner_self  # the current image is a candidate partner (drawn with replacement)
    # with replacement: a buffer of 2 images still gives 3 partners
    mosaic = YOLOMosaic(img_scale=(S, S), max_cached_images=2)
    for results in _entries(3):
        out = mosaic(results)
    assert len(out['gt_bboxes_labels']) == 4 and set(out['gt_bboxes_labels'][1:]) <= {1, 2}
    # the buffer holds the RESIZED images (bounded memory)
    mosaic(item(1200, 1600, full_box(1200, 1600), [0]))
    assert mosaic.buffer[-1]['img'].shape == (120, 160, 3)


def test_mosaic_box_scaling_uses_the_rounded_resized_size():
    """3775x1571 at 640: resized to 640x267 (ceil); a full-image box spans exactly each pasted region."""
    h, w = 1571, 3775
    mosaic = YOLOMosaic(img_scale=(640, 640), center_ratio_range=(1.0, 1.0))
    random.seed(0)
    out = mosaic(item(h, w, full_box(h, w), img=np.full((h, w, 3), 7, np.uint8)))
    assert mosaic.buffer[-1]['img'].shape == (267, 640, 3)  # ceil(1571 * 640 / 3775) = ceil(266.3)
    want = [[0, 373, 640, 640], [640, 373, 1280, 640], [0, 640, 640, 907], [640, 640, 1280, 907]]
    np.testing.assert_allclose(out['gt_bboxes'].numpy(), want, atol=1e-3)
    for x1, y1, x2, y2 in want:  # the pixels are exactly there
        assert (out['img'][y1:y2, x1:x2] == 7).all()
    assert (out['img'][:373] == 114).all() and (out['img'][907:] == 114).all()
    # portrait and an image smaller than s (scaled up, as the reference's load_image)
    for h, w, new in [(1280, 33, (17, 640)), (30, 50, (160, 96))]:
        m = YOLOMosaic(img_scale=(max(new), max(new)), center_ratio_range=(1.0, 1.0))
        out = m(item(h, w, full_box(h, w)))
        nw, nh = new
        assert m.buffer[-1]['img'].shape[:2] == (nh, nw)
        s = max(new)
        np.testing.assert_allclose(out['gt_bboxes'].numpy()[0], [s - nw, s - nh, s, s], atol=1e-3)


def test_mosaic_clips_boxes_and_drops_zero_area_ones():
    random.seed(0)
    mosaic = YOLOMosaic(img_scale=(S, S), center_ratio_range=(1.0, 1.0))
    # box partly outside the image and a box in the region cropped away (top-left copy: nothing is
    # cropped at xc = yc = s, so use a box outside the image)
    out = mosaic(item(120, 160, [[10, 10, 50, 50], [-30, 10, -5, 50], [150, 100, 400, 400]], [0, 1, 2]))
    boxes = out['gt_bboxes'].numpy()
    assert (boxes[:, 0::2] >= 0).all() and (boxes[:, 0::2] <= 2 * S).all() and (boxes[:, 1::2] <= 2 * S).all()
    assert ((boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])).all()
    assert 0 in out['gt_bboxes_labels'] and 2 in out['gt_bboxes_labels']
    assert len(out['gt_ignore_flags']) == len(boxes) == len(out['gt_bboxes_labels'])


def test_mosaic_without_boxes_grayscale_and_numpy_boxes():
    random.seed(0)
    # images without boxes: a background mosaic, no crash, then through the affine
    mosaic = YOLOMosaic(img_scale=(S, S))
    affine = YOLORandomAffine(max_rotate_degree=0, max_shear_degree=0, border=(-S // 2, -S // 2))
    for _ in range(3):
        out = affine(mosaic(item(120, 160)))
        assert out['img'].shape == (S, S, 3) and len(out['gt_bboxes']) == 0
        assert out['gt_bboxes_labels'].dtype == np.int64 and out['gt_ignore_flags'].dtype == bool
    # 2-D grayscale images: a 2-D canvas; a (h, w, 1) / 2-D partner on a colour canvas is broadcast
    mosaic = YOLOMosaic(img_scale=(S, S))
    out = affine(mosaic(item(120, 160, [[0, 0, 100, 100]], channels=0)))
    assert out['img'].shape == (S, S) and len(out['gt_bboxes']) >= 1
    mosaic = YOLOMosaic(img_scale=(S, S))
    mosaic(item(120, 160, channels=1))
    out = mosaic(item(120, 160, channels=3))
    assert out['img'].shape == (2 * S, 2 * S, 3)
    out = YOLOMosaic(img_scale=(S, S))(item(300, 400, channels=1))  # (h, w, 1) survives the resize
    assert out['img'].shape == (2 * S, 2 * S, 1)
    with pytest.raises(ValueError, match='same channels'):  # colour partners on a gray canvas
        for _ in range(10):
            mosaic(item(120, 160, channels=1))
    # boxes given as np.ndarray (mmdet's autocast) come back as np.ndarray
    res = item(120, 160, [[0, 0, 160, 120]])
    res['gt_bboxes'] = res['gt_bboxes'].numpy()
    out = YOLOMosaic(img_scale=(S, S))(res)
    assert isinstance(out['gt_bboxes'], np.ndarray) and out['gt_bboxes'].shape == (4, 4)


def test_mosaic_rejects_masks_and_bad_arguments():
    res = item(120, 160, [[0, 0, 10, 10]])
    res['gt_masks'] = object()
    with pytest.raises(ValueError, match='gt_masks'):
        YOLOMosaic(img_scale=(S, S))(res)
    for kwargs in (dict(prob=1.5), dict(max_cached_images=0), dict(img_scale=(0, 64)),
                   dict(center_ratio_range=(1.5, 0.5))):
        with pytest.raises(ValueError):
            YOLOMosaic(**kwargs)
    assert 'max_cached_images=128' in repr(YOLOMosaic())


def test_mosaic_probability_and_the_centred_placement():
    random.seed(0)
    mosaic = YOLOMosaic(img_scale=(S, S), prob=0.0)
    img = np.full((120, 160, 3), 9, np.uint8)
    out = mosaic(item(120, 160, full_box(120, 160), img=img))
    # not applied: the image centred on the 2s canvas, like the letterbox (pad 20 / 20) shifted by s/2
    assert out['img'].shape == (2 * S, 2 * S, 3) and out['gt_bboxes_labels'].tolist() == [0]
    np.testing.assert_allclose(out['gt_bboxes'].numpy(), [[80, 100, 240, 220]])
    assert (out['img'][100:220, 80:240] == 9).all() and (out['img'] == 9).all(-1).sum() == 120 * 160
    # prob 0.5: both kinds, always 2s x 2s
    mosaic = YOLOMosaic(img_scale=(S, S), prob=0.5)
    counts = [len(mosaic(item(120, 160, full_box(120, 160), seed=i, idx=i))['gt_bboxes']) for i in range(40)]
    assert set(counts) == {1, 4}


def _reference_letterbox_path(img, boxes, s):
    """The reference without mosaic: load_image (long side s, ceil), letterbox to s x s (no resize left)."""
    h, w = img.shape[:2]
    r = s / max(h, w)
    nw, nh = min(math.ceil(w * r), s), min(math.ceil(h * r), s)
    resized = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_LINEAR)
    boxes = np.asarray(boxes, np.float32) * np.array([nw / w, nh / h] * 2, np.float32)
    out = LetterResize(scale=s)(item(nh, nw, boxes, img=resized))
    assert out['scale_factor'] == (1.0, 1.0)
    return out


@pytest.mark.parametrize('h, w', [(120, 160), (160, 90), (37, 160), (300, 451), (50, 30)])
def test_mosaic_not_applied_equals_the_reference_letterbox_and_border_0_affine(h, w):
    img = np.random.default_rng(h * w).integers(0, 255, (h, w, 3), dtype=np.uint8)
    boxes = [[0, 0, w, h], [w * 0.2, h * 0.3, w * 0.7, h * 0.9]]
    kw = dict(max_rotate_degree=10, max_shear_degree=3, max_translate_ratio=0.1, scaling_ratio_range=(0.5, 1.5))
    for seed in range(3):
        ours = YOLOMosaic(img_scale=(S, S), prob=0.0)(item(h, w, boxes, img=img.copy()))
        random.seed(seed)
        ours = YOLORandomAffine(border=(-S // 2, -S // 2), **kw)(ours)
        ref = _reference_letterbox_path(img, boxes, S)
        random.seed(seed)
        ref = YOLORandomAffine(border=(0, 0), **kw)(ref)
        assert ours['img'].shape == ref['img'].shape == (S, S, 3)
        diff = np.abs(ours['img'].astype(int) - ref['img'].astype(int))
        assert diff.max() <= 1 and (diff > 0).mean() < 1e-3, (diff.max(), (diff > 0).mean())
        np.testing.assert_allclose(ours['gt_bboxes'].numpy(), ref['gt_bboxes'].numpy(), atol=1e-3)
        assert ours['gt_bboxes_labels'].tolist() == ref['gt_bboxes_labels'].tolist()


# ---------------------------------------------------------------------------------------------------
# The centred affine
# ---------------------------------------------------------------------------------------------------
def test_affine_with_border_shows_the_canvas_centre_pixel_exactly():
    canvas = np.random.default_rng(0).integers(0, 255, (2 * S, 2 * S, 3), dtype=np.uint8)
    boxes = [[S - 10, S - 20, S + 30, S + 40], [0, 0, 50, 50], [S // 2 - 5, S // 2 + 10, S // 2 + 30, S // 2 + 50]]
    t = YOLORandomAffine(max_rotate_degree=0, max_shear_degree=0, max_translate_ratio=0,
                         scaling_ratio_range=(1, 1), border=(-S // 2, -S // 2))
    out = t(item(2 * S, 2 * S, boxes, [0, 1, 2], img=canvas))
    assert np.array_equal(out['img'], canvas[S // 2:S // 2 + S, S // 2:S // 2 + S])
    # boxes move by -s/2; the one in the top-left corner (outside the centre region) is dropped,
    # the one crossing the region's edge is clipped
    assert out['gt_bboxes_labels'].tolist() == [0, 2]
    np.testing.assert_allclose(out['gt_bboxes'].numpy(),
                               [[S // 2 - 10, S // 2 - 20, S // 2 + 30, S // 2 + 40], [0, 10, 30, 50]])
    # border 0, scale 1, no translation: the identity
    img = canvas[:S, :S].copy()
    t0 = YOLORandomAffine(max_rotate_degree=0, max_shear_degree=0, max_translate_ratio=0,
                          scaling_ratio_range=(1, 1))
    out = t0(item(S, S, [[3, 4, 50, 60]], img=img.copy()))
    assert np.array_equal(out['img'], img)
    np.testing.assert_allclose(out['gt_bboxes'].numpy(), [[3, 4, 50, 60]])


def test_affine_warps_about_the_input_centre():
    """Input centre -> (0.5 + u, 0.5 + v) x output size; distances scale by s (the reference's T@S@R@C)."""
    random.seed(0)
    t = YOLORandomAffine(max_rotate_degree=30, max_shear_degree=5, max_translate_ratio=0,
                         scaling_ratio_range=(0.5, 1.5))
    for in_hw, out_hw in [((2 * S, 2 * S), (S, S)), ((S, S), (S, S)), ((100, 300), (60, 200))]:
        m, s = t._random_warp(*in_hw, *out_hw)
        c = m @ np.array([in_hw[1] / 2, in_hw[0] / 2, 1.0])
        np.testing.assert_allclose(c[:2], [out_hw[1] / 2, out_hw[0] / 2], atol=1e-9)
        assert 0.5 <= s <= 1.5
    # scale only: a box around the centre of the 2s canvas shrinks around the output centre
    t = YOLORandomAffine(max_rotate_degree=0, max_shear_degree=0, max_translate_ratio=0,
                         scaling_ratio_range=(0.5, 0.5), border=(-S // 2, -S // 2))
    out = t(item(2 * S, 2 * S, [[S - 40, S - 20, S + 40, S + 20]]))
    np.testing.assert_allclose(out['gt_bboxes'].numpy(), [[S / 2 - 20, S / 2 - 10, S / 2 + 20, S / 2 + 10]])
    # translation stays within +-0.1 of the output size
    t = YOLORandomAffine(max_rotate_degree=0, max_shear_degree=0, max_translate_ratio=0.1,
                         scaling_ratio_range=(1, 1))
    for _ in range(20):
        m, _ = t._random_warp(S, S, S, S)
        assert np.abs(m[:2, 2]).max() <= 0.1 * S + 1e-9


def test_affine_box_filter_uses_the_scale_and_drops_masks():
    random.seed(0)
    # at scale 0.5 a 3x3 px box becomes 1.5 px: dropped (< 2 px); a 40 px box is kept
    t = YOLORandomAffine(max_rotate_degree=0, max_shear_degree=0, max_translate_ratio=0,
                         scaling_ratio_range=(0.5, 0.5))
    out = t(item(100, 100, [[10, 10, 13, 13], [20, 20, 60, 60]], [0, 1]))
    assert out['img'].shape == (100, 100, 3) and out['gt_bboxes_labels'].tolist() == [1]
    res = item(100, 100, [[10, 10, 20, 20]])
    res['gt_masks'] = object()  # the mosaic's polygons (for YOLOCopyPaste) end here
    out = t(res)
    assert 'gt_masks' not in out and len(out['gt_bboxes']) == 1
    assert 'min_area_ratio=0.1' in repr(t)


# ---------------------------------------------------------------------------------------------------
# Defect B: per-axis ratios of the rounded size through the letterbox and back
# ---------------------------------------------------------------------------------------------------
def _round_trip(h, w, scale, allow_scale_up=True, dtype=torch.float64):
    """Letterbox an h x w image with a box filling it, then map the box's PIXEL region back."""
    lr = LetterResize(scale=scale, allow_scale_up=allow_scale_up)
    out = lr(item(h, w, full_box(h, w), img=np.zeros((h, w, 3), np.uint8)))
    top, bottom, left, right = out['pad_param']
    dst_w, dst_h = (scale, scale) if isinstance(scale, int) else scale
    region = [left, top, dst_w - right, dst_h - bottom]  # where the image's pixels are
    assert out['img'].shape[:2] == (dst_h, dst_w)
    np.testing.assert_allclose(out['gt_bboxes'].numpy()[0], region, atol=1e-3)  # GT follows the pixels
    meta = dict(scale_factor=out['scale_factor'], pad_param=out['pad_param'], ori_shape=(h, w))
    # unclipped: see both directions of the error (the head clips to ori_shape afterwards)
    back = YOLOHead._rescale(torch.tensor([region], dtype=dtype), dict(meta, ori_shape=(10 * h, 10 * w)))[0]
    clipped = YOLOHead._rescale(torch.tensor([region], dtype=dtype), meta)[0]
    return (back - torch.tensor([0, 0, w, h], dtype=dtype)).abs().max().item(), clipped


@pytest.mark.parametrize('h, w', [(1571, 3775), (1280, 33)])
def test_letterbox_round_trip_of_the_filed_examples(h, w):
    err, clipped = _round_trip(h, w, 640)
    assert err < 1e-3, err  # before: 2.02 px (y2 = 1568.98) and 1.0 px (x2 = 32)
    torch.testing.assert_close(clipped, torch.tensor([0, 0, w, h], dtype=clipped.dtype), atol=1e-3, rtol=0)
    err32, _ = _round_trip(h, w, 640, dtype=torch.float32)
    assert err32 < 5e-3


@pytest.mark.parametrize('h, w, scale, up', [
    (1571, 3775, 640, True), (3775, 1571, 640, True),      # landscape / portrait
    (33, 1280, 640, True), (1, 1280, 640, True), (1280, 1, 640, True), (1, 7, 640, True),  # 1xN
    (17, 23, 640, True), (17, 23, 640, False),             # small images, scaled up or not
    (1000, 999, 640, False), (480, 640, (640, 384), True), (720, 1281, (640, 384), True),  # non-square
    (385, 641, (384, 640), True), (5, 3, (640, 384), False)])
def test_letterbox_round_trip_variants(h, w, scale, up):
    err, _ = _round_trip(h, w, scale, allow_scale_up=up)
    assert err < 1e-3, err


def test_letterbox_round_trip_random_sizes():
    rng = np.random.default_rng(0)
    worst = 0.0
    for _ in range(200):
        h, w = (int(v) for v in rng.integers(1, 4000, 2))
        scale = [640, (640, 384), (320, 480), 96][int(rng.integers(0, 4))]
        err, _ = _round_trip(h, w, scale, allow_scale_up=bool(rng.integers(0, 2)))
        worst = max(worst, err)
    assert worst < 1e-3, worst


def test_letterbox_scales_an_existing_pad_param_and_scale_factor_per_axis():
    res = item(100, 300, [[0, 0, 300, 100]])
    res['scale_factor'] = (0.5, 0.25)
    res['pad_param'] = np.array([10, 20, 30, 40], np.float32)
    out = LetterResize(scale=(150, 150))(res)  # 300x100 -> 150x50: factors (0.5, 0.5)
    assert out['scale_factor'] == (0.25, 0.125)
    np.testing.assert_allclose(out['pad_param'], [50 + 5, 50 + 10, 0 + 15, 0 + 20])
    res = item(45, 100, [[10, 5, 50, 40]])
    res['pad_param'] = np.array([2, 4, 6, 8], np.float32)
    out = LetterResize(scale=(64, 64))(res)  # 100x45 -> 64x29: factors (0.64, 29/45)
    sy = 29 / 45
    assert out['scale_factor'] == pytest.approx((0.64, sy), rel=1e-12)
    np.testing.assert_allclose(out['pad_param'], [17 + 2 * sy, 18 + 4 * sy, 6 * 0.64, 8 * 0.64], rtol=1e-6)
    np.testing.assert_allclose(out['gt_bboxes'].numpy(), [[6.4, 5 * sy + 17, 32, 40 * sy + 17]], rtol=1e-6)


def test_letterbox_pad_value_per_channel_and_clear_errors():
    """mmyolo-style per-channel pad values work; a wrong count names the image."""
    from convnextv2_yolo.datasets.transforms import LetterResize, YOLOHSVRandomAug
    img = np.zeros((20, 40, 3), np.uint8)
    for pad in ((114, 100, 90), dict(img=(114, 100, 90)), [114, 100, 90]):
        out = LetterResize(scale=(64, 64), pad_val=pad).transform(dict(img=img.copy()))
        assert out['img'][0, 0].tolist() == [114, 100, 90]
    with pytest.raises(ValueError, match='2 values for an image with 3 channels'):
        LetterResize(scale=(64, 64), pad_val=(1, 2)).transform(dict(img=img.copy(), img_path='x.png'))
    with pytest.raises(ValueError, match='number or one number per channel'):
        LetterResize(scale=64, pad_val='gray')
    gray = np.zeros((20, 40), np.uint8)
    with pytest.raises(ValueError, match=r"YOLOHSVRandomAug needs an 8-bit BGR image.*g.png"):
        YOLOHSVRandomAug().transform(dict(img=gray, img_path='g.png'))
