"""tools/analysis_tools/train_parity.py on a tiny generated dataset: our side alone (no reference
installed), and the whole orchestration with a stand-in for the reference's driver."""
import csv
import json
import os
import os.path as osp
import stat

import pytest
import torch

from tests.helpers.processes import PY, ROOT, run_tool
from tests.helpers.tiny import make_tiny_data

TOOL = 'tools/analysis_tools/train_parity.py'
COMMON = ['--imgsz', '64', '--epochs', '2', '--batch', '4', '--seeds', '0', '--close-mosaic', '1']


@pytest.fixture(scope='module')
def data(tmp_path_factory):
    return make_tiny_data(str(tmp_path_factory.mktemp('shapes')))


def _rows(work):
    with open(osp.join(work, 'parity.csv')) as f:
        return list(csv.DictReader(f))


def test_our_side_alone_without_the_reference(data, tmp_path):
    work = str(tmp_path / 'parity')
    res = run_tool([PY, TOOL, data.data_yaml, *COMMON, '--batch', '3', '--work-dir', work])
    assert 'reference side skipped' in res.stdout
    rows = _rows(work)
    # losses per image: each iteration's logged loss (per image x its batch) over its own batch size
    # (8 images, batch 3: 3, 3, 2), then the mean over the epoch's iterations, as the reference averages
    from convnextv2_yolo.utils.demo_report import read_scalars
    our_run = osp.join(work, 'seed0', 'ours')
    stamp = [d for d in os.listdir(our_run) if osp.isdir(osp.join(our_run, d, 'vis_data'))][0]
    its = [r for r in read_scalars(osp.join(our_run, stamp)) if r.get('epoch') == 1 and 'loss_bbox' in r]
    assert len(its) == 3
    expected = sum(r['loss_bbox'] / n for r, n in zip(its, (3, 3, 2))) / 3
    assert float(rows[0]['box_loss']) == pytest.approx(expected, abs=6e-6)  # the CSV has 5 decimals
    assert abs(sum(r['loss_bbox'] for r in its) / 9 - expected) > 1e-4  # counting the last batch full differs
    assert [(r['side'], r['epoch']) for r in rows] == [('ours', '1'), ('ours', '2')]
    for r in rows:
        assert 0.0 <= float(r['mAP50-95']) <= float(r['mAP50']) <= 1.0
        assert float(r['seconds']) > 0 and float(r['box_loss']) > 0
    assert float(rows[1]['cum_seconds']) == pytest.approx(float(rows[0]['seconds']) + float(rows[1]['seconds']),
                                                          abs=1e-4)
    summary = json.load(open(osp.join(work, 'summary.json')))
    assert 'reference' not in summary and summary['settings']['reference'] == 'skipped'
    assert summary['ours']['final_mAP50_95'] == [pytest.approx(float(rows[1]['mAP50-95']), abs=1e-5)]
    assert osp.getsize(osp.join(work, 'parity.png')) > 10000
    our_dir = osp.join(work, 'seed0', 'ours')
    assert not [f for f in os.listdir(our_dir) if f.endswith('.pth')], 'per-epoch checkpoints are removed'
    from mmengine.config import Config
    cfg = Config.fromfile(osp.join(our_dir, 'parity_config.py'))
    assert [h.close_epochs for h in cfg.custom_hooks if h.type == 'CloseMosaicHook'] == [1]
    from convnextv2_yolo.datasets.data_overrides import nested_transforms
    mosaic = [t.max_cached_images for t in nested_transforms(cfg.train_dataloader.dataset.pipeline)
              if t.type == 'YOLOMosaic']  # inside YOLOMixUp
    assert mosaic == [24]  # batch 3 x 8
    assert cfg.default_hooks.checkpoint.interval == 1 and cfg.load_from is None
    assert cfg.train_dataloader.num_workers == 0 and cfg.randomness.seed == 0


def test_both_sides_from_identical_weights_with_identical_settings(data, tmp_path):
    fake = tmp_path / 'ref_python'
    fake.write_text(f'#!/bin/sh\nshift\nexec "{PY}" "{ROOT}/tests/helpers/fake_ultralytics_driver.py" "$@"\n')
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    work = str(tmp_path / 'parity')
    run_tool([PY, TOOL, data.data_yaml, *COMMON, '--work-dir', work, '--ref-python', str(fake), '--threads', '1',
              '--workers', '0', '--keep-checkpoints', '--ref-env', 'FAKE_REF_ENV=a=b'])
    rows = _rows(work)
    assert sorted((r['side'], r['epoch']) for r in rows) == [('ours', '1'), ('ours', '2'), ('reference', '1'),
                                                             ('reference', '2')]
    ref = [r for r in rows if r['side'] == 'reference']
    assert ref[0]['mAP50-95'] == ref[1]['mAP50-95'], 'the same weights evaluate the same'
    assert [float(r['box_loss']) for r in ref] == [3.0, 1.5]
    args = json.load(open(osp.join(work, 'seed0', 'reference', 'args.json')))
    assert (args['imgsz'], args['epochs'], args['batch'], args['seed'], args['close_mosaic'], args['threads'],
            args['workers']) == (64, 2, 4, 0, 1, 1, 0)
    assert args['env_FAKE_REF_ENV'] == 'a=b'  # --ref-env reaches the reference's process
    # our side ran with the recipe's glibc malloc settings (YOLORunner, env_cfg.malloc)
    line = [ln for ln in open(osp.join(work, 'seed0', 'ours_train.log')) if 'env_cfg.malloc: ' in ln]
    assert line and 'trim_threshold set to -1' in line[0] and 'mmap_max set to 0' in line[0], line
    with open(args['data']) as f:  # the reference gets the yaml with an absolute path
        assert f"path: {osp.dirname(data.data_yaml)}" in f.read()
    # our run started from the reference's initial weights, converted
    init = torch.load(osp.join(work, 'seed0', 'init.pt'))
    converted = torch.load(osp.join(work, 'seed0', 'init_converted.pth'), weights_only=False)['state_dict']
    assert len(converted) == len(init)
    assert torch.equal(init['model.23.cv3.0.2.weight'], converted['bbox_head.cls_convs.0.2.weight'])
    from mmengine.config import Config
    cfg = Config.fromfile(osp.join(work, 'seed0', 'ours', 'parity_config.py'))
    assert cfg.load_from == osp.join(work, 'seed0', 'init_converted.pth')
    summary = json.load(open(osp.join(work, 'summary.json')))
    assert summary['reference']['seconds_per_epoch'] == 1.0 and summary['epoch_time_ratio'] > 0
    assert '| reference (ultralytics) | 0 |' in open(osp.join(work, 'summary.md')).read()


def _fake_ref_python(tmp_path) -> str:
    fake = tmp_path / 'ref_python'
    fake.write_text(f'#!/bin/sh\nshift\nexec "{PY}" "{ROOT}/tests/helpers/fake_ultralytics_driver.py" "$@"\n')
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    return str(fake)


def test_each_side_alone_in_parallel_then_merged(data, tmp_path):
    """--sides reference trains and evaluates the reference without our side (it used to die on our side's
    missing parity_config.py); both sides run at once in one work dir and --reuse merges them."""
    import subprocess

    from tests.helpers.processes import tool_env
    fake, work = _fake_ref_python(tmp_path), str(tmp_path / 'parity')
    cmd = [PY, TOOL, data.data_yaml, *COMMON, '--work-dir', work, '--ref-python', fake]
    procs = [subprocess.Popen(cmd + ['--sides', side], cwd=ROOT, env=tool_env(), stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True) for side in ('reference', 'ours')]
    outs = [p.communicate(timeout=600)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], '\n'.join(o[-3000:] for o in outs)
    assert 'training reference' in outs[0] and 'training ours' not in outs[0]
    assert 'seed 0 reference: final mAP50-95' in outs[0]
    evaluated = [json.loads(line) for line in open(osp.join(work, 'seed0', 'evaluations.jsonl'))]
    assert sorted((e['side'], e['epoch']) for e in evaluated) == [('ours', 1), ('ours', 2), ('reference', 1),
                                                                  ('reference', 2)]
    res = run_tool(cmd + ['--reuse'])  # the merge: no training, no evaluation
    assert "reusing our finished run" in res.stdout and "reusing the reference's finished run" in res.stdout
    assert len(open(osp.join(work, 'seed0', 'evaluations.jsonl')).readlines()) == 4, 'nothing evaluated again'
    rows = _rows(work)
    assert sorted((r['side'], r['epoch']) for r in rows) == [('ours', '1'), ('ours', '2'), ('reference', '1'),
                                                             ('reference', '2')]
    by_key = {(e['side'], e['epoch']): e for e in evaluated}
    for r in rows:
        assert float(r['mAP50-95']) == pytest.approx(by_key[r['side'], int(r['epoch'])]['mAP50-95'], abs=1e-5)
    summary = json.load(open(osp.join(work, 'summary.json')))
    assert set(summary) >= {'ours', 'reference', 'provenance'} and summary['epoch_time_ratio'] > 0


def test_bad_arguments_are_named(data, tmp_path):
    res = run_tool([PY, TOOL, str(tmp_path / 'missing.yaml')], check=False)
    assert res.returncode == 2 and 'DATA_YAML not found' in res.stderr
    res = run_tool([PY, TOOL, data.data_yaml, '--ref-python', str(tmp_path / 'nope')], check=False)
    assert res.returncode == 2 and '--ref-python not found' in res.stderr
    res = run_tool([PY, TOOL, data.data_yaml, '--ref-env', 'MALLOC_MMAP_MAX_'], check=False)
    assert res.returncode == 2 and "--ref-env takes KEY=VALUE, got ['MALLOC_MMAP_MAX_']" in res.stderr
    res = run_tool([PY, TOOL, data.data_yaml, '--sides', 'reference'], check=False)
    assert res.returncode == 2 and '--sides reference needs --ref-python' in res.stderr
    res = run_tool([PY, TOOL, data.data_yaml, '--ref-env', 'A=1'], check=False)
    assert res.returncode == 2 and '--ref-env needs --ref-python' in res.stderr


def test_yolo26_side_by_side(data, tmp_path):
    """--ref-model yolo26n.yaml: our config defaults to YOLO26-n, both sides start from the same (converted)
    weights, and the loss columns are the reference's E2ELoss items (box_loss, cls_loss, l1_loss: the
    one-to-one branch's), ours read from o2o_bbox, o2o_cls, o2o_l1."""
    work = str(tmp_path / 'parity')
    run_tool([PY, TOOL, data.data_yaml, *COMMON, '--work-dir', work, '--ref-python', _fake_ref_python(tmp_path),
              '--ref-model', 'yolo26n.yaml'])
    with open(osp.join(work, 'parity.csv')) as f:
        header = f.readline().strip().split(',')
    assert header[-3:] == ['box_loss', 'cls_loss', 'l1_loss'] and 'dfl_loss' not in header
    rows = _rows(work)
    assert sorted((r['side'], r['epoch']) for r in rows) == [('ours', '1'), ('ours', '2'), ('reference', '1'),
                                                             ('reference', '2')]
    assert [float(r['l1_loss']) for r in rows if r['side'] == 'reference'] == [2.0, 1.0]
    for r in rows:
        assert float(r['box_loss']) > 0 and float(r['cls_loss']) > 0 and float(r['l1_loss']) > 0
        assert 0.0 <= float(r['mAP50-95']) <= 1.0
    init = torch.load(osp.join(work, 'seed0', 'init.pt'))
    converted = torch.load(osp.join(work, 'seed0', 'init_converted.pth'), weights_only=False)['state_dict']
    assert torch.equal(init['model.23.one2one_cv3.0.2.weight'], converted['bbox_head.one2one_cls_convs.0.2.weight'])
    from mmengine.config import Config
    cfg = Config.fromfile(osp.join(work, 'seed0', 'ours', 'parity_config.py'))
    assert cfg.model.bbox_head.type == 'YOLOE2EHead' and cfg.model.bbox_head.num_classes == len(data.classes)
    assert [h for h in cfg.custom_hooks if h.type == 'E2ELossScheduleHook']
    summary = json.load(open(osp.join(work, 'summary.json')))
    assert summary['settings']['ref_model'] == 'yolo26n.yaml'
    assert summary['settings']['config'].endswith('configs/yolo26/yolo26_n_8xb16-500e_coco.py')
