"""Images that go bad during training (issue 22, item 3): skipped with a warning naming the file, counted,
replaced by another sample; a limit on the skipped fraction; ``strict=True`` and ``test_mode`` fail fast."""
import logging
import os
import random

import numpy as np
import pytest
import torch
from mmcv.transforms import BaseTransform
from mmdet.registry import TRANSFORMS
from mmengine.dataset import pseudo_collate
from mmengine.hooks import Hook
from mmengine.logging import MMLogger

import convnextv2_yolo  # noqa: F401
from convnextv2_yolo.datasets import BadImageError, TooManyBadImagesError
from convnextv2_yolo.datasets.bad_images import image_load_fault
from tests.helpers.logs import current_log
from tests.helpers.tiny import make_tiny_data

pytestmark = pytest.mark.usefixtures('mmdet_scope', 'frozen_gc')  # tests/datasets/conftest.py

LOAD = [dict(type='LoadImageFromFile'), dict(type='LoadAnnotations', with_bbox=True)]
PACK = [dict(type='Resize', scale=(64, 64), keep_ratio=False), dict(type='PackDetInputs')]


@pytest.fixture
def data(tmp_path):
    return make_tiny_data(str(tmp_path / 'shapes'), num_train=8, num_val=2)


def build(data, layout, pipeline=None, **kwargs):
    from mmdet.registry import DATASETS
    if layout == 'coco':
        cfg = dict(type='CheckedCocoDataset', data_root=data.root + '/', metainfo=data.metainfo,
                   ann_file='annotations/instances_train.json', data_prefix=dict(img='images/train/'))
    else:
        cfg = dict(type='YOLODataset', data_yaml=data.data_yaml, split='train')
    dataset = DATASETS.build(dict(cfg, pipeline=LOAD + PACK if pipeline is None else pipeline, **kwargs))
    dataset.full_init()
    return dataset


def spoil(dataset, corrupt=(0, ), delete=(1, )):
    """Truncate the images of ``corrupt`` to 20 bytes and delete those of ``delete`` (after the dataset was
    built, as during a run); returns their paths."""
    paths = []
    for i in corrupt:
        path = dataset.get_data_info(i)['img_path']
        with open(path, 'r+b') as f:
            f.truncate(20)
        paths.append(path)
    for i in delete:
        path = dataset.get_data_info(i)['img_path']
        os.remove(path)
        paths.append(path)
    return paths


def skip_warnings(text, path):
    return [line for line in text.splitlines() if 'skipped' in line and path in line]


@pytest.mark.parametrize('layout', ['coco', 'yolo'])
def test_training_skips_bad_images(data, layout):
    dataset = build(data, layout, max_skip_fraction=1.0)
    corrupt, missing = spoil(dataset)
    np.random.seed(0)
    returned = 0
    with current_log() as log:
        for _ in range(2):  # each file is named once per process
            for i in range(len(dataset)):
                sample = dataset[i]
                assert sample['inputs'].shape[-2:] == (64, 64)
                assert sample['data_samples'].img_path not in (corrupt, missing)
                returned += 1
    text = log()
    (line, ) = skip_warnings(text, corrupt)
    assert 'does not decode (not an image, truncated or corrupt)' in line
    assert 'another sample takes its place in the batch' in line and 'the main process (num_workers=0)' in line
    (line, ) = skip_warnings(text, missing)
    assert 'is missing (deleted or moved since the dataset was built)' in line
    stats = dataset.skip_stats
    assert set(stats['files']) == {corrupt, missing}
    assert stats['files'][corrupt] >= 2 and stats['files'][missing] >= 2  # both passes, plus random refetches
    assert stats['skipped'] == sum(stats['files'].values())
    assert stats['loads'] == returned + stats['skipped']


@pytest.mark.parametrize('layout', ['coco', 'yolo'])
def test_too_many_skips_stop_the_run_listing_the_files(data, layout):
    dataset = build(data, layout, max_skip_fraction=0.1)
    paths = spoil(dataset)
    np.random.seed(0)
    with pytest.raises(TooManyBadImagesError, match=r'max_skip_fraction=0\.1; stopping') as err:
        for i in range(len(dataset)):
            dataset[i]
    for path in paths:
        assert path in str(err.value)
    # the limit applies once min(100, dataset size) loads were made
    assert dataset.skip_stats['loads'] >= len(dataset)


@pytest.mark.parametrize('layout', ['coco', 'yolo'])
@pytest.mark.parametrize('mode', ['strict', 'test_mode'])
def test_strict_and_test_mode_fail_at_the_first_bad_image(data, layout, mode):
    dataset = build(data, layout, **{mode: True})
    corrupt, missing = spoil(dataset)
    dataset[2]  # good images load
    with pytest.raises(BadImageError, match=f'image {missing} is missing') as err:
        dataset[1]
    assert isinstance(err.value.__cause__, FileNotFoundError)
    assert ('strict=True' if mode == 'strict' else 'In test_mode') in str(err.value)
    with pytest.raises(BadImageError, match=f'image {corrupt} does not decode'):
        dataset[0]


@TRANSFORMS.register_module(force=True)
class BadDataTestRaises(BaseTransform):
    def transform(self, results):
        raise AssertionError('a programming error')


def test_other_errors_are_not_skipped(data):
    assert image_load_fault(AssertionError('boxes must be xyxy')) is None
    assert image_load_fault(KeyError('img_path')) is None
    assert image_load_fault(ValueError('failed to load image: x')) is None
    assert image_load_fault(BadImageError('x')) is None
    assert image_load_fault(PermissionError(13, 'denied', 'a.jpg')).startswith('cannot be read (PermissionError')
    import cv2
    try:
        cv2.imdecode(np.zeros(0, np.uint8), cv2.IMREAD_COLOR)
    except cv2.error as e:
        assert image_load_fault(e) == 'is empty (0 bytes)'
    # a pipeline's own error passes through, unskipped
    dataset = build(data, 'coco', pipeline=LOAD + [dict(type='BadDataTestRaises')] + PACK)
    with pytest.raises(AssertionError, match='a programming error'):
        dataset[0]
    assert dataset.skip_stats['skipped'] == 0


def test_a_bad_mixup_partner_is_skipped_and_the_sample_not_mixed(data, monkeypatch):
    mixup = dict(type='YOLOMixUp', prob=1.0, pre_transform=LOAD,
                 transforms=[dict(type='Resize', scale=(64, 64), keep_ratio=False)])
    pipeline = LOAD + [mixup, dict(type='PackDetInputs')]
    dataset = build(data, 'yolo', pipeline=pipeline, max_skip_fraction=1.0)
    strict = build(data, 'yolo', pipeline=pipeline, strict=True)
    (missing, ) = spoil(dataset, corrupt=())
    own_boxes = len(dataset.get_data_info(2)['instances'])
    from convnextv2_yolo.datasets.transforms import yolo_mix
    monkeypatch.setattr(yolo_mix.random, 'randint', lambda a, b: 1)  # the partner: the deleted image
    with current_log() as log:
        sample = dataset[2]
    assert len(sample['data_samples'].gt_instances) == own_boxes  # not mixed
    (line, ) = skip_warnings(log(), missing)
    assert 'skipped MixUp partner image' in line and 'this sample is not mixed' in line
    assert dataset.skip_stats == dict(loads=2, skipped=1, files={missing: 1})
    with pytest.raises(BadImageError, match=f'strict=True and image {missing} is missing'):
        strict[2]


def test_two_worker_epoch_completes(data, tmp_path):
    dataset = build(data, 'coco', max_skip_fraction=1.0)
    paths = spoil(dataset)
    log_file = tmp_path / 'workers.log'
    handler = logging.FileHandler(log_file)  # the forked workers inherit it
    logger = MMLogger.get_current_instance()
    logger.addHandler(handler)
    try:
        loader = torch.utils.data.DataLoader(dataset, batch_size=2, num_workers=2, collate_fn=pseudo_collate,
                                             worker_init_fn=lambda i: np.random.seed(i))
        seen = [s.img_path for batch in loader for s in batch['data_samples']]
    finally:
        logger.removeHandler(handler)
        handler.close()
    assert len(seen) == len(dataset) and not set(seen) & set(paths)
    text = log_file.read_text()
    for path in paths:
        assert skip_warnings(text, path)
    assert 'skipped in data-loader worker' in text


class SpoilAfterFirstEpoch(Hook):
    def __init__(self, dataset_paths):
        self.paths = dataset_paths

    def after_train_epoch(self, runner):
        if runner.epoch == 0:  # before the increment: the first epoch just ended
            corrupt, missing = self.paths
            with open(corrupt, 'r+b') as f:
                f.truncate(20)
            os.remove(missing)


def test_training_goes_on_when_images_go_bad_after_the_first_epoch(data, tmp_path):
    from mmengine.runner import Runner

    from tests.helpers.tiny import tiny_cfg
    cfg = tiny_cfg(data, str(tmp_path / 'work'), max_epochs=2, mosaic=False)
    assert cfg.train_dataloader.dataset.max_skip_fraction == 0.01  # the recipe's
    cfg.train_dataloader.dataset.max_skip_fraction = 0.5
    runner = Runner.from_cfg(cfg)
    dataset = runner.train_dataloader.dataset
    paths = [dataset.get_data_info(i)['img_path'] for i in (0, 1)]
    runner.register_hook(SpoilAfterFirstEpoch(paths))
    random.seed(0)
    with current_log() as log:
        runner.train()
    assert runner.epoch == 2 and os.path.isfile(tmp_path / 'work' / 'epoch_2.pth')
    text = log()
    assert skip_warnings(text, paths[0]) and skip_warnings(text, paths[1])
    assert set(dataset.skip_stats['files']) == set(paths)


def test_the_option_survives_data_yaml(data):
    from mmengine.config import Config

    from convnextv2_yolo.datasets.data_overrides import use_data_yaml
    from tests.helpers.tiny import DEMO_CFG
    cfg = use_data_yaml(Config.fromfile(DEMO_CFG), data.data_yaml)
    train = cfg.train_dataloader.dataset
    assert train.type == 'YOLODataset' and train.max_skip_fraction == 0.01 and train.strict is False
