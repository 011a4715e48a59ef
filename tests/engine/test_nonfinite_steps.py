"""A step with a non-finite loss or gradient is skipped (weights, BN statistics, optimizer state, EMA untouched).

A toy model (BatchNorm + linear) trains under mmengine's Runner with our wrappers and ``YOLOEMAHook``;
faults are injected at chosen iterations: a NaN input (non-finite loss, NaN BatchNorm statistics in the
forward) or a gradient hook making a weight's gradient infinite. Then one short real training of the
tiny demo recipe with NaN losses at some iterations.
"""
import copy
import os.path as osp

import pytest
import torch
import torch.nn as nn

import convnextv2_yolo  # noqa: F401
from tests.helpers.logs import current_log


def _toy_model(nan_iters=(), inf_iters=()):
    from mmengine.model import BaseModel

    class Toy(BaseModel):
        def __init__(self):
            super().__init__()
            self.norm = nn.BatchNorm1d(4)
            self.linear = nn.Linear(4, 1)
            self.calls = 0
            self._poison = False
            self.linear.weight.register_hook(lambda g: g * float('inf') if self._poison else g)

        def forward(self, inputs, labels=None, mode='tensor'):
            x = torch.stack(inputs)
            if mode == 'loss':
                self.calls += 1
                self._poison = self.calls in inf_iters
                if self.calls in nan_iters:
                    x = x * float('nan')
            out = self.linear(self.norm(x))
            if mode == 'loss':
                err = out - torch.stack(labels)
                return dict(loss_a=(err ** 2).mean(), loss_b=err.abs().mean())
            return out

        def parse_losses(self, losses):  # as our models: the components for the wrapper's log
            loss, log_vars = super().parse_losses(losses)
            self.loss_components = {k: v.detach() for k, v in log_vars.items()}
            return loss, log_vars

    return Toy()


def _data(n):
    g = torch.Generator().manual_seed(0)
    return [dict(inputs=torch.randn(4, generator=g), labels=torch.randn(1, generator=g)) for _ in range(n)]


def _train(tmp_path, num_iters=6, yolo=True, update_on='iteration', nan_iters=(), inf_iters=(), epochs=1,
           checkpoint=None, **wrapper):
    """Train; return the runner and per-iteration snapshots (model state, optimizer state, EMA, counters)."""
    from mmengine.hooks import Hook
    from mmengine.runner import Runner
    records = []

    class Record(Hook):
        priority = 'VERY_LOW'  # after the EMA hook

        def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
            ema = next(h for h in runner.hooks if type(h).__name__ == 'YOLOEMAHook').ema_model
            ow = runner.optim_wrapper
            records.append(dict(model=copy.deepcopy(runner.model.state_dict()),
                                optim=copy.deepcopy(ow.optimizer.state_dict()),
                                ema=copy.deepcopy(ema.state_dict()), skipped=ow.skipped,
                                updates=getattr(ow, 'num_updates', None), outputs=outputs))

    if yolo:
        wrapper.setdefault('accumulative_counts', 1)
        wrapper_cfg = dict(type='YOLOOptimWrapper', constructor='YOLOOptimWrapperConstructor',
                           optimizer=dict(type='SGD', lr=0.01, momentum=0.9, weight_decay=5e-4), **wrapper)
        scheduler = dict(type='YOLOParamSchedulerHook', lr_factor=1.0, warmup_epochs=0)
    else:
        wrapper_cfg = dict(type='SkipNonFiniteOptimWrapper', optimizer=dict(type='AdamW', lr=0.01), **wrapper)
        scheduler = dict(type='ParamSchedulerHook')
    batch = 2
    runner = Runner(
        model=_toy_model(nan_iters, inf_iters), work_dir=str(tmp_path), experiment_name=f'toy_{tmp_path.name}',
        train_dataloader=dict(dataset=_data(batch * num_iters), batch_size=batch,
                              sampler=dict(type='DefaultSampler', shuffle=False),
                              collate_fn=dict(type='pseudo_collate')),
        optim_wrapper=wrapper_cfg, train_cfg=dict(by_epoch=True, max_epochs=epochs),
        default_hooks=dict(param_scheduler=scheduler, checkpoint=checkpoint, logger=None),
        custom_hooks=[dict(type='YOLOEMAHook', update_on=update_on, ema_type='ExpMomentumEMA', momentum=0.1,
                           update_buffers=True), Record()],
        default_scope='mmdet')
    return runner, records


def _identical(a, b):
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_identical(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_identical(x, y) for x, y in zip(a, b))
    if isinstance(a, torch.Tensor):
        return a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b)
    return a == b


def _unchanged(records, i, buffers=True):
    """Iteration ``i`` (0-based) changed nothing: the weights (and BN statistics), optimizer state, EMA."""
    keys = [k for k in records[i]['model'] if buffers or 'running' not in k and 'num_batches' not in k]
    return (all(_identical(records[i]['model'][k], records[i - 1]['model'][k]) for k in keys)
            and _identical(records[i]['optim'], records[i - 1]['optim'])
            and _identical(records[i]['ema'], records[i - 1]['ema']))


def _finite(state):
    return all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point())


@pytest.mark.parametrize('yolo,update_on', [(True, 'optimizer_step'), (True, 'iteration'), (False, 'iteration')])
def test_nonfinite_loss_skips_the_step(tmp_path, yolo, update_on):
    runner, records = _train(tmp_path, yolo=yolo, update_on=update_on, nan_iters=(3,))
    with current_log() as log:
        runner.train()
    text = log()
    assert [r['skipped'] for r in records] == [False, False, True, False, False, False]
    assert _unchanged(records, 2)
    for i in (1, 3, 4):  # a normal step still steps (model, optimizer state and EMA change)
        assert not any(_identical(records[i][k], records[i - 1][k]) for k in ('model', 'optim', 'ema')), i
    assert _finite(records[-1]['model']) and _finite(records[-1]['ema'])
    if yolo:
        assert [r['updates'] for r in records] == [1, 2, 2, 3, 4, 5]
    assert 'iteration 3 (epoch 1): non-finite loss (nan); loss components: loss=nan, loss_a=nan, loss_b=nan' in text
    assert 'The optimizer step is skipped' in text and '1 skipped in a row of at most 10, 1 in this run' in text
    assert runner.message_hub.get_scalar('train/nonfinite_skips').current() == 1


def test_inf_gradient_skips_the_step(tmp_path):
    runner, records = _train(tmp_path, yolo=True, inf_iters=(2, 5))
    with current_log() as log:
        runner.train()
    text = log()
    assert [r['skipped'] for r in records] == [False, True, False, False, True, False]
    # the forward was finite: its BatchNorm statistics stay (as any forward's); weights, optimizer, EMA do not change
    assert _unchanged(records, 1, buffers=False) and _unchanged(records, 4, buffers=False)
    assert not _identical(records[4]['model']['norm.running_mean'], records[3]['model']['norm.running_mean'])
    assert [r['updates'] for r in records] == [1, 1, 2, 3, 3, 4]
    assert 'iteration 2 (epoch 1): non-finite gradients in 1 parameter(s), the first linear.weight (group' in text
    assert 'loss components: loss=' in text and 'loss_a=' in text
    assert '2 in this run' in text


def test_accumulation_drops_the_whole_accumulated_step(tmp_path):
    """accumulate 2: a NaN in the first micro-batch of the window (iterations 3-4) drops that step."""
    runner, records = _train(tmp_path, num_iters=8, yolo=True, update_on='optimizer_step', nan_iters=(3,),
                             accumulative_counts=2)
    with current_log() as log:
        runner.train()
    assert [r['updates'] for r in records] == [0, 1, 1, 1, 1, 2, 2, 3]
    assert [r['skipped'] for r in records] == [False, False, True, True, False, False, False, False]
    assert _unchanged(records, 2) and _unchanged(records, 3, buffers=False)  # iteration 4's forward was finite
    assert not _identical(records[5]['model'], records[4]['model'])
    assert 'iteration 3 (epoch 1): non-finite loss (nan)' in log()
    assert runner.optim_wrapper.num_skipped_steps == 1


def test_consecutive_skips_stop_the_run_naming_the_last_checkpoint(tmp_path):
    """Epochs of 4 iterations, a checkpoint per epoch, NaN from iteration 5: the 10th skip in a row stops."""
    runner, records = _train(tmp_path, num_iters=4, epochs=5, yolo=True, nan_iters=range(5, 100),
                             checkpoint=dict(type='CheckpointHook', interval=1))
    with pytest.raises(RuntimeError) as info, current_log() as log:
        runner.train()
    message = str(info.value)
    ckpt = osp.join(str(tmp_path), 'epoch_3.pth')  # written after iteration 12: the weights of iteration 4
    assert '10 optimizer steps in a row skipped' in message and 'iterations 5-14' in message
    assert 'loss components: loss=nan' in message and f'the last good checkpoint is {ckpt}' in message
    assert message in log()
    assert len(records) == 13  # the 14th iteration raised
    saved = torch.load(ckpt, map_location='cpu', weights_only=False)
    first = torch.load(osp.join(str(tmp_path), 'epoch_1.pth'), map_location='cpu', weights_only=False)
    assert _finite(saved['state_dict']) and _identical(saved['state_dict'], first['state_dict'])
    assert not osp.exists(osp.join(str(tmp_path), 'epoch_4.pth'))
    # the checkpoints' state_dict holds the EMA (swapped in by the EMA hook), ema_state_dict the model:
    # the model in memory is still the one saved after iteration 4
    model = {k[len('module.'):]: v for k, v in first['ema_state_dict'].items() if k.startswith('module.')}
    assert _identical(dict(runner.model.state_dict()), model)


def test_settings_are_checked():
    from mmdet.registry import OPTIM_WRAPPERS
    model = nn.Linear(2, 1)
    build = lambda **kw: OPTIM_WRAPPERS.build(dict(type='SkipNonFiniteOptimWrapper',  # noqa: E731
                                                   optimizer=torch.optim.SGD(model.parameters(), lr=0.1), **kw))
    assert build().max_consecutive_skips == 10
    assert build(nonfinite_skip=dict(max_consecutive=None)).max_consecutive_skips is None
    with pytest.raises(ValueError, match='max_consecutive'):
        build(nonfinite_skip=dict(max_consecutive=0))
    with pytest.raises(KeyError, match='unknown nonfinite_skip'):
        build(nonfinite_skip=dict(limit=3))


def test_amp_scaler_skips_are_logged_not_doubled():
    """Under AMP the grad scaler checks the gradients (ours does not); a lowered scale is logged as its skip."""
    from mmdet.registry import OPTIM_WRAPPERS
    from mmengine.logging import MessageHub
    model = nn.Linear(2, 1)
    wrapper = OPTIM_WRAPPERS.build(dict(type='SkipNonFiniteOptimWrapper',
                                        optimizer=torch.optim.SGD(model.parameters(), lr=0.1)))

    class FakeScaler:  # GradScaler's interface: found inf -> optimizer.step skipped, scale halved
        scale = 1024.0

        def is_enabled(self):
            return True

        def get_scale(self):
            return self.scale

    wrapper.loss_scaler = FakeScaler()
    calls = []

    def step(**kwargs):
        calls.append(1)
        wrapper.loss_scaler.scale /= 2

    wrapper.step = step
    MessageHub.get_current_instance().update_info('iter', 6)
    model.weight.register_hook(lambda g: g * float('inf'))
    with current_log() as log:
        wrapper.update_params(model(torch.ones(1, 2)).sum())
    assert calls == [1] and not wrapper.skipped and wrapper.num_skipped_steps == 0
    assert wrapper.num_scaler_skips == 1
    assert 'iteration 7' in log() and 'AMP grad scaler found non-finite gradients' in log()
    assert 'loss scale 1024 -> 512' in log()


def test_tiny_training_with_nan_losses_completes(tmp_path):
    """The demo recipe (tiny): NaN losses at iterations 3 and 4 are skipped and logged; training completes."""
    from mmengine.runner import Runner

    from tests.helpers.tiny import make_tiny_data, tiny_cfg
    data = make_tiny_data(str(tmp_path / 'data'))
    cfg = tiny_cfg(data, str(tmp_path / 'work'), max_epochs=2, mosaic=False)
    assert cfg.optim_wrapper.type == 'SkipNonFiniteOptimWrapper'
    runner = Runner.from_cfg(cfg)
    model, loss = runner.model, runner.model.loss

    def nan_loss(*args, **kwargs):  # iterations 3 and 4 (1-based)
        losses = loss(*args, **kwargs)
        if runner.iter in (2, 3):
            losses = {k: v * float('nan') for k, v in losses.items()}
        return losses

    model.loss = nan_loss
    ema_steps = []
    from mmengine.hooks import Hook

    class Record(Hook):
        priority = 'VERY_LOW'

        def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
            ema = next(h for h in runner.hooks if type(h).__name__ == 'YOLOEMAHook').ema_model
            ema_steps.append(int(ema.steps))

    runner.register_hook(Record())
    with current_log() as log:
        runner.train()
    text = log()
    assert runner.iter == 4 and runner.optim_wrapper.num_skipped_steps == 2
    assert ema_steps == [1, 2, 2, 2]
    for it in (3, 4):
        assert f'iteration {it} (epoch 2): non-finite loss (nan); loss components: loss=nan' in text
    assert 'loss_cls=nan' in text
    state = torch.load(osp.join(str(tmp_path / 'work'), 'epoch_2.pth'), map_location='cpu', weights_only=False)
    assert _finite(state['state_dict'])
