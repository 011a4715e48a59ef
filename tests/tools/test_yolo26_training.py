"""A short real YOLO26-n training through the user's commands (about 20 s on 2 cores):

    tools/train.py configs/yolo26/yolo26_n_8xb16-500e_coco.py --data data.yaml --imgsz 96 (3 epochs)
    tools/test.py  <its config> <its checkpoint>                                  (end-to-end, no NMS)
    tools/test.py  ... --cfg-options model.test_cfg.end2end=False                 (one-to-many + NMS)

on a tiny generated dataset: the end-to-end loss trains (the class terms of both branches go down), the
one-to-many weight follows the schedule per epoch (0.8, 0.45, 0.1 over 3 epochs), validation runs after
every epoch through the end-to-end path and writes COCO metrics, and both test paths evaluate the
checkpoint. The optimizer is set (AdamW, lr 0.002, no gradient clipping) so that 24 steps visibly train;
the recipe's own optimizer choice is the reference's (``optimizer=auto``) and is tested elsewhere.
"""
import glob
import json
import os.path as osp
import pickle

import pytest

from tests.helpers.processes import PY, run_tool
from tests.helpers.tiny import make_tiny_data

CONFIG = 'configs/yolo26/yolo26_n_8xb16-500e_coco.py'
EPOCHS = 3
OPTIONS = [f'train_cfg.max_epochs={EPOCHS}', 'train_cfg.val_interval=1', 'train_dataloader.batch_size=4',
           'train_dataloader.num_workers=0', 'train_dataloader.persistent_workers=False',
           'val_dataloader.num_workers=0', 'val_dataloader.persistent_workers=False',
           'test_dataloader.num_workers=0', 'test_dataloader.persistent_workers=False',
           'default_hooks.logger.interval=1', 'randomness.seed=0', 'optim_wrapper.accumulative_counts=1',
           'default_hooks.param_scheduler.warmup_epochs=0', 'optim_wrapper.optimizer.type=AdamW',
           'optim_wrapper.optimizer.lr=0.002', 'optim_wrapper.clip_grad=None',
           'log_processor.window_size=8']  # logged values: means of the last 8 iterations (8 per epoch)


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    data = make_tiny_data(str(tmp_path_factory.mktemp('shapes')), num_train=32, num_val=4)
    work = str(tmp_path_factory.mktemp('yolo26'))
    res = run_tool([PY, 'tools/train.py', CONFIG, '--data', data.data_yaml, '--imgsz', '96', '--work-dir', work,
                    '--cfg-options', *OPTIONS])
    scalars = sorted(glob.glob(osp.join(work, '*', 'vis_data', 'scalars.json')))[-1]
    with open(scalars) as f:
        rows = [json.loads(line) for line in f]
    return work, rows, res.stdout + res.stderr


def _epoch_end(rows, epoch, key):
    """The value logged at the last iteration of ``epoch``: the mean of its 8 iterations."""
    return [r[key] for r in rows if r.get('epoch') == epoch and key in r][-1]


def test_training_follows_the_schedule_and_trains(trained):
    work, rows, log = trained
    # the schedule hook sets the weight before every epoch: 0.8 -> 0.1 linearly over E - 1 epochs
    for epoch, weight in zip(range(1, EPOCHS + 1), (0.8, 0.45, 0.1)):
        its = [r for r in rows if r.get('epoch') == epoch and 'o2m_weight' in r]
        assert len(its) == 8 and all(r['o2m_weight'] == pytest.approx(weight) for r in its), epoch
        assert (f'E2ELossScheduleHook: epoch {epoch}/{EPOCHS}: one-to-many loss weight {weight:.5f}, '
                f'one-to-one {1 - weight:.5f}') in log
    # the reference's logged items (the o2o branch's) and ours of the o2m branch are logged every iteration,
    # besides the weighted losses that are summed
    first = rows[0]
    assert {'loss', 'loss_cls', 'loss_bbox', 'loss_l1', 'o2o_cls', 'o2o_bbox', 'o2o_l1', 'o2m_cls', 'o2m_bbox',
            'o2m_l1'} <= set(first)
    assert first['loss'] == pytest.approx(first['loss_cls'] + first['loss_bbox'] + first['loss_l1'], rel=1e-3)
    w = first['o2m_weight']
    for key in ('cls', 'bbox', 'l1'):
        assert first[f'loss_{key}'] == pytest.approx(w * first[f'o2m_{key}'] + (1 - w) * first[f'o2o_{key}'],
                                                     rel=1e-3)
    # the branch items are averaged over the logging window as the loss_* keys are (config's mean_pattern):
    # the identity holds for smoothed values too (the 6th iteration: the mean of 6, the weight constant)
    sixth = [r for r in rows if r.get('epoch') == 1 and 'o2m_weight' in r][5]
    for key in ('cls', 'bbox', 'l1'):
        assert sixth[f'loss_{key}'] == pytest.approx(0.8 * sixth[f'o2m_{key}'] + 0.2 * sixth[f'o2o_{key}'], rel=1e-3)
    for key in ('o2o_cls', 'o2m_cls'):  # both class branches learn (measured 18.04 -> 16.70, 17.25 -> 16.66)
        assert _epoch_end(rows, EPOCHS, key) < 0.98 * _epoch_end(rows, 1, key), key
    # validation after every epoch, through the end-to-end path (the config's test_cfg), COCO metrics
    val = [r for r in rows if 'coco/bbox_mAP' in r]
    assert len(val) == EPOCHS and all(0 <= r['coco/bbox_mAP'] <= 1 for r in val)
    assert osp.isfile(osp.join(work, f'epoch_{EPOCHS}.pth'))


def test_results_csv_has_the_one_to_one_items(trained):
    """The recipe's ResultsCSVHook: the reference's YOLO26 header (l1_loss) and, per epoch, the one-to-one
    items per image (the logged epoch mean / batch 4), the epoch's mAP and the reference's 3 LR groups."""
    import csv
    work, rows, _ = trained
    with open(osp.join(work, 'results.csv')) as f:
        table = list(csv.DictReader(f))
    assert list(table[0]) == ['epoch', 'time', 'train/box_loss', 'train/cls_loss', 'train/l1_loss',
                              'metrics/precision(B)', 'metrics/recall(B)', 'metrics/mAP50(B)', 'metrics/mAP50-95(B)',
                              'val/box_loss', 'val/cls_loss', 'val/l1_loss', 'lr/pg0', 'lr/pg1', 'lr/pg2']
    assert [r['epoch'] for r in table] == [str(e) for e in range(1, EPOCHS + 1)]
    val = [r for r in rows if 'coco/bbox_mAP' in r]
    for epoch, (row, metrics) in enumerate(zip(table, val), 1):
        for column, key in (('box_loss', 'o2o_bbox'), ('cls_loss', 'o2o_cls'), ('l1_loss', 'o2o_l1')):
            assert float(row[f'train/{column}']) == pytest.approx(_epoch_end(rows, epoch, key) / 4, rel=1e-3,
                                                                  abs=1e-5), (epoch, column)
        assert float(row['metrics/mAP50-95(B)']) == pytest.approx(metrics['coco/bbox_mAP'], abs=1e-6)
        assert float(row['lr/pg0']) == pytest.approx(_epoch_end(rows, epoch, 'lr'), rel=1e-5)


@pytest.mark.parametrize('end2end', [True, False])
def test_test_py_on_the_checkpoint(trained, tmp_path, end2end):
    work, _, _ = trained
    cfg = glob.glob(osp.join(work, '*.py'))[0]
    out = str(tmp_path / 'results.pkl')
    cmd = [PY, 'tools/test.py', cfg, osp.join(work, f'epoch_{EPOCHS}.pth'), '--work-dir', str(tmp_path),
           '--out', out, '--cfg-options', 'test_dataloader.num_workers=0',
           'test_dataloader.persistent_workers=False']
    if not end2end:
        cmd.append('model.test_cfg.end2end=False')
    res = run_tool(cmd)
    assert 'coco/bbox_mAP' in res.stdout + res.stderr
    nms_line = ('YOLOE2EHead: test_cfg.end2end=False: the one-to-many branch with NMS, score_thr=0.001, '
                "nms_pre=30000, nms={'type': 'nms', 'iou_threshold': 0.7}, multi_label=True, max_per_img=300")
    assert (nms_line in res.stdout + res.stderr) == (not end2end)
    with open(out, 'rb') as f:
        preds = pickle.load(f)
    assert len(preds) == 4
    for p in preds:
        inst = p['pred_instances']
        n = len(inst['scores'])
        assert 0 < n <= 300 and inst['bboxes'].shape == (n, 4)
        assert (inst['scores'][:-1] >= inst['scores'][1:]).all()  # by descending score on both paths
