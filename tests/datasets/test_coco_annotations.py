"""COCO annotations as users have them: class order, missing/malformed fields, EXIF sizes, empty results."""
import copy
import json
import logging
import os
import os.path as osp

import cv2
import numpy as np
import pytest

import convnextv2_yolo  # noqa: F401
from tests.helpers.logs import WarningRecords
from tests.helpers.processes import PY, run_tool

# three 64x48 images, one box each, in the categories below
BOXES = {1: [4, 6, 30, 20], 2: [20, 10, 40, 30], 3: [8, 8, 24, 36]}


def _write_dataset(root, categories, ann_cats, drop=(), extra=None):
    """Images + a COCO file; ``ann_cats[i]`` is the category id of image i+1's box."""
    img_dir = osp.join(root, 'images')
    import os
    os.makedirs(img_dir, exist_ok=True)
    images, anns = [], []
    for i, cat_id in enumerate(ann_cats, start=1):
        name = f'{i}.png'
        cv2.imwrite(osp.join(img_dir, name), np.full((48, 64, 3), 40 * i, np.uint8))
        images.append(dict(id=i, file_name=name, width=64, height=48))
        ann = dict(id=10 + i, image_id=i, category_id=cat_id, bbox=BOXES[i], area=BOXES[i][2] * BOXES[i][3],
                   iscrowd=0)
        for key in drop:
            ann.pop(key)
        anns.append(ann)
    coco = dict(images=images, annotations=anns, categories=categories)
    if extra:
        extra(coco)
    path = osp.join(root, 'ann.json')
    with open(path, 'w') as f:
        json.dump(coco, f)
    return path, img_dir


def _dataset(ann_file, img_dir, classes, pipeline=(), **kwargs):
    from mmdet.registry import DATASETS
    from mmengine.registry import init_default_scope
    init_default_scope('mmdet')
    return DATASETS.build(dict(type='CheckedCocoDataset', ann_file=ann_file, data_prefix=dict(img=img_dir + '/'),
                               metainfo=dict(classes=tuple(classes)), pipeline=list(pipeline), **kwargs))


# category layouts x config orders: (categories, category of each image's box, config classes)
LAYOUTS = {
    'swapped': ([dict(id=1, name='cat'), dict(id=2, name='dog')], [1, 2, 1], ('dog', 'cat')),
    'same_order': ([dict(id=1, name='cat'), dict(id=2, name='dog')], [1, 2, 1], ('cat', 'dog')),
    'non_contiguous': ([dict(id=5, name='cat'), dict(id=17, name='dog'), dict(id=3, name='bird')], [5, 17, 3],
                       ('bird', 'dog', 'cat')),
    'ids_from_0': ([dict(id=0, name='cat'), dict(id=1, name='dog'), dict(id=2, name='bird')], [2, 0, 1],
                   ('dog', 'bird', 'cat')),
    'reverse_3': ([dict(id=1, name='a'), dict(id=2, name='b'), dict(id=3, name='c')], [1, 2, 3], ('c', 'b', 'a')),
    'subset': ([dict(id=1, name='cat'), dict(id=2, name='dog'), dict(id=3, name='bird')], [1, 2, 3],
               ('dog', 'cat')),
}


def _expected(categories, ann_cats, classes):
    """(image id -> class name) of the boxes the config keeps."""
    names = {c['id']: c['name'] for c in categories}
    return {i: names[c] for i, c in enumerate(ann_cats, start=1) if names[c] in classes}


@pytest.mark.parametrize('layout', sorted(LAYOUTS))
def test_labels_follow_the_config_class_order_by_name(tmp_path, layout):
    categories, ann_cats, classes = LAYOUTS[layout]
    ann_file, img_dir = _write_dataset(str(tmp_path), categories, ann_cats)
    ds = _dataset(ann_file, img_dir, classes)
    got = {}
    for i in range(len(ds)):
        info = ds.get_data_info(i)
        for inst in info['instances']:
            got[info['img_id']] = classes[inst['bbox_label']]
    assert got == _expected(categories, ann_cats, classes)


def _perfect_predictions(ds, layout):
    """Predictions of a perfect model: each box with the config index of its true class name.

    Built from the layout (the JSON's names), independently of the dataset's labels.
    """
    import torch
    categories, ann_cats, classes = LAYOUTS[layout]
    truth = _expected(categories, ann_cats, classes)
    samples = []
    for i in range(len(ds)):
        info = ds.get_data_info(i)
        img_id = info['img_id']
        boxes = [[x, y, x + w, y + h] for x, y, w, h in [BOXES[img_id]]] if img_id in truth else []
        labels = [classes.index(truth[img_id])] if img_id in truth else []
        samples.append(dict(img_id=img_id, ori_shape=(info['height'], info['width']),
                            pred_instances=dict(bboxes=torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
                                                scores=torch.ones(len(boxes)),
                                                labels=torch.tensor(labels, dtype=torch.long))))
    return samples


def _evaluate(metric_type, ann_file, ds, samples):
    from mmdet.registry import METRICS
    metric = METRICS.build(dict(type=metric_type, ann_file=ann_file, metric='bbox'))
    metric.dataset_meta = ds.metainfo
    gts = []
    for i in range(len(ds)):  # the in-memory ground truth (ann_file=None) needs instances in the samples
        info = ds.get_data_info(i)
        gts.append(dict(instances=copy.deepcopy(info['instances']), width=info['width'], height=info['height']))
    for sample, gt in zip(samples, gts):
        metric.process({}, [dict(sample, **gt)])
    return metric.evaluate(len(samples))


@pytest.mark.parametrize('metric_type', ['CheckedCocoMetric', 'CocoMetric'])
@pytest.mark.parametrize('with_ann_file', [True, False])
@pytest.mark.parametrize('layout', ['swapped', 'non_contiguous', 'ids_from_0', 'subset'])
def test_a_perfect_model_scores_1_whatever_the_class_order(tmp_path, metric_type, with_ann_file, layout):
    """Evaluation maps labels to category ids by name (mmdet's CocoMetric included, via compat)."""
    categories, ann_cats, classes = LAYOUTS[layout]
    ann_file, img_dir = _write_dataset(str(tmp_path), categories, ann_cats)
    ds = _dataset(ann_file, img_dir, classes)
    metrics = _evaluate(metric_type, ann_file if with_ann_file else None, ds, _perfect_predictions(ds, layout))
    assert metrics['coco/bbox_mAP'] == pytest.approx(1.0)


def test_a_label_swap_would_score_0(tmp_path):
    """The check has teeth: the same predictions with the labels swapped score 0."""
    categories, ann_cats, classes = LAYOUTS['swapped']
    ann_file, img_dir = _write_dataset(str(tmp_path), categories, ann_cats)
    ds = _dataset(ann_file, img_dir, classes)
    samples = _perfect_predictions(ds, 'swapped')
    for s in samples:
        s['pred_instances']['labels'] = 1 - s['pred_instances']['labels']
    assert _evaluate('CheckedCocoMetric', ann_file, ds, samples)['coco/bbox_mAP'] == 0


ORACLE = '''
"""A detector that predicts the ground truth (test pipelines load annotations in original coordinates)."""
import torch
from mmdet.models.detectors.base import BaseDetector
from mmdet.registry import MODELS


@MODELS.register_module()
class OracleDetector(BaseDetector):

    def __init__(self, data_preprocessor=None, init_cfg=None):
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.dummy = torch.nn.Linear(1, 1)

    def predict(self, batch_inputs, batch_data_samples, rescale=True):
        for sample in batch_data_samples:
            pred = sample.gt_instances.clone()
            pred.scores = torch.ones(len(pred))
            sample.pred_instances = pred
        return batch_data_samples

    def loss(self, *args, **kwargs):
        raise NotImplementedError

    def _forward(self, *args, **kwargs):
        raise NotImplementedError

    def extract_feat(self, batch_inputs):
        return batch_inputs
'''


def test_test_py_output_follows_the_config_order(tmp_path):
    """tools/test.py end to end: mAP 1.0 for the oracle, dumped labels name the right classes."""
    import pickle

    import torch
    categories, ann_cats, classes = LAYOUTS['non_contiguous']
    ann_file, img_dir = _write_dataset(str(tmp_path / 'data'), categories, ann_cats)
    (tmp_path / 'oracle_det.py').write_text(ORACLE)
    test_pipeline = [dict(type='LoadImageFromFile'),
                     dict(type='LetterResize', scale=(64, 64), pad_val=dict(img=114), allow_scale_up=False),
                     dict(type='LoadAnnotations', with_bbox=True),
                     dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                                                           'scale_factor', 'pad_param'))]
    cfg = dict(
        default_scope='mmdet',
        custom_imports=dict(imports=['convnextv2_yolo', 'oracle_det'], allow_failed_imports=False),
        model=dict(type='OracleDetector', data_preprocessor=dict(type='DetDataPreprocessor')),
        test_dataloader=dict(batch_size=2, num_workers=0, sampler=dict(type='DefaultSampler', shuffle=False),
                             dataset=dict(type='CheckedCocoDataset', ann_file=ann_file, metainfo=dict(classes=classes),
                                          data_prefix=dict(img=img_dir + '/'), pipeline=test_pipeline, test_mode=True)),
        test_evaluator=dict(type='CheckedCocoMetric', ann_file=ann_file, metric='bbox'),
        test_cfg=dict(type='TestLoop'))
    from mmengine.config import Config
    cfg_path = str(tmp_path / 'oracle_cfg.py')
    Config(cfg).dump(cfg_path)
    ckpt = str(tmp_path / 'oracle.pth')
    torch.save({'state_dict': {'dummy.weight': torch.zeros(1, 1), 'dummy.bias': torch.zeros(1)},
                'meta': {'dataset_meta': {'classes': classes}}}, ckpt)
    out = str(tmp_path / 'preds.pkl')
    res = run_tool([PY, 'tools/test.py', cfg_path, ckpt, '--work-dir', str(tmp_path / 'work'), '--out', out],
                   PYTHONPATH=os.pathsep.join(filter(None, [str(tmp_path), os.environ.get('PYTHONPATH')])))
    assert 'coco/bbox_mAP: 1.0000' in res.stdout + res.stderr
    with open(out, 'rb') as f:
        preds = pickle.load(f)
    got = {p['img_id']: classes[int(p['pred_instances']['labels'][0])] for p in preds}
    assert got == _expected(categories, ann_cats, classes)


# ---------------------------------------------------------------- missing / malformed fields
def test_missing_area_and_iscrowd_are_filled_in(tmp_path):
    categories, ann_cats, classes = LAYOUTS['swapped']
    ann_file, img_dir = _write_dataset(str(tmp_path), categories, ann_cats, drop=('area', 'iscrowd'))
    ds = _dataset(ann_file, img_dir, classes)
    assert sum(len(ds.get_data_info(i)['instances']) for i in range(len(ds))) == 3
    from convnextv2_yolo.datasets import CheckedCOCO
    coco = CheckedCOCO(ann_file)
    assert {a['id']: a['area'] for a in coco.dataset['annotations']} == {
        10 + i: float(b[2] * b[3]) for i, b in BOXES.items()}
    assert all(a['iscrowd'] == 0 for a in coco.dataset['annotations'])
    # evaluation against the same file (pycocotools needs 'area' and 'iscrowd' too)
    for metric in ('CheckedCocoMetric', ):
        assert _evaluate(metric, ann_file, ds, _perfect_predictions(ds, 'swapped'))['coco/bbox_mAP'] == \
            pytest.approx(1.0)


def _set(path, value):
    def edit(coco):
        target = coco
        for key in path[:-1]:
            target = target[key]
        if value is _DROP:
            target.pop(path[-1])
        else:
            target[path[-1]] = value
    return edit


_DROP = object()
MALFORMED = {
    'no_bbox': (('annotations', 1, 'bbox'), _DROP, "annotation id 12: field 'bbox'"),
    'bbox_3_numbers': (('annotations', 0, 'bbox'), [1, 2, 3], "annotation id 11: field 'bbox' must be 4"),
    'bbox_strings': (('annotations', 2, 'bbox'), ['1', 2, 3, 4], "annotation id 13: field 'bbox'"),
    'bbox_nan': (('annotations', 2, 'bbox'), [1, 2, float('nan'), 4], "annotation id 13: field 'bbox'"),
    'negative_width': (('annotations', 0, 'bbox'), [10, 2, -3, 4], "annotation id 11: field 'bbox' has a negative"),
    'no_category': (('annotations', 0, 'category_id'), _DROP,
                    "annotation id 11: field 'category_id' must be an integer"),
    'float_category_id': (('annotations', 0, 'category_id'), 1.0,
                          "annotation id 11: field 'category_id' must be an integer, got 1.0"),
    'float_image_id': (('annotations', 2, 'image_id'), 3.0, "annotation id 13: field 'image_id' must be an integer"),
    'same_file_twice': (('images', 1, 'file_name'), '1.png', "image id 2: field 'file_name' '1.png' is also image"),
    'unknown_category': (('annotations', 1, 'category_id'), 9, "annotation id 12: field 'category_id' 9 is not"),
    'unknown_image': (('annotations', 1, 'image_id'), 99, "annotation id 12: field 'image_id' 99 is not"),
    'negative_area': (('annotations', 0, 'area'), -5, "annotation id 11: field 'area'"),
    'string_area': (('annotations', 0, 'area'), 'big', "annotation id 11: field 'area'"),
    'iscrowd_2': (('annotations', 0, 'iscrowd'), 2, "annotation id 11: field 'iscrowd'"),
    'duplicate_ann_id': (('annotations', 1, 'id'), 11, "annotation id 11: field 'id' is repeated"),
    'no_ann_id': (('annotations', 1, 'id'), _DROP, "annotation #1 (no id): field 'id'"),
    'no_width': (('images', 0, 'width'), _DROP, "image id 1: field 'width'"),
    'no_file_name': (('images', 2, 'file_name'), _DROP, "image id 3: field 'file_name'"),
    'category_name_twice': (('categories', 1, 'name'), 'cat', "category id 2: field 'name' 'cat' is also"),
}


@pytest.mark.parametrize('case', sorted(MALFORMED))
def test_malformed_fields_name_file_id_and_field(tmp_path, case):
    path, value, expected = MALFORMED[case]
    categories, ann_cats, classes = LAYOUTS['swapped']
    ann_file, img_dir = _write_dataset(str(tmp_path), copy.deepcopy(categories), ann_cats,
                                       extra=_set(path, value))
    with pytest.raises(ValueError) as err:
        _dataset(ann_file, img_dir, ('cat', ))
    msg = str(err.value)
    assert 'ann.json' in msg and expected in msg, msg
    # the metric reads its ground truth file the same way
    from mmdet.registry import METRICS
    with pytest.raises(ValueError, match='ann.json'):
        METRICS.build(dict(type='CheckedCocoMetric', ann_file=ann_file))


def test_all_problems_in_one_error(tmp_path):
    def break_all(coco):
        for ann in coco['annotations']:
            ann['bbox'] = None
    categories, ann_cats, _ = LAYOUTS['swapped']
    ann_file, img_dir = _write_dataset(str(tmp_path), categories, ann_cats, extra=break_all)
    with pytest.raises(ValueError, match=r'3 malformed COCO entries') as err:
        _dataset(ann_file, img_dir, ('cat', ))
    assert all(f'annotation id {i}' in str(err.value) for i in (11, 12, 13))


def test_repeated_config_class(tmp_path):
    categories, ann_cats, _ = LAYOUTS['swapped']
    ann_file, img_dir = _write_dataset(str(tmp_path), categories, ann_cats)
    with pytest.raises(ValueError, match=r"metainfo.classes repeats \['cat'\]"):
        _dataset(ann_file, img_dir, ('cat', 'dog', 'cat'))
    # ('cat') is the string 'cat', not a tuple of one name
    from mmdet.registry import DATASETS
    with pytest.raises(TypeError, match=r"got the string 'cat'; for one class write \('cat', \)"):
        DATASETS.build(dict(type='CheckedCocoDataset', ann_file=ann_file, data_prefix=dict(img=img_dir + '/'),
                            metainfo=dict(classes='cat'), pipeline=[]))


def test_area_0_is_recomputed_and_dropped_boxes_are_reported(tmp_path, warnings_log):
    """Exporters that write area 0, or normalised coordinates: nothing is dropped silently."""
    def area_0(coco):
        for ann in coco['annotations']:
            ann['area'] = 0
    categories, ann_cats, classes = LAYOUTS['swapped']
    ann_file, img_dir = _write_dataset(str(tmp_path / 'a'), categories, ann_cats, extra=area_0)
    ds = _dataset(ann_file, img_dir, classes)
    assert sum(len(ds.get_data_info(i)['instances']) for i in range(len(ds))) == 3
    assert any('3 annotations have area 0' in m for m in warnings_log)

    def normalised(coco):
        for ann, img in zip(coco['annotations'], coco['images']):
            x, y, w, h = ann['bbox']
            ann['bbox'] = [x / img['width'], y / img['height'], w / img['width'], h / img['height']]
    ann_file, img_dir = _write_dataset(str(tmp_path / 'n'), categories, ann_cats, extra=normalised)
    ds = _dataset(ann_file, img_dir, classes)
    assert sum(len(ds.get_data_info(i)['instances']) for i in range(len(ds))) == 0  # mmdet's rule
    assert any('3 boxes dropped because they are under 1 px' in m and 'normalised' in m for m in warnings_log)


def test_byte_order_mark_is_fine(tmp_path):
    categories, ann_cats, classes = LAYOUTS['swapped']
    ann_file, img_dir = _write_dataset(str(tmp_path), categories, ann_cats)
    with open(ann_file, 'rb') as f:
        data = f.read()
    with open(ann_file, 'wb') as f:
        f.write(b'\xef\xbb\xbf' + data)
    assert len(_dataset(ann_file, img_dir, classes)) == 3


# ---------------------------------------------------------------- recorded size vs decoded image
def _exif_jpeg(path, size, orientation):
    from PIL import Image
    img = Image.new('RGB', size, (90, 120, 150))
    exif = Image.Exif()
    if orientation:
        exif[0x0112] = orientation
    img.save(path, exif=exif.tobytes())


@pytest.fixture
def warnings_log():
    from mmengine.logging import MMLogger
    logger = MMLogger.get_current_instance()
    handler = WarningRecords()
    logger.addHandler(handler)
    yield handler.messages
    logger.removeHandler(handler)


@pytest.mark.parametrize('orientation,recorded,mismatch', [
    (6, (100, 40), True),   # the bug's example: rotated 90 degrees on decoding, JSON has the stored size
    (8, (100, 40), True),
    (5, (100, 40), True),
    (6, (40, 100), False),  # the JSON has the displayed size
    (3, (100, 40), False),  # 180 degrees: same size
    (None, (100, 40), False),
    (None, (120, 40), True),  # a plain wrong size
])
def test_recorded_size_is_checked_against_the_decoded_image(tmp_path, warnings_log, orientation, recorded, mismatch):
    root = tmp_path / 'exif'
    (root / 'images').mkdir(parents=True)
    _exif_jpeg(str(root / 'images' / 'a.jpg'), (100, 40), orientation)
    coco = dict(images=[dict(id=1, file_name='a.jpg', width=recorded[0], height=recorded[1])],
                annotations=[dict(id=1, image_id=1, category_id=1, bbox=[60, 10, 30, 20])],
                categories=[dict(id=1, name='plate')])
    ann_file = str(root / 'ann.json')
    with open(ann_file, 'w') as f:
        json.dump(coco, f)
    pipeline = [dict(type='LoadImageFromFile'), dict(type='LoadAnnotations', with_bbox=True),
                dict(type='PackDetInputs')]
    ds = _dataset(ann_file, str(root / 'images'), ('plate', ), pipeline=pipeline)
    sample = ds[0]['data_samples']
    decoded = tuple(sample.ori_shape[::-1])
    assert decoded == ((40, 100) if orientation in (5, 6, 7, 8) else (100, 40))  # mmcv applies EXIF
    ds[0]  # reported once per image
    found = [m for m in warnings_log if 'a.jpg' in m]
    assert len(found) == int(mismatch), warnings_log
    if mismatch:
        assert f'{recorded[0]}x{recorded[1]}' in found[0] and f'{decoded[0]}x{decoded[1]}' in found[0]
        assert ('EXIF orientation' in found[0]) == (orientation is not None)
    # the same check from the headers alone, when the dataset is built
    warnings_log.clear()
    _dataset(ann_file, str(root / 'images'), ('plate', ), check_image_sizes=True)
    found = [m for m in warnings_log if 'a.jpg' in m]
    assert len(found) == int(mismatch), warnings_log
    if mismatch and orientation:
        assert f'EXIF orientation {orientation}' in found[0]


# ---------------------------------------------------------------- validation without detections
@pytest.mark.parametrize('metric_type', ['CheckedCocoMetric', 'CocoMetric'])
def test_no_detections_is_a_warning_and_scores_0(tmp_path, metric_type):
    from mmengine.logging import MMLogger
    categories, ann_cats, classes = LAYOUTS['swapped']
    ann_file, img_dir = _write_dataset(str(tmp_path), categories, ann_cats)
    ds = _dataset(ann_file, img_dir, classes)
    samples = _perfect_predictions(ds, 'swapped')
    for s in samples:
        s['pred_instances'] = {k: v[:0] for k, v in s['pred_instances'].items()}
    handler = WarningRecords()
    handler.setLevel(logging.WARNING)
    logger = MMLogger.get_current_instance()
    logger.addHandler(handler)
    records = []
    original_emit = handler.emit
    handler.emit = lambda r: (records.append(r), original_emit(r))
    try:
        metrics = _evaluate(metric_type, ann_file, ds, samples)
    finally:
        logger.removeHandler(handler)
    assert metrics['coco/bbox_mAP'] == 0 and metrics['coco/bbox_mAP_50'] == 0
    assert not [r for r in records if r.levelno >= logging.ERROR], [r.getMessage() for r in records]
    if metric_type == 'CheckedCocoMetric':
        assert any('no detection' in r.getMessage() and r.levelno == logging.WARNING for r in records)


# ---------------------------------------------------------------- names on pictures (tools/infer.py)
def test_class_names_come_from_the_checkpoint_then_the_config(warnings_log):
    from convnextv2_yolo.utils import resolve_class_names
    meta = {'dataset_meta': {'classes': ('dog', 'cat')}}
    assert resolve_class_names(meta, ('dog', 'cat'), 2) == (('dog', 'cat'), 'checkpoint')
    assert resolve_class_names(meta, ('cat', 'dog'), 2) == (('dog', 'cat'), 'checkpoint')
    assert any("labels are named after the checkpoint" in m for m in warnings_log)
    # no names in the checkpoint (e.g. a converted file): the config's, not COCO's
    assert resolve_class_names({}, ('dog', 'cat'), 2) == (('dog', 'cat'), 'config')
    assert resolve_class_names({'CLASSES': ['a', 'b']}, None, 2) == (('a', 'b'), 'checkpoint')
    names, source = resolve_class_names({}, None, 80)
    assert source == 'coco' and names[0] == 'person'
    assert resolve_class_names(None, ('x', ), 3) == (('class0', 'class1', 'class2'), 'generic')
    with pytest.raises(ValueError, match='names 2 classes'):
        resolve_class_names(meta, None, 3)


def test_metric_refuses_classes_missing_from_its_annotation_file(tmp_path):
    """An evaluator file that is not the dataset's: a class it lacks would be scored as another one."""
    from mmdet.registry import METRICS
    categories, ann_cats, _ = LAYOUTS['swapped']
    ann_file, _ = _write_dataset(str(tmp_path), [categories[1]], [2, 2, 2])  # only 'dog'
    metric = METRICS.build(dict(type='CheckedCocoMetric', ann_file=ann_file))
    with pytest.raises(ValueError, match=r"classes \['cat'\] are not categories of its ann_file .*ann.json"):
        metric.dataset_meta = dict(classes=('cat', 'dog'))
    metric.dataset_meta = dict(classes=('dog', ))  # a subset is fine


def test_test_py_tests_in_the_checkpoints_class_order(tmp_path, warnings_log):
    """A config (or data.yaml) listing the checkpoint's classes in another order is tested in the checkpoint's
    order (labels match by name); other names stop with a clear error."""
    import torch
    from mmengine.config import Config

    from convnextv2_yolo.utils.launch import check_class_names
    ckpt = str(tmp_path / 'm.pth')
    torch.save({'state_dict': {}, 'meta': {'dataset_meta': {'classes': ('dog', 'cat')}}}, ckpt)

    def cfg(classes, num_classes=2):
        return Config(dict(model=dict(bbox_head=dict(num_classes=num_classes)),
                           test_dataloader=dict(dataset=dict(metainfo=dict(classes=classes)))))
    reordered = cfg(('cat', 'dog'))
    check_class_names(reordered, ckpt)
    assert reordered.test_dataloader.dataset.metainfo.classes == ('dog', 'cat')
    assert any("testing in the checkpoint's order" in m for m in warnings_log)
    with pytest.raises(SystemExit, match=r"trained with the classes \('dog', 'cat'\), but the test dataset lists"):
        check_class_names(cfg(('cat', 'bird')), ckpt)
    with pytest.raises(SystemExit, match=r"names 2 classes \('dog', 'cat'\) but the model has 3"):
        check_class_names(cfg(('cat', 'dog', 'x'), 3), ckpt)
