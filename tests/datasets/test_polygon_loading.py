"""Instance polygons to the pipeline: YOLODataset keeps the points of polygon rows (and caches them), and
YOLOLoadAnnotations sets ``gt_masks`` (PolygonMasks) only for images whose instances all have a polygon, from
YOLODataset and from CheckedCocoDataset (COCO polygons, multi-part, none, crowd RLE)."""
import base64
import json
import os
import os.path as osp

import cv2
import numpy as np
import pytest
from mmdet.structures.mask import PolygonMasks

import convnextv2_yolo  # noqa: F401
from convnextv2_yolo.datasets import yolo_dataset as yd
from convnextv2_yolo.datasets.transforms import YOLOLoadAnnotations
from convnextv2_yolo.datasets.transforms.yolo_loading import polygon_parts
from convnextv2_yolo.datasets.yolo_dataset import CACHE_SUFFIX

pytestmark = pytest.mark.usefixtures('mmdet_scope', 'frozen_gc')  # tests/datasets/conftest.py
NAMES = ['cat', 'dog', 'bird']
W, H = 64, 48
# dyadic coordinates: a polygon's box and the same box written as a box row are the same floats
TRIANGLE = [0.125, 0.125, 0.375, 0.125, 0.25, 0.375]  # box cx cy w h = 0.25 0.25 0.25 0.25
SQUARE = [0.5, 0.5, 0.875, 0.5, 0.875, 0.875, 0.5, 0.875]  # box 0.6875 0.6875 0.375 0.375
IRREGULAR = [0.123456, 0.234567, 0.654321, 0.111111, 0.777777, 0.888888, 0.2, 0.7]  # six printed decimals


def _row(cls, values):
    return f'{cls} ' + ' '.join(str(v) for v in values) + '\n'


LABELS = {
    'polygons': _row(0, TRIANGLE) + _row(1, SQUARE),
    'as_boxes': '0 0.25 0.25 0.25 0.25\n1 0.6875 0.6875 0.375 0.375\n',  # the same objects as box rows
    'irregular': _row(2, IRREGULAR) + _row(0, [0.9, 0.1, 1.004, 0.1, 0.95, 0.3]),  # x 0.004 past the edge: clipped
    'mixed': _row(0, TRIANGLE) + '2 0.7 0.3 0.2 0.2\n',
    'empty': '',
    'no_label_file': None,
    'boxes': '0 0.5 0.5 0.5 0.5\n1 0.25 0.25 0.25 0.125\n',  # dyadic: exact
}


# ----------------------------------------------------------------------------- helpers


def write_text(path, text):
    os.makedirs(osp.dirname(path), exist_ok=True)
    with open(path, 'w', newline='', encoding='utf-8') as f:
        f.write(text)


@pytest.fixture
def polygon_data(tmp_path):
    """``ds/train/images/<name>.jpg`` (64 x 48) + ``ds/train/labels/<name>.txt`` per LABELS; the data.yaml."""
    root = str(tmp_path / 'ds')
    for name, text in LABELS.items():
        img = osp.join(root, 'train', 'images', f'{name}.jpg')
        os.makedirs(osp.dirname(img), exist_ok=True)
        assert cv2.imwrite(img, np.full((H, W, 3), 90, np.uint8))
        if text is not None:
            write_text(osp.join(root, 'train', 'labels', f'{name}.txt'), text)
    yaml = osp.join(root, 'data.yaml')
    write_text(yaml, f'path: .\ntrain: train/images\nval: train/images\nnames: {json.dumps(NAMES)}\n')
    return root, yaml


def build(yaml, **kwargs):
    from mmdet.registry import DATASETS
    kwargs.setdefault('pipeline', [dict(type='LoadImageFromFile'), dict(type='YOLOLoadAnnotations')])
    return DATASETS.build(dict(type='YOLODataset', data_yaml=yaml, **kwargs))


def infos(ds):
    return {osp.splitext(osp.basename(ds.get_data_info(i)['img_path']))[0]: ds.get_data_info(i)
            for i in range(len(ds))}


def samples(ds):
    """The pipeline's results per image name."""
    out = {}
    for i in range(len(ds)):
        results = ds[i]
        out[osp.splitext(osp.basename(results['img_path']))[0]] = results
    return out


def px_points(values):
    return (np.asarray(values, np.float64).reshape(-1, 2) * [W, H]).ravel()


def px_box(cx, cy, w, h):
    return [(cx - w / 2) * W, (cy - h / 2) * H, (cx + w / 2) * W, (cy + h / 2) * H]


# ----------------------------------------------------------------------------- YOLODataset
def test_polygon_rows_reach_gt_masks_and_keep_their_boxes(polygon_data, logs):
    _, yaml = polygon_data
    ds = build(yaml)
    info, out = infos(ds), samples(ds)
    # data_info: one flat list of px floats per polygon row, as CocoDataset's instance['mask']
    masks = [inst['mask'] for inst in info['polygons']['instances']]
    assert all(len(m) == 1 and type(m[0]) is list and all(type(v) is float for v in m[0]) for m in masks)
    assert masks == [[px_points(TRIANGLE).tolist()], [px_points(SQUARE).tolist()]]  # dyadic: exact
    # boxes: the polygons' bounding boxes, the same floats as the box rows of the same objects
    assert [i['bbox'] for i in info['polygons']['instances']] == [i['bbox'] for i in info['as_boxes']['instances']]
    assert [i['bbox_label'] for i in info['polygons']['instances']] == [0, 1]
    gt = out['polygons']
    assert isinstance(gt['gt_masks'], PolygonMasks) and (gt['gt_masks'].height, gt['gt_masks'].width) == (H, W)
    assert len(gt['gt_masks']) == 2 and [len(p) for p in gt['gt_masks'].masks] == [1, 1]
    for polys, values in zip(gt['gt_masks'].masks, (TRIANGLE, SQUARE)):
        assert np.array_equal(polys[0], px_points(values))
    assert np.array_equal(gt['gt_bboxes'].numpy(), out['as_boxes']['gt_bboxes'].numpy())
    assert np.array_equal(gt['gt_bboxes_labels'], [0, 1]) and not gt['gt_ignore_flags'].any()
    assert 'gt_masks' not in out['as_boxes']


def test_label_points_are_kept_as_float32_and_clipped_as_their_box(polygon_data, logs):
    _, yaml = polygon_data
    inst = infos(build(yaml))['irregular']['instances']
    # the points: label values x image size (float32 storage, as the reference's segments)
    assert np.allclose(inst[0]['mask'][0], px_points(IRREGULAR), rtol=1e-6, atol=1e-5)
    pts = np.asarray(IRREGULAR).reshape(-1, 2)
    x1, y1, x2, y2 = *pts.min(0), *pts.max(0)
    assert np.allclose(inst[0]['bbox'], px_box((x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1), rtol=0, atol=1e-9)
    # 0.004 past the edge: the points are clipped to the image as the box is
    assert np.allclose(inst[1]['mask'][0], px_points([0.9, 0.1, 1.0, 0.1, 0.95, 0.3]), rtol=1e-6)
    assert np.allclose(inst[1]['bbox'], px_box(0.95, 0.2, 0.1, 0.2), rtol=0, atol=1e-9)
    assert max(inst[1]['mask'][0][0::2]) == W


def test_images_with_box_rows_or_no_rows(polygon_data, logs):
    _, yaml = polygon_data
    ds = build(yaml)
    info, out = infos(ds), samples(ds)
    # a box row beside a polygon row: the polygon keeps its mask, the image gets no gt_masks
    assert 'mask' in info['mixed']['instances'][0] and 'mask' not in info['mixed']['instances'][1]
    assert 'gt_masks' not in out['mixed'] and len(out['mixed']['gt_bboxes']) == 2
    # no rows (empty file, no file): an empty PolygonMasks of the image's size
    for name in ('empty', 'no_label_file'):
        masks = out[name]['gt_masks']
        assert isinstance(masks, PolygonMasks) and len(masks) == 0 and (masks.height, masks.width) == (H, W)
        assert len(out[name]['gt_bboxes']) == 0
    # box rows only: no mask key, no gt_masks; data_info as before this change
    assert info['boxes']['instances'] == [dict(bbox=px_box(0.5, 0.5, 0.5, 0.5), bbox_label=0, ignore_flag=0),
                                          dict(bbox=px_box(0.25, 0.25, 0.25, 0.125), bbox_label=1, ignore_flag=0)]
    assert sorted(info['boxes']) == ['height', 'img_id', 'img_path', 'instances', 'label_path', 'sample_idx',
                                     'seg_map_path', 'width']
    assert 'gt_masks' not in out['boxes'] and 'gt_masks' not in out['as_boxes']
    summary = [m for _, m in logs if ' skipped, ' in m]
    assert summary and '10 boxes (5 from polygons)' in summary[0]


def test_box_only_records_hold_no_segments(polygon_data, logs):
    root, yaml = polygon_data
    build(yaml)
    with open(osp.join(root, 'train', 'labels' + CACHE_SUFFIX), encoding='utf-8') as f:
        data = json.load(f)
    names = sorted(LABELS)
    records = dict(zip(names, data['records']))
    at = data['fields'].index('segments')
    assert records['boxes'][at] == [] and records['as_boxes'][at] == [] and records['empty'][at] == []
    assert [s is None for s in records['mixed'][at]] == [False, True]
    # base64 of little-endian float32: the label's points exactly as float32
    raw = base64.b64decode(records['polygons'][at][0])
    assert np.array_equal(np.frombuffer(raw, '<f4'), np.float32(TRIANGLE))


def test_classes_left_out_drop_their_masks_too(polygon_data, logs):
    _, yaml = polygon_data
    inst = infos(build(yaml, metainfo=dict(classes=('dog',))))['polygons']['instances']
    assert len(inst) == 1 and inst[0]['bbox_label'] == 0 and inst[0]['mask'] == [px_points(SQUARE).tolist()]


def test_the_cache_round_trip_keeps_the_polygons(polygon_data, logs, count_scans):
    root, yaml = polygon_data
    first = build(yaml)
    assert not first.index_stats['from_cache'] and len(count_scans) == len(LABELS)
    cache_file = osp.join(root, 'train', 'labels' + CACHE_SUFFIX)
    with open(cache_file, encoding='utf-8') as f:
        data = json.load(f)
    assert data['version'] == yd.CACHE_VERSION == 3 and 'segments' in data['fields']
    count_scans.clear()
    second = build(yaml)
    assert second.index_stats['from_cache'] and count_scans == []
    assert infos(second) == infos(first)
    for (name, a), b in zip(samples(first).items(), samples(second).values()):
        assert ('gt_masks' in a) == ('gt_masks' in b), name
        if 'gt_masks' in a:
            assert len(a['gt_masks']) == len(b['gt_masks'])
            for pa, pb in zip(a['gt_masks'].masks, b['gt_masks'].masks):
                assert all(np.array_equal(x, y) for x, y in zip(pa, pb)), name
    # the records themselves, arrays included, compare equal
    index = yd.index_source(osp.join(root, 'train', 'images'), len(NAMES))
    assert index.from_cache and index.records == yd.scan_images(index.images, index.labels, len(NAMES))


def _edit_segments(cache_file, edit):
    with open(cache_file, encoding='utf-8') as f:
        data = json.load(f)
    at = data['fields'].index('segments')
    edit(data, at)
    write_text(cache_file, json.dumps(data))


def _bad_base64(data, at):
    next(r for r in data['records'] if r[at])[at][0] = 'not base64!'


def _point_outside(data, at):
    rec = next(r for r in data['records'] if r[at])
    rec[at][0] = base64.b64encode(np.float32([0.1, 0.1, 1.5, 0.1, 0.2, 0.3]).astype('<f4').tobytes()).decode()


def _nan_point(data, at):
    rec = next(r for r in data['records'] if r[at])
    rec[at][0] = base64.b64encode(np.float32([0.1, 0.1, np.nan, 0.1, 0.2, 0.3]).astype('<f4').tobytes()).decode()


def _two_points(data, at):
    next(r for r in data['records'] if r[at])[at][0] = base64.b64encode(np.float32([0.1] * 4).tobytes()).decode()


def _count_mismatch(data, at):
    next(r for r in data['records'] if r[at])[at].append(None)


def _polygon_count(data, at):
    rec = next(r for r in data['records'] if r[at])
    rec[at] = [None] * len(rec[at])


def _old_version(data, at):
    """A cache of version 2: no 'segments' field."""
    data['version'] = 2
    data['fields'].pop(at)
    for r in data['records']:
        r.pop(at)


@pytest.mark.parametrize('edit', [_bad_base64, _point_outside, _nan_point, _two_points, _count_mismatch,
                                  _polygon_count, _old_version])
def test_bad_or_old_cached_polygons_are_rescanned(polygon_data, logs, count_scans, edit):
    root, yaml = polygon_data
    first = build(yaml)
    cache_file = first.index_stats['cache_files'][0]
    _edit_segments(cache_file, edit)
    count_scans.clear()
    logs.clear()
    ds = build(yaml)
    assert not ds.index_stats['from_cache'] and len(count_scans) == len(LABELS)
    assert infos(ds) == infos(first)
    why = 'written by another version' if edit is _old_version else 'corrupt record'
    assert any(cache_file in m and why in m for _, m in logs), logs


def test_copy_paste_pastes_the_loaded_polygons(polygon_data, logs):
    _, yaml = polygon_data
    pipeline = [dict(type='LoadImageFromFile'), dict(type='YOLOLoadAnnotations'),
                dict(type='YOLOCopyPaste', ratio=1.0)]
    out = samples(build(yaml, pipeline=pipeline))
    # the mirrored triangle and square overlap no original box: both are pasted
    assert len(out['polygons']['gt_bboxes']) == 4 and len(out['polygons']['gt_masks']) == 4
    assert len(out['boxes']['gt_bboxes']) == 2 and 'gt_masks' not in out['boxes']  # unchanged


# ----------------------------------------------------------------------------- the transform
@pytest.mark.parametrize('mask, parts', [
    ([[1, 2, 3, 4, 5, 6]], 1),
    ([[1.5, 2, 3, 4, 5, 6, 7, 8], np.arange(6.0)], 2),
    ((np.arange(8, dtype=np.float32),), 1),
    (None, None), ([], None), ({'counts': [1, 2], 'size': [4, 4]}, None), ({'counts': 'abc', 'size': [4, 4]}, None),
    ([[1, 2, 3, 4]], None), ([[1, 2, 3, 4, 5, 6, 7]], None), ([[1, 2, 3, 4, 5, 6], [1, 2]], None),
    ([[1, 2, 3, 4, 5, float('nan')]], None), ([[1, 2, 3, 4, 5, 'x']], None), ([[True] * 6], None),
    ([[[1, 2], [3, 4], [5, 6]]], None), ([1, 2, 3, 4, 5, 6], None), ('polygon', None),
])
def test_polygon_parts(mask, parts):
    got = polygon_parts(mask)
    assert (got is None) if parts is None else (len(got) == parts and all(p.dtype == np.float64 for p in got))


def _results(*masks, shape=(H, W)):
    instances = []
    for k, mask in enumerate(masks):
        inst = dict(bbox=[1.0 + k, 2.0, 10.0, 12.0], bbox_label=k, ignore_flag=0)
        if mask is not None:
            inst['mask'] = mask
        instances.append(inst)
    return dict(ori_shape=shape, img_shape=shape, instances=instances)


def test_transform_loads_boxes_as_load_annotations_and_never_raises_on_a_missing_mask():
    from mmdet.datasets.transforms import LoadAnnotations
    square = [[2.0, 2.0, 8.0, 2.0, 8.0, 8.0, 2.0, 8.0]]
    for masks in ((square, square), (square, None), (None,), ()):
        got, ref = YOLOLoadAnnotations()(_results(*masks)), LoadAnnotations()(_results(*masks))
        for key in ('gt_bboxes_labels', 'gt_ignore_flags'):
            assert np.array_equal(got[key], ref[key]) and got[key].dtype == ref[key].dtype
        assert type(got['gt_bboxes']) is type(ref['gt_bboxes'])
        assert got['gt_bboxes'].tensor.equal(ref['gt_bboxes'].tensor)
        assert ('gt_masks' in got) == all(m is not None for m in masks), masks
    with pytest.raises(KeyError):  # what YOLOLoadAnnotations exists for
        LoadAnnotations(with_mask=True, poly2mask=False)(_results(square, None))


def test_transform_options():
    square = [[2.0, 2.0, 8.0, 2.0, 8.0, 8.0, 2.0, 8.0]]
    assert 'gt_masks' not in YOLOLoadAnnotations(with_polygons=False)(_results(square))
    stale = _results(square, None)
    stale['gt_masks'] = PolygonMasks([[np.zeros(6)]], H, W)
    assert 'gt_masks' not in YOLOLoadAnnotations()(stale)
    masks = YOLOLoadAnnotations()(dict(_results(square), ori_shape=(30, 40), img_shape=(60, 80)))['gt_masks']
    assert (masks.height, masks.width) == (30, 40)  # ori_shape, as LoadAnnotations' masks
    no_shape = _results(square)
    del no_shape['ori_shape'], no_shape['img_shape']
    with pytest.raises(KeyError, match='load the image first'):
        YOLOLoadAnnotations()(no_shape)
    with pytest.raises(ValueError, match='with_mask'):
        YOLOLoadAnnotations(with_mask=True)
    mmdet_masks = YOLOLoadAnnotations(with_polygons=False, with_mask=True, poly2mask=False)(_results(square))
    assert isinstance(mmdet_masks['gt_masks'], PolygonMasks)
    assert repr(YOLOLoadAnnotations()).startswith('YOLOLoadAnnotations(with_bbox=True')
    assert repr(YOLOLoadAnnotations()).endswith(', with_polygons=True)')


# ----------------------------------------------------------------------------- CheckedCocoDataset
def _coco(root):
    """Four 64 x 48 images: polygons (one in two parts), a box without segmentation, a crowd RLE, none."""
    img_dir = osp.join(root, 'images')
    os.makedirs(img_dir, exist_ok=True)
    images = []
    for i in range(1, 5):
        cv2.imwrite(osp.join(img_dir, f'{i}.png'), np.full((H, W, 3), 30 * i, np.uint8))
        images.append(dict(id=i, file_name=f'{i}.png', width=W, height=H))
    part_a, part_b = [4, 6, 20, 6, 20, 20, 4, 20], [24, 6, 34, 6, 30, 20]
    tri = [40, 10, 60, 10, 50, 40]

    def ann(i, image, cat, bbox, **extra):
        return dict(id=i, image_id=image, category_id=cat, bbox=bbox, area=bbox[2] * bbox[3], iscrowd=0, **extra)

    anns = [ann(1, 1, 1, [4, 6, 30, 14], segmentation=[part_a, part_b]),
            ann(2, 1, 2, [40, 10, 20, 30], segmentation=[tri]),
            ann(3, 2, 1, [4, 6, 16, 14], segmentation=[part_a]), ann(4, 2, 2, [40, 10, 20, 30]),
            ann(5, 3, 1, [4, 6, 16, 14], segmentation=[part_a]),
            dict(ann(6, 3, 2, [40, 10, 20, 30], segmentation={'counts': [480, 20, 2572], 'size': [H, W]}), iscrowd=1)]
    path = osp.join(root, 'ann.json')
    with open(path, 'w') as f:
        json.dump(dict(images=images, annotations=anns, categories=[dict(id=1, name='cat'), dict(id=2, name='dog')]),
                  f)
    return path, img_dir, (part_a, part_b, tri)


def test_coco_polygons_through_checked_coco_dataset(tmp_path):
    from mmdet.registry import DATASETS
    ann_file, img_dir, (part_a, part_b, tri) = _coco(str(tmp_path))
    ds = DATASETS.build(dict(type='CheckedCocoDataset', ann_file=ann_file, data_prefix=dict(img=img_dir + '/'),
                             metainfo=dict(classes=('cat', 'dog')),
                             pipeline=[dict(type='LoadImageFromFile'), dict(type='YOLOLoadAnnotations')]))
    out = {osp.basename(r['img_path']): r for r in (ds[i] for i in range(len(ds)))}
    assert sorted(out) == ['1.png', '2.png', '3.png', '4.png']
    masks = out['1.png']['gt_masks']  # every part of the two-part polygon is kept
    assert isinstance(masks, PolygonMasks) and (masks.height, masks.width) == (H, W) and len(masks) == 2
    assert [[p.tolist() for p in polys] for polys in masks.masks] == [[part_a, part_b], [tri]]
    assert np.array_equal(out['1.png']['gt_bboxes_labels'], [0, 1])
    assert 'gt_masks' not in out['2.png'] and len(out['2.png']['gt_bboxes']) == 2  # no segmentation: no masks
    assert 'gt_masks' not in out['3.png'] and out['3.png']['gt_ignore_flags'].tolist() == [False, True]  # crowd RLE
    assert len(out['4.png']['gt_masks']) == 0 and len(out['4.png']['gt_bboxes']) == 0  # no annotation
    packed = DATASETS.build(dict(type='CheckedCocoDataset', ann_file=ann_file, data_prefix=dict(img=img_dir + '/'),
                                 metainfo=dict(classes=('cat', 'dog')),
                                 pipeline=[dict(type='LoadImageFromFile'), dict(type='YOLOLoadAnnotations'),
                                           dict(type='PackDetInputs')]))[0]
    assert len(packed['data_samples'].gt_instances.masks) == 2
