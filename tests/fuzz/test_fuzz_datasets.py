"""Fuzzing the dataset readers: COCO JSON, YOLO label files, the YOLO index cache, data.yaml.

Each reader gets ``count`` mutations of a valid seed input (see :mod:`tests.helpers.fuzz`); each must
either be read, giving only finite boxes of non-negative size, or fail with the reader's documented
error naming the file. Anything else (KeyError, TypeError, OverflowError, RecursionError, ...) is an
escape: the test fails listing the mutation and the traceback.
"""
import json
import os
import os.path as osp

import cv2
import numpy as np
import pytest

from tests.helpers import fuzz

CLASSES = ('a', 'b')
COCO_SEED = dict(
    images=[dict(id=1, file_name='1.png', width=64, height=48), dict(id=2, file_name='2.png', width=64, height=48)],
    annotations=[dict(id=11, image_id=1, category_id=1, bbox=[4, 6, 30, 20], area=600, iscrowd=0),
                 dict(id=12, image_id=2, category_id=2, bbox=[20, 10, 40, 30], area=1200, iscrowd=0),
                 dict(id=13, image_id=2, category_id=1, bbox=[0.5, 0.5, 8.25, 4], area=33, iscrowd=0)],
    categories=[dict(id=1, name='a'), dict(id=2, name='b')])
LABEL_SEED = '0 0.5 0.5 0.25 0.5\n1 0.1 0.2 0.05 0.1\n1 0.1 0.1 0.3 0.1 0.3 0.4 0.1 0.4\n'


def _write(path, data):
    with open(path, 'wb') as f:
        f.write(data if isinstance(data, bytes) else data.encode('utf-8', 'surrogatepass'))


def _serialised(tree, rng, dump):
    """A mutated tree as text, sometimes also mutated as bytes, sometimes a deeply nested document."""
    roll = rng.random()
    if roll < 0.03:
        return fuzz.deep_nesting(), 'deeply nested lists'
    mutated, what = fuzz.mutate_tree(tree, rng)
    data = dump(mutated)
    if roll < 0.3:
        data, more = fuzz.mutate_bytes(data.encode('utf-8', 'surrogatepass'), rng)
        what = f'{what}; then {more}'
    return data, what


def _image(path, w=64, h=48):
    os.makedirs(osp.dirname(path), exist_ok=True)
    assert cv2.imwrite(path, np.full((h, w, 3), 90, np.uint8))


def _boxes_of(data_list, where):
    n = 0
    for info in data_list:
        for inst in info['instances']:
            fuzz.check_box_xyxy(inst['bbox'], f'{where} {info["img_path"]}')
            n += 1
    return n


# ----------------------------------------------------------------------------- COCO JSON
def test_fuzz_coco_json(tmp_path, count):
    from convnextv2_yolo.datasets import CheckedCocoDataset
    from convnextv2_yolo.datasets.coco_api import COCOFormatError, load_coco_json
    img_dir = tmp_path / 'images'
    for i in (1, 2):
        _image(str(img_dir / f'{i}.png'))
    path = str(tmp_path / 'ann.json')

    def make_case(rng, index):
        data, what = _serialised(COCO_SEED, rng, lambda t: json.dumps(t, allow_nan=True))
        _write(path, data)
        return path, what

    def run_case(path):
        try:
            anns = load_coco_json(path)['annotations']
            ds = CheckedCocoDataset(ann_file=path, data_prefix=dict(img=str(img_dir) + '/'), test_mode=True,
                                    metainfo=dict(classes=CLASSES), pipeline=[], serialize_data=False)
        except Exception as e:  # noqa: B902
            # COCOFormatError, or the ValueError naming metainfo.classes absent from the file's categories
            fuzz.check_error(e, (COCOFormatError, ValueError), [path])
            return
        _boxes_of(ds.data_list, path)
        for ann in anns:
            if not (np.isfinite(ann['area']) and ann['area'] >= 0):
                raise fuzz.Escape(f'annotation {ann["id"]}: area {ann["area"]!r}')

    failures = fuzz.run_cases('coco_json', count, make_case, run_case)
    assert not failures, fuzz.report(failures, count)


# ----------------------------------------------------------------------------- YOLO label files
def _label_case(rng):
    """A mutated label file: rows / tokens edited, sometimes then bytes mutated."""
    text, what = fuzz.mutate_text(LABEL_SEED, rng)
    data = text.encode('utf-8', 'surrogatepass')
    if rng.random() < 0.3:
        data, more = fuzz.mutate_bytes(data, rng)
        what = f'{what}; then {more}'
    return data, what


def _check_label_rows(rows, path):
    if rows is None:
        raise fuzz.Escape(f'{path}: read as missing')
    boxes = rows.boxes
    if boxes.shape != (len(rows.classes), 4) or len(rows.segments) != len(rows.classes):
        raise fuzz.Escape(f'{path}: {boxes.shape} boxes for {len(rows.classes)} classes')
    if not (np.isfinite(boxes).all() and (boxes >= 0).all() and (boxes <= 1).all()):
        raise fuzz.Escape(f'{path}: boxes not finite or outside [0, 1]: {boxes.tolist()}')
    if not ((rows.classes >= 0) & (rows.classes < len(CLASSES))).all():
        raise fuzz.Escape(f'{path}: class index out of range: {rows.classes.tolist()}')
    for seg in rows.segments:
        if seg is not None and not (np.isfinite(seg).all() and len(seg) >= 6):
            raise fuzz.Escape(f'{path}: bad polygon {seg}')


def test_fuzz_yolo_label_files(tmp_path, count):
    from convnextv2_yolo.datasets.yolo_format import read_label_file
    path = str(tmp_path / 'labels' / 'x.txt')
    os.makedirs(osp.dirname(path))

    def make_case(rng, index):
        data, what = _label_case(rng)
        _write(path, data)
        return path, what

    def run_case(path):
        try:
            rows = read_label_file(path, len(CLASSES))
        except Exception as e:  # noqa: B902
            fuzz.check_error(e, (ValueError, ), [path])
            return
        _check_label_rows(rows, path)

    failures = fuzz.run_cases('yolo_labels', count, make_case, run_case)
    assert not failures, fuzz.report(failures, count)


@pytest.fixture
def yolo_split(tmp_path):
    """``root/train/images/{good,bad}.jpg`` with label files; returns (root, the label file to mutate)."""
    root = tmp_path / 'data'
    for name in ('good', 'bad'):
        _image(str(root / 'train' / 'images' / f'{name}.jpg'))
        os.makedirs(root / 'train' / 'labels', exist_ok=True)
        _write(str(root / 'train' / 'labels' / f'{name}.txt'), LABEL_SEED)
    return str(root), str(root / 'train' / 'labels' / 'bad.txt')


def _yolo_dataset(root, **kwargs):
    from convnextv2_yolo.datasets import YOLODataset
    kwargs.setdefault('cache', False)
    return YOLODataset(data_root=root, data_prefix=dict(img='train/images/'), metainfo=dict(classes=CLASSES),
                       pipeline=[], serialize_data=False, **kwargs)


def test_fuzz_yolo_dataset_labels(yolo_split, count):
    """YOLODataset over one good and one mutated label file: the bad one is skipped (strict: the error names it)."""
    from convnextv2_yolo.datasets.yolo_dataset import YOLODatasetError
    root, path = yolo_split

    def make_case(rng, index):
        data, what = _label_case(rng)
        _write(path, data)
        return path, what

    def run_case(path):
        ds = _yolo_dataset(root)
        if not any(info['img_path'].endswith('good.jpg') for info in ds.data_list):
            raise fuzz.Escape('the good image was left out')
        _boxes_of(ds.data_list, root)
        try:
            ds = _yolo_dataset(root, strict=True)
        except Exception as e:  # noqa: B902
            fuzz.check_error(e, (YOLODatasetError, ), [path])
            return
        _boxes_of(ds.data_list, root)

    failures = fuzz.run_cases('yolo_dataset', count, make_case, run_case)
    assert not failures, fuzz.report(failures, count)


def test_fuzz_yolo_index_cache(yolo_split, count):
    """A corrupted index cache is rebuilt (or, where it still checks out, used), never a crash."""
    from convnextv2_yolo.datasets.yolo_dataset import CACHE_SUFFIX
    root, _ = yolo_split
    reference = _yolo_dataset(root, cache=True)
    cache_file = osp.join(root, 'train', 'labels' + CACHE_SUFFIX)
    with open(cache_file, encoding='utf-8') as f:
        seed = json.load(f)
    assert len(seed['records']) == 2 and reference.index_stats['from_cache'] is False

    def make_case(rng, index):
        data, what = _serialised(seed, rng, lambda t: json.dumps(t, allow_nan=True))
        _write(cache_file, data)
        return cache_file, what

    def run_case(path):
        ds = _yolo_dataset(root, cache=True)
        _boxes_of(ds.data_list, path)
        again = _yolo_dataset(root, cache=True)
        if not again.index_stats['from_cache']:
            raise fuzz.Escape('the cache was not rebuilt')
        if not ds.index_stats['from_cache'] and ds.data_list != reference.data_list:
            raise fuzz.Escape('the rebuilt index differs from a fresh scan')

    failures = fuzz.run_cases('yolo_cache', count, make_case, run_case)
    assert not failures, fuzz.report(failures, count)


# ----------------------------------------------------------------------------- data.yaml
def test_fuzz_data_yaml(tmp_path, count):
    import yaml

    from convnextv2_yolo.datasets.yolo_format import DataYamlError, load_data_yaml
    root = tmp_path / 'data'
    for split in ('train', 'val'):
        _image(str(root / split / 'images' / '1.jpg'))
    (root / 'test.txt').write_text('./train/images/1.jpg\n')
    seed = dict(path='.', train='train/images', val=['val/images'], test='test.txt', names={0: 'a', 1: 'b'}, nc=2)
    path = str(root / 'data.yaml')

    def make_case(rng, index):
        data, what = _serialised(seed, rng, lambda t: yaml.safe_dump(t, allow_unicode=True))
        _write(path, data)
        return path, what

    def run_case(path):
        try:
            data = load_data_yaml(path)
        except Exception as e:  # noqa: B902
            fuzz.check_error(e, (DataYamlError, ), [path])
            return
        if not (data.names and all(isinstance(n, str) for n in data.names)):
            raise fuzz.Escape(f'names {data.names!r}')
        for split in data.declared:
            try:
                images = data.images(split)
            except DataYamlError as e:
                fuzz.check_error(e, (DataYamlError, ), [path])
                continue
            if not all(osp.isfile(p) for p in images):
                raise fuzz.Escape(f'{split}: images that do not exist: {images}')

    failures = fuzz.run_cases('data_yaml', count, make_case, run_case)
    assert not failures, fuzz.report(failures, count)


@pytest.mark.parametrize('text', ['nc: 100000000000000000000\n', 'nc: 1.0e+400\nnames: {.inf: a}\n',
                                  'names: {.inf: a}\n', 'nc: -3\n', 'nc: true\n'])
def test_data_yaml_huge_or_odd_class_counts(tmp_path, text):
    """Escapes found by reading the readers for the fuzzer: ``nc`` of 10**20 without names (the names would
    fill the memory), a class index ``.inf`` (OverflowError)."""
    from convnextv2_yolo.datasets.yolo_format import DataYamlError, load_data_yaml
    _image(str(tmp_path / 'train' / 'images' / '1.jpg'))
    path = tmp_path / 'data.yaml'
    path.write_text(f'path: .\ntrain: train/images\nval: train/images\n{text}')
    with pytest.raises(DataYamlError, match=str(path)):
        load_data_yaml(str(path))
