"""Gradient accumulation follows the real batch; EMA per optimizer step (the reference) or per iteration.

A toy linear model trains under mmengine's Runner with the recipe's optimizer
constructor, ``YOLOParamSchedulerHook`` (warmup off) and ``YOLOEMAHook``, so the
counts and weights can be checked against a hand computation of the reference's
trainer (ultralytics/engine/trainer.py: loss summed over accumulated batches,
step every ``accumulate`` batches, EMA updated after each step with
``d = 0.9999 * (1 - exp(-updates / 2000))``).
"""
import copy
import math

import pytest
import torch
import torch.nn as nn

import convnextv2_yolo  # noqa: F401

W0 = [[0.5, -0.25, 0.125, 1.0]]


def _toy_model():
    from mmengine.model import BaseModel

    class Toy(BaseModel):
        def __init__(self):
            super().__init__()
            self.linear = nn.Linear(4, 1, bias=False)
            with torch.no_grad():
                self.linear.weight.copy_(torch.tensor(W0))

        def forward(self, inputs, labels=None, mode='tensor'):
            out = self.linear(torch.stack(inputs))
            if mode == 'loss':
                return dict(loss=((out - torch.stack(labels)) ** 2).sum())
            return out

    return Toy()


def _data(n):
    g = torch.Generator().manual_seed(0)
    return [dict(inputs=torch.randn(4, generator=g), labels=torch.randn(1, generator=g)) for _ in range(n)]


def _train(tmp_path, batch_size, num_iters, update_on='optimizer_step', ema_type='YOLOModelEMA', world_size=None,
           monkeypatch=None, warmup_accumulate=False, warmup_iters=0, **wrapper):
    """Train ``num_iters`` iterations (one epoch); return the runner and per-iteration records."""
    from mmengine.hooks import Hook
    from mmengine.runner import Runner
    if world_size is not None:
        import mmengine.dist
        monkeypatch.setattr(mmengine.dist, 'get_world_size', lambda *a, **k: world_size)
    records = []

    class Record(Hook):
        priority = 'VERY_LOW'  # after the EMA hook

        def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
            ema = next(h for h in runner.hooks if type(h).__name__ == 'YOLOEMAHook').ema_model
            records.append(dict(weight=runner.model.linear.weight.detach().clone(),
                                ema=ema.module.linear.weight.detach().clone(), ema_steps=int(ema.steps),
                                updates=runner.optim_wrapper.num_updates,
                                accumulate=runner.optim_wrapper._accumulative_counts))

    ema_cfg = dict(ema_type=ema_type, decay=0.9999, tau=2000) if ema_type == 'YOLOModelEMA' else dict(
        ema_type=ema_type, momentum=1e-4, gamma=2000)
    runner = Runner(
        model=_toy_model(), work_dir=str(tmp_path), experiment_name=f'toy_{tmp_path.name}',
        train_dataloader=dict(dataset=_data(batch_size * num_iters), batch_size=batch_size,
                              sampler=dict(type='DefaultSampler', shuffle=False),
                              collate_fn=dict(type='pseudo_collate')),
        optim_wrapper=dict(type='OptimWrapper', constructor='YOLOOptimWrapperConstructor',
                           optimizer=dict(type='SGD', lr=0.01, momentum=0.0, weight_decay=0.0), **wrapper),
        train_cfg=dict(by_epoch=True, max_epochs=1),
        default_hooks=dict(param_scheduler=dict(
            type='YOLOParamSchedulerHook', lr_factor=1.0, warmup_epochs=0 if not warmup_iters else 0.01,
            warmup_min_iters=warmup_iters, warmup_accumulate=warmup_accumulate), checkpoint=None, logger=None),
        custom_hooks=[dict(type='YOLOEMAHook', update_on=update_on, update_buffers=True, **ema_cfg), Record()],
        default_scope='mmdet')
    runner.train()
    return runner, records


@pytest.mark.parametrize('batch,world,accumulate', [
    (2, 1, 32),    # the bug's example: 4 with the old hard-coded batch 16
    (16, 1, 4),
    (24, 1, 3),    # round(64 / 24) = round(2.67)
    (128, 1, 1),
    (8, 2, 4),     # the world size counts: total batch 16
    (40, 1, 2),    # round(1.6)
])
def test_accumulation_and_weight_decay_follow_the_loader(tmp_path, monkeypatch, batch, world, accumulate):
    from mmengine.runner import Runner
    runner = Runner(
        model=_toy_model(), work_dir=str(tmp_path), experiment_name=f'toy_{tmp_path.name}',
        train_dataloader=dict(dataset=_data(batch), batch_size=batch, sampler=dict(type='DefaultSampler'),
                              collate_fn=dict(type='pseudo_collate')),
        optim_wrapper=dict(type='OptimWrapper', constructor='YOLOOptimWrapperConstructor',
                           optimizer=dict(type='SGD', lr=0.01, momentum=0.9, weight_decay=5e-4)),
        train_cfg=dict(by_epoch=True, max_epochs=1),
        default_hooks=dict(param_scheduler=dict(type='YOLOParamSchedulerHook'), checkpoint=None),
        default_scope='mmdet')
    import mmengine.dist
    monkeypatch.setattr(mmengine.dist, 'get_world_size', lambda *a, **k: world)
    runner.optim_wrapper = runner.build_optim_wrapper(runner.optim_wrapper)
    runner._train_loop = runner.build_train_loop(runner._train_loop)
    runner.call_hook('before_run')
    wrapper = runner.optim_wrapper
    assert wrapper._accumulative_counts == wrapper.decision.accumulate == accumulate
    decay_group = [g for g in wrapper.optimizer.param_groups if 'yolo_base_weight_decay' in g][0]
    assert decay_group['weight_decay'] == pytest.approx(5e-4 * batch * world * accumulate / 64)


def test_loss_is_summed_over_accumulated_batches_like_the_reference(tmp_path):
    """4 batches accumulate into one SGD step of lr x (sum of their gradients)."""
    runner, records = _train(tmp_path, batch_size=16, num_iters=8)
    assert [r['accumulate'] for r in records] == [4] * 8
    assert [r['updates'] for r in records] == [0, 0, 0, 1, 1, 1, 1, 2]
    data = _data(16 * 8)
    w = torch.tensor(W0)
    grad = torch.zeros_like(w)
    for i in range(8):  # the reference's loop, by hand
        batch = data[16 * i:16 * (i + 1)]
        x = torch.stack([d['inputs'] for d in batch])
        y = torch.stack([d['labels'] for d in batch])
        grad += 2 * ((x @ w.T - y) * x).sum(0, keepdim=True)
        if (i + 1) % 4 == 0:
            w = w - 0.01 * grad
            grad.zero_()
        torch.testing.assert_close(records[i]['weight'], w, rtol=1e-5, atol=1e-6)


def _decay(updates):
    return 0.9999 * (1 - math.exp(-updates / 2000))


def test_ema_updates_per_optimizer_step_like_the_reference(tmp_path):
    """8 iterations, accumulation 4: 2 EMA updates, weights = the hand computation."""
    _, records = _train(tmp_path, batch_size=16, num_iters=8, update_on='optimizer_step')
    assert [r['ema_steps'] for r in records] == [0, 0, 0, 1, 1, 1, 1, 2]
    ema = torch.tensor(W0)  # the model when training starts
    updates = 0
    for r in records:
        if r['ema_steps'] > updates:
            updates += 1
            d = _decay(updates)
            ema = d * ema + (1 - d) * r['weight']
        torch.testing.assert_close(r['ema'], ema, rtol=1e-6, atol=1e-7)
    # the first update blends (the reference), it does not copy the model (mmengine)
    assert not torch.allclose(records[3]['ema'], records[3]['weight'])


def test_ema_per_iteration_is_mmengines_behaviour(tmp_path):
    """update_on='iteration' with ExpMomentumEMA: 8 updates in 8 iterations (4x the reference's rate)."""
    _, records = _train(tmp_path, batch_size=16, num_iters=8, update_on='iteration', ema_type='ExpMomentumEMA')
    assert [r['ema_steps'] for r in records] == list(range(1, 9))
    ema = None
    for step, r in enumerate(records):
        if step == 0:
            ema = r['weight'].clone()  # mmengine copies on its first update
        else:
            m = (1 - 1e-4) * math.exp(-(1 + step) / 2000) + 1e-4
            ema = (1 - m) * ema + m * r['weight']
        torch.testing.assert_close(r['ema'], ema, rtol=1e-6, atol=1e-7)


def test_accumulation_ramp_during_warmup(tmp_path):
    """warmup_accumulate: max(1, round(interp(i, [0, W], [1, 64 / batch]))) over W = 12 iterations."""
    import numpy as np
    _, records = _train(tmp_path, batch_size=16, num_iters=16, warmup_accumulate=True, warmup_iters=12)
    expected = [max(1, round(float(np.interp(i, [0, 12], [1, 4])))) if i <= 12 else 4 for i in range(16)]
    assert [r['accumulate'] for r in records] == expected
    # steps happen once `accumulate` batches were accumulated since the last one (and, as in
    # mmengine, at the last iteration of training so that no gradient is left unused)
    steps, last, updates = [], 0, 0
    for i, acc in enumerate(expected):
        if i + 1 - last >= acc or i == 15:
            updates, last = updates + 1, i + 1
        steps.append(updates)
    assert [r['updates'] for r in records] == steps


def test_ema_resumes_with_its_counter(tmp_path):
    """The EMA's update count is saved and restored (a resumed run continues the warm-up)."""
    from mmengine.runner import Runner
    runner, records = _train(tmp_path, batch_size=16, num_iters=8)
    hook = next(h for h in runner.hooks if type(h).__name__ == 'YOLOEMAHook')
    state = copy.deepcopy(hook.ema_model.state_dict())
    assert int(state['steps']) == 2
    fresh = _toy_model()
    from convnextv2_yolo.layers import YOLOModelEMA
    ema = YOLOModelEMA(fresh)
    ema.load_state_dict(state)
    assert int(ema.steps) == 2
    torch.testing.assert_close(ema.module.linear.weight, records[-1]['ema'])
    assert isinstance(runner, Runner)


def test_wrapper_without_batch_size_fails_clearly():
    from mmdet.registry import OPTIM_WRAPPERS
    model = nn.Linear(2, 1)
    wrapper = OPTIM_WRAPPERS.build(dict(type='YOLOOptimWrapper',
                                        optimizer=torch.optim.SGD(model.parameters(), lr=0.1)))
    with pytest.raises(RuntimeError, match='batch size is unknown.*YOLOParamSchedulerHook'):
        wrapper.update_params(model(torch.ones(1, 2)).sum())
    with pytest.raises(ValueError, match='accumulative_counts'):
        OPTIM_WRAPPERS.build(dict(type='YOLOOptimWrapper', accumulative_counts=0,
                                  optimizer=torch.optim.SGD(model.parameters(), lr=0.1)))


def test_amp_flag_keeps_the_yolo_wrapper(monkeypatch):
    """--amp turns YOLOOptimWrapper into its AMP variant (same accumulation); on a CPU it says it needs a GPU."""
    import argparse

    from mmengine.config import Config

    from convnextv2_yolo.utils.launch import prepare_train_cfg
    args = argparse.Namespace(launcher='none', cfg_options=None, work_dir=None, amp=True, auto_scale_lr=False,
                              resume=None)
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    with pytest.raises(SystemExit, match='--amp needs a CUDA GPU'):
        prepare_train_cfg(Config(dict(optim_wrapper=dict(type='YOLOOptimWrapper'), work_dir='/tmp/x')), args)
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    cfg = Config(dict(optim_wrapper=dict(type='YOLOOptimWrapper'), work_dir='/tmp/x'))
    assert prepare_train_cfg(cfg, args).optim_wrapper.type == 'YOLOAmpOptimWrapper'
    from mmdet.registry import OPTIM_WRAPPERS
    assert issubclass(OPTIM_WRAPPERS.get('YOLOAmpOptimWrapper'), OPTIM_WRAPPERS.get('AmpOptimWrapper'))


@pytest.mark.parametrize('epochs,expected', [
    (3, 'AdamW'),        # ceil(128 / 64) x 3 = 6 iterations <= 10,000
    (5001, 'MuSGD'),     # 2 x 5001 = 10,002 > 10,000 (ultralytics 8.4; tests/engine/test_musgd.py has more)
])
def test_auto_optimizer_follows_the_reference_rule(tmp_path, epochs, expected):
    """optimizer=dict(type='auto'): AdamW lr round(0.002 * 5 / (4 + nc), 6) for short runs, else MuSGD 0.01."""
    from mmengine.runner import Runner

    class Data(list):
        metainfo = dict(classes=('a', 'b', 'c'))

    runner = Runner(
        model=_toy_model(), work_dir=str(tmp_path), experiment_name=f'auto_{tmp_path.name}',
        train_dataloader=dict(dataset=Data(_data(128)), batch_size=16, sampler=dict(type='DefaultSampler'),
                              collate_fn=dict(type='pseudo_collate')),
        optim_wrapper=dict(type='OptimWrapper', constructor='YOLOOptimWrapperConstructor',
                           optimizer=dict(type='auto', weight_decay=5e-4)),
        train_cfg=dict(by_epoch=True, max_epochs=epochs),
        default_hooks=dict(param_scheduler=dict(type='YOLOParamSchedulerHook'), checkpoint=None),
        default_scope='mmdet')
    runner.optim_wrapper = runner.build_optim_wrapper(runner.optim_wrapper)
    runner._train_loop = runner.build_train_loop(runner._train_loop)
    runner.call_hook('before_run')
    runner.call_hook('before_train')
    optimizer = runner.optim_wrapper.optimizer
    assert type(optimizer).__name__ == expected
    assert runner.optim_wrapper.decision.choice.warmup_bias_lr == 0.0  # the hook's 0.1 does not apply
    decay = [g for g in optimizer.param_groups if 'yolo_base_weight_decay' in g][0]
    assert decay['weight_decay'] == pytest.approx(5e-4 * 16 * 4 / 64)
    # mmengine's logged base_lr follows the chosen optimizer, not the placeholder's
    assert runner.optim_wrapper.get_lr()['base_lr'][0] == pytest.approx(decay['yolo_initial_lr'])
    if expected == 'AdamW':
        assert decay['yolo_initial_lr'] == pytest.approx(round(0.002 * 5 / (4 + 3), 6)) == pytest.approx(0.001429)
        assert decay['betas'] == (0.9, 0.999)
    else:
        assert decay['yolo_initial_lr'] == 0.01 and decay['momentum'] == pytest.approx(0.9)
        assert decay['nesterov']
    hook = next(h for h in runner.hooks if type(h).__name__ == 'YOLOParamSchedulerHook')
    hook.before_train_iter(runner, 0)  # the bias warmup starts at 0
    assert all(g['lr'] == 0.0 for g in optimizer.param_groups if g.get('yolo_bias'))


def test_auto_optimizer_rejects_fixed_lr():
    from mmdet.registry import OPTIM_WRAPPER_CONSTRUCTORS
    constructor = OPTIM_WRAPPER_CONSTRUCTORS.build(dict(
        type='YOLOOptimWrapperConstructor',
        optim_wrapper_cfg=dict(type='OptimWrapper', optimizer=dict(type='auto', lr=0.01))))
    with pytest.raises(KeyError, match="remove \\['lr'\\]"):
        constructor(nn.Linear(2, 1))


def test_lr_decays_in_iteration_based_loops_and_is_logged_for_the_current_iteration(tmp_path):
    """lf follows i / max_iters in an IterBasedTrainLoop; the logged lr is the weights' current LR."""
    from mmengine.hooks import Hook
    from mmengine.runner import Runner
    seen = []

    class Record(Hook):
        priority = 'VERY_LOW'

        def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
            group = [g for g in runner.optim_wrapper.param_groups if 'yolo_base_weight_decay' in g][0]
            seen.append((group['lr'], runner.message_hub.get_scalar('train/lr').current()))

    runner = Runner(
        model=_toy_model(), work_dir=str(tmp_path), experiment_name=f'iters_{tmp_path.name}',
        train_dataloader=dict(dataset=_data(64), batch_size=16, sampler=dict(type='InfiniteSampler'),
                              collate_fn=dict(type='pseudo_collate')),
        optim_wrapper=dict(type='OptimWrapper', constructor='YOLOOptimWrapperConstructor',
                           optimizer=dict(type='SGD', lr=0.01, momentum=0.9)),
        train_cfg=dict(by_epoch=False, max_iters=10),
        default_hooks=dict(param_scheduler=dict(type='YOLOParamSchedulerHook', warmup_epochs=0), checkpoint=None),
        custom_hooks=[Record()], default_scope='mmdet')
    runner.train()
    expected = [0.01 * ((1 - i / 10) * 0.99 + 0.01) for i in range(10)]
    assert [lr for lr, _ in seen] == pytest.approx(expected)
    assert [logged for _, logged in seen] == pytest.approx(expected)
