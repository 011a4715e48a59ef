"""Checkpoints are written atomically, and old ones removed only after the new one is in place.

A small mmengine training (a toy model: the point is mmengine's CheckpointHook)
runs in its own process with a stall injected into the write of a chosen
checkpoint; the test kills it there (SIGKILL) and inspects the work dir.
"""
import os
import os.path as osp
import signal
import subprocess
import time

import pytest

from tests.helpers.processes import PY, ROOT, tool_env

TRAIN = r'''
import os, sys, time
import torch
import convnextv2_yolo  # noqa: F401  (applies the patches)
from convnextv2_yolo.utils import checkpoint_io
from mmengine.evaluator import BaseMetric
from mmengine.model import BaseModel
from mmengine.registry import METRICS
from mmengine.runner import Runner

STALL = os.environ.get('STALL_ON', '')
write_atomic = checkpoint_io.write_atomic


def stalling_write(path, data, **kwargs):
    print('WRITE', os.path.basename(path), flush=True)
    if STALL and os.path.basename(path) == STALL:
        fsync = os.fsync
        def stall(fd):  # the bytes are in the temporary file; hang before the rename
            print('STALLED', flush=True)
            time.sleep(600)
        os.fsync = stall
    write_atomic(path, data, **kwargs)


checkpoint_io.write_atomic = stalling_write


class Toy(BaseModel):
    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(4, 1)

    def forward(self, inputs, labels=None, mode='tensor'):
        out = self.linear(torch.stack(inputs))
        if mode == 'loss':
            return dict(loss=((out - torch.stack(labels)) ** 2).mean())
        return [dict(score=float(o)) for o in out]


@METRICS.register_module(force=True)
class EpochScore(BaseMetric):
    """A score that rises every validation: each epoch makes a new best checkpoint."""
    calls = 0

    def process(self, data_batch, data_samples):
        self.results.append(1)

    def compute_metrics(self, results):
        EpochScore.calls += 1
        return dict(score=float(EpochScore.calls))


data = [dict(inputs=torch.randn(4), labels=torch.randn(1)) for _ in range(8)]
loader = dict(dataset=data, batch_size=4, sampler=dict(type='DefaultSampler', shuffle=False),
              collate_fn=dict(type='pseudo_collate'))
runner = Runner(
    model=Toy(), work_dir=sys.argv[1], train_dataloader=loader, val_dataloader=loader,
    val_evaluator=dict(type='EpochScore'), val_cfg=dict(), optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.01)),
    train_cfg=dict(by_epoch=True, max_epochs=int(sys.argv[2]), val_interval=1),
    default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=1, max_keep_ckpts=1, save_best='score',
                                       rule='greater')))
runner.train()
print('DONE', flush=True)
'''


def _train(work_dir, tmp_path, epochs, stall_on=''):
    script = tmp_path / 'train_toy.py'
    script.write_text(TRAIN)
    return subprocess.Popen([PY, str(script), work_dir, str(epochs)], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=tool_env(STALL_ON=stall_on))


def _kill_when_stalled(proc, timeout=120):
    lines = []
    deadline = time.time() + timeout
    for line in proc.stdout:
        lines.append(line)
        if line.startswith('STALLED'):
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            return lines
        if time.time() > deadline:
            break
    proc.kill()
    raise AssertionError('the writer never reached the injected stall:\n' + ''.join(lines[-40:]))


def _files(work_dir):
    return sorted(f for f in os.listdir(work_dir) if f.endswith('.pth'))


# checkpoint stalled -> what must be on disk after the kill (per epoch, the epoch
# checkpoint is written after training, the best one after validating)
KILLS = {
    'epoch_2.pth': ['best_score_epoch_1.pth', 'epoch_1.pth'],  # the oldest kept epoch is still there
    'best_score_epoch_2.pth': ['best_score_epoch_1.pth', 'epoch_2.pth'],  # the previous best is still there
    'epoch_3.pth': ['best_score_epoch_2.pth', 'epoch_2.pth'],
}


@pytest.mark.parametrize('victim', sorted(KILLS))
def test_a_kill_while_writing_leaves_the_previous_checkpoints_intact(tmp_path, victim):
    work_dir = str(tmp_path / 'work')
    lines = _kill_when_stalled(_train(work_dir, tmp_path, epochs=3, stall_on=victim))
    written = [line.split()[1] for line in lines if line.startswith('WRITE')]
    assert written[-1] == victim
    # the checkpoint being written never appears under its final name (no truncated file),
    # and the ones it replaces are still there and load
    assert _files(work_dir) == KILLS[victim]
    from convnextv2_yolo.utils.checkpoint_io import safe_torch_load
    for name in KILLS[victim]:
        ckpt = safe_torch_load(osp.join(work_dir, name))
        assert ckpt['meta']['epoch'] == int(name[-5])
    with open(osp.join(work_dir, 'last_checkpoint')) as f:
        assert osp.basename(f.read().strip()) in KILLS[victim]


def test_an_uninterrupted_run_keeps_only_the_newest(tmp_path):
    """The removals still happen: max_keep_ckpts=1 and a single best file at the end."""
    work_dir = str(tmp_path / 'work')
    proc = _train(work_dir, tmp_path, epochs=3)
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0 and 'DONE' in out, out[-3000:]
    assert _files(work_dir) == ['best_score_epoch_3.pth', 'epoch_3.pth']
    assert not [f for f in os.listdir(work_dir) if f.endswith('.tmp')]


def test_write_atomic_keeps_the_old_file_on_failure(tmp_path):
    from convnextv2_yolo.utils.checkpoint_io import write_atomic
    target = tmp_path / 'a.pth'
    write_atomic(str(target), b'old')

    class Boom(bytes):
        pass

    import builtins
    real_open = builtins.open

    def failing_open(path, mode='r', *args, **kwargs):
        f = real_open(path, mode, *args, **kwargs)
        if str(path).endswith('.tmp'):
            f.write(b'partial')
            f.close()
            raise OSError('disk full')
        return f

    builtins.open = failing_open
    try:
        with pytest.raises(OSError, match='disk full'):
            write_atomic(str(target), b'new content')
    finally:
        builtins.open = real_open
    assert target.read_bytes() == b'old'
    assert os.listdir(tmp_path) == ['a.pth']  # the temporary file is cleaned up
