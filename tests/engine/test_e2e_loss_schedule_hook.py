"""E2ELossScheduleHook: the reference's per-epoch one-to-many weight (ultralytics/utils/loss.py
``E2ELoss.decay``, updated once after each epoch by its trainer), under mmengine's Runner, and on resume."""
import types

import pytest
import torch
import torch.nn as nn

import convnextv2_yolo  # noqa: F401
from convnextv2_yolo.engine.hooks import E2ELossScheduleHook


def reference_weights(epochs):
    """The reference's sequence: o2m 0.8 before any update, then ``decay(updates)`` after each epoch."""
    o2m, final, out = 0.8, 0.1, []
    for updates in range(epochs):
        out.append(o2m if updates == 0 else max(1 - updates / max(epochs - 1, 1), 0) * (0.8 - final) + final)
    return out


def test_weights_for_100_epochs():
    hook = E2ELossScheduleHook()
    got = {e: hook.weight(e, 100) for e in (0, 1, 50, 98, 99)}
    assert got == pytest.approx({0: 0.8, 1: 0.79293, 50: 0.44646, 98: 0.10707, 99: 0.1}, abs=5e-6)
    assert [hook.weight(e, 100) for e in range(100)] == reference_weights(100)  # bit for bit
    assert hook.weight(0, 1) == 0.8 and hook.weight(5, 3) == 0.1  # one epoch; past the end
    with pytest.raises(ValueError, match='start'):
        E2ELossScheduleHook(start=1.5)


def test_unwraps_model_wrappers_and_refuses_heads_without_weight(monkeypatch):
    import convnextv2_yolo.engine.hooks.e2e_loss_schedule_hook as mod
    head = types.SimpleNamespace(o2m_weight=None)
    inner = types.SimpleNamespace(bbox_head=head)
    wrapper = types.SimpleNamespace(module=inner)  # as DDP: the model under .module
    runner = types.SimpleNamespace(model=wrapper, epoch=50, max_epochs=100, train_loop=object())
    monkeypatch.setattr(mod, 'is_model_wrapper', lambda m: m is wrapper)
    E2ELossScheduleHook().before_train_epoch(runner)
    assert head.o2m_weight == pytest.approx(0.44646, abs=5e-6)
    runner.model = types.SimpleNamespace(bbox_head=types.SimpleNamespace())
    with pytest.raises(AttributeError, match='o2m_weight'):
        E2ELossScheduleHook().before_train_epoch(runner)


def _toy_model(seen):
    from mmengine.model import BaseModel

    class Toy(BaseModel):
        def __init__(self):
            super().__init__()
            self.bbox_head = nn.Linear(1, 1)
            self.bbox_head.o2m_weight = 0.8

        def forward(self, inputs, labels=None, mode='tensor'):
            out = self.bbox_head(torch.stack(inputs))
            if mode == 'loss':
                seen.append(self.bbox_head.o2m_weight)
                return dict(loss=(out ** 2).sum())
            return out

    return Toy()


def _runner(tmp_path, seen, max_epochs, name, resume=None, hook=True, runner_type=None):
    from mmengine.runner import Runner
    data = [dict(inputs=torch.ones(1)) for _ in range(4)]
    return (runner_type or Runner)(
        model=_toy_model(seen), work_dir=str(tmp_path), experiment_name=name,
        train_dataloader=dict(dataset=data, batch_size=2, sampler=dict(type='DefaultSampler', shuffle=False),
                              collate_fn=dict(type='pseudo_collate')),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.01)),
        train_cfg=dict(by_epoch=True, max_epochs=max_epochs),
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=1), logger=None),
        custom_hooks=[dict(type='E2ELossScheduleHook', start=0.8, final=0.1)] if hook else [],
        resume=resume is not None, load_from=resume, default_scope='mmdet')


def test_yolo_runner_warns_when_an_end_to_end_head_trains_without_the_hook(tmp_path):
    import glob
    import os.path as osp

    from convnextv2_yolo.engine.runner import YOLORunner
    for hook in (False, True):
        seen = []
        runner = _runner(tmp_path / f'hook{hook}', seen, 2, f'hook{hook}', hook=hook, runner_type=YOLORunner)
        runner.train()
        log = ''.join(open(f).read() for f in glob.glob(osp.join(runner.log_dir, '*.log')))
        warned = 'Linear trains without an E2ELossScheduleHook: the one-to-many loss weight stays 0.8' in log
        assert warned == (not hook) and (seen == [0.8] * 4) == (not hook)


def test_runner_epochs_and_resume(tmp_path):
    """Every iteration of epoch e sees weight(e); a run resumed after epoch 2 continues the curve."""
    hook, epochs = E2ELossScheduleHook(), 5
    seen = []
    _runner(tmp_path, seen, epochs, 'full').train()
    want = [hook.weight(e, epochs) for e in range(epochs) for _ in range(2)]  # 2 iterations per epoch
    assert seen == want and seen[0] == 0.8 and seen[-1] == pytest.approx(0.1)
    resumed = []
    _runner(tmp_path, resumed, epochs, 'resumed', resume=str(tmp_path / 'epoch_2.pth')).train()
    assert resumed == want[4:]
