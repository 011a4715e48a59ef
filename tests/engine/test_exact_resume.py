"""A run interrupted at any iteration and resumed ends with the weights of an uninterrupted run (CPU, tiny model,
deterministic settings; 0 and 2 data-loader workers)."""
import os
import os.path as osp

import pytest
import torch

import convnextv2_yolo  # noqa: F401
from tests.helpers.paths import ROOT
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


def _recipe_cfg(data, work_dir, workers, resume=False, stop_after=None, close_epochs=1):
    """The YOLO11-n recipe as tools/train.py --data --imgsz 64 builds it: YOLOOptimWrapper with gradient
    accumulation (nominal batch 64: windows of 16 iterations here, across epochs), EMA per optimizer step,
    YOLOMixUp(mosaic -> copy-paste -> affine), close-mosaic in the last epoch."""
    from argparse import Namespace

    from mmengine.config import Config

    from convnextv2_yolo.utils.launch import prepare_train_cfg
    args = Namespace(data=data.data_yaml, imgsz=64, launcher='none', cfg_options=None, work_dir=work_dir)
    cfg = prepare_train_cfg(Config.fromfile(osp.join(ROOT, 'configs', 'yolo11', 'yolo11_n_8xb16-500e_coco.py')), args)
    cfg.merge_from_dict({'train_cfg.max_epochs': EPOCHS, 'train_cfg.val_interval': EPOCHS + 1,
                         'train_dataloader.batch_size': BATCH, 'train_dataloader.num_workers': workers,
                         'train_dataloader.persistent_workers': workers > 0, 'default_hooks.logger.interval': 1})
    cfg.randomness = dict(seed=0, deterministic=True)
    cfg.default_hooks.checkpoint = dict(type='YOLOCheckpointHook', interval=1, iter_interval=1, max_keep_ckpts=5)
    for hook in cfg.custom_hooks:
        if hook['type'] == 'CloseMosaicHook':
            hook['close_epochs'] = close_epochs
    cfg.custom_hooks = [h for h in cfg.custom_hooks if h['type'] != 'ValidationPlotsHook']
    cfg.experiment_name = 'resume' + work_dir.replace(osp.sep, '_')
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
    return safe_torch_load(osp.join(work_dir, f'epoch_{EPOCHS}.pth'), map_location='cpu')


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


def _check(make_cfg, data, tmp_path, workers, stops):
    _register_interrupt_hook()
    ref = str(tmp_path / 'ref')
    _train(make_cfg(data, ref, workers))
    expected = _weights(ref)
    for stop in stops:
        work = str(tmp_path / f'stop{stop}')
        with pytest.raises(Interrupt):
            _train(make_cfg(data, work, workers, stop_after=stop))
        _train(make_cfg(data, work, workers, resume=True))
        got = _weights(work)
        for key in ('state_dict', 'ema_state_dict'):
            if key not in expected:
                continue
            diff = {k: (got[key][k].float() - v.float()).abs().max().item() for k, v in expected[key].items()
                    if v.is_floating_point() and not torch.equal(got[key][k], v)}
            assert not diff, f'stopped after iteration {stop}: {len(diff)} {key} tensors differ, max ' \
                             f'{max(diff.values())}'


# interruption points (global iterations, 3 an epoch): 1 and 2 inside epoch 1 (its workers then go on into
# epoch 2), 4 inside epoch 2, 6 after its last batch (before its end hooks), 7 inside epoch 3 (close-mosaic: new
# workers); the default suite runs a few, -m slow all
@pytest.mark.parametrize('workers,stops', [(0, (4, 6)), (2, (1, 7)),
                                           pytest.param(0, (1, 2, 7), marks=pytest.mark.slow),
                                           pytest.param(2, (2, 4, 6), marks=pytest.mark.slow)])
def test_interrupted_and_resumed_equals_uninterrupted(tiny_data, tmp_path, workers, stops):
    _check(_cfg, tiny_data, tmp_path, workers, stops)


@pytest.mark.parametrize('workers,stops', [(2, (1, )), pytest.param(0, (2, 7), marks=pytest.mark.slow),
                                           pytest.param(2, (4, 7), marks=pytest.mark.slow)])
def test_the_yolo11_recipe_resumes_exactly(tiny_data, tmp_path, workers, stops):
    """Inside an accumulation window: the gradients summed so far and the window's start come back."""
    _check(_recipe_cfg, tiny_data, tmp_path, workers, stops)


def test_resume_from_an_epoch_checkpoint_is_exact(tiny_data, tmp_path):
    """The recipe's default (epoch checkpoints only): its pipeline switched at epoch 0 (close-mosaic covers the whole
    run), so a resumed process switches again at its first epoch, while the persistent workers went on."""
    import shutil
    ref = str(tmp_path / 'ref')
    _train(_recipe_cfg(tiny_data, ref, 2, close_epochs=10))
    work = str(tmp_path / 'from_epoch1')
    os.makedirs(work)
    shutil.copy(osp.join(ref, 'epoch_1.pth'), work)
    with open(osp.join(work, 'last_checkpoint'), 'w') as f:
        f.write(osp.join(work, 'epoch_1.pth'))
    _train(_recipe_cfg(tiny_data, work, 2, resume=True, close_epochs=10))
    expected, got = _weights(ref), _weights(work)
    for key in ('state_dict', 'ema_state_dict'):
        assert all(torch.equal(got[key][k], v) for k, v in expected[key].items()), key
