"""YOLODataset: the reference's (Ultralytics) layout as it is: yaml variants, label rules, bad input,
strict mode, the index cache, class names, EXIF sizes, the license_plates dataset, loaders, metric, hooks."""
import json
import logging
import os
import os.path as osp
import types

import cv2
import numpy as np
import pytest
import torch

import convnextv2_yolo  # noqa: F401
from convnextv2_yolo.datasets import yolo_dataset as yd
from convnextv2_yolo.datasets import yolo_format
from convnextv2_yolo.datasets.yolo_dataset import CACHE_SUFFIX, YOLODataset, YOLODatasetError
from convnextv2_yolo.datasets.yolo_format import DataYamlError
from tests.helpers.data import LICENSE_PLATES

pytestmark = pytest.mark.usefixtures('mmdet_scope', 'frozen_gc')  # tests/datasets/conftest.py
NAMES = ['cat', 'dog', 'bird']


# ----------------------------------------------------------------------------- helpers
def warnings_of(logs):
    return [m for lvl, m in logs if lvl == logging.WARNING]


def write_image(path, w=64, h=48, value=None):
    os.makedirs(osp.dirname(path), exist_ok=True)
    img = np.full((h, w, 3), 90 if value is None else value, np.uint8)
    assert cv2.imwrite(path, img)


def write_text(path, text, mode='w'):
    os.makedirs(osp.dirname(path), exist_ok=True)
    with open(path, mode, **({} if 'b' in mode else dict(newline='', encoding='utf-8'))) as f:
        f.write(text)


def write_yaml(yaml_file, /, **entries):
    """A data.yaml of ``entries`` (JSON values are valid YAML)."""
    write_text(yaml_file, ''.join(f'{k}: {json.dumps(v)}\n' for k, v in entries.items()))
    return yaml_file


def make_split(root, split, labels, w=64, h=48):
    """``root/<split>/images/<name>.jpg`` (w x h) + ``root/<split>/labels/<name>.txt`` per {name: text or None}."""
    for name, text in labels.items():
        write_image(osp.join(root, split, 'images', f'{name}.jpg'), w, h)
        if text is not None:
            write_text(osp.join(root, split, 'labels', f'{name}.txt'), text)


def build(**kwargs):
    from mmdet.registry import DATASETS
    kwargs.setdefault('pipeline', [])
    return DATASETS.build(dict(type='YOLODataset', **kwargs))


def infos(ds):
    return [ds.get_data_info(i) for i in range(len(ds))]


def by_name(ds):
    return {osp.splitext(osp.basename(i['img_path']))[0]: i for i in infos(ds)}


def px(cx, cy, w, h, W=64, H=48):
    return [(cx - w / 2) * W, (cy - h / 2) * H, (cx + w / 2) * W, (cy + h / 2) * H]


@pytest.fixture
def simple(tmp_path):
    """A two-split dataset: train (a, b, c), val (v); data.yaml with path '.'."""
    root = str(tmp_path / 'ds')
    make_split(root, 'train', {'a': '0 0.5 0.5 0.5 0.5\n', 'b': '1 0.25 0.25 0.2 0.2\n2 0.7 0.7 0.2 0.4\n', 'c': ''})
    make_split(root, 'valid', {'v': '2 0.5 0.5 0.1 0.1\n'})
    yaml = write_yaml(osp.join(root, 'data.yaml'), path='.', train='train/images', val='valid/images', names=NAMES)
    return root, yaml


# ----------------------------------------------------------------------------- data.yaml variants
def test_data_info_fields_and_metainfo_from_the_yaml(simple, logs):
    root, yaml = simple
    ds = build(data_yaml=yaml, split='train')
    assert type(ds) is YOLODataset  # registered in mmdet's DATASETS
    assert ds.metainfo['classes'] == tuple(NAMES)
    got = by_name(ds)
    assert sorted(got) == ['a', 'b', 'c']
    a = got['a']
    assert a['img_path'] == osp.join(root, 'train', 'images', 'a.jpg')
    assert a['label_path'] == osp.join(root, 'train', 'labels', 'a.txt')
    assert (a['width'], a['height'], a['seg_map_path']) == (64, 48, None)
    assert a['instances'] == [dict(bbox=px(0.5, 0.5, 0.5, 0.5), bbox_label=0, ignore_flag=0)]
    assert [i['bbox_label'] for i in got['b']['instances']] == [1, 2]
    assert np.allclose(got['b']['instances'][1]['bbox'], px(0.7, 0.7, 0.2, 0.4))
    assert got['c']['instances'] == []
    ids = [i['img_id'] for i in infos(ds)]
    assert ids == [0, 1, 2] and all(type(i) is int for i in ids)
    summary = [m for _, m in logs if ' skipped, ' in m]
    assert summary and '1 backgrounds (0 without a label file), 3 boxes' in summary[0] and '0 skipped' in summary[0]
    assert len(build(data_yaml=yaml, split='val')) == 1


@pytest.mark.parametrize('variant', ['path_relative', 'path_absolute', 'path_missing', 'txt_list', 'folder_list',
                                     'names_dict', 'roboflow', 'yaml_elsewhere'])
def test_yaml_variants(tmp_path, variant, logs):
    root = str(tmp_path / 'ds')
    make_split(root, 'train', {'a': '0 0.5 0.5 0.5 0.5\n', 'b': '1 0.5 0.5 0.2 0.2\n'})
    make_split(root, 'extra', {'e': '1 0.5 0.5 0.3 0.3\n'})
    yaml_file, expected = osp.join(root, 'data.yaml'), ['a', 'b']
    entries = dict(path='.', train='train/images', val='train/images', names=NAMES)
    if variant == 'path_absolute':
        entries['path'] = root
        yaml_file = str(tmp_path / 'configs' / 'data.yaml')
    elif variant == 'path_missing':
        del entries['path']
    elif variant == 'txt_list':
        write_text(osp.join(root, 'train.txt'), './train/images/a.jpg\n./extra/images/e.jpg\n')
        entries['train'], expected = 'train.txt', ['a', 'e']
    elif variant == 'folder_list':
        entries['train'], expected = ['train/images', 'extra/images'], ['a', 'b', 'e']
    elif variant == 'names_dict':
        entries['names'] = {2: 'bird', 0: 'cat', 1: 'dog'}
    elif variant == 'roboflow':  # Roboflow's export: '../train/images' from a yaml inside the dataset
        del entries['path']
        entries['train'] = entries['val'] = '../train/images'
    elif variant == 'yaml_elsewhere':  # relative path from the yaml's folder
        entries['path'] = '../ds'
        yaml_file = str(tmp_path / 'other' / 'data.yaml')
    os.makedirs(osp.dirname(yaml_file), exist_ok=True)
    ds = build(data_yaml=write_yaml(yaml_file, **entries))
    assert sorted(by_name(ds)) == expected
    assert ds.metainfo['classes'] == tuple(NAMES)
    assert by_name(ds)[expected[-1]]['instances'][0]['bbox_label'] == 1


def test_yaml_relative_to_data_root(simple):
    root, _ = simple
    assert len(build(data_yaml='data.yaml', data_root=root)) == 3


@pytest.mark.parametrize('entries, match', [
    (dict(nc=3, names=['a', 'b']), r"'nc' is 3 but 'names' lists 2"),
    (dict(train='nowhere/images'), r"bad.yaml: 'train' path not found: 'nowhere/images' \(tried .*nowhere/images\)"),
    (dict(names='abc'), "'names' must be a list"),
])
def test_yaml_errors_name_the_yaml_and_key(simple, entries, match):
    root, _ = simple
    base = dict(path='.', train='train/images', val='valid/images', names=NAMES)
    base.update(entries)
    with pytest.raises(DataYamlError, match=match):
        build(data_yaml=write_yaml(osp.join(root, 'bad.yaml'), **base))


def test_missing_split_and_missing_yaml(simple):
    root, yaml = simple
    with pytest.raises(DataYamlError, match=r"no 'test' split"):
        build(data_yaml=yaml, split='test')
    with pytest.raises(FileNotFoundError, match='nope.yaml'):
        build(data_yaml=osp.join(root, 'nope.yaml'))


# ----------------------------------------------------------------------------- explicit root
def test_explicit_root_folder_and_list(tmp_path, logs):
    root = str(tmp_path)
    for name in ('x', 'y'):
        write_image(osp.join(root, 'images', 'train', f'{name}.jpg'))
    write_text(osp.join(root, 'labels', 'train', 'x.txt'), '1 0.5 0.5 0.5 0.5\n')
    ds = build(data_root=root, data_prefix=dict(img='images/train/'), metainfo=dict(classes=('cat', 'dog')))
    got = by_name(ds)
    assert got['x']['instances'][0]['bbox_label'] == 1 and got['y']['instances'] == []
    assert ds.metainfo['classes'] == ('cat', 'dog')
    write_text(osp.join(root, 'train.txt'), './images/train/x.jpg\n')
    ds = build(data_root=root, ann_file='train.txt', metainfo=dict(classes=('cat', 'dog')))
    assert sorted(by_name(ds)) == ['x']
    with pytest.raises(ValueError, match='needs metainfo=dict'):
        build(data_root=root, data_prefix=dict(img='images/train/'))
    with pytest.raises(FileNotFoundError, match='data_prefix.img'):
        build(data_root=root, data_prefix=dict(img='images/nope/'), metainfo=dict(classes=('cat', 'dog')))
    with pytest.raises(ValueError, match='class index'):  # label class 1 with one class: the file is unusable ...
        build(data_root=root, data_prefix=dict(img='images/train/'), metainfo=dict(classes=('cat',)), strict=True)


# ----------------------------------------------------------------------------- class names
def test_config_classes_subset_and_reorder_by_name(simple, logs):
    root, yaml = simple
    ds = build(data_yaml=yaml, metainfo=dict(classes=('bird', 'cat')))
    assert ds.metainfo['classes'] == ('bird', 'cat')
    got = by_name(ds)
    assert [i['bbox_label'] for i in got['a']['instances']] == [1]  # cat
    assert [i['bbox_label'] for i in got['b']['instances']] == [0]  # bird kept, dog left out
    assert np.allclose(got['b']['instances'][0]['bbox'], px(0.7, 0.7, 0.2, 0.4))
    assert any('1 of classes not in metainfo.classes left out' in m for _, m in logs)
    with pytest.raises(ValueError, match=r"\['horse'\] are not names of .*data.yaml"):
        build(data_yaml=yaml, metainfo=dict(classes=('cat', 'horse')))
    with pytest.raises(ValueError, match='repeats'):
        build(data_yaml=yaml, metainfo=dict(classes=('cat', 'cat')))


def test_num_class_check_hook_sees_the_yaml_classes(simple):
    from mmdet.engine.hooks import NumClassCheckHook
    _, yaml = simple
    ds = build(data_yaml=yaml, lazy_init=True)  # metainfo is there before the images are scanned

    def runner(num_classes):
        model = torch.nn.Module()
        model.bbox_head = torch.nn.Module()
        model.bbox_head.num_classes = num_classes
        return types.SimpleNamespace(model=model, train_dataloader=types.SimpleNamespace(dataset=ds),
                                     logger=logging.getLogger('test'))

    NumClassCheckHook().before_train_epoch(runner(3))
    with pytest.raises(AssertionError, match=r'num_classes` \(80\).*length of `classes` 3'):
        NumClassCheckHook().before_train_epoch(runner(80))


# ----------------------------------------------------------------------------- label rules
LABEL_CASES = {
    # name: (label text or None for no file, expected boxes [(cls, cx, cy, w, h)] or 'skip', warning fragment)
    'box': ('0 0.5 0.5 0.5 0.5\n', [(0, 0.5, 0.5, 0.5, 0.5)], None),
    'polygon': ('1 0.1 0.2 0.5 0.2 0.3 0.6\n', [(1, 0.3, 0.4, 0.4, 0.4)], None),
    'mixed': ('2 0.5 0.5 0.2 0.2\n0 0.1 0.1 0.3 0.1 0.3 0.3 0.1 0.3\n', [(2, 0.5, 0.5, 0.2, 0.2),
                                                                         (0, 0.2, 0.2, 0.2, 0.2)], None),
    'empty': ('', [], None),
    'byte_order_mark': ('\ufeff1 0.5 0.5 0.2 0.2\n', [(1, 0.5, 0.5, 0.2, 0.2)], None),
    'blank_lines': ('\n  \n', [], None),
    'missing': (None, [], None),
    'crlf_trailing': ('0 0.5 0.5 0.2 0.2  \r\n1 0.3 0.3 0.2 0.2 \t\r\n', [(0, 0.5, 0.5, 0.2, 0.2),
                                                                          (1, 0.3, 0.3, 0.2, 0.2)], None),
    'slightly_outside': ('0 0.5 0.5 0.2 0.2\n1 0.5 0.5 1.005 0.2\n', [(0, 0.5, 0.5, 0.2, 0.2), (1, 0.5, 0.5, 1.0, 0.2)],
                         'row 2: coordinates outside [0, 1] by 0.005, clipped'),
    'past_the_edge': (
        '1 0.99 0.5 0.1 0.2\n',
        [(1, 0.97, 0.5, 0.06, 0.2)],  # the reference accepts it
        'row 1: box reaches 0.04 past the image edge, clipped to the image'),
    'duplicate': ('0 0.5 0.5 0.2 0.2\n0 0.50 0.5 0.2 0.2\n', [(0, 0.5, 0.5, 0.2, 0.2)],
                  'row 2: duplicate of an earlier row, dropped'),
    'far_outside': ('0 0.5 0.5 0.2 0.2\n0 1.5 0.5 0.2 0.2\n', 'skip', 'row 2: coordinates outside [0, 1] by 0.5'),
    'class_out_of_range': ('3 0.5 0.5 0.2 0.2\n', 'skip', 'row 1: class 3 is not a class index in [0, 3)'),
    'negative_class': ('-1 0.5 0.5 0.2 0.2\n', 'skip', 'row 1: class -1'),
    'not_a_number': ('0 0.5 abc 0.2 0.2\n', 'skip', "row 1: not a number: 'abc'"),
    'wrong_field_count': ('0 0.5 0.5 0.2\n', 'skip', 'row 1: 4 fields'),
    # a zero-area row is dropped, the file kept (the reference keeps it too)
    'no_area': ('1 0.3 0.3 0.2 0.2\n0 0.5 0.5 0 0.2\n', [(1, 0.3, 0.3, 0.2, 0.2)], 'row 2: box has no area'),
    'binary': (b'\x89PNG\r\n\x1a\n\x00\xff\xfe', 'skip', 'not a text label file'),
}


@pytest.fixture
def label_cases(tmp_path):
    root = str(tmp_path / 'ds')
    for name, (text, _, _) in LABEL_CASES.items():
        write_image(osp.join(root, 'train', 'images', f'{name}.jpg'))
        if isinstance(text, bytes):
            write_text(osp.join(root, 'train', 'labels', f'{name}.txt'), text, mode='wb')
        elif text is not None:
            write_text(osp.join(root, 'train', 'labels', f'{name}.txt'), text)
    return root, write_yaml(osp.join(root, 'data.yaml'), path='.', train='train/images', val='train/images',
                            names=NAMES)


def test_label_rules(label_cases, logs):
    root, yaml = label_cases
    ds = build(data_yaml=yaml)
    got = by_name(ds)
    warns = warnings_of(logs)
    for name, (_, expected, warning) in LABEL_CASES.items():
        label_file = osp.join(root, 'train', 'labels', f'{name}.txt')
        mine = [w for w in warns if label_file in w]
        if expected == 'skip':
            assert name not in got, name
            assert len(mine) == 1 and 'skipped the label file' in mine[0] and warning in mine[0], (name, mine)
            continue
        boxes = [(i['bbox_label'], *i['bbox']) for i in got[name]['instances']]
        assert len(boxes) == len(expected), name
        for (lab, *box), (cls, cx, cy, w, h) in zip(boxes, expected):
            assert lab == cls and np.allclose(box, px(cx, cy, w, h)), (name, box)
        if warning:
            assert len(mine) == 1 and 'fixed' in mine[0] and warning in mine[0], (name, mine)
        else:
            assert not mine, (name, mine)
    n_skip = sum(v[1] == 'skip' for v in LABEL_CASES.values())
    summary = [m for m in warns if f'{len(LABEL_CASES)} images' in m]
    assert len(summary) == 1
    n_fixed = sum(v[1] != 'skip' and v[2] is not None for v in LABEL_CASES.values())
    assert f'{n_skip} skipped, {n_fixed} label files fixed' in summary[0]
    assert '3 backgrounds (1 without a label file)' in summary[0] and '(2 from polygons)' in summary[0]
    assert len(ds.problems) == n_skip + n_fixed


def test_strict_mode_raises_one_error_listing_the_files(label_cases, logs):
    root, yaml = label_cases
    with pytest.raises(YOLODatasetError) as err:
        build(data_yaml=yaml, strict=True)
    msg = str(err.value)
    for name, (_, expected, warning) in LABEL_CASES.items():
        if warning:
            assert osp.join(root, 'train', 'labels', f'{name}.txt') in msg, name
    assert 'strict=True and 10 files have problems' in msg
    clean = osp.join(root, 'clean')
    make_split(clean, 'train', {'a': '0 0.5 0.5 0.2 0.2\n', 'b': None})
    yaml = write_yaml(osp.join(clean, 'data.yaml'), train='train/images', val='train/images', names=NAMES)
    assert len(build(data_yaml=yaml, strict=True)) == 2  # a missing label file is a background, not a problem


# ----------------------------------------------------------------------------- images
def _exif_jpeg(path, raw, orientation):
    from PIL import Image
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(raw[:, :, ::-1]).save(path, exif=exif.tobytes(), quality=95)


def test_exif_rotated_jpeg_size_and_boxes_in_the_displayed_frame(tmp_path, logs):
    root = str(tmp_path)
    raw = np.zeros((48, 64, 3), np.uint8)  # stored 64 wide x 48 high
    raw[4:20, 40:60] = 255  # a white patch near the stored top-right corner
    os.makedirs(osp.join(root, 'images'))
    _exif_jpeg(osp.join(root, 'images', 'r.jpg'), raw, orientation=6)  # displayed rotated 90 deg clockwise
    shown = cv2.rotate(raw, cv2.ROTATE_90_CLOCKWISE)  # 48 wide x 64 high
    ys, xs = np.nonzero(shown[:, :, 0])
    x1, y1, x2, y2 = xs.min(), ys.min(), xs.max() + 1, ys.max() + 1
    write_text(osp.join(root, 'labels', 'r.txt'),
               f'0 {(x1 + x2) / 2 / 48} {(y1 + y2) / 2 / 64} {(x2 - x1) / 48} {(y2 - y1) / 64}\n')
    ds = build(data_root=root, data_prefix=dict(img='images/'), metainfo=dict(classes=('patch',)),
               pipeline=[dict(type='LoadImageFromFile'), dict(type='LoadAnnotations', with_bbox=True)])
    info = ds.get_data_info(0)
    assert (info['width'], info['height']) == (48, 64)
    assert np.allclose(info['instances'][0]['bbox'], [x1, y1, x2, y2])
    out = ds[0]
    assert out['img'].shape == (64, 48, 3)  # the decoder applies the orientation too
    bx1, by1, bx2, by2 = out['gt_bboxes'].tensor[0].round().int().tolist()
    assert out['img'][by1 + 2:by2 - 2, bx1 + 2:bx2 - 2].min() > 200  # the box covers the patch


def test_broken_images_are_skipped_with_a_warning(tmp_path, logs):
    root = str(tmp_path)
    img_dir = osp.join(root, 'train', 'images')
    write_image(osp.join(img_dir, 'good.jpg'))
    write_text(osp.join(img_dir, 'garbage.jpg'), b'this is not an image' * 10, mode='wb')
    _, buf = cv2.imencode('.jpg', np.random.default_rng(0).integers(0, 255, (48, 64, 3), dtype=np.uint8))
    write_text(osp.join(img_dir, 'truncated.jpg'), buf.tobytes()[:len(buf) * 2 // 3], mode='wb')
    write_image(osp.join(img_dir, 'tiny.png'), 8, 8)
    write_text(osp.join(img_dir, 'empty.png'), b'', mode='wb')
    write_text(osp.join(img_dir, 'trailer.jpg'), buf.tobytes() + b'appended video' * 4, mode='wb')  # kept
    for name in ('good', 'garbage', 'truncated', 'tiny', 'empty', 'trailer'):
        write_text(osp.join(root, 'train', 'labels', f'{name}.txt'), '0 0.5 0.5 0.5 0.5\n')
    yaml = write_yaml(osp.join(root, 'data.yaml'), train='train/images', val='train/images', names=NAMES)
    ds = build(data_yaml=yaml)
    assert sorted(by_name(ds)) == ['good', 'trailer']
    warns = warnings_of(logs)
    for name, reason in (('garbage.jpg', 'unreadable image'), ('truncated.jpg', 'truncated JPEG'),
                         ('tiny.png', 'image too small (8x8 px'), ('empty.png', 'unreadable image')):
        assert any(osp.join(img_dir, name) in w and 'skipped the image' in w and reason in w for w in warns), name
    assert any('6 images' in w and '4 skipped' in w for w in warns)
    assert by_name(ds)['good']['img_id'] == 2  # ids: positions in the sorted list, skipped images included
    with pytest.raises(YOLODatasetError, match='garbage.jpg'):
        build(data_yaml=yaml, strict=True)


def test_no_image_or_no_usable_image_is_an_error(tmp_path, logs):
    root = str(tmp_path)
    os.makedirs(osp.join(root, 'train', 'images'))
    yaml = write_yaml(osp.join(root, 'data.yaml'), train='train/images', val='train/images', names=NAMES)
    with pytest.raises(YOLODatasetError, match='no images found'):
        build(data_yaml=yaml)
    write_text(osp.join(root, 'train', 'images', 'x.jpg'), b'junk', mode='wb')
    with pytest.raises(YOLODatasetError, match='all 1 images were skipped'):
        build(data_yaml=yaml)


def test_all_images_without_labels_warns_about_the_layout(tmp_path, logs):
    root = str(tmp_path)
    make_split(root, 'train', {'a': None, 'b': None})
    write_text(osp.join(root, 'train', 'images', 'a.txt'), '0 0.5 0.5 0.5 0.5\n')  # labels beside the images
    yaml = write_yaml(osp.join(root, 'data.yaml'), train='train/images', val='train/images', names=NAMES)
    ds = build(data_yaml=yaml)
    assert all(not i['instances'] for i in infos(ds))
    assert any('none of the 2 images has a label file' in w and 'train/labels/a.txt' in w for w in warnings_of(logs))


def test_filter_cfg_and_test_mode(simple, logs):
    _, yaml = simple
    assert len(build(data_yaml=yaml, filter_cfg=dict(filter_empty_gt=True))) == 2
    with pytest.raises(YOLODatasetError, match='filter_cfg .* left no image'):
        build(data_yaml=yaml, filter_cfg=dict(filter_empty_gt=False, min_size=49))
    assert len(build(data_yaml=yaml, filter_cfg=dict(filter_empty_gt=False, min_size=48))) == 3
    assert len(build(data_yaml=yaml, filter_cfg=dict(filter_empty_gt=True), test_mode=True)) == 3


def test_min_size_filter(tmp_path, logs):
    root = str(tmp_path)
    make_split(root, 'train', {'a': '0 0.5 0.5 0.5 0.5\n'}, w=64, h=48)
    write_image(osp.join(root, 'train', 'images', 'big.jpg'), 80, 80)
    yaml = write_yaml(osp.join(root, 'data.yaml'), train='train/images', val='train/images', names=NAMES)
    assert sorted(by_name(build(data_yaml=yaml, filter_cfg=dict(min_size=60)))) == ['big']


# ----------------------------------------------------------------------------- the cache


def test_second_start_reads_the_cache_and_replays_the_warnings(label_cases, logs, count_scans):
    root, yaml = label_cases
    first = build(data_yaml=yaml)
    assert len(count_scans) == len(LABEL_CASES) and not first.index_stats['from_cache']
    cache_file = osp.join(root, 'train', 'labels' + CACHE_SUFFIX)
    assert first.index_stats['cache_files'] == [cache_file]
    with open(cache_file, 'rb') as f:
        data = json.loads(f.read().decode('utf-8'))  # plain JSON, no pickle
    assert data['format'] == yd.CACHE_FORMAT and len(data['records']) == len(LABEL_CASES)
    first_warnings = warnings_of(logs)
    logs.clear()
    count_scans.clear()
    second = build(data_yaml=yaml)
    assert count_scans == [] and second.index_stats['from_cache']
    assert infos(second) == infos(first)
    second_warnings = warnings_of(logs)
    # the same files are named again, and the summary says the problems come from the cached scan
    assert second_warnings[:-1] == first_warnings[:-1]
    assert 'as found by the cached scan' in second_warnings[-1] and 'loaded from' in second_warnings[-1]


def test_touching_a_label_makes_the_cache_stale(simple, logs, count_scans):
    root, yaml = simple
    build(data_yaml=yaml)
    label = osp.join(root, 'train', 'labels', 'a.txt')
    st = os.stat(label)
    write_text(label, '2 0.5 0.5 0.5 0.5\n')  # same size: only mtime_ns tells
    os.utime(label, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    count_scans.clear()
    ds = build(data_yaml=yaml)
    assert not ds.index_stats['from_cache'] and len(count_scans) == 3
    assert by_name(ds)['a']['instances'][0]['bbox_label'] == 2
    assert any('stale' in m for _, m in logs)
    os.unlink(label)  # a removed label file: stale too, and a background now
    ds = build(data_yaml=yaml)
    assert not ds.index_stats['from_cache'] and by_name(ds)['a']['instances'] == []


def _reference_cache_bytes():
    """The reference's own labels.cache (a numpy pickle), or one made like it when the dataset is absent."""
    ref = osp.join(LICENSE_PLATES, 'train', 'labels.cache')
    if osp.isfile(ref):
        with open(ref, 'rb') as f:
            return f.read()
    import io
    buf = io.BytesIO()
    np.save(buf, np.array(dict(version='1.0.3', hash='x', labels=[]), dtype=object), allow_pickle=True)
    return buf.getvalue()


def _corrupt(path, kind):
    with open(path, 'rb') as f:
        raw = f.read()
    if kind == 'foreign':  # the reference's own cache (a numpy pickle) copied to our name
        write_text(path, _reference_cache_bytes(), mode='wb')
    elif kind == 'truncated':
        write_text(path, raw[:len(raw) // 2], mode='wb')
    elif kind == 'empty':
        write_text(path, b'', mode='wb')
    elif kind == 'bad_record':  # valid JSON, right key, impossible content
        data = json.loads(raw)
        data['records'][0][3] = [99]
        write_text(path, json.dumps(data))
    elif kind == 'other_format':
        write_text(path, json.dumps(dict(hello='world')))
    elif kind == 'other_version':
        data = json.loads(raw)
        data['version'] = -1
        write_text(path, json.dumps(data))


@pytest.mark.parametrize('kind', ['foreign', 'truncated', 'empty', 'bad_record', 'other_format', 'other_version'])
def test_foreign_or_corrupt_cache_is_rebuilt(simple, logs, count_scans, kind):
    root, yaml = simple
    first = build(data_yaml=yaml)
    cache_file = first.index_stats['cache_files'][0]
    _corrupt(cache_file, kind)
    count_scans.clear()
    logs.clear()
    ds = build(data_yaml=yaml)
    assert len(count_scans) == 3 and not ds.index_stats['from_cache']
    assert infos(ds) == infos(first)
    assert any(cache_file in m for _, m in logs)
    if kind != 'other_version':
        assert any(cache_file in w for w in warnings_of(logs))
    count_scans.clear()
    assert build(data_yaml=yaml).index_stats['from_cache'] and not count_scans  # rewritten as ours


def test_the_references_labels_cache_is_never_read(simple, logs, monkeypatch):
    root, yaml = simple
    ref_cache = osp.join(root, 'train', 'labels.cache')
    write_text(ref_cache, _reference_cache_bytes(), mode='wb')
    opened = []
    real_open = open
    monkeypatch.setattr('builtins.open', lambda f, *a, **k: opened.append(str(f)) or real_open(f, *a, **k))
    build(data_yaml=yaml)
    build(data_yaml=yaml)
    assert ref_cache not in opened
    assert not any(p.endswith(osp.sep + 'labels.cache') for p in opened)


def test_cache_is_written_atomically_and_a_failed_write_keeps_the_old_one(simple, logs, monkeypatch):
    root, yaml = simple
    writes = []
    real = yd.write_atomic
    monkeypatch.setattr(yd, 'write_atomic', lambda path, data: writes.append(path) or real(path, data))
    cache_file = build(data_yaml=yaml).index_stats['cache_files'][0]
    assert writes == [cache_file]
    with open(cache_file, 'rb') as f:
        before = f.read()
    label = osp.join(root, 'train', 'labels', 'c.txt')
    write_text(label, '1 0.5 0.5 0.5 0.5\n')  # stale: the next start rewrites the cache ...

    def fail(fd):
        raise OSError(28, 'No space left on device')
    monkeypatch.setattr(os, 'fsync', fail)  # ... and the write fails before the rename
    ds = build(data_yaml=yaml)
    assert by_name(ds)['c']['instances'][0]['bbox_label'] == 1  # the dataset itself is fine
    assert any('cannot write the index cache' in w and 'No space left' in w for w in warnings_of(logs))
    with open(cache_file, 'rb') as f:
        assert f.read() == before  # the old cache is intact ...
    assert not [n for n in os.listdir(osp.dirname(cache_file)) if n.endswith('.tmp')]  # ... and no leftovers


def test_unwritable_cache_folder_warns_and_goes_on(simple, logs):
    root, yaml = simple
    blocker = osp.join(root, 'a_file')
    write_text(blocker, 'x')
    ds = build(data_yaml=yaml, cache=osp.join(blocker, 'cache'))  # a folder under a file cannot be created
    assert len(ds) == 3
    assert any('cannot write the index cache' in w for w in warnings_of(logs))


def test_cache_off_and_cache_folder(simple, logs, count_scans, tmp_path):
    root, yaml = simple
    build(data_yaml=yaml, cache=False)
    build(data_yaml=yaml, cache=False)
    assert len(count_scans) == 6
    assert not [n for n in os.listdir(osp.join(root, 'train')) if n.endswith(CACHE_SUFFIX)]
    folder = str(tmp_path / 'caches')
    ds = build(data_yaml=yaml, cache=folder)
    assert ds.index_stats['cache_files'][0].startswith(folder + osp.sep)
    count_scans.clear()
    assert build(data_yaml=yaml, cache=folder).index_stats['from_cache'] and not count_scans


def test_cache_files_per_source_are_distinct(tmp_path):
    root = str(tmp_path)
    for sub in ('train/images', 'images/train', 'images/val'):
        os.makedirs(osp.join(root, sub), exist_ok=True)
    names = {yd.cache_file_for(osp.join(root, s), True)
             for s in ('train/images', 'images/train', 'images/val', 'train.txt', 'val.txt')}
    assert names == {osp.join(root, 'train', 'labels' + CACHE_SUFFIX), osp.join(root, 'labels', 'train' + CACHE_SUFFIX),
                     osp.join(root, 'labels', 'val' + CACHE_SUFFIX), osp.join(root, 'train.txt' + CACHE_SUFFIX),
                     osp.join(root, 'val.txt' + CACHE_SUFFIX)}
    assert not any(osp.basename(n) == 'labels.cache' for n in names)


def test_scan_threads_give_the_same_records(label_cases):
    root, _ = label_cases
    images = yolo_format.list_images([osp.join(root, 'train', 'images')]) * 40  # > SCAN_CHUNK
    labels = [yolo_format.img2label_path(p) for p in images]
    assert yd.scan_images(images, labels, 3, threads=4) == yd.scan_images(images, labels, 3, threads=1)


# ----------------------------------------------------------------------------- the license_plates dataset
@pytest.fixture(scope='module')
def plates_cache(tmp_path_factory):
    if not osp.isfile(osp.join(LICENSE_PLATES, 'data.yaml')):
        pytest.skip('license_plates dataset not available')
    return str(tmp_path_factory.mktemp('plates_cache'))  # the shared dataset stays untouched


def _label_rows(path):
    with open(path) as f:
        return [[float(v) for v in line.split()] for line in f if line.strip()]


def test_license_plates(plates_cache, logs):
    yaml = osp.join(LICENSE_PLATES, 'data.yaml')
    sizes = {}
    for split in ('train', 'val', 'test'):
        ds = build(data_yaml=yaml, split=split, cache=plates_cache)
        sizes[split] = len(ds)
        assert ds.metainfo['classes'] == ('license-plate', 'vehicle')
        assert ds.index_stats['skipped'] == 0 and ds.index_stats['backgrounds'] == 0
        for info in infos(ds)[::30]:  # boxes = the label file's rows in px (416 x 416 images)
            rows = _label_rows(info['label_path'])
            assert (info['width'], info['height']) == (416, 416)
            assert [i['bbox_label'] for i in info['instances']] == [int(r[0]) for r in rows]
            for inst, (_, cx, cy, w, h) in zip(info['instances'], rows):
                assert np.allclose(inst['bbox'], px(cx, cy, w, h, 416, 416))
    assert sizes == dict(train=245, val=70, test=35)
    with pytest.raises(DataYamlError, match=r"data.original.yaml: 'train' path not found: '/content/gdrive"):
        build(data_yaml=osp.join(LICENSE_PLATES, 'data.original.yaml'), cache=plates_cache)


def test_license_plates_known_boxes(plates_cache):
    ds = build(data_yaml=osp.join(LICENSE_PLATES, 'data.yaml'), split='test', cache=plates_cache)
    first = ds.get_data_info(0)
    assert osp.basename(first['img_path']).startswith('b15d6c0bdf90226d_jpg')
    assert first['instances'] == [dict(bbox=[355.5, 278.74999999999994, 383.5, 318.25], bbox_label=0, ignore_flag=0),
                                  dict(bbox=[22.250000000000025, 104.0, 407.75, 370.0], bbox_label=1, ignore_flag=0)]
    assert sum(len(i['instances']) for i in infos(ds)) == 112


def test_mosaic_data_loader_over_license_plates(plates_cache):
    from mmengine.registry import FUNCTIONS
    from torch.utils.data import DataLoader
    pipeline = [
        dict(type='LoadImageFromFile'),
        dict(type='LoadAnnotations', with_bbox=True),
        dict(type='YOLOMosaic', img_scale=(160, 160), pad_val=114.0, prob=1.0, max_cached_images=16),
        dict(type='YOLORandomAffine', max_rotate_degree=0.0, max_shear_degree=0.0, max_translate_ratio=0.1,
             scaling_ratio_range=(0.5, 1.5), border=(-80, -80), border_val=(114, 114, 114)),
        dict(type='YOLOHSVRandomAug', hue_gain=0.015, saturation_gain=0.7, value_gain=0.4),
        dict(type='RandomFlip', prob=0.5),
        dict(type='FilterAnnotations', min_gt_bbox_wh=(1, 1), keep_empty=True),
        dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor',
                                              'flip', 'flip_direction')),
    ]
    ds = build(data_yaml=osp.join(LICENSE_PLATES, 'data.yaml'), split='train', cache=plates_cache,
               pipeline=pipeline)
    loader = DataLoader(ds, batch_size=4, num_workers=1, collate_fn=FUNCTIONS.get('yolo_collate'))
    batches = 0
    for batch in loader:
        assert batch['inputs'].shape == (4, 3, 160, 160)
        boxes = torch.cat([s.gt_instances.bboxes.tensor for s in batch['data_samples']])
        assert len(boxes) and boxes.min() >= 0 and boxes.max() <= 160
        batches += 1
        if batches == 2:
            break


# ----------------------------------------------------------------------------- evaluation
def test_perfect_predictions_give_map_1_with_checked_coco_metric(tmp_path, logs):
    from mmdet.registry import METRICS
    root = str(tmp_path)
    make_split(root, 'valid', {'a': '0 0.5 0.5 0.5 0.5\n1 0.2 0.2 0.2 0.3\n', 'b': '2 0.4 0.6 0.3 0.3\n',
                               'c': '', 'd': '1 0.1 0.1 0.1 0.1 0.3 0.1 0.2 0.3\n'}, w=96, h=80)
    yaml = write_yaml(osp.join(root, 'data.yaml'), train='valid/images', val='valid/images', names=NAMES)
    pipeline = [dict(type='LoadImageFromFile'), dict(type='LoadAnnotations', with_bbox=True),
                dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                                                      'instances'))]
    ds = build(data_yaml=yaml, split='val', test_mode=True, pipeline=pipeline)
    metric = METRICS.build(dict(type='CheckedCocoMetric', ann_file=None, metric='bbox'))
    metric.dataset_meta = ds.metainfo
    ids = []
    for i in range(len(ds)):
        sample = ds[i]['data_samples']
        ids.append(sample.img_id)
        gt = sample.gt_instances
        out = sample.to_dict()
        out['pred_instances'] = dict(bboxes=gt.bboxes.tensor.clone(), scores=torch.ones(len(gt.labels)),
                                     labels=gt.labels.clone())
        metric.process({}, [out])
    assert len(set(ids)) == len(ids) == 4
    results = metric.evaluate(len(ds))
    assert results['coco/bbox_mAP'] == pytest.approx(1.0)
    assert results['coco/bbox_mAP_50'] == pytest.approx(1.0)


# ----------------------------------------------------------------------------- the benchmark
def test_benchmark_script_small(tmp_path):
    from tests.helpers.processes import PY, run_tool
    proc = run_tool([PY, 'tools/analysis_tools/benchmark_yolo_dataset.py', '--num-images', '300', '--work-dir',
                     str(tmp_path / 'bench'), '--threads', '1', '4', '--samples', '20', '--repeats', '1',
                     '--json', str(tmp_path / 'res.json')])
    with open(tmp_path / 'res.json') as f:
        res = json.load(f)
    assert set(res) >= {'first_build_s_threads1', 'first_build_s_threads4', 'cached_build_s', 'yolo_samples_per_s',
                        'coco_samples_per_s'}
    out = proc.stdout
    assert '(b) second build, index cache' in out and 'COCO copy (CheckedCocoDataset)' in out
    # the COCO copy written by the benchmark holds the same boxes as the YOLO labels
    yolo = build(data_yaml=str(tmp_path / 'bench' / 'data.yaml'))
    with open(tmp_path / 'bench' / 'coco_train.json') as f:
        coco = json.load(f)
    anns = {}
    for a in coco['annotations']:
        x, y, w, h = a['bbox']
        anns.setdefault(a['image_id'], []).append([a['category_id'] - 1, x, y, x + w, y + h])
    for info in infos(yolo):
        got = np.array([[i['bbox_label'], *i['bbox']] for i in info['instances']]).reshape(-1, 5)
        assert np.allclose(got, np.array(anns.get(info['img_id'] + 1, [])).reshape(-1, 5)), info['img_path']


# ----------------------------------------------------------------------------- as users' exports are
def test_list_entries_that_do_not_exist_are_skipped_with_a_warning(tmp_path, logs):
    root = str(tmp_path / 'ds')
    make_split(root, 'train', {'a': '0 0.5 0.5 0.2 0.2\n', 'b': ''})
    write_text(osp.join(root, 'train.txt'), '\ufeff./train/images/a.jpg\n./train/images/gone.jpg\n'
               'train/images/b.jpg\n')  # with a byte-order mark
    yaml = write_yaml(osp.join(root, 'data.yaml'), path='.', train='train.txt', validation='train.txt', names=NAMES)
    ds = build(data_yaml=yaml, split='val', cache=False)  # 'validation' is the reference's alias of 'val'
    assert sorted(by_name(ds)) == ['a', 'b']
    assert any('skipped the image' in m and 'train.txt:2: image not found: ./train/images/gone.jpg' in m
               for m in warnings_of(logs))
    assert ds.index_stats['skipped'] == 1 and ds.index_stats['images'] == 3
    with pytest.raises(YOLODatasetError, match='gone.jpg'):
        build(data_yaml=yaml, split='val', cache=False, strict=True)


def test_truncated_bmp_and_tiff_are_skipped(tmp_path, logs):
    """Their verify() reads no pixels: they are decoded once at the scan instead of crashing training."""
    from PIL import Image
    root = str(tmp_path / 'ds')
    make_split(root, 'train', {'ok': '0 0.5 0.5 0.2 0.2\n'})
    for ext in ('bmp', 'tiff'):
        path = osp.join(root, 'train', 'images', f'cut.{ext}')
        Image.new('RGB', (64, 48), (1, 2, 3)).save(path)
        with open(path, 'rb') as f:
            data = f.read()
        with open(path, 'wb') as f:
            f.write(data[:len(data) // 2])
    yaml = write_yaml(osp.join(root, 'data.yaml'), path='.', train='train/images', val='train/images', names=NAMES)
    ds = build(data_yaml=yaml, split='train', cache=False)
    assert sorted(by_name(ds)) == ['ok']
    for ext in ('BMP', 'TIFF'):
        assert any(f'cut.{ext.lower()}' in m and f'truncated or corrupt {ext}' in m for m in warnings_of(logs))


@pytest.mark.parametrize('fmt', ['tiff', 'jpg', 'png', 'webp'])
def test_exif_rotated_sizes_match_what_opencv_decodes(tmp_path, fmt):
    """Pillow's TIFF reader already reports the rotated size: it must not be swapped twice."""
    import mmcv
    from PIL import Image
    root = str(tmp_path / 'ds')
    path = osp.join(root, 'train', 'images', f'r.{fmt}')
    os.makedirs(osp.dirname(path))
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.new('RGB', (120, 80), (9, 9, 9)).save(path, exif=exif if fmt == 'tiff' else exif.tobytes())
    yaml = write_yaml(osp.join(root, 'data.yaml'), path='.', train='train/images', val='train/images', names=NAMES)
    info = infos(build(data_yaml=yaml, split='train', cache=False))[0]
    with open(path, 'rb') as f:
        decoded = mmcv.imfrombytes(f.read())
    assert (info['width'], info['height']) == (decoded.shape[1], decoded.shape[0]) == (80, 120)


def test_an_unwritable_cache_is_reported_as_off(simple, tmp_path, logs):
    root, yaml = simple
    blocker = tmp_path / 'a_file'
    blocker.write_text('not a folder')
    ds = build(data_yaml=yaml, split='train', cache=str(blocker / 'cache'))
    assert any('cannot write the index cache' in m for m in warnings_of(logs))
    assert ds.index_stats['cache_files'] == [None]
    assert any('index cache off' in m for _, m in logs)


def test_nc_without_names_uses_the_reference_names(tmp_path):
    from convnextv2_yolo.datasets.yolo_format import load_data_yaml
    root = str(tmp_path / 'ds')
    make_split(root, 'train', {'a': ''})
    yaml = write_yaml(osp.join(root, 'data.yaml'), path='.', train='train/images', val='train/images', nc=2)
    assert load_data_yaml(yaml).names == ('class_0', 'class_1')


def test_an_edit_that_restores_size_and_mtime_still_invalidates_the_cache(simple, tmp_path):
    """cp -p / rsync -t / touch -d keep size and mtime: the inode's ctime still tells."""
    root, yaml = simple
    cache = str(tmp_path / 'cache')
    build(data_yaml=yaml, split='train', cache=cache)
    label = osp.join(root, 'train', 'labels', 'a.txt')
    st = os.stat(label)
    with open(label) as f:
        text = f.read()
    write_text(label, '1' + text[1:])  # class 0 -> 1, same size
    os.utime(label, ns=(st.st_atime_ns, st.st_mtime_ns))
    ds = build(data_yaml=yaml, split='train', cache=cache)
    assert not ds.index_stats['from_cache']
    assert [i['bbox_label'] for i in by_name(ds)['a']['instances']] == [1]
