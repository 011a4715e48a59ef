"""The dataset tools: yolo2coco / coco2yolo (round trips, reports of what was not converted,
identical COCO metrics from the converted file and from YOLODataset) and check_dataset."""
import json
import os
import os.path as osp

import numpy as np
import pytest
import torch
from PIL import Image

import convnextv2_yolo  # noqa: F401
from convnextv2_yolo.dataset_tools import check_dataset, check_problems
from convnextv2_yolo.dataset_tools import coco_to_yolo as coco2yolo
from convnextv2_yolo.dataset_tools import yolo_to_coco as yolo2coco
from convnextv2_yolo.datasets import yolo_format as yf
from tests.helpers.data import LICENSE_PLATES, needs_license_plates
from tests.helpers.processes import PY, run_tool

TOOLS = dict(yolo2coco='tools/dataset_converters/yolo2coco.py', coco2yolo='tools/dataset_converters/coco2yolo.py',
             check_dataset='tools/misc/check_dataset.py')


def cli(tool, *args):
    """Run a tool's command line (``TOOLS`` key) from the repository root, as a user would."""
    return run_tool([PY, TOOLS[tool], *args], check=False)


# ----------------------------------------------------------------------------- crafted files
def save_image(path, width, height, orientation=None, seed=0):
    """A noisy RGB image of ``width x height`` stored pixels (JPEG or PNG by extension), optional EXIF orientation."""
    os.makedirs(osp.dirname(path), exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 255, (height, width, 3), dtype=np.uint8)
    img = Image.fromarray(pixels)
    if orientation:
        exif = Image.Exif()
        exif[0x0112] = orientation
        img.save(path, exif=exif)
    else:
        img.save(path)
    return path


def write(path, content):
    os.makedirs(osp.dirname(path), exist_ok=True)
    with open(path, 'wb' if isinstance(content, bytes) else 'w') as f:
        f.write(content)
    return path


def write_yaml(root, names, **splits):
    import yaml
    return write(osp.join(root, 'data.yaml'), yaml.safe_dump(dict(path='.', **splits, names=list(names))))


@pytest.fixture(scope='module')
def good_yolo(tmp_path_factory):
    """Odd sizes, an EXIF-rotated JPEG (labels in the displayed frame), a polygon row, two backgrounds."""
    root = str(tmp_path_factory.mktemp('good_yolo'))
    save_image(f'{root}/images/train/a.jpg', 37, 23)
    write(f'{root}/labels/train/a.txt', '0 0.5 0.5 0.2 0.4\n1 0.25 0.75 0.3 0.2\n')
    save_image(f'{root}/images/train/b.png', 50, 31, seed=1)
    write(f'{root}/labels/train/b.txt', '2 0.1 0.2 0.5 0.1 0.4 0.7\n0 0.6 0.6 0.1 0.3\n')
    save_image(f'{root}/images/train/c.jpg', 40, 24, orientation=6, seed=2)  # displayed 24 x 40
    write(f'{root}/labels/train/c.txt', '1 0.3 0.6 0.5 0.25\n')
    save_image(f'{root}/images/train/d.jpg', 21, 19, seed=3)  # no label file
    save_image(f'{root}/images/train/e.jpg', 33, 45, seed=4)
    write(f'{root}/labels/train/e.txt', '')
    save_image(f'{root}/images/val/f.jpg', 33, 45, seed=5)
    write(f'{root}/labels/val/f.txt', '2 0.123456789 0.5 0.2 0.33333333333\n')
    return write_yaml(root, ['cat', 'dog', 'bird'], train='images/train', val='images/val')


@pytest.fixture(scope='module')
def bad_yolo(tmp_path_factory):
    """One file per kind of problem (see check_dataset's kinds), plus usable images with tiny boxes."""
    root = str(tmp_path_factory.mktemp('bad_yolo'))
    img, lab = f'{root}/images/train', f'{root}/labels/train'
    save_image(f'{img}/ok.jpg', 40, 30)
    # a box, its duplicate (dropped), one 0.005 outside (clipped)
    write(f'{lab}/ok.txt', '0 0.5 0.5 0.5 0.5\n0 0.5 0.5 0.5 0.5\n1 0.5 0.5 1.005 0.4\n')
    save_image(f'{img}/badrows.jpg', 40, 30)
    write(f'{lab}/badrows.txt', '5 0.5 0.5 0.1 0.1\n0 1.5 0.5 0.1 0.1\n0 0.5 0.5\n0 a 0.5 0.1 0.1\n'
          '0 0.5 0.5 0 0.1\n1 0.5 0.5 0.2 0.2\n')
    write(f'{img}/corrupt.jpg', b'this is not an image')
    jpeg = open(save_image(f'{img}/trunc.jpg', 40, 30), 'rb').read()
    write(f'{img}/trunc.jpg', jpeg[:-200])
    write(f'{lab}/trunc.txt', '0 0.5 0.5 0.2 0.2\n')
    save_image(f'{img}/small.png', 8, 8)
    save_image(f'{img}/nolabel.jpg', 20, 20)
    save_image(f'{img}/bin.jpg', 20, 20)
    write(f'{lab}/bin.txt', b'\xff\xfe\x00\x81 binary')
    save_image(f'{img}/tiny.jpg', 100, 100)
    # 3x5 px (< 4 and < 8), 6x30 px (< 8), 8x8 px (not under 8: sides equal to a threshold within rounding)
    write(f'{lab}/tiny.txt', '0 0.5 0.5 0.03 0.05\n1 0.2 0.2 0.06 0.3\n1 0.7 0.7 0.08 0.08\n')
    write(f'{lab}/orphan.txt', '0 0.5 0.5 0.1 0.1\n')
    return write_yaml(root, ['cat', 'dog'], train='images/train')


def coco_dict(images, annotations, categories):
    return dict(images=images, annotations=annotations, categories=categories)


@pytest.fixture(scope='module')
def good_coco(tmp_path_factory):
    """Non-contiguous, unsorted category ids; odd sizes; an EXIF-rotated JPEG (its decoded size recorded);
    a background; a subfolder; annotations without area / iscrowd."""
    root = str(tmp_path_factory.mktemp('good_coco'))
    save_image(f'{root}/img/p1.jpg', 41, 27)
    save_image(f'{root}/img/sub/p2.png', 63, 35, seed=1)
    save_image(f'{root}/img/rot.jpg', 30, 50, orientation=8, seed=2)  # decoded 50 x 30
    save_image(f'{root}/img/bg.jpg', 25, 25, seed=3)
    images = [dict(id=10, file_name='p1.jpg', width=41, height=27),
              dict(id=3, file_name='sub/p2.png', width=63, height=35),
              dict(id=7, file_name='rot.jpg', width=50, height=30),
              dict(id=20, file_name='bg.jpg', width=25, height=25)]
    categories = [dict(id=12, name='bike'), dict(id=3, name='person'), dict(id=7, name='car')]
    anns = [dict(id=1, image_id=10, category_id=12, bbox=[1.5, 2.25, 10.125, 7.0]),
            dict(id=5, image_id=10, category_id=3, bbox=[20.0, 0.0, 21.0, 27.0], area=567.0, iscrowd=0),
            dict(id=9, image_id=3, category_id=7, bbox=[0.333, 4.777, 12.0001, 30.1]),
            dict(id=2, image_id=3, category_id=12, bbox=[50.5, 10.25, 12.5, 3.75]),
            dict(id=4, image_id=7, category_id=3, bbox=[5.0, 6.0, 40.0, 20.0])]
    ann_file = write(f'{root}/ann.json', json.dumps(coco_dict(images, anns, categories)))
    return ann_file, f'{root}/img'


def label_rows(data_yaml):
    """{(split, image path relative to the split's root): (classes, normalised boxes)} of a YOLO dataset."""
    data = yf.load_data_yaml(data_yaml)
    out = {}
    for split, sources in data.splits.items():
        images = data.images(split)
        root = yolo2coco.image_root(sources, images)
        for path in images:
            rows = yf.read_label_file(yf.img2label_path(path), len(data.names))
            out[split, osp.relpath(path, root)] = (
                [data.names[c] for c in rows.classes] if rows else [],
                rows.boxes if rows else np.zeros((0, 4)))
    return out


def coco_boxes(coco):
    """{file_name: (width, height, [(category name, bbox)...])} in annotation order."""
    names = {c['id']: c['name'] for c in coco['categories']}
    out = {img['file_name']: (img['width'], img['height'], []) for img in coco['images']}
    by_id = {img['id']: img['file_name'] for img in coco['images']}
    for ann in coco['annotations']:
        out[by_id[ann['image_id']]][2].append((names[ann['category_id']], ann['bbox']))
    return out


def yolo_to_coco_to_yolo(data_yaml, tmp):
    """Both conversions in process; returns (COCO dicts by split, the new data.yaml, yolo2coco's report)."""
    _, cocos, report = yolo2coco.convert(data_yaml, f'{tmp}/coco')
    for split, coco in cocos.items():
        coco2yolo.convert(f'{tmp}/coco/annotations/instances_{split}.json', coco['info']['image_root'],
                          f'{tmp}/yolo', split)
    return cocos, f'{tmp}/yolo/data.yaml', report


def assert_same_labels(a, b, atol=1e-6):
    assert sorted(a) == sorted(b)
    for key in a:
        assert a[key][0] == b[key][0], key
        np.testing.assert_allclose(a[key][1], b[key][1], atol=atol, rtol=0, err_msg=str(key))


def assert_same_coco(a, b, atol=1e-3):
    boxes_a, boxes_b = coco_boxes(a), coco_boxes(b)
    assert sorted(boxes_a) == sorted(boxes_b)
    for name, (w, h, anns) in boxes_a.items():
        w2, h2, anns2 = boxes_b[name]
        assert (w, h) == (w2, h2), name
        assert [c for c, _ in anns] == [c for c, _ in anns2], name
        np.testing.assert_allclose([b for _, b in anns], [b for _, b in anns2], atol=atol, rtol=0, err_msg=name)


# ----------------------------------------------------------------------------- yolo2coco / coco2yolo
def test_yolo2coco_conventions(good_yolo, tmp_path):
    _, cocos, report = yolo2coco.convert(good_yolo, str(tmp_path), copy_images=True)
    assert not report.items
    train = cocos['train']
    assert train['categories'] == [dict(id=1, name='cat', supercategory='none'),
                                   dict(id=2, name='dog', supercategory='none'),
                                   dict(id=3, name='bird', supercategory='none')]
    images = {img['file_name']: img for img in train['images']}
    # ids = position in the sorted image list (YOLODataset's img_id); sizes as decoded (EXIF: 40x24 -> 24x40)
    assert [(n, i['id'], i['width'], i['height']) for n, i in sorted(images.items())] == [
        ('a.jpg', 0, 37, 23), ('b.png', 1, 50, 31), ('c.jpg', 2, 24, 40), ('d.jpg', 3, 21, 19), ('e.jpg', 4, 33, 45)]
    anns = coco_boxes(train)
    np.testing.assert_allclose(anns['a.jpg'][2][0][1], [0.4 * 37, 0.3 * 23, 0.2 * 37, 0.4 * 23], rtol=1e-12)
    assert anns['b.png'][2][0][0] == 'bird'  # the polygon's bounding box
    np.testing.assert_allclose(anns['b.png'][2][0][1], [0.1 * 50, 0.1 * 31, 0.4 * 50, 0.6 * 31], rtol=1e-12)
    np.testing.assert_allclose(anns['c.jpg'][2][0][1], [0.05 * 24, 0.475 * 40, 0.5 * 24, 0.25 * 40], rtol=1e-12)
    assert anns['d.jpg'][2] == [] and anns['e.jpg'][2] == []  # backgrounds kept
    for ann in train['annotations']:
        assert ann['area'] == ann['bbox'][2] * ann['bbox'][3] and ann['iscrowd'] == 0
    assert [a['id'] for a in train['annotations']] == list(range(1, 6))
    assert train['info']['image_root'] == osp.join(str(tmp_path), 'images', 'train')
    assert osp.isfile(osp.join(str(tmp_path), 'images', 'train', 'c.jpg'))
    assert train['info']['polygon_rows_as_boxes'] == 1
    # the written file is what was returned, and CheckedCOCO reads it
    from convnextv2_yolo.datasets import CheckedCOCO
    assert CheckedCOCO(osp.join(str(tmp_path), 'annotations', 'instances_train.json')).dataset == json.loads(
        json.dumps(train))


def test_round_trip_yolo_coco_yolo(good_yolo, tmp_path):
    cocos, new_yaml, _ = yolo_to_coco_to_yolo(good_yolo, str(tmp_path))
    assert_same_labels(label_rows(good_yolo), label_rows(new_yaml))
    # backgrounds stay backgrounds (an empty label file), EXIF image keeps its displayed size
    assert open(f'{tmp_path}/yolo/labels/train/d.txt').read() == ''
    assert yf.verify_image(f'{tmp_path}/yolo/images/train/c.jpg')[0] == (24, 40)
    # and back to COCO: the same boxes
    _, again, _ = yolo2coco.convert(new_yaml, f'{tmp_path}/coco2')
    for split in cocos:
        assert_same_coco(cocos[split], again[split], atol=1e-6)


def test_round_trip_coco_yolo_coco(good_coco, tmp_path):
    ann_file, img_dir = good_coco
    counts, report = coco2yolo.convert(ann_file, img_dir, f'{tmp_path}/yolo', 'val')
    assert not report.items
    assert counts['names'] == ['person', 'car', 'bike']  # categories by id: 3, 7, 12
    assert (counts['images'], counts['backgrounds'], counts['boxes']) == (4, 1, 5)
    assert os.path.islink(f'{tmp_path}/yolo/images/val/sub/p2.png')
    assert open(f'{tmp_path}/yolo/labels/val/p1.txt').read().splitlines()[0].split()[0] == '2'  # bike
    _, cocos, report = yolo2coco.convert(f'{tmp_path}/yolo/data.yaml', f'{tmp_path}/coco')
    assert not report.items
    original = json.load(open(ann_file))
    assert_same_coco(original, cocos['val'], atol=1e-3)
    assert [c['name'] for c in cocos['val']['categories']] == ['person', 'car', 'bike']


def test_coco2yolo_class_order_and_merged_yaml(good_coco, tmp_path):
    import yaml
    ann_file, img_dir = good_coco
    out = f'{tmp_path}/yolo'
    coco2yolo.convert(ann_file, img_dir, out, 'train', classes=['car', 'person', 'bike'])
    coco2yolo.convert(ann_file, img_dir, out, 'val', classes=['car', 'person', 'bike'], copy=True)
    data = yaml.safe_load(open(f'{out}/data.yaml'))
    assert data == dict(path='.', train='images/train', val='images/val', nc=3, names=['car', 'person', 'bike'])
    assert not osp.islink(f'{out}/images/val/p1.jpg') and osp.islink(f'{out}/images/train/p1.jpg')
    assert [r.split()[0] for r in open(f'{out}/labels/val/p1.txt').read().splitlines()] == ['2', '1']
    # the loader of the reference's layout reads what was written
    assert yf.load_data_yaml(f'{out}/data.yaml').names == ('car', 'person', 'bike')
    with pytest.raises(coco2yolo.ConversionError, match=r"data.yaml: its 'names' \['car', 'person', 'bike'\] "
                       r"differ from the classes of this file \['person', 'car', 'bike'\]"):
        coco2yolo.convert(ann_file, img_dir, out, 'test')
    with pytest.raises(coco2yolo.ConversionError, match=r'images/val is not empty: pass --overwrite'):
        coco2yolo.convert(ann_file, img_dir, out, 'val', classes=['car', 'person', 'bike'])
    coco2yolo.convert(ann_file, img_dir, out, 'val', classes=['car', 'person', 'bike'], overwrite=True)
    with pytest.raises(coco2yolo.ConversionError, match=r"--classes \['truck'\] are not categories"):
        coco2yolo.convert(ann_file, img_dir, f'{tmp_path}/other', 'train', classes=['car', 'truck'])


def test_yolo2coco_reports_what_it_did_not_convert(bad_yolo, tmp_path):
    paths, cocos, report = yolo2coco.convert(bad_yolo, str(tmp_path))
    items = report.items
    lab = osp.join(osp.dirname(bad_yolo), 'labels', 'train')
    img = osp.join(osp.dirname(bad_yolo), 'images', 'train')
    unreadable = sorted(items[yolo2coco.SKIPPED_UNREADABLE])
    assert len(unreadable) == 3 and unreadable[0].startswith(f'{img}/corrupt.jpg: unreadable image (')
    assert unreadable[1:] == [f'{img}/small.png: image too small (8x8 px, under 10 px)',
                              f'{img}/trunc.jpg: truncated JPEG (no end-of-image marker)']
    rows = items[yolo2coco.SKIPPED_LABEL_ERRORS]
    assert [r.split(': ')[0] for r in rows] == [f'{lab}/badrows.txt:{k}' for k in range(1, 5)]
    assert 'class 5 is not a class index in [0, 2)' in rows[0] and 'not a number' in rows[3]
    assert items[yolo2coco.SKIPPED_NOT_TEXT][0].startswith(f'{lab}/bin.txt: not a text label file')
    assert items[yolo2coco.NOTE_DUPLICATE] == [f'{lab}/ok.txt:2: duplicate of an earlier row, dropped']
    assert items[yolo2coco.NOTE_CLIPPED] == [f'{lab}/ok.txt:3: coordinates outside [0, 1] by 0.005, clipped']
    # converted: ok (2 boxes), nolabel (background), tiny (3 boxes); skipped ids stay unused
    train = cocos['train']
    assert sorted((i['file_name'], i['id']) for i in train['images']) == [('nolabel.jpg', 3), ('ok.jpg', 4),
                                                                          ('tiny.jpg', 6)]
    assert len(train['annotations']) == 5
    text = report.format(max_listed=2)
    assert f'{yolo2coco.SKIPPED_LABEL_ERRORS}: 4\n' in text and '  ... and 2 more' in text


def test_coco2yolo_reports_what_it_did_not_convert(good_coco, tmp_path):
    _, img_dir = good_coco
    images = [dict(id=1, file_name='p1.jpg', width=41, height=27),
              dict(id=2, file_name='rot.jpg', width=30, height=50),  # the raw size: EXIF swaps it
              dict(id=3, file_name='missing.jpg', width=10, height=10),
              dict(id=4, file_name='./p1.jpg', width=41, height=27)]
    cats = [dict(id=3, name='person'), dict(id=7, name='car')]
    anns = [dict(id=1, image_id=1, category_id=3, bbox=[1, 1, 5, 5], iscrowd=1),
            dict(id=2, image_id=1, category_id=3, segmentation=[[2, 3, 12, 3, 7, 9.5]]),
            dict(id=3, image_id=1, category_id=7, segmentation={'size': [27, 41], 'counts': [30, 4, 23, 4, 1046]}),
            dict(id=4, image_id=1, category_id=7),
            dict(id=5, image_id=1, category_id=99, bbox=[1, 1, 5, 5]),
            dict(id=6, image_id=42, category_id=3, bbox=[1, 1, 5, 5]),
            dict(id=7, image_id=1, category_id=3, bbox=[-4, 20, 10, 10]),
            dict(id=8, image_id=1, category_id=3, bbox=[50, 1, 5, 5]),
            dict(id=9, image_id=1, category_id=7, bbox=[3, 3, 0, 5]),
            dict(id=10, image_id=2, category_id=7, bbox=[3, 3, 10, 10])]
    ann_file = write(f'{tmp_path}/bad.json', json.dumps(coco_dict(images, anns, cats)))
    counts, report = coco2yolo.convert(ann_file, img_dir, f'{tmp_path}/out', 'train', classes=['person'])
    items = {k: len(v) for k, v in report.items.items()}
    assert items == {coco2yolo.SKIP_UNKNOWN_CATEGORY: 1, coco2yolo.SKIP_UNKNOWN_IMAGE: 1,
                     coco2yolo.NOTE_BBOX_FROM_SEGMENTATION: 2, coco2yolo.SKIP_NO_BOX: 1,
                     coco2yolo.SKIP_SAME_NAME: 1, coco2yolo.SKIP_IMAGE: 1, coco2yolo.NOTE_SIZE: 1,
                     coco2yolo.SKIP_CROWD: 1, coco2yolo.SKIP_OTHER_CLASS: 3, coco2yolo.NOTE_CLIPPED: 1,
                     coco2yolo.SKIP_OUTSIDE: 1}, report.format()
    msg = report.items
    assert msg[coco2yolo.SKIP_UNKNOWN_CATEGORY] == [f'{ann_file}: annotation id 5: category_id 99']
    assert msg[coco2yolo.SKIP_UNKNOWN_IMAGE] == [f'{ann_file}: annotation id 6: image_id 42']
    assert msg[coco2yolo.NOTE_BBOX_FROM_SEGMENTATION] == [f'{ann_file}: annotation id 2: bbox [2.0, 3.0, 10.0, 6.5]',
                                                          f'{ann_file}: annotation id 3: bbox [1.0, 3.0, 2.0, 4.0]']
    assert 'width and height are swapped' in msg[coco2yolo.NOTE_SIZE][0]
    assert 'missing.jpg (image id 3): file not found' in msg[coco2yolo.SKIP_IMAGE][0]
    assert 'image id 4: p1.jpg (already image id 1)' in msg[coco2yolo.SKIP_SAME_NAME][0]
    assert 'annotation id 8 ' in msg[coco2yolo.SKIP_OUTSIDE][0]
    # zero-area box 9 is of 'car', not in --classes; without --classes it is reported as zero-area
    rows = open(f'{tmp_path}/out/labels/train/p1.txt').read().splitlines()
    # the polygon's box, then box 7 clipped to [0, 20, 6, 27]
    np.testing.assert_allclose([[float(v) for v in r.split()] for r in rows],
                               [[0, 7 / 41, 6.25 / 27, 10 / 41, 6.5 / 27], [0, 3 / 41, 23.5 / 27, 6 / 41, 7 / 27]])
    _, report = coco2yolo.convert(ann_file, img_dir, f'{tmp_path}/out2', 'train')
    assert report.items[coco2yolo.SKIP_ZERO_AREA] == [f'{ann_file}: annotation id 9 (image p1.jpg): bbox [3, 3, 0, 5]']
    # malformed fields are errors naming the id and field (check_coco_dict)
    bad = write(f'{tmp_path}/worse.json', json.dumps(coco_dict(images[:1], [dict(id=1, image_id=1, category_id=3,
                                                                                 bbox=[1, 2, 'x', 4])], cats)))
    with pytest.raises(coco2yolo.COCOFormatError, match=r"annotation id 1: field 'bbox' must be 4 finite numbers"):
        coco2yolo.convert(bad, img_dir, f'{tmp_path}/out3')


@pytest.mark.parametrize('row,warned', [
    ('0 0.9425592007443464 0.5 0.11488159851130743 0.2', False),  # full precision: 1 + 2.2e-16
    ('0 0.816667 0.5 0.366667 0.2', False),  # 6 decimals (the reference's converters): 1 + 5e-7
    ('0 0.9 0.5 0.21 0.4', False),  # the box reaches 0.005 past the edge: clipped, within the tolerance
    ('0 0.5 0.5 1.005 0.4', True),  # a value outside [0, 1] by 0.005
    ('0 0.99 0.5 0.1 0.4', True)])  # 0.04 past the edge, accepted by the reference: clipped with a warning
def test_rounding_at_the_border_is_clipped_without_a_warning(row, warned):
    rows = yf.parse_label_text(row + '\n', 1)
    assert not rows.errors and bool(rows.warnings) == warned
    assert rows.boxes[0, 0] + rows.boxes[0, 2] / 2 <= 1


# ----------------------------------------------------------------------------- identical metrics
def synthetic_predictions(infos, num_classes, seed=0):
    """Per image path: GT boxes jittered (some with the wrong class, some missed) plus false positives."""
    preds = {}
    for k, info in enumerate(sorted(infos, key=lambda i: i['img_path'])):
        rng = np.random.default_rng(seed + k)
        w, h = info['width'], info['height']
        boxes, scores, labels = [], [], []
        for inst in info['instances']:
            if rng.random() < 0.15:  # missed
                continue
            x1, y1, x2, y2 = inst['bbox']
            jitter = rng.normal(0, 0.08, 4) * [x2 - x1, y2 - y1, x2 - x1, y2 - y1]
            boxes.append(np.clip([x1, y1, x2, y2] + jitter, 0, [w, h, w, h]))
            scores.append(rng.uniform(0.3, 1.0))
            labels.append(inst['bbox_label'] if rng.random() < 0.85 else (inst['bbox_label'] + 1) % num_classes)
        for _ in range(rng.integers(0, 3)):  # false positives
            x, y = rng.uniform(0, w * 0.8), rng.uniform(0, h * 0.8)
            boxes.append([x, y, x + rng.uniform(5, w * 0.2), y + rng.uniform(5, h * 0.2)])
            scores.append(rng.uniform(0.05, 0.7))
            labels.append(int(rng.integers(num_classes)))
        preds[osp.normpath(info['img_path'])] = dict(
            bboxes=torch.tensor(np.asarray(boxes, dtype=np.float32).reshape(-1, 4)),
            scores=torch.tensor(scores, dtype=torch.float32), labels=torch.tensor(labels, dtype=torch.int64))
    return preds


def evaluate(metric, infos, preds, classes, with_instances):
    metric.dataset_meta = dict(classes=classes)
    for info in infos:
        sample = dict(img_id=info['img_id'], ori_shape=(info['height'], info['width']),
                      pred_instances=preds[osp.normpath(info['img_path'])])
        if with_instances:
            sample['instances'] = info['instances']
        metric.process({}, [sample])
    return metric.compute_metrics(metric.results)


@pytest.fixture(scope='module')
def license_plates_coco(tmp_path_factory):
    """license_plates converted by the command line tool (a subprocess)."""
    out = str(tmp_path_factory.mktemp('lp_coco'))
    res = run_tool([PY, 'tools/dataset_converters/yolo2coco.py', f'{LICENSE_PLATES}/data.yaml', out])
    assert 'val: 70 images (0 without objects), 218 boxes' in res.stdout
    assert 'Everything was converted.' in res.stdout
    return out


@pytest.fixture
def coco_eval_stats(monkeypatch):
    """The full-precision ``COCOeval.stats`` of every evaluation (mmdet rounds its metrics to 3 decimals)."""
    import mmdet.evaluation.metrics.coco_metric as coco_metric
    stats = []

    class Recording(coco_metric.COCOeval):
        def summarize(self):
            super().summarize()
            stats.append(np.array(self.stats))

    monkeypatch.setattr(coco_metric, 'COCOeval', Recording)
    return stats


@needs_license_plates
def test_identical_metrics_from_converted_file_and_yolo_dataset(license_plates_coco, coco_eval_stats):
    from mmdet.registry import DATASETS, METRICS
    from mmengine.registry import init_default_scope
    init_default_scope('mmdet')
    ann_file = f'{license_plates_coco}/annotations/instances_val.json'
    root = json.load(open(ann_file))['info']['image_root']
    classes = ('license-plate', 'vehicle')
    coco_ds = DATASETS.build(dict(type='CheckedCocoDataset', ann_file=ann_file, data_prefix=dict(img=root + '/'),
                                  metainfo=dict(classes=classes), test_mode=True, pipeline=[]))
    yolo_ds = DATASETS.build(dict(type='YOLODataset', data_yaml=f'{LICENSE_PLATES}/data.yaml', split='val',
                                  cache=False, test_mode=True, pipeline=[]))
    coco_infos = [coco_ds.get_data_info(i) for i in range(len(coco_ds))]
    yolo_infos = [yolo_ds.get_data_info(i) for i in range(len(yolo_ds))]
    assert len(coco_infos) == len(yolo_infos) == 70
    preds = synthetic_predictions(yolo_infos, len(classes))
    from_file = evaluate(METRICS.build(dict(type='CheckedCocoMetric', ann_file=ann_file, metric='bbox')),
                         coco_infos, preds, classes, with_instances=False)
    in_memory = evaluate(METRICS.build(dict(type='CheckedCocoMetric', ann_file=None, metric='bbox')),
                         yolo_infos, preds, classes, with_instances=True)
    print('from the converted file:', from_file, '\nin memory from YOLODataset:', in_memory)
    assert from_file == in_memory
    assert all(0 < v < 1 for v in from_file.values())
    # not only to 3 decimals: all 12 COCO numbers, at full precision
    assert len(coco_eval_stats) == 2
    print('COCOeval.stats:', coco_eval_stats[0].tolist())
    np.testing.assert_array_equal(coco_eval_stats[0], coco_eval_stats[1])


@needs_license_plates
def test_round_trips_on_license_plates(license_plates_coco, tmp_path):
    """All 350 images: YOLO -> COCO (the CLI's files) -> YOLO keeps every box and class; -> COCO again too."""
    data_yaml = f'{LICENSE_PLATES}/data.yaml'
    first = {}
    for split in ('train', 'val', 'test'):
        first[split] = json.load(open(f'{license_plates_coco}/annotations/instances_{split}.json'))
        coco2yolo.convert(f'{license_plates_coco}/annotations/instances_{split}.json',
                          first[split]['info']['image_root'], f'{tmp_path}/yolo', split)
    original, back = label_rows(data_yaml), label_rows(f'{tmp_path}/yolo/data.yaml')
    assert len(original) == 350 and sum(len(c) for c, _ in original.values()) == 1123
    assert_same_labels(original, back, atol=1e-6)
    _, again, report = yolo2coco.convert(f'{tmp_path}/yolo/data.yaml', f'{tmp_path}/coco')
    assert not report.items
    for split in first:
        assert_same_coco(first[split], again[split], atol=1e-3)


# ----------------------------------------------------------------------------- check_dataset
def test_check_dataset_reports_each_kind_of_problem(bad_yolo, tmp_path):
    summary, text = check_dataset.check(bad_yolo, str(tmp_path))
    train = summary['splits']['train']
    problems = {k: (v['severity'], v['count']) for k, v in train['problems'].items()}
    c = check_problems
    assert problems == {c.UNREADABLE: ('error', 1), c.TRUNCATED: ('error', 1), c.TOO_SMALL: ('error', 1),
                        c.CLASS_RANGE: ('error', 1), c.OUTSIDE: ('error', 1), c.FIELDS: ('error', 1),
                        c.NOT_NUMBER: ('error', 1), c.NO_AREA: ('warning', 1), c.NOT_TEXT: ('error', 1),
                        c.CLIPPED: ('warning', 1), c.DUPLICATE: ('warning', 1), c.ORPHAN: ('warning', 1),
                        c.NO_LABEL: ('note', 1)}
    lab = osp.join(osp.dirname(bad_yolo), 'labels', 'train')
    assert train['problems'][c.CLASS_RANGE]['items'] == [
        f'{lab}/badrows.txt:1: class 5 is not a class index in [0, 2)']
    assert train['problems'][c.ORPHAN]['items'][0].startswith(f'{lab}/orphan.txt: no image orphan.*')
    # 8 images; usable: ok, nolabel (background), tiny -> 2 + 3 boxes
    assert (train['images'], train['skipped'], train['backgrounds'], train['instances']) == (8, 5, 1, 5)
    assert train['label_files'] == 5 and train['instances_per_class'] == dict(cat=2, dog=3)
    assert train['tiny_boxes'] == dict(side_under_4px=1, side_under_8px=2)
    assert summary['errors'] == 8 and summary['warnings'] == 4
    assert f'{lab}/badrows.txt:4: not a number' in text and 'error: train: class id out of range: 1' in text
    for png in train['plots']:
        assert Image.open(png).size[0] > 300


def test_check_dataset_config_with_yolo_and_coco_datasets(bad_yolo, good_coco, tmp_path):
    ann_file, img_dir = good_coco
    coco = json.load(open(ann_file))
    coco['images'][2].update(width=30, height=50)  # rot.jpg: the raw size, EXIF swaps it
    coco['annotations'] += [dict(id=30, image_id=10, category_id=3, bbox=[30, 20, 20, 10]),  # outside
                            dict(id=31, image_id=10, category_id=7, bbox=[3, 3, 0.5, 5]),  # under 1 px
                            dict(id=32, image_id=10, category_id=3, bbox=[3, 3, 9, 9], iscrowd=1)]
    coco['images'].append(dict(id=99, file_name='gone.jpg', width=10, height=10))
    val_ann = write(f'{tmp_path}/val.json', json.dumps(coco))
    broken = write(f'{tmp_path}/broken.json', json.dumps(dict(images=[], annotations=[{}], categories=[])))
    config = write(f'{tmp_path}/cfg.py', f"""
train_dataloader = dict(dataset=dict(type='RepeatDataset', times=2,
                                     dataset=dict(type='YOLODataset', data_yaml={bad_yolo!r}, split='train')))
val_dataloader = dict(dataset=dict(type='CheckedCocoDataset', data_root={osp.dirname(img_dir)!r},
                                   ann_file={val_ann!r}, data_prefix=dict(img='img/'),
                                   metainfo=dict(classes=('car', 'person', 'truck'))))
test_dataloader = dict(dataset=dict(type='CocoDataset', ann_file={broken!r}, data_prefix=dict(img={img_dir!r})))
""")
    summary, text = check_dataset.check(config, str(tmp_path / 'out'))
    c = check_problems
    assert summary['splits']['train']['kind'] == 'yolo' and summary['splits']['train']['images'] == 8
    val = summary['splits']['val']
    assert val['classes'] == ['car', 'person', 'truck']
    assert val['instances_per_class'] == dict(car=1, person=3, truck=0)
    assert {k: v['count'] for k, v in val['problems'].items()} == {
        c.CLASS_NOT_IN_FILE: 1, c.OTHER_CATEGORY: 1, c.SIZE_MISMATCH: 1, c.BOX_OUTSIDE: 2, c.BOX_UNDER_1PX: 1,
        c.CROWD: 1,
        c.NO_ANNOTATIONS: 1, c.MISSING_IMAGE: 1}
    assert 'width and height are swapped' in val['problems'][c.SIZE_MISMATCH]['items'][0]
    assert "category id 12 'bike' (2 boxes): not in the classes" in val['problems'][c.OTHER_CATEGORY]['items'][0]
    test = summary['splits']['test']['problems'][c.BAD_ANNOTATIONS]
    assert test['severity'] == 'error' and 'broken.json: 4 malformed COCO entries' in test['items'][0]
    assert '== val (coco: ' in text and 'error: test: malformed annotation file: 1' in text


@needs_license_plates
def test_check_dataset_license_plates(tmp_path):
    res = cli('check_dataset', f'{LICENSE_PLATES}/data.yaml', '--out-dir', str(tmp_path))
    assert res.returncode == 0, res.stderr
    out = res.stdout
    summary = json.load(open(tmp_path / 'summary.json'))
    assert {s: v['images'] for s, v in summary['splits'].items()} == dict(train=245, val=70, test=35)
    assert all(v['classes'] == ['license-plate', 'vehicle'] for v in summary['splits'].values())
    assert sum(v['instances'] for v in summary['splits'].values()) == 1123
    # the dataset's README: 46 of the 1,123 boxes have a side under 8 px, 7 under 4 px
    for side, expected in ((4, 7), (8, 46)):
        assert sum(v['tiny_boxes'][f'side_under_{side}px'] for v in summary['splits'].values()) == expected
    assert summary['errors'] == summary['warnings'] == 0
    assert 'No problems found.' in out and '   license-plate         84      70' in out
    assert sorted(os.listdir(tmp_path)) == sorted(['summary.json'] + [f'{s}_{k}.png' for s in ('train', 'val', 'test')
                                                                      for k in ('classes', 'box_sizes')])


# ----------------------------------------------------------------------------- command lines
@needs_license_plates
@pytest.mark.parametrize('tool', ['yolo2coco', 'check_dataset'])
def test_broken_data_yaml_names_yaml_key_and_path(tool, tmp_path):
    """The exported data.original.yaml: absolute paths of another machine."""
    yaml_file = f'{LICENSE_PLATES}/data.original.yaml'
    res = cli(tool, *([yaml_file, str(tmp_path)] if tool == 'yolo2coco' else [yaml_file, '--out-dir', str(tmp_path)]))
    assert res.returncode == 1
    err = res.stderr
    assert err.startswith(f"error: {yaml_file}: 'train' path not found: "
                          "'/content/gdrive/MyDrive/Colab Notebook/LicensePlateDetection/Lp/test/images'")


def test_cli_errors_and_help(good_coco, good_yolo, tmp_path):
    ann_file, img_dir = good_coco
    res = run_tool([PY, 'tools/dataset_converters/coco2yolo.py', ann_file, img_dir, str(tmp_path / 'o'),
                    '--classes', 'car', 'truck'], check=False)
    assert res.returncode == 1 and res.stderr.startswith("error: --classes ['truck'] are not categories of")
    assert 'Traceback' not in res.stderr
    res = cli('coco2yolo', str(tmp_path / 'nope.json'), img_dir, str(tmp_path / 'o'))
    assert res.returncode == 1 and 'error: annotation file not found' in res.stderr
    res = cli('yolo2coco', good_yolo, str(tmp_path / 'c'), '--splits', 'test')
    assert res.returncode == 1 and "no 'test' split (it has ['train', 'val'])" in res.stderr
    for tool in TOOLS:
        res = cli(tool, '--help')
        assert res.returncode == 0 and 'usage:' in res.stdout


def test_check_dataset_cli_exit_status(bad_yolo, good_yolo, tmp_path):
    res = run_tool([PY, 'tools/misc/check_dataset.py', bad_yolo, '--out-dir', str(tmp_path)], check=False)
    assert res.returncode == 1, res.stderr
    assert 'error: train: truncated image: 1' in res.stdout and 'errors: 8, warnings: 4, notes: 1;' in res.stdout
    assert json.load(open(tmp_path / 'summary.json'))['errors'] == 8
    # warnings and notes alone: exit status 0 (good_yolo has two backgrounds, one without a label file)
    assert cli('check_dataset', good_yolo, '--out-dir', str(tmp_path / 'good')).returncode == 0


def test_coco2yolo_keeps_labels_under_labels_split_for_nested_images_folders(tmp_path):
    """file_name 'valid/images/v0.jpg' (yolo2coco's for multi-folder splits): labels stay in labels/<split>/."""
    img_dir = tmp_path / 'src'
    save_image(str(img_dir / 'valid' / 'images' / 'v0.jpg'), 40, 30)
    coco = dict(images=[dict(id=1, file_name='valid/images/v0.jpg', width=40, height=30)],
                annotations=[dict(id=1, image_id=1, category_id=1, bbox=[4, 3, 20, 15])],
                categories=[dict(id=1, name='cat')])
    ann = write(f'{tmp_path}/a.json', json.dumps(coco))
    out = str(tmp_path / 'out')
    coco2yolo.convert(ann, str(img_dir), out, split='val')
    label = osp.join(out, 'labels', 'val', 'valid', 'images_', 'v0.txt')
    assert osp.isfile(label) and yf.img2label_path(osp.join(out, 'images', 'val', 'valid', 'images_', 'v0.jpg')) \
        == label
    data = yf.load_data_yaml(osp.join(out, 'data.yaml'))
    assert len(data.images('val')) == 1
