"""Command-line tools: dist_train.sh (2 CPU processes, gloo), mim train, test.py, infer.py, benchmark.py."""
import glob
import json
import os
import os.path as osp
import shutil
import subprocess

import pytest
import torch

from tests.helpers.processes import PY, ROOT
from tests.helpers.processes import run_tool as _run
from tests.helpers.processes import tool_env as _env
from tests.helpers.tiny import make_tiny_data


@pytest.fixture(scope='module')
def tiny(tmp_path_factory):
    data = make_tiny_data(str(tmp_path_factory.mktemp('shapes')))
    cfg_dir = tmp_path_factory.mktemp('cfg')
    return data, cfg_dir


def _iter_cfg(data, cfg_dir, work_dir, name, max_iters=2):
    """A tiny config file that trains `max_iters` iterations (iteration-based loop)."""
    from tests.helpers.tiny import tiny_cfg
    cfg = tiny_cfg(data, work_dir, max_epochs=1, batch_size=2)
    cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=1000)
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=max_iters, by_epoch=False)
    cfg.custom_hooks = [dict(type='NumClassCheckHook')]
    cfg.log_processor = dict(type='LogProcessor', by_epoch=False, window_size=1)
    path = str(cfg_dir / f'{name}.py')
    cfg.dump(path)
    return path


def test_dist_train_two_cpu_processes(tiny, tmp_path):
    data, cfg_dir = tiny
    work_dir = str(tmp_path / 'dist run')  # arguments with spaces reach train.py whole
    cfg = _iter_cfg(data, cfg_dir, work_dir, 'dist')
    res = _run(['bash', 'tools/dist_train.sh', cfg, '2', '--work-dir', work_dir], PORT='29631')
    assert osp.isfile(osp.join(work_dir, 'iter_2.pth')), res.stdout[-2000:]
    log = ''.join(open(p).read() for p in glob.glob(osp.join(work_dir, '*', '*.log')))
    assert 'Distributed launcher: pytorch' in log and 'Distributed training: True' in log
    assert 'Iter(train) [2/2]' in log
    ckpt = torch.load(osp.join(work_dir, 'iter_2.pth'), weights_only=True)
    assert ckpt['meta']['iter'] == 2


def test_mim_train_runs_an_iteration(tiny, tmp_path):
    if shutil.which('mim', path=osp.dirname(PY)) is None:
        pytest.fail('openmim is not installed in the test environment (tools/env/setup.sh installs it)')
    data, cfg_dir = tiny
    work_dir = str(tmp_path / 'mim')
    cfg = _iter_cfg(data, cfg_dir, work_dir, 'mim', max_iters=1)
    _run([osp.join(osp.dirname(PY), 'mim'), 'train', 'mmdet', cfg, '--work-dir', work_dir])
    assert osp.isfile(osp.join(work_dir, 'iter_1.pth'))


@pytest.fixture(scope='module')
def trained(tiny, tmp_path_factory):
    data, cfg_dir = tiny
    work_dir = str(tmp_path_factory.mktemp('train'))
    cfg = _iter_cfg(data, cfg_dir, work_dir, 'train', max_iters=2)
    _run([PY, 'tools/train.py', cfg, '--work-dir', work_dir])
    return cfg, osp.join(work_dir, 'iter_2.pth'), data


def test_test_py_dumps_results_and_pictures(trained, tmp_path):
    cfg, ckpt, _ = trained
    out = str(tmp_path / 'results.pkl')
    res = _run([PY, 'tools/test.py', cfg, ckpt, '--work-dir', str(tmp_path), '--out', out,
                '--show-dir', 'vis'])
    assert osp.isfile(out)
    log = res.stdout + res.stderr
    assert 'coco/bbox_mAP' in log
    # YOLODetMetric: the reference's table and the yolo/ scalars (tests/evaluation/test_yolo_det_metric.py)
    assert 'Class     Images  Instances      Box(P          R      mAP50  mAP50-95)' in log
    assert 'yolo/mAP50-95: ' in log and 'yolo/precision/ellipse: ' in log  # classes with GT in the val set
    assert glob.glob(osp.join(str(tmp_path), '*', 'vis', '*'))


def test_infer_on_a_folder_and_a_video(trained, tmp_path):
    import cv2
    cfg, ckpt, data = trained
    out_dir = str(tmp_path / 'out')
    res = _run([PY, 'tools/infer.py', data.img_dirs['val'], cfg, ckpt, '--out-dir', out_dir, '--device', 'cpu'])
    assert len(glob.glob(osp.join(out_dir, 'vis', '*'))) == len(os.listdir(data.img_dirs['val']))
    # pictures name the labels after the classes the checkpoint was trained with
    assert f"classes (checkpoint): {', '.join(data.metainfo['classes'])}" in res.stdout
    video = str(tmp_path / 'clip.mp4')
    frames = [cv2.imread(p) for p in sorted(glob.glob(osp.join(data.img_dirs['val'], '*')))]
    writer = cv2.VideoWriter(video, cv2.VideoWriter_fourcc(*'mp4v'), 5, frames[0].shape[1::-1])
    for f in frames:
        writer.write(f)
    writer.release()
    _run([PY, 'tools/infer.py', video, cfg, ckpt, '--out-dir', out_dir, '--device', 'cpu'])
    assert cv2.VideoCapture(osp.join(out_dir, 'clip.mp4')).get(cv2.CAP_PROP_FRAME_COUNT) == len(frames)


def test_infer_rejects_bad_input(trained, tmp_path):
    cfg, ckpt, _ = trained
    res = subprocess.run([PY, 'tools/infer.py', str(tmp_path / 'missing.jpg'), cfg, ckpt], cwd=ROOT,
                         env=_env(), capture_output=True, text=True, timeout=300)
    assert res.returncode != 0 and 'input not found' in res.stderr and 'missing.jpg' in res.stderr


def test_benchmark_table(tmp_path):
    out = str(tmp_path / 'bench.json')
    cfg = osp.join(ROOT, 'configs', 'yolo11', 'yolo11_n_8xb16-500e_coco.py')
    res = _run([PY, 'tools/analysis_tools/benchmark.py', cfg, '--img-size', '128', '--batch', '2',
                '--runs', '1', '--warmup', '0', '--json', out])
    rows = json.load(open(out))
    assert rows[0]['params'] == 2_624_080
    assert rows[0]['gflops'] == pytest.approx(6.67 * (128 / 640) ** 2, rel=0.05)
    assert '| config | params |' in res.stdout
