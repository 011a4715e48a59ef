"""Checkpoint faults: a write that fails (disk full) keeps the previous checkpoints and training goes on (or
stops, by option); iteration checkpoints; --resume (auto) skips an unreadable newest checkpoint."""
import errno
import glob
import os
import os.path as osp

import pytest

import convnextv2_yolo  # noqa: F401
from convnextv2_yolo.utils import checkpoint_io
from tests.helpers.tiny import make_tiny_data, tiny_cfg


@pytest.fixture(scope='module')
def tiny_data(tmp_path_factory):
    return make_tiny_data(str(tmp_path_factory.mktemp('shapes')), num_train=4, num_val=2)


def _runner(data, work_dir, epochs, resume=False, **hook):
    from convnextv2_yolo.utils.launch import build_runner
    cfg = tiny_cfg(data, work_dir, max_epochs=epochs, val_interval=1, batch_size=2, close_epochs=0)
    cfg.default_hooks.checkpoint = dict(type='YOLOCheckpointHook', interval=1, max_keep_ckpts=5,
                                        save_best='coco/bbox_mAP', rule='greater', **hook)
    cfg.resume = resume
    return build_runner(cfg)


def _log(work_dir):
    """The text of the runner's newest log file(s) in ``work_dir``."""
    return ''.join(open(p).read() for p in sorted(glob.glob(osp.join(work_dir, '*', '*.log'))))


def _failing_writes(monkeypatch, names):
    """Writes of files whose name contains one of ``names`` fail with ENOSPC (as a full disk)."""
    real = checkpoint_io.write_atomic

    def write(path, data, encoding='utf-8'):
        if any(n in osp.basename(str(path)) for n in names):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        return real(path, data, encoding=encoding)

    monkeypatch.setattr(checkpoint_io, 'write_atomic', write)


def test_disk_full_keeps_the_previous_checkpoints_and_training_goes_on(tiny_data, tmp_path, monkeypatch):
    work = str(tmp_path / 'work')
    _failing_writes(monkeypatch, ['epoch_2.pth'])
    _runner(tiny_data, work, 3).train()
    text = _log(work)
    assert f'checkpoint {osp.join(work, "epoch_2.pth")} could not be written (OSError: [Errno 28]' in text
    assert 'MiB free there; the previous checkpoints are kept (latest: ' + osp.join(work, 'epoch_1.pth') in text
    assert 'training goes on to the next checkpoint interval' in text
    files = sorted(f for f in os.listdir(work) if f.endswith('.pth'))
    assert 'epoch_1.pth' in files and 'epoch_3.pth' in files and 'epoch_2.pth' not in files
    assert not [f for f in os.listdir(work) if f.endswith('.tmp')]  # no partial file left
    assert open(osp.join(work, 'last_checkpoint')).read() == osp.join(work, 'epoch_3.pth')
    for f in files:  # every checkpoint on disk loads
        checkpoint_io.safe_torch_load(osp.join(work, f), map_location='cpu')


def test_a_failed_best_checkpoint_keeps_the_previous_best(tiny_data, tmp_path, monkeypatch):
    work = str(tmp_path / 'work')
    _failing_writes(monkeypatch, ['best_'])
    _runner(tiny_data, work, 1).train()  # no best could be written
    assert not [f for f in os.listdir(work) if f.startswith('best_')]
    monkeypatch.undo()
    # the best score was not recorded: the next validation writes the best
    runner = _runner(tiny_data, work, 2, resume=True)
    runner.train()
    assert [f for f in os.listdir(work) if f.startswith('best_')]


def test_on_save_error_stop(tiny_data, tmp_path, monkeypatch):
    work = str(tmp_path / 'work')
    _failing_writes(monkeypatch, ['epoch_1.pth'])
    with pytest.raises(RuntimeError, match=r"epoch_1.pth could not be written .*on_save_error='stop'"):
        _runner(tiny_data, work, 2, on_save_error='stop').train()


def test_iteration_checkpoints_keep_the_newest(tiny_data, tmp_path):
    work = str(tmp_path / 'work')
    _runner(tiny_data, work, 2, iter_interval=3).train()  # 2 iterations an epoch: iter_3 in epoch 2
    files = sorted(f for f in os.listdir(work) if f.startswith('iter_'))
    assert files == ['iter_3.pth']
    meta = checkpoint_io.read_checkpoint_meta(osp.join(work, 'iter_3.pth'))
    assert (meta['epoch'], meta['iter']) == (1, 3)  # inside epoch 2 (0-based 1), after 3 iterations
    with pytest.raises(ValueError, match='on_save_error'):
        _runner(tiny_data, work, 1, on_save_error='ignore')


def test_resume_skips_an_unreadable_newest_checkpoint(tiny_data, tmp_path):
    work = str(tmp_path / 'work')
    _runner(tiny_data, work, 2).train()
    newest = osp.join(work, 'epoch_2.pth')
    assert open(osp.join(work, 'last_checkpoint')).read() == newest
    size = osp.getsize(newest)
    with open(newest, 'r+b') as f:  # truncated, as by a kill during a non-atomic copy
        f.truncate(size // 2)
    best = [f for f in os.listdir(work) if f.startswith('best_')]
    for f in best:  # the best checkpoint of epoch 2 would be as new: truncate it too
        if 'epoch_2' in f:
            with open(osp.join(work, f), 'r+b') as fh:
                fh.truncate(10)
    path, skipped = checkpoint_io.resumable_checkpoints(work)
    assert skipped[0][0] == newest and 'not a valid checkpoint' in skipped[0][1]
    assert path is not None and path != newest
    runner = _runner(tiny_data, work, 3, resume=True)
    runner.train()
    assert f'--resume: skipping {newest}: ' in _log(work)
    assert runner.epoch == 3
