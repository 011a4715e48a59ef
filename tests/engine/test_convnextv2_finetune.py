"""Fine-tuning controls: layer-wise LR decay, no decay on 1-D params, and the
BackboneFreezeHook (including a resumed run)."""
import os.path as osp
from types import SimpleNamespace

import pytest
import torch
import torch.nn as nn
from mmdet.registry import HOOKS, OPTIM_WRAPPER_CONSTRUCTORS
from mmengine.hooks import Hook
from mmengine.model import BaseModel
from mmengine.runner import Runner
from torch.utils.data import Dataset

import convnextv2_yolo  # noqa: F401  (registers modules, applies compat)
from convnextv2_yolo.backbones import ConvNeXtV2
from convnextv2_yolo.engine.hooks import BackboneFreezeHook

# third stage of 7 blocks: layer ids 3, 3, 3, 4, 4, 4, 5
ARCH = dict(depths=[1, 2, 7, 1], channels=[8, 16, 24, 32])


class TinyDetector(BaseModel):
    """Backbone + a conv 'neck' + a linear 'head', with a toy loss."""

    def __init__(self, frozen_stages: int = 0):
        super().__init__()
        self.backbone = ConvNeXtV2(arch=ARCH, frozen_stages=frozen_stages)
        self.neck = nn.Conv2d(32, 8, 1)
        self.head = nn.Linear(8, 2)

    def forward(self, inputs, labels=None, mode='tensor'):
        feat = self.neck(self.backbone(inputs)[-1]).mean((2, 3))
        logits = self.head(feat)
        if mode == 'loss':
            return dict(loss=nn.functional.cross_entropy(logits, labels))
        return logits


def expected_layer_id(name: str, max_layer_id: int = 6) -> int:
    """mmdet's ConvNeXt layer-wise grouping, written out for these names."""
    table = {
        'backbone.downsample_layers.0.0.weight': 0,
        'backbone.downsample_layers.0.1.bias': 0,
        'backbone.stages.0.0.grn.gamma': 1,
        'backbone.downsample_layers.1.1.weight': 2,
        'backbone.stages.1.1.pointwise_conv1.weight': 2,
        'backbone.downsample_layers.2.0.weight': 3,
        'backbone.stages.2.0.depthwise_conv.weight': 3,
        'backbone.stages.2.2.norm.bias': 3,
        'backbone.stages.2.3.grn.beta': 4,
        'backbone.stages.2.5.pointwise_conv2.weight': 4,
        'backbone.stages.2.6.depthwise_conv.bias': 5,
        'backbone.downsample_layers.3.1.weight': max_layer_id,
        'backbone.stages.3.0.grn.gamma': max_layer_id,
        'backbone.norm1.weight': max_layer_id + 1,
        'backbone.norm3.bias': max_layer_id + 1,
        'neck.weight': max_layer_id + 1,
        'head.bias': max_layer_id + 1,
    }
    return table[name]


def build_layer_decay(model, num_layers=6, decay_rate=0.8):
    constructor = OPTIM_WRAPPER_CONSTRUCTORS.build(
        dict(
            type='LearningRateDecayOptimizerConstructor',
            optim_wrapper_cfg=dict(
                type='OptimWrapper',
                optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.05)),
            paramwise_cfg=dict(
                decay_rate=decay_rate,
                decay_type='layer_wise',
                num_layers=num_layers)))
    return constructor(model)


def test_layer_wise_lr_decay_groups():
    model = TinyDetector()
    assert model.backbone.lr_decay_num_layers == 6
    groups = build_layer_decay(model).optimizer.param_groups
    where = {}
    for g in groups:
        for name in g['param_names']:
            where[name] = g
    assert set(where) == {n for n, _ in model.named_parameters()}
    for name in [
            'backbone.downsample_layers.0.0.weight',
            'backbone.downsample_layers.0.1.bias',
            'backbone.stages.0.0.grn.gamma',
            'backbone.downsample_layers.1.1.weight',
            'backbone.stages.1.1.pointwise_conv1.weight',
            'backbone.downsample_layers.2.0.weight',
            'backbone.stages.2.0.depthwise_conv.weight',
            'backbone.stages.2.2.norm.bias', 'backbone.stages.2.3.grn.beta',
            'backbone.stages.2.5.pointwise_conv2.weight',
            'backbone.stages.2.6.depthwise_conv.bias',
            'backbone.downsample_layers.3.1.weight',
            'backbone.stages.3.0.grn.gamma', 'backbone.norm1.weight',
            'backbone.norm3.bias', 'neck.weight', 'head.bias'
    ]:
        layer_id = expected_layer_id(name)
        group = where[name]
        assert group['group_name'].startswith(f'layer_{layer_id}_'), name
        # num_layers + 2 groups: scale = rate ** (num_layers + 1 - id)
        assert group['lr'] == pytest.approx(1e-3 * 0.8**(7 - layer_id))


def test_no_weight_decay_on_bias_norm_and_grn():
    model = TinyDetector()
    groups = build_layer_decay(model).optimizer.param_groups
    params = dict(model.named_parameters())
    for g in groups:
        for name in g['param_names']:
            one_d = params[name].dim() == 1
            assert (g['weight_decay'] == 0.) == one_d, name
    grn = [n for n in params if '.grn.' in n]
    assert grn and all(params[n].dim() == 1 for n in grn)


def test_frozen_stages_leave_the_optimizer():
    model = TinyDetector(frozen_stages=1)
    names = {
        n
        for g in build_layer_decay(model).optimizer.param_groups
        for n in g['param_names']
    }
    assert not any(n.startswith(('backbone.stages.0.',
                                 'backbone.downsample_layers.0.'))
                   for n in names)
    assert 'backbone.stages.1.0.grn.gamma' in names


# --------------------------------------------------------------------------- #
# BackboneFreezeHook
# --------------------------------------------------------------------------- #
def fake_runner(model, epoch=0, it=0):
    return SimpleNamespace(model=model, epoch=epoch, iter=it)


def backbone_state(model):
    params = [p for n, p in model.backbone.named_parameters()
              if not n.startswith(('stages.0.', 'downsample_layers.0.'))]
    return all(not p.requires_grad for p in params), model.backbone.training


@pytest.mark.parametrize('start_epoch,frozen', [(0, True), (1, True),
                                                (2, False), (5, False)])
def test_freeze_state_derives_from_epoch(start_epoch, frozen):
    model = TinyDetector(frozen_stages=1).train()
    hook = HOOKS.build(dict(type='BackboneFreezeHook', freeze_epochs=2))
    runner = fake_runner(model, epoch=start_epoch)  # e.g. a resumed run
    hook.before_train(runner)
    hook.before_train_epoch(runner)
    model.train()  # the loop calls train() after before_train_epoch
    hook.before_train_iter(runner, 0)
    assert backbone_state(model) == (frozen, not frozen)
    assert all(p.requires_grad for p in model.neck.parameters())
    # the backbone's own frozen stage stays frozen either way
    assert not any(p.requires_grad for p in model.backbone.stages[0]
                   .parameters())
    runner.epoch = 2
    hook.before_train_epoch(runner)
    model.train()
    hook.before_train_iter(runner, 0)
    assert backbone_state(model) == (False, True)
    assert not any(p.requires_grad for p in model.backbone.stages[0]
                   .parameters())


def test_freeze_by_iterations():
    model = TinyDetector().train()
    hook = BackboneFreezeHook(freeze_iters=3)
    runner = fake_runner(model)
    hook.before_train(runner)
    for it in range(5):
        runner.iter = it
        hook.before_train_iter(runner, it)
        assert backbone_state(model)[0] == (it < 3)
    assert model.backbone.training
    with pytest.raises(ValueError):
        BackboneFreezeHook(freeze_epochs=1, freeze_iters=1)


class ToyData(Dataset):

    def __len__(self):
        return 4

    def __getitem__(self, i):
        g = torch.Generator().manual_seed(i)
        return dict(inputs=torch.randn(3, 32, 32, generator=g), labels=i % 2)


def make_runner(work_dir, max_epochs, resume_from=None):
    model = TinyDetector()
    record = []
    start_state = {}

    class Spy(Hook):
        """Records (epoch, backbone.training, requires_grad) per iteration."""
        priority = 'LOWEST'

        def before_train(self, runner):
            start_state.update(
                {k: v.clone() for k, v in model.state_dict().items()})

        def after_train_iter(self, runner, batch_idx, data_batch=None,
                             outputs=None):
            bb = model.backbone
            record.append((runner.epoch, bb.training,
                           bb.stages[2][0].grn.gamma.requires_grad))

    runner = Runner(
        model=model,
        work_dir=str(work_dir),
        train_dataloader=dict(
            dataset=ToyData(),
            sampler=dict(type='DefaultSampler', shuffle=False),
            batch_size=2,
            num_workers=0,
            collate_fn=dict(type='default_collate')),
        train_cfg=dict(by_epoch=True, max_epochs=max_epochs),
        optim_wrapper=dict(
            optimizer=dict(type='AdamW', lr=1e-2, weight_decay=0.05)),
        default_hooks=dict(
            checkpoint=dict(type='CheckpointHook', interval=1),
            logger=dict(type='LoggerHook', interval=1)),
        custom_hooks=[
            dict(type='BackboneFreezeHook', freeze_epochs=2),
            Spy()
        ],
        load_from=resume_from,
        resume=resume_from is not None,
        default_scope='mmdet',
        env_cfg=dict(cudnn_benchmark=False),
        log_level='WARNING')
    return runner, model, record, start_state


def test_freeze_hook_in_runner_with_resume(tmp_path):
    runner, model, record, before = make_runner(tmp_path / 'a', max_epochs=1)
    runner.train()
    after = model.state_dict()
    # frozen during epoch 0: backbone untouched, neck trained
    assert all(torch.equal(before[k], after[k]) for k in before
               if k.startswith('backbone.'))
    assert not torch.equal(before['neck.weight'], after['neck.weight'])
    assert record and all(not train and not grad
                          for _, train, grad in record)
    # the optimizer holds the backbone although it was frozen
    opt_params = {id(p) for g in runner.optim_wrapper.param_groups
                  for p in g['params']}
    assert all(id(p) in opt_params for p in model.backbone.parameters())

    ckpt = osp.join(tmp_path / 'a', 'epoch_1.pth')
    runner2, model2, record2, _ = make_runner(
        tmp_path / 'b', max_epochs=3, resume_from=ckpt)
    runner2.train()
    epochs = {e: (train, grad) for e, train, grad in record2}
    # resumed at epoch 1 (< 2): frozen; epoch 2: unfrozen
    assert epochs == {1: (False, False), 2: (True, True)}
    # trained after the release: GRN gamma (initialised at zero) moved
    assert model2.backbone.stages[2][0].grn.gamma.detach().abs().sum() > 0


def test_default_constructor_flat_decay_mult():
    """Without layer decay, ``flat_decay_mult=0`` exempts GRN/LN/biases."""
    constructor = OPTIM_WRAPPER_CONSTRUCTORS.build(
        dict(
            type='DefaultOptimWrapperConstructor',
            optim_wrapper_cfg=dict(
                type='OptimWrapper',
                optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.05)),
            paramwise_cfg=dict(flat_decay_mult=0.)))
    model = TinyDetector()
    groups = constructor(model).optimizer.param_groups
    names = {id(p): n for n, p in model.named_parameters()}
    seen = 0
    for g in groups:
        for p in g['params']:
            assert (g['weight_decay'] == 0.) == (p.dim() == 1), names[id(p)]
            seen += '.grn.' in names[id(p)]
    assert seen == 2 * sum(ARCH['depths'])
