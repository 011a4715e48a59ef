"""Tests of the synthetic shape dataset (COCO + YOLO layouts)."""
import json
import os
import os.path as osp

import cv2
import numpy as np
import pytest
import yaml

from convnextv2_yolo.datasets import synthetic as syn
from tests.helpers.processes import PY, run_tool

SMALL = dict(num_train=8, num_val=4, img_size=96)
SEED = 3


def _files(root: str) -> dict:
    """Relative path -> bytes of every file the generator wrote."""
    out = {}
    for dirpath, _, names in os.walk(root):
        for name in names:
            if name.startswith('.'):
                continue  # the lock file
            path = osp.join(dirpath, name)
            with open(path, 'rb') as f:
                out[osp.relpath(path, root)] = f.read()
    return out


def _load_json(path: str) -> dict:
    with open(path, encoding='utf-8') as f:
        return json.load(f)


@pytest.fixture(scope='module')
def dataset(tmp_path_factory) -> syn.SyntheticDataset:
    # PNG: decoded files equal the rendered images, so masks apply to them
    root = tmp_path_factory.mktemp('synthetic') / 'ds'
    return syn.make_synthetic_dataset(str(root), seed=SEED, img_format='png',
                                      **SMALL)


def test_layout(dataset):
    root = dataset.root
    assert dataset.classes == ('rectangle', 'ellipse', 'triangle', 'star')
    assert dataset.metainfo['classes'] == dataset.classes
    for split, num in (('train', 8), ('val', 4)):
        imgs = sorted(os.listdir(dataset.img_dirs[split]))
        labels = sorted(os.listdir(dataset.label_dirs[split]))
        assert len(imgs) == num and all(n.endswith('.png') for n in imgs)
        assert labels == [n[:-4] + '.txt' for n in imgs]
        coco = _load_json(dataset.ann_files[split])
        assert [im['file_name'] for im in coco['images']] == imgs
        assert all(im['width'] == 96 and im['height'] == 96
                   for im in coco['images'])
        assert [c['name'] for c in coco['categories']] == list(dataset.classes)
        anns = coco['annotations']
        assert len(anns) == dataset.meta['counts'][split]['instances'] > 0
        assert len({a['id'] for a in anns}) == len(anns)
        for a in anns:
            assert a['iscrowd'] == 0 and 1 <= a['category_id'] <= 4
            assert len(a['bbox']) == 4 and 0 < a['area'] <= \
                a['bbox'][2] * a['bbox'][3]
    with open(osp.join(root, 'classes.txt'), encoding='utf-8') as f:
        assert f.read().split() == list(dataset.classes)
    with open(dataset.data_yaml, encoding='utf-8') as f:
        data = yaml.safe_load(f)
    assert data['path'] == root
    assert (data['train'], data['val']) == ('images/train', 'images/val')
    assert data['nc'] == 4
    assert data['names'] == dict(enumerate(dataset.classes))


def test_deterministic(tmp_path):
    a = syn.make_synthetic_dataset(str(tmp_path / 'a'), seed=1, **SMALL)
    b = syn.make_synthetic_dataset(str(tmp_path / 'b'), seed=1, **SMALL)
    c = syn.make_synthetic_dataset(str(tmp_path / 'c'), seed=2, **SMALL)
    fa, fb, fc = _files(a.root), _files(b.root), _files(c.root)
    assert sorted(fa) == sorted(fb) == sorted(fc)
    assert any(k.endswith('.jpg') for k in fa)
    for key in fa:
        if key == 'data.yaml':  # holds the absolute dataset path
            assert fa[key].replace(a.root.encode(), b'') == \
                fb[key].replace(b.root.encode(), b'')
        else:
            assert fa[key] == fb[key], key
    for split in syn.SPLITS:
        ann = f'annotations/instances_{split}.json'
        assert fa[ann] != fc[ann]
    assert fa['images/train/000001.jpg'] != fc['images/train/000001.jpg']
    # images depend on (seed, split, index) only: more images extend a set
    d = syn.make_synthetic_dataset(str(tmp_path / 'd'), seed=1, num_train=10,
                                   num_val=4, img_size=96)
    assert _files(d.root)['images/train/000008.jpg'] == \
        fa['images/train/000008.jpg']


def test_loads_as_mmdet_coco_dataset(dataset):
    from mmdet.datasets import CocoDataset
    from mmdet.registry import DATASETS
    from mmengine.registry import init_default_scope
    init_default_scope('mmdet')
    pipeline = [dict(type='LoadImageFromFile'),
                dict(type='LoadAnnotations', with_bbox=True)]
    for split in syn.SPLITS:
        coco = _load_json(dataset.ann_files[split])
        ds = CocoDataset(
            data_root=dataset.root, metainfo=dataset.metainfo,
            ann_file=f'annotations/instances_{split}.json',
            data_prefix=dict(img=f'images/{split}/'), pipeline=pipeline)
        assert len(ds) == len(coco['images'])
        built = DATASETS.build(dataset.coco_dataset_cfg(split, pipeline))
        assert len(built) == len(ds)
        by_image = {}
        for a in coco['annotations']:
            x, y, w, h = a['bbox']
            by_image.setdefault(a['image_id'], []).append(
                (x, y, x + w, y + h, a['category_id'] - 1))
        total = 0
        for i in range(len(ds)):
            item = ds[i]
            assert item['img'].shape == (96, 96, 3)
            boxes = np.asarray(item['gt_bboxes'].tensor)
            expect = np.asarray(by_image.get(item['img_id'], []),
                                np.float32).reshape(-1, 5)
            np.testing.assert_array_equal(boxes, expect[:, :4])
            np.testing.assert_array_equal(item['gt_bboxes_labels'],
                                          expect[:, 4])
            total += len(boxes)
        assert total == len(coco['annotations']) == \
            dataset.meta['counts'][split]['instances']


def test_coco_metric_scores_ground_truth_as_perfect(dataset):
    import torch
    from mmdet.evaluation import CocoMetric
    coco = _load_json(dataset.ann_files['val'])
    metric = CocoMetric(ann_file=dataset.ann_files['val'], metric='bbox')
    metric.dataset_meta = dataset.metainfo
    samples = []
    for im in coco['images']:
        anns = [a for a in coco['annotations'] if a['image_id'] == im['id']]
        boxes = torch.tensor([[x, y, x + w, y + h] for x, y, w, h in
                              (a['bbox'] for a in anns)],
                             dtype=torch.float32).reshape(-1, 4)
        samples.append(dict(
            img_id=im['id'], ori_shape=(im['height'], im['width']),
            pred_instances=dict(
                bboxes=boxes, scores=torch.ones(len(anns)),
                labels=torch.tensor([a['category_id'] - 1 for a in anns]))))
    metric.process({}, samples)
    results = metric.evaluate(size=len(samples))
    assert results['coco/bbox_mAP'] == pytest.approx(1.0)


def test_yolo_labels_match_coco(dataset):
    for split in syn.SPLITS:
        coco = _load_json(dataset.ann_files[split])
        for im in coco['images']:
            W, H = im['width'], im['height']
            txt = osp.join(dataset.label_dirs[split],
                           osp.splitext(im['file_name'])[0] + '.txt')
            rows = np.loadtxt(txt, ndmin=2).reshape(-1, 5)
            anns = [a for a in coco['annotations']
                    if a['image_id'] == im['id']]
            assert len(rows) == len(anns)
            cls, cx, cy, w, h = rows.T
            assert (0 <= rows[:, 1:]).all() and (rows[:, 1:] <= 1).all()
            yolo = np.stack([(cx - w / 2) * W, (cy - h / 2) * H, w * W,
                             h * H], 1)
            np.testing.assert_allclose(
                yolo, [a['bbox'] for a in anns], rtol=1e-3, atol=1e-3)
            assert cls.tolist() == [a['category_id'] - 1 for a in anns]


def test_boxes_tight_inside_and_visible(dataset):
    cfg = syn.SyntheticConfig(img_size=96)
    for split in syn.SPLITS:
        coco = _load_json(dataset.ann_files[split])
        for index, im in enumerate(coco['images']):
            sample = syn.render_sample(cfg, SEED, split, index)
            img = cv2.imread(osp.join(dataset.img_dirs[split],
                                      im['file_name']))
            np.testing.assert_array_equal(img, sample.image)
            anns = [a for a in coco['annotations']
                    if a['image_id'] == im['id']]
            assert len(anns) == len(sample.masks)
            assert not (sample.masks.sum(0) > 1).any()  # disjoint
            others = sample.masks.any(0)
            for a, mask, vis in zip(anns, sample.masks, sample.visible):
                x, y, w, h = a['bbox']
                assert 0 <= x and 0 <= y and x + w <= 96 and y + h <= 96
                assert min(w, h) >= cfg.min_box and vis >= cfg.min_visible
                assert a['area'] == mask.sum()
                # tight: no mask pixel outside, one on each border line
                inside = np.zeros_like(mask)
                inside[y:y + h, x:x + w] = True
                assert not (mask & ~inside).any()
                crop = mask[y:y + h, x:x + w]
                assert crop[0].any() and crop[-1].any()
                assert crop[:, 0].any() and crop[:, -1].any()
                assert _contrast(img, mask, others) > 40


def _contrast(img: np.ndarray, mask: np.ndarray, objects: np.ndarray) -> float:
    """Colour distance between an object and the background just around
    it (inf when no background touches it)."""
    ring = cv2.dilate(mask.view(np.uint8), np.ones((5, 5), np.uint8))
    ring = ring.view(bool) & ~objects
    if ring.sum() < 10:
        return float('inf')
    diff = img[mask].astype(float).mean(0) - img[ring].astype(float).mean(0)
    return float(np.linalg.norm(diff))


def test_render_statistics():
    cfg = syn.SyntheticConfig(img_size=160, classes=6)
    long_sides, visible, labels = [], [], []
    for index in range(40):
        s = syn.render_sample(cfg, 0, 'train', index)
        objects = s.masks.any(0)
        assert all(_contrast(s.image, m, objects) > 40 for m in s.masks)
        wh = s.bboxes[:, 2:] - s.bboxes[:, :2]
        assert (wh >= cfg.min_box).all()
        assert (s.bboxes[:, :2] >= 0).all() and (s.bboxes[:, 2:] <= 160).all()
        long_sides += wh.max(1).tolist()
        visible += s.visible.tolist()
        labels += s.labels.tolist()
    assert min(long_sides) <= 8  # small objects exist
    assert max(long_sides) >= 40
    assert min(visible) >= 0.5 and min(visible) < 0.9  # real occlusions
    assert set(labels) == set(range(6))


def test_shapes_differ_in_outline():
    rng = np.random.default_rng(0)
    fill = {}
    for shape in syn.SHAPES:
        poly = syn.shape_polygon(shape, 40, 40, rng) + 30
        mask = syn._fill_mask(poly, 60, 60)
        box = syn.mask_to_box(mask)
        assert 38 <= box[2] - box[0] <= 41 and 34 <= box[3] - box[1] <= 41
        fill[shape] = mask.sum() / ((box[2] - box[0]) * (box[3] - box[1]))
    assert fill['rectangle'] > 0.95
    assert 0.74 < fill['ellipse'] < 0.83
    assert 0.4 < fill['triangle'] < 0.6
    assert fill['star'] < 0.45
    with pytest.raises(ValueError, match='shape'):
        syn.shape_polygon('circle', 4, 4, rng)


def test_reuse_and_regenerate(tmp_path):
    root = str(tmp_path / 'ds')
    first = syn.make_synthetic_dataset(root, seed=0, **SMALL)
    assert not first.reused
    with open(osp.join(root, 'README.txt'), 'w') as f:
        f.write('user file')

    def stamps():
        return {k: os.stat(osp.join(root, k)).st_mtime_ns
                for k in _files(root)}

    before = stamps()
    again = syn.make_synthetic_dataset(root, seed=0, **SMALL)
    assert again.reused and again.meta['counts'] == first.meta['counts']
    assert stamps() == before
    changed = syn.make_synthetic_dataset(root, seed=0, num_train=5,
                                         num_val=4, img_size=96)
    assert not changed.reused
    assert len(os.listdir(changed.img_dirs['train'])) == 5  # stale ones gone
    assert len(os.listdir(changed.label_dirs['train'])) == 5
    assert _load_json(osp.join(root, 'meta.json'))['params']['num_train'] == 5
    assert osp.isfile(osp.join(root, 'README.txt'))
    assert not [n for n in os.listdir(str(tmp_path)) if '.tmp-' in n]
    # an incomplete dataset is regenerated
    os.remove(osp.join(changed.img_dirs['val'], '000002.jpg'))
    fixed = syn.make_synthetic_dataset(root, seed=0, num_train=5, num_val=4,
                                       img_size=96)
    assert not fixed.reused
    assert osp.isfile(osp.join(fixed.img_dirs['val'], '000002.jpg'))


def test_refuses_foreign_folder(tmp_path):
    root = tmp_path / 'mine'
    (root / 'images' / 'train').mkdir(parents=True)
    (root / 'images' / 'train' / 'photo.jpg').write_bytes(b'keep me')
    with pytest.raises(FileExistsError, match='images/train'):
        syn.make_synthetic_dataset(str(root), **SMALL)
    assert (root / 'images' / 'train' / 'photo.jpg').read_bytes() == b'keep me'
    (root / 'meta.json').write_text('{"generator": "someone else"}')
    with pytest.raises(FileExistsError, match='meta.json'):
        syn.make_synthetic_dataset(str(root), **SMALL)


@pytest.mark.parametrize('kwargs, key', [
    (dict(classes='rectangle,circle'), 'classes'),
    (dict(classes=7), 'classes'),
    (dict(img_size=8), 'img_size'),
    (dict(min_visible=0), 'min_visible'),
    (dict(max_objects=0), 'max_objects'),
    (dict(num_train=-1), 'num_train'),
    (dict(img_format='bmp'), 'img_format'),
])
def test_bad_arguments(tmp_path, kwargs, key):
    with pytest.raises(ValueError, match=key):
        syn.make_synthetic_dataset(str(tmp_path / 'ds'), **kwargs)


def test_metainfo():
    assert syn.synthetic_metainfo()['classes'] == \
        ('rectangle', 'ellipse', 'triangle', 'star')
    info = syn.synthetic_metainfo('star, cross')
    assert info['classes'] == ('star', 'cross') and len(info['palette']) == 2
    assert syn.METAINFO['classes'] == syn.DEFAULT_CLASSES


def test_cli(tmp_path):
    out, preview = str(tmp_path / 'ds'), str(tmp_path / 'preview.png')
    cmd = [PY, 'tools/misc/make_synthetic_dataset.py', '--out', out, '--num-train', '3', '--num-val', '1',
           '--img-size', '64', '48', '--classes', 'rectangle,star', '--min-size', '5', '--preview', preview]
    printed = run_tool(cmd).stdout
    assert 'Wrote' in printed and 'data.yaml' in printed and 'classes: rectangle, star' in printed
    assert f"images:      {osp.join(out, 'images', 'train')}" in printed
    img = cv2.imread(osp.join(out, 'images', 'train', '000001.jpg'))
    assert img.shape == (48, 64, 3)
    assert cv2.imread(preview).shape == (96, 4 * 128, 3)
    assert run_tool(cmd).stdout.startswith(f'Reused {out} ')
