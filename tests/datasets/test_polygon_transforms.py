"""Instance polygons through YOLOMosaic -> YOLOCopyPaste -> YOLORandomAffine (and LetterResize).

The reference (Ultralytics ``v8_transforms``) runs CopyPaste('flip') between the mosaic and the
random affine on instance segments: the mosaic must carry each tile's polygons exactly like its
boxes (scaled, shifted, clipped to the canvas, filtered with the boxes), the affine drops them.
Without polygons nothing changes (same random draws, same pixels and boxes).

The scenes are images of filled convex polygons, each of a colour and vertex count given by its
label, with boxes = the polygons' bounding boxes: after the mosaic every polygon's bounding box is
its box, and the canvas shows the label's colour inside it.
"""
import random

import cv2
import numpy as np
import pytest
import torch
from mmdet.structures.bbox import HorizontalBoxes
from mmdet.structures.mask import BitmapMasks, PolygonMasks
from mmengine.registry import init_default_scope

import convnextv2_yolo  # noqa: F401
from convnextv2_yolo.datasets.transforms import LetterResize, YOLOCopyPaste, YOLOMosaic, YOLORandomAffine

S = 160
N_LABELS = 64
COLOURS = np.random.default_rng(123).integers(0, 256, (N_LABELS, 3)).astype(np.uint8)
N_VERTICES = [3 + label % 5 for label in range(N_LABELS)]  # 3 to 7: polygon i's vertex count tells its label
SIZES = [(120, 160), (300, 240), (90, 90), (200, 100), (64, 250), (400, 333)]


@pytest.fixture(autouse=True)
def _scope():
    init_default_scope('mmdet')


def scene(idx, with_masks=True, rows=2, cols=2):
    """Image ``idx``: a noisy background with rows x cols non-overlapping filled convex polygons."""
    rng = np.random.default_rng(idx)
    h, w = SIZES[idx % len(SIZES)]
    img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    polys, boxes, labels = [], [], []
    ch, cw = h / rows, w / cols
    for r in range(rows):
        for c in range(cols):
            label = (idx * rows * cols + r * cols + c) % N_LABELS
            n = N_VERTICES[label]
            angles = rng.uniform(0, 2 * np.pi) + np.arange(n) * 2 * np.pi / n
            radius = 0.42 * min(ch, cw)
            centre = ((c + 0.5) * cw + rng.uniform(-0.05, 0.05) * cw, (r + 0.5) * ch + rng.uniform(-0.05, 0.05) * ch)
            pts = np.stack([centre[0] + radius * np.cos(angles), centre[1] + radius * np.sin(angles)], 1)
            # an object may reach out of its image (clipped there by the loader's boxes: keep it inside)
            pts = np.clip(pts, 0, [w, h])
            cv2.fillPoly(img, [np.round(pts).astype(np.int32)], COLOURS[label].tolist())
            polys.append(pts)
            boxes.append(np.concatenate([pts.min(0), pts.max(0)]))
            labels.append(label)
    r = dict(img=img, img_shape=(h, w), ori_shape=(h, w), img_id=idx, img_path=f'{idx}.png',
             gt_bboxes=HorizontalBoxes(torch.tensor(np.array(boxes), dtype=torch.float32)),
             gt_bboxes_labels=np.array(labels, np.int64), gt_ignore_flags=np.zeros(len(labels), bool))
    if with_masks:
        r['gt_masks'] = PolygonMasks([[p.ravel().astype(np.float64)] for p in polys], h, w)
    return r


def poly_box(polys):
    pts = np.concatenate([p.reshape(-1, 2) for p in polys])
    return np.concatenate([pts.min(0), pts.max(0)])


def interior(polys, shape, erode=7):
    """Pixels well inside the filled polygons (away from the resize's blurred edges)."""
    mask = np.zeros(shape[:2], np.uint8)
    cv2.fillPoly(mask, [np.round(p.reshape(-1, 2)).astype(np.int32) for p in polys], 1)
    return cv2.erode(mask, np.ones((erode, erode), np.uint8)).astype(bool)


def on_border(polys, shape):
    pts = np.concatenate([p.reshape(-1, 2) for p in polys])
    return bool((pts[:, 0] <= 0).any() or (pts[:, 0] >= shape[1]).any()
                or (pts[:, 1] <= 0).any() or (pts[:, 1] >= shape[0]).any())


def check_polygons(out, pixels=True):
    """Polygon i's bounding box is box i, its vertex count that of label i, its inside label i's colour.

    Returns the number of polygons whose pixels were checked (those not clipped by the canvas: a
    clipped polygon's clamped vertices, as the reference's, may leave the object)."""
    masks, boxes, labels = out['gt_masks'], out['gt_bboxes'].tensor.numpy(), out['gt_bboxes_labels']
    assert isinstance(masks, PolygonMasks) and (masks.height, masks.width) == out['img'].shape[:2]
    assert len(masks) == len(boxes) == len(labels) == len(out['gt_ignore_flags'])
    checked = 0
    for polys, box, label in zip(masks.masks, boxes, labels):
        np.testing.assert_allclose(poly_box(polys), box, atol=1e-4, rtol=0)
        assert [len(p) // 2 for p in polys] == [N_VERTICES[label]]
        if pixels and not on_border(polys, out['img'].shape):
            inside = interior(polys, out['img'].shape)
            if inside.sum() >= 4:
                diff = np.abs(out['img'][inside].astype(int) - COLOURS[label].astype(int))
                assert diff.max() <= 1, (label, diff.max())
                checked += 1
    return checked


# ---------------------------------------------------------------------------------------------------
# YOLOMosaic
# ---------------------------------------------------------------------------------------------------
def test_mosaic_carries_polygons_like_their_boxes():
    random.seed(0)
    mosaic = YOLOMosaic(img_scale=(S, S), max_cached_images=4)
    checked, clipped = 0, 0
    for idx in range(12):
        out = mosaic(scene(idx))
        assert out['img'].shape == (2 * S, 2 * S, 3)
        checked += check_polygons(out)
        pts = np.concatenate([p.reshape(-1, 2) for polys in out['gt_masks'].masks for p in polys])
        assert (pts >= 0).all() and (pts <= 2 * S).all()  # clipped point-wise to the canvas
        clipped += sum(on_border(polys, out['img'].shape) for polys in out['gt_masks'].masks)
        for p in (p for polys in out['gt_masks'].masks for p in polys):
            assert p.dtype == np.float32 and p.ndim == 1
    assert checked >= 60 and clipped >= 5  # both kinds seen
    # the buffer holds each entry's resized polygons as one small float32 array
    points, counts = mosaic.buffer[-1]['polys']
    assert points.dtype == np.float32 and points.shape == (sum(N_VERTICES[lb] for lb in
                                                               mosaic.buffer[-1]['labels']), 2)
    assert counts == [[N_VERTICES[lb]] for lb in mosaic.buffer[-1]['labels']]


def test_mosaic_drops_polygons_with_the_boxes_it_drops():
    """Boxes cropped away by the canvas (zero area after clipping) are removed with their polygons."""
    mosaic = YOLOMosaic(img_scale=(S, S), center_ratio_range=(0.5, 0.5), max_cached_images=1)
    random.seed(0)
    res = scene(0, rows=3, cols=3)  # 120 x 160 -> 120 x 160; xc = yc = 80: tile 0 shows only x, y >= 80
    n_in = len(res['gt_bboxes'])
    out = mosaic(res)
    assert len(out['gt_bboxes']) < 4 * n_in  # some dropped
    check_polygons(out)


def test_mosaic_centred_placement_shifts_polygons():
    mosaic = YOLOMosaic(img_scale=(S, S), prob=0.0)
    res = scene(1)  # 300 x 240 -> 160 x 128
    boxes_in = res['gt_bboxes'].tensor.numpy().copy()
    out = mosaic(res)
    assert check_polygons(out) == 4
    # 128 x 160 (w x h) centred in the 320 x 320 canvas: x + 80 + 16, y + 80 after the 128 / 240 = 160 / 300 scale
    np.testing.assert_allclose(out['gt_bboxes'].numpy(), boxes_in * (128 / 240) + [96, 80, 96, 80], atol=1e-3)


def test_mosaic_with_a_partner_without_polygons_has_none():
    seen = set()
    for seed in range(40):
        mosaic = YOLOMosaic(img_scale=(S, S), max_cached_images=2)
        random.seed(seed)
        mosaic(scene(0, with_masks=False))  # labels 0..3, no polygons
        out = mosaic(scene(1))  # labels 4..7, polygons; partners drawn from both
        partner_without = bool(set(out['gt_bboxes_labels'].tolist()) & {0, 1, 2, 3})
        assert ('gt_masks' in out) == (not partner_without)
        if not partner_without:
            check_polygons(out)
        seen.add(partner_without)
    assert seen == {True, False}
    # an image without instances has an empty PolygonMasks: it does not remove the others' polygons
    mosaic = YOLOMosaic(img_scale=(S, S), max_cached_images=2)
    empty = scene(2)
    empty.update(gt_bboxes=HorizontalBoxes(torch.zeros((0, 4))), gt_bboxes_labels=np.zeros(0, np.int64),
                 gt_ignore_flags=np.zeros(0, bool), gt_masks=PolygonMasks([], *empty['img'].shape[:2]))
    random.seed(0)
    out = mosaic(empty)
    assert len(out['gt_masks']) == len(out['gt_bboxes']) == 0
    out = mosaic(scene(3))
    assert 'gt_masks' in out and len(out['gt_masks']) > 0
    check_polygons(out, pixels=False)


def test_mosaic_rejects_bitmap_masks_seg_maps_and_mismatched_polygons():
    res = scene(0)
    res['gt_masks'] = BitmapMasks(np.zeros((4, 120, 160), np.uint8), 120, 160)
    with pytest.raises(ValueError, match='PolygonMasks'):
        YOLOMosaic(img_scale=(S, S))(res)
    res = scene(0)
    res['gt_masks'] = res['gt_masks'][[0, 1]]
    with pytest.raises(ValueError, match='gt_masks'):
        YOLOMosaic(img_scale=(S, S))(res)
    res = scene(0)
    res['gt_seg_map'] = np.zeros((120, 160), np.uint8)
    with pytest.raises(ValueError, match='gt_seg_map'):
        YOLOMosaic(img_scale=(S, S))(res)


@pytest.mark.parametrize('prob, clip', [(1.0, True), (0.5, True), (1.0, False)])
def test_polygons_change_nothing_else(prob, clip):
    """Mosaic + affine with polygons = without: the same random draws, pixels, boxes, labels."""
    kw = dict(max_rotate_degree=5, max_shear_degree=2, max_translate_ratio=0.1, scaling_ratio_range=(0.5, 1.5),
              border=(-S // 2, -S // 2))
    runs = []
    for with_masks in (False, True):
        mosaic = YOLOMosaic(img_scale=(S, S), prob=prob, bbox_clip_border=clip, max_cached_images=3)
        affine = YOLORandomAffine(**kw)
        random.seed(7), np.random.seed(7)
        outs = []
        for idx in range(10):
            mid = mosaic(scene(idx, with_masks))
            assert ('gt_masks' in mid) == with_masks
            mid = dict(mid, img=mid['img'].copy(), gt_bboxes=mid['gt_bboxes'].clone())
            out = affine(dict(mid, gt_bboxes=mid['gt_bboxes'].clone()))
            assert 'gt_masks' not in out
            outs.append((mid, out))
        runs.append((outs, random.random(), np.random.random()))
    (plain, r0, n0), (poly, r1, n1) = runs
    assert (r0, n0) == (r1, n1)
    for (mid0, out0), (mid1, out1) in zip(plain, poly):
        for a, b in ((mid0, mid1), (out0, out1)):
            assert np.array_equal(a['img'], b['img'])
            assert torch.equal(a['gt_bboxes'].tensor, b['gt_bboxes'].tensor)
            assert np.array_equal(a['gt_bboxes_labels'], b['gt_bboxes_labels'])
            assert np.array_equal(a['gt_ignore_flags'], b['gt_ignore_flags'])


# ---------------------------------------------------------------------------------------------------
# YOLOCopyPaste after the mosaic
# ---------------------------------------------------------------------------------------------------
def test_copy_paste_after_the_mosaic_pastes_mirrored_objects():
    random.seed(3)
    mosaic = YOLOMosaic(img_scale=(S, S), max_cached_images=4)
    copy_paste = YOLOCopyPaste(ratio=1.0)
    pasted_total = checked = 0
    for idx in range(12):
        res = mosaic(scene(idx))
        img = res['img'].copy()
        boxes, labels = res['gt_bboxes'].tensor.clone(), res['gt_bboxes_labels'].copy()
        polys = [[p.copy() for p in obj] for obj in res['gt_masks'].masks]
        n, w = len(boxes), img.shape[1]
        out = copy_paste(res)
        check_polygons(out, pixels=False)
        # no original instance lost or changed
        assert torch.equal(out['gt_bboxes'].tensor[:n], boxes)
        assert np.array_equal(out['gt_bboxes_labels'][:n], labels)
        for a, b in zip(out['gt_masks'].masks[:n], polys):
            assert all(np.array_equal(x, y) for x, y in zip(a, b))
        # the pasted ones: mirrored boxes, labels and polygons of the selected instances
        b64 = boxes.numpy().astype(np.float64)
        flipped = b64.copy()
        flipped[:, 0], flipped[:, 2] = w - b64[:, 2], w - b64[:, 0]
        selected = copy_paste.select(b64, flipped)
        assert len(out['gt_bboxes']) == n + len(selected)
        np.testing.assert_array_equal(out['gt_bboxes'].tensor[n:].numpy(), flipped[selected].astype(np.float32))
        assert np.array_equal(out['gt_bboxes_labels'][n:], labels[selected])
        mask = np.zeros(img.shape[:2], np.uint8)
        for j, i in enumerate(selected):
            pasted = out['gt_masks'].masks[n + j]
            for p, q in zip(pasted, polys[i]):
                np.testing.assert_allclose(p[0::2], w - q[0::2]), np.testing.assert_array_equal(p[1::2], q[1::2])
            cv2.drawContours(mask, [p.reshape(-1, 2).astype(np.int32) for p in pasted], -1, 1, cv2.FILLED)
            if not on_border(pasted, img.shape):  # the mirrored object's own pixels under its polygon
                inside = interior(pasted, img.shape)
                if inside.sum() >= 4:
                    assert np.abs(out['img'][inside].astype(int) - COLOURS[labels[i]].astype(int)).max() <= 1
                    checked += 1
        # the pixels under the pasted polygons are the mirrored image's, the others unchanged
        mask = mask.astype(bool)
        np.testing.assert_array_equal(out['img'][mask], np.flip(img, 1)[mask])
        np.testing.assert_array_equal(out['img'][~mask], img[~mask])
        pasted_total += len(selected)
    assert pasted_total >= 10 and checked >= 5


# ---------------------------------------------------------------------------------------------------
# YOLORandomAffine and the rest of the pipeline
# ---------------------------------------------------------------------------------------------------
def test_affine_drops_polygons_and_keeps_its_boxes():
    random.seed(5)
    mosaic = YOLOMosaic(img_scale=(S, S), max_cached_images=4)
    copy_paste = YOLOCopyPaste(ratio=0.5)
    affine = YOLORandomAffine(max_rotate_degree=0, max_shear_degree=0, max_translate_ratio=0.1,
                              scaling_ratio_range=(0.5, 1.5), border=(-S // 2, -S // 2))
    for idx in range(8):
        res = copy_paste(mosaic(scene(idx)))
        assert 'gt_masks' in res
        plain = dict(res, img=res['img'].copy(), gt_bboxes=res['gt_bboxes'].clone())
        del plain['gt_masks']
        state = random.getstate()
        out = affine(res)
        after = random.getstate()
        random.setstate(state)
        ref = affine(plain)
        assert random.getstate() == after
        assert 'gt_masks' not in out and 'gt_masks' not in ref
        assert np.array_equal(out['img'], ref['img']) and out['img'].shape == (S, S, 3)
        assert torch.equal(out['gt_bboxes'].tensor, ref['gt_bboxes'].tensor)
        assert np.array_equal(out['gt_bboxes_labels'], ref['gt_bboxes_labels'])
        assert np.array_equal(out['gt_ignore_flags'], ref['gt_ignore_flags'])


def test_letterbox_moves_polygons_and_bitmaps_with_the_boxes():
    res = scene(1)  # h x w 300 x 240 -> 224 x 179 in 224 x 224: padded left and right
    out = LetterResize(scale=224)(res)
    assert out['img'].shape[:2] == (224, 224)
    assert check_polygons(out) == 4
    res = scene(1)
    full = np.zeros((1, 300, 240), np.uint8)
    full[0, 100:200, 60:180] = 1
    res.update(gt_masks=BitmapMasks(full, 300, 240), gt_bboxes=HorizontalBoxes(torch.tensor([[60., 100, 180, 200]])),
               gt_bboxes_labels=np.zeros(1, np.int64), gt_ignore_flags=np.zeros(1, bool))
    out = LetterResize(scale=224)(res)
    m = out['gt_masks'].masks[0]
    assert m.shape == (224, 224)
    ys, xs = np.nonzero(m)
    np.testing.assert_allclose([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], out['gt_bboxes'].numpy()[0], atol=1)
