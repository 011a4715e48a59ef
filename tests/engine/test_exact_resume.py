"""A run interrupted at any iteration and resumed ends with the weights of an uninterrupted run (CPU, tiny model,
deterministic settings; 0 and 2 data-loader workers)."""
import os.path as osp

import pytest
import torch

import convnextv2_yolo  # noqa: F401
from tests.helpers.tiny import make_tiny_data, tiny_cfg

EPOCHS, BATCH = 3, 4  # 12 training images: 3 iterations an epoch, 9 in all; mosaic in epochs 1-2


class Interrupt(Exception):
    """Raised by the test hook to stop a run after an iteration (its checkpoint written)."""


@pytest.fixture(scope='module')
def tiny_data(tmp_path_factory):
    return make_tiny_data(str(tmp_path_factory.mktemp('shapes')), num_train=12, num_val=2)


def _cfg(data, work_dir, workers, resume=False, stop_after=None):
    cfg = tiny_cfg(data, work_dir, max_epochs=EPOCHS, batch_size=BATCH, val_interval=EPOCHS + 1, close_epochs=1)
    cfg.train_dataloader.num_workers = workers
    cfg.train_dataloader.persistent_workers = workers > 0
    cfg.randomness = dict(seed=0, deterministic=True)
    cfg.default_hooks.checkpoint = dict(type='YOLOCheckpointHook', interval=1, iter_interval=1, max_keep_ckpts=5)
    cfg.resume = resume
    if stop_after is not None:
        cfg.custom_hooks.append(dict(type='InterruptAfterIter', iteration=stop_after))
    return cfg


def _train(cfg):
    from convnextv2_yolo.utils.launch import build_runner
    torch.set_num_threads(1)
    runner = build_runner(cfg)
    runner.train()
    return runner


def _weights(work_dir):
    from convnextv2_yolo.utils.checkpoint_io import safe_torch_load
    ckpt = safe_torch_load(osp.join(work_dir, f'epoch_{EPOCHS}.pth'), map_location='cpu')
    return ckpt['state_dict']


def _register_interrupt_hook():
    from mmdet.registry import HOOKS
    from mmengine.hooks import Hook
    if 'InterruptAfterIter' in HOOKS.module_dict:
        return

    @HOOKS.register_module()
    class InterruptAfterIter(Hook):
        priority = 'LOWEST'  # after the checkpoint hook wrote iter_{n}.pth

        def __init__(self, iteration):
            self.iteration = iteration

        def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
            if runner.iter + 1 == self.iteration:
                raise Interrupt(self.iteration)


@pytest.mark.parametrize('workers', [0, 2])
def test_interrupted_and_resumed_equals_uninterrupted(tiny_data, tmp_path, workers):
    _register_interrupt_hook()
    ref = str(tmp_path / 'ref')
    _train(_cfg(tiny_data, ref, workers))
    expected = _weights(ref)
    # inside epoch 1; inside epoch 2; after its last batch (before its end hooks); inside epoch 3 (close-mosaic)
    for stop in (2, 4, 6, 7):
        work = str(tmp_path / f'stop{stop}')
        with pytest.raises(Interrupt):
            _train(_cfg(tiny_data, work, workers, stop_after=stop))
        _train(_cfg(tiny_data, work, workers, resume=True))
        got = _weights(work)
        diff = {k: (got[k].float() - v.float()).abs().max().item() for k, v in expected.items()
                if v.is_floating_point() and not torch.equal(got[k], v)}
        assert not diff, f'stopped after iteration {stop}: {len(diff)} tensors differ, max {max(diff.values())}'
