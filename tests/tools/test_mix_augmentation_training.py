"""MixUp, CopyPaste and class weights in a real training set-up: YOLO labels with polygons, the YOLO11
recipe's train pipeline, tools/train.py --data --mixup --copy-paste and cls_pw."""
import glob
import os.path as osp
import random
import re
from argparse import Namespace

import numpy as np
import pytest
import torch
from mmengine.config import Config

import convnextv2_yolo  # noqa: F401
from tests.helpers.logs import current_log
from tests.helpers.paths import ROOT
from tests.helpers.processes import PY, run_tool
from tests.helpers.tiny import make_tiny_data, tiny_cfg

YOLO11_M = osp.join(ROOT, 'configs', 'yolo11', 'yolo11_m_8xb16-500e_coco.py')


def _diamond_labels(data) -> int:
    """Rewrite every YOLO label row as the polygon of the diamond inscribed in its box (same bounding box)."""
    rows = 0
    for path in glob.glob(osp.join(data.root, 'labels', '*', '*.txt')):
        lines = []
        for line in open(path).read().split('\n'):
            if not line.strip():
                continue
            c, cx, cy, w, h = line.split()
            cx, cy, w, h = (float(v) for v in (cx, cy, w, h))
            pts = [cx, cy - h / 2, cx + w / 2, cy, cx, cy + h / 2, cx - w / 2, cy]
            lines.append(c + ' ' + ' '.join(f'{v:.6f}' for v in pts))
            rows += 1
        with open(path, 'w') as f:
            f.write('\n'.join(lines) + '\n')
    return rows


@pytest.fixture(scope='module')
def polygon_data(tmp_path_factory):
    data = make_tiny_data(str(tmp_path_factory.mktemp('poly')), num_train=8, num_val=2)
    assert _diamond_labels(data) > 8
    return data


def _train_set(data, mixup: float, copy_paste: float, imgsz: int = 64):
    """The YOLO11-m recipe's training dataset, prepared as tools/train.py --data --imgsz --mixup --copy-paste."""
    from mmdet.registry import DATASETS
    from mmengine.registry import init_default_scope

    from convnextv2_yolo.utils.launch import prepare_train_cfg
    init_default_scope('mmdet')
    args = Namespace(data=data.data_yaml, imgsz=imgsz, launcher='none', cfg_options=None, work_dir=None,
                     mixup=mixup, copy_paste=copy_paste)
    cfg = prepare_train_cfg(Config.fromfile(YOLO11_M), args)
    dataset = cfg.train_dataloader.dataset
    return DATASETS.build(dataset)


def _boxes_per_sample(dataset, seeds):
    counts = []
    for seed in seeds:
        random.seed(seed)
        np.random.seed(seed)
        torch.manual_seed(seed)
        out = dataset[seed % len(dataset)]
        assert tuple(out['inputs'].shape) == (3, 64, 64)
        counts.append(len(out['data_samples'].gt_instances.bboxes))
    return counts


def test_copy_paste_and_mixup_in_the_recipe_pipeline_on_polygon_labels(polygon_data):
    """CopyPaste (deterministic in 'flip' mode) adds boxes to the same mosaics; MixUp adds the partner's."""
    seeds = range(12)
    plain = _boxes_per_sample(_train_set(polygon_data, 0.0, 0.0), seeds)
    pasted = _boxes_per_sample(_train_set(polygon_data, 0.0, 1.0), seeds)
    assert all(p >= b for p, b in zip(pasted, plain)) and sum(pasted) > sum(plain), (plain, pasted)
    mixed = _boxes_per_sample(_train_set(polygon_data, 1.0, 0.0), seeds)
    assert sum(mixed) > sum(plain), (plain, mixed)


def test_copy_paste_on_boxes_only_is_reported(tmp_path):
    data = make_tiny_data(str(tmp_path / 'boxes'), num_train=4, num_val=1)
    with current_log() as log:
        _train_set(data, 0.0, 0.5)
    assert 'copy_paste=0.5, but none of 4 images checked has a polygon for every instance' in log()


def test_train_py_with_mixup_copy_paste_and_class_weights(polygon_data, tmp_path):
    """tools/train.py --data --mixup 0.5 --copy-paste 0.5 with cls_pw 0.5: --data's reset is logged, then the
    options apply; the class weights are computed from the labels and logged; training completes."""
    work = str(tmp_path / 'work')
    cfg = tiny_cfg(polygon_data, work, max_epochs=1, size=64, close_epochs=0)
    recipe = Config.fromfile(YOLO11_M)
    cfg.train_dataloader.dataset.pipeline = recipe.train_dataloader.dataset.pipeline
    cfg.custom_hooks = [h for h in cfg.custom_hooks if h['type'] != 'CloseMosaicHook']
    cfg.custom_hooks.append(dict(type='YOLOClassWeightsHook'))
    cfg.model.bbox_head.loss_cls.cls_pw = 0.5
    path = str(tmp_path / 'tiny.py')
    cfg.dump(path)
    res = run_tool([PY, 'tools/train.py', path, '--data', polygon_data.data_yaml, '--imgsz', '64',
                    '--work-dir', work, '--mixup', '0.5', '--copy-paste', '0.5'])
    log = res.stdout + res.stderr
    assert '--data: mixup 0.15 -> 0.0, copy_paste 0.4 -> 0.0' in log
    assert '--mixup/--copy-paste: mixup 0.5, copy_paste 0.5 (mixup 0.0 -> 0.5, copy_paste 0.0 -> 0.5)' in log
    assert 'copy_paste=0.5: 8 of 8 images checked have a polygon for every instance' in log
    names = '|'.join(polygon_data.metainfo['classes'])
    assert re.search(rf'Class weights \(cls_pw=0.5\): ({names}): \d\.\d{{3}} \(\d+ labels\)', log), log[-3000:]
    assert osp.isfile(osp.join(work, 'epoch_1.pth'))
    bad = run_tool([PY, 'tools/train.py', path, '--mixup', '1.5'], check=False)
    assert bad.returncode != 0 and 'mixup must be in [0, 1], got 1.5' in bad.stderr
