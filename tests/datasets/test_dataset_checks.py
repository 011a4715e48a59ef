"""Bad dataset configs fail before training, naming the file or key at fault."""
import json

import pytest

import convnextv2_yolo  # noqa: F401
from tests.helpers.tiny import make_tiny_data


@pytest.fixture(scope='module')
def data(tmp_path_factory):
    return make_tiny_data(str(tmp_path_factory.mktemp('shapes')))


def _build(data, **overrides):
    from mmdet.registry import DATASETS
    from mmengine.registry import init_default_scope
    init_default_scope('mmdet')
    cfg = dict(type='CheckedCocoDataset', data_root=data.root + '/', metainfo=data.metainfo,
               ann_file='annotations/instances_train.json', data_prefix=dict(img='images/train/'),
               pipeline=[])
    cfg.update(overrides)
    return DATASETS.build(cfg)


def test_valid_dataset_loads(data):
    assert len(_build(data)) == 8


def test_missing_annotation_file(data):
    with pytest.raises(FileNotFoundError, match='annotation file not found: .*nope.json'):
        _build(data, ann_file='annotations/nope.json')


def test_missing_image_folder(data):
    with pytest.raises(FileNotFoundError, match='image folder not found: .*no_images'):
        _build(data, data_prefix=dict(img='no_images/'))


@pytest.mark.parametrize('content,match', [
    ('this is not json', 'is not a COCO annotation file'),
    (json.dumps([1, 2, 3]), 'is not a COCO annotation file'),
    (json.dumps({'images': []}), r"missing key\(s\) \['annotations', 'categories'\]"),
])
def test_not_coco_annotation(data, tmp_path, content, match):
    bad = tmp_path / 'bad.json'
    bad.write_text(content)
    with pytest.raises(ValueError, match=match) as err:
        _build(data, ann_file=str(bad))
    assert 'bad.json' in str(err.value)


def test_class_names_not_in_annotations(data):
    with pytest.raises(ValueError, match=r"metainfo.classes \['zebra'\] are not categories of .*instances_train.json"):
        _build(data, metainfo=dict(classes=('rectangle', 'zebra')))


def test_class_count_mismatch_is_caught_at_start_up(data, tmp_path):
    """A head with another num_classes than the dataset stops before the first iteration."""
    from mmengine.runner import Runner

    from tests.helpers.tiny import tiny_cfg
    cfg = tiny_cfg(data, str(tmp_path), max_epochs=1)
    cfg.model.bbox_head.num_classes = 3
    runner = Runner.from_cfg(cfg)
    with pytest.raises(AssertionError, match=r'num_classes` \(3\) in YOLOHead.*length of `classes` 4'):
        runner.train()
    assert runner.iter == 0
