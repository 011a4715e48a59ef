"""Compatibility fixes: mmengine checkpoints resume under torch's safe loading."""
import argparse
import copy
import os
import os.path as osp
import shutil

import pytest
import torch

from tests.helpers.processes import PY, run_tool
from tests.helpers.tiny import make_tiny_data
from tests.helpers.tiny import tiny_cfg as _tiny_cfg


@pytest.fixture(scope='module')
def tiny_data(tmp_path_factory):
    return make_tiny_data(str(tmp_path_factory.mktemp('shapes')))


def _cfg_file(tiny_data, work_dir, path, max_epochs):
    """The tiny recipe, validating every epoch, as a config file for tools/train.py."""
    cfg = _tiny_cfg(tiny_data, work_dir, max_epochs=max_epochs, val_interval=1)
    cfg.dump(str(path))
    return str(path)


@pytest.fixture(scope='module')
def two_epoch_run(tiny_data, tmp_path_factory):
    """2 epochs with a validation after each, trained by tools/train.py in its own process."""
    work_dir = str(tmp_path_factory.mktemp('work'))
    cfg = _cfg_file(tiny_data, work_dir, tmp_path_factory.mktemp('cfg') / 'two_epochs.py', max_epochs=2)
    run_tool([PY, 'tools/train.py', cfg, '--work-dir', work_dir])
    ckpt = torch.load(osp.join(work_dir, 'epoch_2.pth'), weights_only=True)
    return work_dir, ckpt['meta']['iter'] // 2


def test_history_buffer_statistics_in_a_fresh_process(tmp_path):
    """A message hub saved with the package imported loads in a new process with every statistic."""
    path = str(tmp_path / 'hub.pth')
    save = ('import torch, convnextv2_yolo; from mmengine.logging import HistoryBuffer; '
            f'torch.save({{"message_hub": {{"log_scalars": {{"val/time": HistoryBuffer([0.5, 1.5], [1, 1])}}}}}}, '
            f'{path!r})')
    run_tool([PY, '-c', save])
    load = ('import convnextv2_yolo; from mmengine.runner.checkpoint import _load_checkpoint; '
            f'buf = _load_checkpoint({path!r})["message_hub"]["log_scalars"]["val/time"]; '
            'print("STATS", buf.statistics("mean"), buf.statistics("min"), buf.statistics("max"), '
            'buf.statistics("current"), buf.mean(1))')
    out = run_tool([PY, '-c', load]).stdout.split('STATS')[-1].split()
    assert [float(v) for v in out] == [1.0, 0.5, 1.5, 1.5, 1.5]


def test_resume_in_a_new_process_validates_after_resuming(two_epoch_run, tiny_data, tmp_path):
    """`tools/train.py CONFIG --resume` in a new process: epoch 3 trains, then validates and logs."""
    work_dir, _ = two_epoch_run
    resumed = str(tmp_path / 'resumed')
    shutil.copytree(work_dir, resumed)
    with open(osp.join(resumed, 'last_checkpoint'), 'w') as f:  # the copy's own checkpoint
        f.write(osp.join(resumed, 'epoch_2.pth'))
    cfg = _cfg_file(tiny_data, resumed, tmp_path / 'three_epochs.py', max_epochs=3)
    res = run_tool([PY, 'tools/train.py', cfg, '--work-dir', resumed, '--resume'])
    log = res.stdout + res.stderr
    assert 'resumed epoch: 2' in log
    assert 'Epoch(val) [3]' in log and 'coco/bbox_mAP' in log.split('Epoch(val) [3]')[-1]
    assert osp.isfile(osp.join(resumed, 'epoch_3.pth'))


def test_checkpoint_holds_only_allow_listed_globals(two_epoch_run):
    from convnextv2_yolo.patches import mmengine_checkpoint_globals
    work_dir, _ = two_epoch_run
    ckpt = osp.join(work_dir, 'epoch_2.pth')
    unsafe = set(torch.serialization.get_unsafe_globals_in_checkpoint(ckpt))
    allowed = {f'{g.__module__}.{g.__qualname__}' for g in mmengine_checkpoint_globals()}
    assert 'builtins.getattr' not in unsafe
    assert unsafe <= allowed, f'not allow-listed: {sorted(unsafe - allowed)}'
    # plain torch.load with safe loading (the default) reads it
    state = torch.load(ckpt, weights_only=True)
    assert state['meta']['epoch'] == 2


def test_resume_continues_at_epoch_3_with_same_optimizer_state(two_epoch_run, tiny_data):
    from mmengine.hooks import Hook
    from mmengine.runner import Runner

    from convnextv2_yolo.utils.launch import prepare_train_cfg
    work_dir, iters_per_epoch = two_epoch_run
    ckpt = osp.join(work_dir, 'epoch_2.pth')
    saved = torch.load(ckpt, weights_only=True)['optimizer']
    seen = {}

    class Record(Hook):
        def before_train(self, runner):
            seen['epoch'], seen['iter'] = runner.epoch, runner.iter
            seen['optimizer'] = copy.deepcopy(runner.optim_wrapper.state_dict())

        def before_train_epoch(self, runner):
            seen.setdefault('epochs', []).append(runner.epoch + 1)

    args = argparse.Namespace(launcher='none', work_dir=work_dir, cfg_options=None, amp=False,
                              auto_scale_lr=False, resume=ckpt)  # what `--resume CKPT` passes
    cfg = prepare_train_cfg(_tiny_cfg(tiny_data, work_dir, max_epochs=3), args)
    runner = Runner.from_cfg(cfg)
    runner.register_hook(Record(), priority='VERY_LOW')
    runner.train()
    assert (seen['epoch'], seen['iter']) == (2, 2 * iters_per_epoch)
    assert seen['epochs'] == [3]
    assert osp.isfile(osp.join(work_dir, 'epoch_3.pth'))
    got = seen['optimizer']
    assert got['param_groups'] == saved['param_groups']
    assert got['state'].keys() == saved['state'].keys() and len(saved['state']) > 0
    for k in saved['state']:
        for name, value in saved['state'][k].items():
            assert torch.equal(torch.as_tensor(got['state'][k][name]), torch.as_tensor(value)), (k, name)


class _Evil:
    def __reduce__(self):
        return (os.system, ('echo pwned',))


def test_unexpected_pickled_object_is_refused(tmp_path):
    from mmengine.runner.checkpoint import _load_checkpoint

    import convnextv2_yolo  # noqa: F401
    from convnextv2_yolo.utils.checkpoint_io import CheckpointLoadError
    bad = tmp_path / 'evil.pth'
    torch.save({'state_dict': {}, 'meta': {'x': _Evil()}}, str(bad))
    with pytest.raises(CheckpointLoadError, match='refusing to load .*evil.pth'):
        _load_checkpoint(str(bad), map_location='cpu')


def test_old_checkpoint_needs_explicit_trust(tmp_path, monkeypatch):
    """A checkpoint with a pickled bound method (as older mmengine saves held)."""
    from mmengine.runner.checkpoint import _load_checkpoint

    from convnextv2_yolo.utils.checkpoint_io import TRUST_ENV, CheckpointLoadError
    old = tmp_path / 'old.pth'
    torch.save({'state_dict': {'w': torch.ones(2)}, 'message_hub': {'m': [1, 2].copy}}, str(old))
    monkeypatch.delenv(TRUST_ENV, raising=False)
    with pytest.raises(CheckpointLoadError, match=TRUST_ENV):
        _load_checkpoint(str(old), map_location='cpu')
    monkeypatch.setenv(TRUST_ENV, str(old))
    state = _load_checkpoint(str(old), map_location='cpu')
    assert torch.equal(state['state_dict']['w'], torch.ones(2))


def test_missing_and_truncated_checkpoints_name_the_file(tmp_path):
    from mmengine.runner.checkpoint import _load_checkpoint

    from convnextv2_yolo.utils.checkpoint_io import CheckpointLoadError
    with pytest.raises(FileNotFoundError, match='nope.pth'):
        _load_checkpoint(str(tmp_path / 'nope.pth'))
    good = tmp_path / 'good.pth'
    torch.save({'state_dict': {'w': torch.randn(64, 64)}}, str(good))
    cut = tmp_path / 'cut.pth'
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(CheckpointLoadError, match='cut.pth is not a valid checkpoint'):
        _load_checkpoint(str(cut))
    junk = tmp_path / 'junk.pth'
    junk.write_bytes(b'not a checkpoint at all' * 10)
    with pytest.raises(CheckpointLoadError, match='junk.pth is not a valid checkpoint'):
        _load_checkpoint(str(junk))
