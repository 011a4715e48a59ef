"""ResultsCSVHook: <work_dir>/results.csv with the reference trainer's columns, resume-safe."""
import csv
import json
import math
import os.path as osp
from glob import glob
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from convnextv2_yolo.engine.hooks.results_csv_hook import ResultsCSVHook, group_kind, reference_lrs
from tests.helpers.tiny import make_tiny_data, tiny_cfg

YOLO11_HEADER = ['epoch', 'time', 'train/box_loss', 'train/cls_loss', 'train/dfl_loss', 'metrics/precision(B)',
                 'metrics/recall(B)', 'metrics/mAP50(B)', 'metrics/mAP50-95(B)', 'val/box_loss', 'val/cls_loss',
                 'val/dfl_loss', 'lr/pg0', 'lr/pg1', 'lr/pg2']


# ---------------------------------------------------------------- LR columns
def test_reference_lrs_three_groups_of_our_constructor():
    """Ours: [bias, decay, norm]; the reference's pg0 decay, pg1 norm, pg2 bias."""
    from mmdet.registry import OPTIM_WRAPPER_CONSTRUCTORS
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    wrapper = OPTIM_WRAPPER_CONSTRUCTORS.build(dict(
        type='YOLOOptimWrapperConstructor',
        optim_wrapper_cfg=dict(type='OptimWrapper',
                               optimizer=dict(type='SGD', lr=0.01, momentum=0.9, weight_decay=5e-4))))(model)
    groups = wrapper.optimizer.param_groups
    assert [group_kind(g) for g in groups] == ['bias', 'weight', 'bn']
    for g, lr in zip(groups, (0.3, 0.1, 0.2)):
        g['lr'] = lr
    assert reference_lrs(groups) == [0.1, 0.2, 0.3]


def test_reference_lrs_musgd_eight_columns():
    """MuSGD: (weight, bn, bias, muon), class branch (x3) first; empty reference groups get their schedule's LR."""
    groups = [dict(lr=0.5, weight_decay=0.0, yolo_bias=True),  # our order: the input groups, then Muon
              dict(lr=1.5, weight_decay=0.0, yolo_bias=True, yolo_lr_scale=3.0),
              dict(lr=0.1, weight_decay=0.0),
              dict(lr=0.3, weight_decay=0.0, yolo_lr_scale=3.0),
              dict(lr=0.1, weight_decay=5e-4, yolo_base_weight_decay=5e-4, use_muon=True),
              dict(lr=0.3, weight_decay=5e-4, yolo_base_weight_decay=5e-4, use_muon=True, yolo_lr_scale=3.0)]
    # no non-Muon decayed weights here: the reference's (empty) weight groups follow the non-bias schedule
    assert reference_lrs(groups) == pytest.approx([0.3, 0.1, 0.3, 0.1, 1.5, 0.5, 0.3, 0.1])
    del groups[1]  # no boosted bias: derived from the bias group x 3
    assert reference_lrs(groups)[4] == pytest.approx(1.5)


def test_reference_lrs_of_our_musgd_regrouping():
    """musgd_param_groups' output ([bias, bias x3, norm, norm x3, muon, muon x3] here) in the reference's order."""
    from convnextv2_yolo.engine.optimizers import musgd_param_groups
    conv, head, norm = nn.Conv2d(3, 4, 3), nn.Conv2d(4, 2, 1), nn.BatchNorm2d(4)
    base = [dict(params=[conv.bias, head.bias], weight_decay=0.0, yolo_bias=True),
            dict(params=[conv.weight, head.weight], weight_decay=5e-4, yolo_base_weight_decay=5e-4),
            dict(params=[norm.weight, norm.bias], weight_decay=0.0)]
    boosted = {id(p) for p in head.parameters()}
    groups = musgd_param_groups(base, boosted, lr=0.01)
    assert [(group_kind(g), 'yolo_lr_scale' in g) for g in groups] == [
        ('bias', False), ('bias', True), ('bn', False), ('muon', False), ('muon', True)]
    # pg0/pg1 (the reference's weight groups, empty here: every decayed weight is a matrix) follow Muon's
    assert reference_lrs(groups) == pytest.approx([0.03, 0.01, 0.03, 0.01, 0.03, 0.01, 0.03, 0.01])


def test_reference_lrs_untagged_groups():
    """mmdet's layer-decay groups (decay / no_decay with biases inside): the largest LR per kind; one
    plain group fills all columns."""
    groups = [dict(lr=0.001, weight_decay=0.05), dict(lr=0.001, weight_decay=0.0),
              dict(lr=0.004, weight_decay=0.05), dict(lr=0.004, weight_decay=0.0)]
    assert reference_lrs(groups) == [0.004, 0.004, 0.004]
    assert reference_lrs([dict(lr=0.02, weight_decay=0.0)]) == [0.02, 0.02, 0.02]


# ---------------------------------------------------------------- the hook without a training
def _stub_runner(work_dir, groups, epoch=0):
    optim = SimpleNamespace(param_groups=groups)
    return SimpleNamespace(work_dir=str(work_dir), epoch=epoch, optim_wrapper=optim, val_loop=None)


def test_e2e_head_logs_the_one_to_one_items_per_image(tmp_path):
    """YOLOE2EHead: o2o_bbox / o2o_cls / o2o_l1 (header l1_loss), each iteration divided by its batch size."""
    hook = ResultsCSVHook()
    runner = _stub_runner(tmp_path, [dict(lr=0.01, weight_decay=0.0)])
    hook.before_train_epoch(runner)
    for bs, scale in ((4, 1.0), (2, 3.0)):  # a short last batch
        outputs = dict(loss=torch.tensor(9.0), loss_bbox=torch.tensor(7.0), loss_cls=torch.tensor(5.0),
                       loss_l1=torch.tensor(3.0), o2o_bbox=torch.tensor(8.0 * scale * bs / 4),
                       o2o_cls=torch.tensor(4.0 * scale * bs / 4), o2o_l1=torch.tensor(0.4 * scale * bs / 4),
                       o2m_weight=torch.tensor(0.8))
        hook.after_train_iter(runner, 0, dict(inputs=[None] * bs, data_samples=[None] * bs), outputs)
    hook.after_train_epoch(runner)  # no val loop: written now
    with open(tmp_path / 'results.csv') as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == [h.replace('dfl_loss', 'l1_loss') for h in YOLO11_HEADER]
    row = rows[0]
    assert row['epoch'] == '1'
    assert float(row['train/box_loss']) == pytest.approx((2.0 + 6.0) / 2)
    assert float(row['train/cls_loss']) == pytest.approx((1.0 + 3.0) / 2)
    assert float(row['train/l1_loss']) == pytest.approx((0.1 + 0.3) / 2)
    assert row['metrics/mAP50(B)'] == row['metrics/precision(B)'] == row['val/box_loss'] == ''
    assert float(row['lr/pg0']) == 0.01


@pytest.mark.parametrize('metrics,expected', [
    (dict(coco_bbox_mAP=0.3, coco_bbox_mAP_50=0.5), ('', '', '0.5', '0.3')),  # CocoMetric only: COCO's mAP
    (dict(coco_bbox_mAP=0.3, coco_bbox_mAP_50=0.5, yolo_precision=0.7, yolo_recall=0.6, yolo_mAP50=0.52,
          yolo_mAP50_95=0.31), ('0.7', '0.6', '0.52', '0.31')),  # YOLODetMetric: the reference's numbers
])
def test_metric_columns_prefer_the_references_validator_numbers(tmp_path, metrics, expected):
    metrics = {k.replace('coco_', 'coco/').replace('yolo_', 'yolo/').replace('50_95', '50-95'): v
               for k, v in metrics.items()}
    hook = ResultsCSVHook()
    runner = _stub_runner(tmp_path, [dict(lr=0.01, weight_decay=0.0)])
    runner.val_loop = object()  # validated after every epoch
    runner.train_loop = SimpleNamespace(val_interval=1, val_begin=1, max_epochs=1)
    hook.before_train_epoch(runner)
    hook.after_train_iter(runner, 0, dict(inputs=[None]), dict(loss_bbox=torch.tensor(1.0),
                                                               loss_cls=torch.tensor(1.0)))
    hook.after_train_epoch(runner)
    assert not (tmp_path / 'results.csv').exists()  # waits for the validation
    hook.after_val_epoch(runner, metrics)
    with open(tmp_path / 'results.csv') as f:
        row = list(csv.DictReader(f))[0]
    cols = ('metrics/precision(B)', 'metrics/recall(B)', 'metrics/mAP50(B)', 'metrics/mAP50-95(B)')
    assert tuple(row[c] for c in cols) == expected


def test_read_drops_an_incomplete_last_line(tmp_path):
    path = tmp_path / 'results.csv'
    path.write_text('epoch,time,x\n1,0.5,2\n2,1.0,3\n3,1.5')
    assert ResultsCSVHook.read(str(path)) == (['epoch', 'time', 'x'], [['1', '0.5', '2'], ['2', '1.0', '3']])
    path.write_text('epoch,time,x\n1,0.5,2\n2,1.0\n')  # a row cut before its last field
    assert ResultsCSVHook.read(str(path))[1] == [['1', '0.5', '2']]
    path.write_text('epoch,ti')
    assert ResultsCSVHook.read(str(path)) == (None, [])


# ---------------------------------------------------------------- tiny trainings
def _runner(data, work_dir, max_epochs, resume=None):
    from convnextv2_yolo.utils.launch import build_runner
    cfg = tiny_cfg(data, work_dir, max_epochs=max_epochs, val_interval=2, close_epochs=1)
    cfg.log_processor.window_size = 1  # the logged losses and LR are each iteration's own
    if resume is not None:
        cfg.resume, cfg.load_from = True, resume
    cfg.experiment_name += f'_{max_epochs}_{osp.basename(resume or "fresh")}'
    cfg.visualizer.name = cfg.experiment_name  # a new visualizer (its scalars.json in this work dir), not the process's
    return build_runner(cfg)


def _rows(work_dir):
    with open(osp.join(work_dir, 'results.csv')) as f:
        return list(csv.DictReader(f))


def _scalars(work_dir):
    out = []
    for path in sorted(glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json'))):
        with open(path) as f:
            out += [json.loads(line) for line in f]
    return out


@pytest.fixture(scope='module')
def tiny_data(tmp_path_factory):
    return make_tiny_data(str(tmp_path_factory.mktemp('shapes')))


@pytest.fixture(scope='module')
def two_epochs(tiny_data, tmp_path_factory):
    work_dir = str(tmp_path_factory.mktemp('work'))
    _runner(tiny_data, work_dir, 2).train()
    return work_dir


def test_rows_hold_the_epoch_means_per_image(two_epochs):
    """2 epochs, validation at epoch 2 only: the reference's header, per-image loss means, the last LR, mAP."""
    with open(osp.join(two_epochs, 'results.csv')) as f:
        assert f.readline().rstrip('\n').split(',') == YOLO11_HEADER
    rows = _rows(two_epochs)
    assert [r['epoch'] for r in rows] == ['1', '2']
    logged = _scalars(two_epochs)
    train = [s for s in logged if 'loss_bbox' in s]
    batch = 4  # 8 images, batch 4: two full iterations an epoch
    for row in rows:
        its = [s for s in train if s['epoch'] == int(row['epoch'])]
        assert len(its) == 2
        for column, key in (('box_loss', 'loss_bbox'), ('cls_loss', 'loss_cls'), ('dfl_loss', 'loss_dfl')):
            mean = sum(s[key] / batch for s in its) / len(its)
            assert float(row[f'train/{column}']) == pytest.approx(mean, rel=1e-4, abs=1e-5)
        for pg in range(3):
            assert float(row[f'lr/pg{pg}']) == pytest.approx(its[-1]['lr'], rel=1e-5)
    assert float(rows[0]['time']) < float(rows[1]['time'])
    assert all(rows[0][c] == '' for c in YOLO11_HEADER[5:12])  # epoch 1: not validated
    val = [s for s in logged if 'coco/bbox_mAP' in s]
    assert len(val) == 1
    for column, key in (('precision', 'yolo/precision'), ('recall', 'yolo/recall'), ('mAP50', 'yolo/mAP50'),
                        ('mAP50-95', 'yolo/mAP50-95')):  # YOLODetMetric's: the reference validator's numbers
        assert float(rows[1][f'metrics/{column}(B)']) == pytest.approx(val[0][key], abs=1e-6)
    assert rows[1]['val/box_loss'] == ''  # mmdet's validation computes no losses


def test_resume_repairs_a_killed_write_and_appends(two_epochs, tiny_data, tmp_path):
    """A half row after epoch 2 (a kill mid-write of another writer) is removed, the resumed epoch 3 is appended;
    resuming again from epoch 2 drops the rows of later epochs: rows 1..3 exactly once."""
    import shutil
    work_dir = str(tmp_path / 'work')
    shutil.copytree(two_epochs, work_dir)
    path = osp.join(work_dir, 'results.csv')
    with open(path) as f:
        before = f.read()
    with open(path, 'a') as f:
        f.write('3,9.87,1.2')  # cut mid-row
    _runner(tiny_data, work_dir, 3, resume=osp.join(work_dir, 'epoch_2.pth')).train()
    rows = _rows(work_dir)
    assert [r['epoch'] for r in rows] == ['1', '2', '3']
    with open(path) as f:
        after = f.read()
    assert after.startswith(before)  # the first two rows untouched
    assert float(rows[2]['time']) > float(rows[1]['time'])  # time carried across the resume
    assert rows[2]['metrics/mAP50(B)'] != ''  # the last epoch is validated
    third = rows[2]
    _runner(tiny_data, work_dir, 3, resume=osp.join(work_dir, 'epoch_2.pth')).train()
    rows = _rows(work_dir)
    assert [r['epoch'] for r in rows] == ['1', '2', '3']
    assert rows[2]['train/box_loss'] == third['train/box_loss']  # the same epoch 3 (deterministic)
    assert not glob(osp.join(work_dir, '.results.csv.*'))  # no temporary files left


def test_a_fresh_run_starts_a_new_file(two_epochs, tiny_data, tmp_path):
    import shutil
    work_dir = str(tmp_path / 'work')
    shutil.copytree(two_epochs, work_dir)
    with open(osp.join(work_dir, 'results.csv'), 'a') as f:
        f.write('7,1,2,3,,,,,,,,,1,1,1\n')
    _runner(tiny_data, work_dir, 1).train()
    rows = _rows(work_dir)
    assert [r['epoch'] for r in rows] == ['1']
    assert not math.isnan(float(rows[0]['train/box_loss']))
