"""kill -9 soak: a tiny training (tools/train.py --resume, as a user runs it) is killed with SIGKILL at random
moments (iterations, validations, checkpoint writes) and resumed after each; then it completes with the final
weights of an uninterrupted run, every checkpoint on disk loads, a best checkpoint exists once one was written,
and no more than one checkpoint interval (one iteration here) is ever lost.

The default suite runs 2 kills; ``-m slow`` runs 20 (``CONVNEXTV2_YOLO_SOAK_KILLS`` sets the count)."""
import glob
import os
import os.path as osp
import random
import re
import signal
import subprocess
import time

import pytest
import torch

import convnextv2_yolo  # noqa: F401
from convnextv2_yolo.utils.checkpoint_io import read_checkpoint_meta, safe_torch_load
from tests.helpers.paths import ROOT
from tests.helpers.processes import PY, tool_env
from tests.helpers.tiny import make_tiny_data, tiny_cfg

EPOCHS, BATCH, ITERS_PER_EPOCH = 10, 4, 3  # 12 training images; a validation after every epoch
ITER_INTERVAL = 1  # an iteration checkpoint after every iteration: at most one iteration may be lost


@pytest.fixture(scope='module')
def soak_setup(tmp_path_factory):
    root = tmp_path_factory.mktemp('soak')
    data = make_tiny_data(str(root / 'shapes'), num_train=12, num_val=2)
    cfg = tiny_cfg(data, str(root / 'unused'), max_epochs=EPOCHS, batch_size=BATCH, val_interval=1, close_epochs=1)
    cfg.randomness = dict(seed=0, deterministic=True)
    cfg.default_hooks.checkpoint = dict(type='YOLOCheckpointHook', interval=1, iter_interval=ITER_INTERVAL,
                                        max_keep_ckpts=2, save_best='coco/bbox_mAP', rule='greater')
    cfg.custom_hooks = [h for h in cfg.custom_hooks if h['type'] != 'ValidationPlotsHook']
    path = str(root / 'tiny.py')
    cfg.dump(path)
    ref = str(root / 'ref')
    assert _run(path, ref).wait(timeout=600) == 0
    return path, ref, _final(ref)


def _run(cfg_path, work_dir, tag='run'):
    """tools/train.py --resume in its own process group; its output in <work_dir>.<tag>.out."""
    cmd = [PY, 'tools/train.py', cfg_path, '--work-dir', work_dir, '--resume', '--no-plots']
    out = f'{work_dir}.{tag}.out'
    with open(out, 'w') as log:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=tool_env(), stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
    proc.out = out
    return proc


def _wait_for_training(proc, timeout=120):
    """Until the run has started training (mmengine logs where checkpoints go in before_train) or ended."""
    end = time.time() + timeout
    while time.time() < end and proc.poll() is None:
        if 'Checkpoints will be saved to' in open(proc.out, errors='replace').read():
            return
        time.sleep(0.05)


def _final(work_dir):
    return safe_torch_load(osp.join(work_dir, f'epoch_{EPOCHS}.pth'), map_location='cpu')['state_dict']


def _logged_iters(work_dir):
    """Global iterations logged as done (LoggerHook, interval 1), over all runs in the work dir."""
    done = []
    for path in glob.glob(osp.join(work_dir, '*', '*.log')):
        for e, i in re.findall(r'Epoch\(train\)\s+\[(\d+)\]\[\s*(\d+)/\d+\]', open(path).read()):
            done.append((int(e) - 1) * ITERS_PER_EPOCH + int(i))
    return done


def _checkpoints_load(work_dir):
    paths = sorted(glob.glob(osp.join(work_dir, '*.pth')))
    for p in paths:
        safe_torch_load(p, map_location='cpu')  # raises on a truncated or corrupt file
    return [osp.basename(p) for p in paths]


def _soak(cfg_path, work_dir, kills, seed):
    rng = random.Random(seed)
    seen_best, lost = False, []
    report = []
    for k in range(kills):
        before = _logged_iters(work_dir)
        proc = _run(cfg_path, work_dir, f'kill{k}')
        _wait_for_training(proc)
        time.sleep(rng.uniform(0.0, 1.6))  # into an iteration, a validation or a checkpoint write
        if proc.poll() is not None:  # finished before the kill: the soak ends
            report.append((k, 'finished'))
            break
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        names = _checkpoints_load(work_dir)
        has_best = any(n.startswith('best_') for n in names)
        assert has_best or not seen_best, f'kill {k}: the best checkpoint is gone ({names})'
        seen_best |= has_best
        after = _logged_iters(work_dir)
        done = max(after, default=0)
        if os.path.isfile(osp.join(work_dir, 'last_checkpoint')):
            saved = max((read_checkpoint_meta(osp.join(work_dir, n)).get('iter', 0) for n in names), default=0)
        else:
            saved = 0
        lost.append(done - saved)
        report.append((k, done, saved, len(after) - len(before)))
        assert done - saved <= ITER_INTERVAL, f'kill {k}: iterations logged up to {done}, saved up to {saved}'
    proc = _run(cfg_path, work_dir, 'final')
    assert proc.wait(timeout=900) == 0, open(proc.out).read()[-3000:]
    return report, lost


@pytest.mark.parametrize('kills', [
    2, pytest.param(int(os.environ.get('CONVNEXTV2_YOLO_SOAK_KILLS', 20)), marks=pytest.mark.slow)])
def test_killed_runs_resume_to_the_uninterrupted_weights(soak_setup, tmp_path, kills):
    cfg_path, _, expected = soak_setup
    work = str(tmp_path / 'work')
    report, lost = _soak(cfg_path, work, kills, seed=kills)
    assert len(lost) >= min(kills, 2), report  # the kills landed before the run finished
    got = _final(work)
    differ = [k for k, v in expected.items() if v.is_floating_point() and not torch.equal(got[k], v)]
    assert not differ, f'{len(differ)} tensors differ after {report}'
    _checkpoints_load(work)
    print(f'soak: {len(report)} kills {report}; iterations lost per kill {lost}')
