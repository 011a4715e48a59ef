"""MuSGD (ultralytics 8.4's Muon + SGD hybrid) and ``optimizer=auto`` above 10,000 iterations.

The step is checked against a hand computation written here from the reference's
rules (ultralytics/optim/muon.py, engine/trainer.py ``build_optimizer``); the
automatic choice, the reference's groups and the class branch's LR x 3 through
the real ``YOLOParamSchedulerHook`` on a tiny mmengine Runner.
"""
import logging
import math

import pytest
import torch
import torch.nn as nn

from convnextv2_yolo.engine.optimizers import MuSGD, newton_schulz_orthogonalize

# (4, 2, 3, 1): its Muon update is scaled by sqrt(3 / 1), the gradient's last two dims (the reference's quirk)
SHAPES = {'muon': [(6, 10), (10, 6), (4, 3, 3, 3), (4, 2, 3, 1)], 'plain': [(5,), (3,)]}


def _hand_orthogonalize(m):
    """The reference's Newton-Schulz polynomial on one matrix, in float64 (it runs in bfloat16: the
    two agree to a few % of the largest entry)."""
    x = m.double()
    tall = x.shape[0] > x.shape[1]
    if tall:
        x = x.T
    x = x / (x.norm() + 1e-7)
    for _ in range(5):
        a = x @ x.T
        x = 3.4445 * x + (-4.7750 * a + 2.0315 * (a @ a)) @ x
    return (x.T if tall else x).float()


def _hand_steps(params, grads, lr, momentum, wd, muon, sgd):
    """The reference's rules, one parameter at a time (Nesterov)."""
    params = {k: [p.clone() for p in v] for k, v in params.items()}
    mbuf = [torch.zeros_like(p) for p in params['muon']]
    sbuf = {k: [torch.zeros_like(p) for p in v] for k, v in params.items()}
    for step in grads:
        for kind, group in params.items():
            for i, (p, g) in enumerate(zip(group, step[kind])):
                step_lr = lr
                if kind == 'muon':
                    mbuf[i] = momentum * mbuf[i] + (1 - momentum) * g
                    d = momentum * mbuf[i] + (1 - momentum) * g
                    ortho = _hand_orthogonalize(d.reshape(d.shape[0], -1)).reshape(p.shape)
                    p = p - lr * muon * ortho * math.sqrt(max(1, g.shape[-2] / g.shape[-1]))
                    step_lr = lr * sgd
                gd = g + wd * p  # the decay sees the parameter after the Muon step
                sbuf[kind][i] = momentum * sbuf[kind][i] + gd
                group[i] = p - step_lr * (gd + momentum * sbuf[kind][i])
    return params


def _inputs(steps=3, seed=0):
    gen = torch.Generator().manual_seed(seed)
    params = {k: [torch.randn(*s, generator=gen) * 0.1 for s in v] for k, v in SHAPES.items()}
    grads = [{k: [torch.randn(*s, generator=gen) for s in v] for k, v in SHAPES.items()} for _ in range(steps)]
    return params, grads


def _run(params, grads, **kw):
    wd = kw.pop('wd')
    tensors = {k: [nn.Parameter(p.clone()) for p in v] for k, v in params.items()}
    opt = MuSGD([dict(params=tensors['muon'], use_muon=True, weight_decay=wd),
                 dict(params=tensors['plain'], weight_decay=wd)], **kw)
    for step in grads:
        for k, v in tensors.items():
            for p, g in zip(v, step[k]):
                p.grad = g.clone()
        opt.step()
    return tensors, opt


@pytest.mark.parametrize('muon,sgd', [(0.5, 1.0), (1.0, 0.0)])
def test_step_matches_hand_computation(muon, sgd):
    """3 steps of Muon + SGD (and Muon alone, sgd=0) equal the hand computation to bf16 rounding
    (within 5% of the largest change; the float64 polynomial vs bfloat16)."""
    params, grads = _inputs()
    ours, _ = _run(params, grads, lr=0.1, momentum=0.9, wd=0.05, nesterov=True, muon=muon, sgd=sgd)
    hand = _hand_steps(params, grads, lr=0.1, momentum=0.9, wd=0.05, muon=muon, sgd=sgd)
    for kind in SHAPES:
        for start, p, h in zip(params[kind], ours[kind], hand[kind]):
            change = (h - start).abs().max().item()
            assert change > 1e-2
            assert (p.detach() - h).abs().max().item() <= 0.05 * change, (kind, tuple(p.shape))


def test_plain_groups_are_torch_sgd():
    params, grads = _inputs()
    ours, _ = _run(params, grads, lr=0.1, momentum=0.9, wd=0.05, nesterov=True)
    ref = [nn.Parameter(p.clone()) for p in params['plain']]
    sgd = torch.optim.SGD(ref, lr=0.1, momentum=0.9, weight_decay=0.05, nesterov=True)
    for step in grads:
        for p, g in zip(ref, step['plain']):
            p.grad = g.clone()
        sgd.step()
    for p, r in zip(ours['plain'], ref):
        torch.testing.assert_close(p, r)


@pytest.mark.parametrize('shape', [(16, 48), (48, 16), (3, 16, 40)])
def test_newton_schulz_is_near_orthogonal(shape):
    g = torch.randn(*shape, generator=torch.Generator().manual_seed(1))
    x = newton_schulz_orthogonalize(g)
    assert x.dtype == torch.bfloat16 and x.shape == g.shape
    u, s, vh = torch.linalg.svd(g, full_matrices=False)
    core = u.mT @ x.float() @ vh.mT  # diagonal when x shares g's singular vectors
    diag = torch.diagonal(core, dim1=-2, dim2=-1)
    assert diag.min() > 0.5 and diag.max() < 1.5
    off = core - torch.diag_embed(diag)
    assert off.abs().max() < 0.1
    sv = torch.linalg.svdvals(x.float())
    assert sv.min() > 0.5 and sv.max() < 1.5
    with pytest.raises(ValueError, match='shape \\(5,\\)'):
        newton_schulz_orthogonalize(torch.ones(5))


def test_muon_group_rejects_vectors_and_state_round_trips():
    """1-D parameters in a Muon group fail clearly; a resumed optimizer continues bit-identically."""
    p = nn.Parameter(torch.ones(3))
    p.grad = torch.ones(3)
    with pytest.raises(ValueError, match='use_muon group.*\\(3,\\)'):
        MuSGD([dict(params=[p], use_muon=True)]).step()
    params, grads = _inputs(steps=3)
    full, _ = _run(params, grads, lr=0.1, momentum=0.9, wd=0.05, muon=0.2, sgd=1.0)
    first, opt = _run(params, grads[:2], lr=0.1, momentum=0.9, wd=0.05, muon=0.2, sgd=1.0)
    state = opt.state_dict()
    assert {'muon_momentum_buffer', 'momentum_buffer'} <= set(state['state'][0])
    assert state['param_groups'][0]['use_muon'] and state['param_groups'][0]['muon'] == 0.2
    resumed = {k: [nn.Parameter(t.detach().clone()) for t in v] for k, v in first.items()}
    opt2 = MuSGD([dict(params=resumed['muon'], use_muon=True), dict(params=resumed['plain'])])
    opt2.load_state_dict(state)
    for k, v in resumed.items():
        for t, g in zip(v, grads[2][k]):
            t.grad = g.clone()
    opt2.step()
    for kind in SHAPES:
        for a, b in zip(full[kind], resumed[kind]):
            assert torch.equal(a, b)


# ------------------------------------------------------------------ optimizer=auto through the hook
def _toy_detector(end2end=False):
    """A stem, a linear layer and a head class branch (``end2end``: also a one-to-one class branch and a
    one-to-one box branch, as YOLOE2EHead's)."""
    from mmengine.model import BaseModel

    def cls_branch():
        return nn.ModuleList([nn.Sequential(nn.Conv2d(4, 4, 1), nn.BatchNorm2d(4), nn.Conv2d(4, 2, 1))])

    class Toy(BaseModel):
        def __init__(self):
            super().__init__()
            self.stem = nn.Conv2d(3, 4, 3, padding=1)
            self.bn = nn.BatchNorm2d(4)
            self.fc = nn.Linear(4, 1)
            self.bbox_head = nn.Module()
            self.bbox_head.cls_convs = cls_branch()
            if end2end:
                self.bbox_head.one2one_cls_convs = cls_branch()
                self.bbox_head.one2one_reg_convs = cls_branch()

        def forward(self, inputs, labels=None, mode='tensor'):
            y = self.bn(self.stem(torch.stack(inputs)))
            out = self.fc(y.mean((2, 3))) + self.bbox_head.cls_convs[0](y).mean((1, 2, 3))[:, None]
            if end2end:
                branches = (self.bbox_head.one2one_cls_convs, self.bbox_head.one2one_reg_convs)
                out = out + sum(b[0](y).mean((1, 2, 3))[:, None] for b in branches)
            if mode == 'loss':
                return dict(loss=((out - torch.stack(labels)) ** 2).sum())
            return out

    return Toy()


class _Data(list):
    metainfo = dict(classes=('a', 'b', 'c'))


def _runner(tmp_path, epochs, optimizer, warmup_epochs=3, end2end=False, **wrapper):
    """A Runner set up to the start of training (before_run, before_train), not trained."""
    from mmengine.runner import Runner
    gen = torch.Generator().manual_seed(0)
    data = _Data(dict(inputs=torch.randn(3, 8, 8, generator=gen), labels=torch.randn(1, generator=gen))
                 for _ in range(128))
    runner = Runner(
        model=_toy_detector(end2end), work_dir=str(tmp_path), experiment_name=f'musgd_{tmp_path.name}',
        train_dataloader=dict(dataset=data, batch_size=16, sampler=dict(type='DefaultSampler'),
                              collate_fn=dict(type='pseudo_collate')),
        optim_wrapper=dict(type='OptimWrapper', constructor='YOLOOptimWrapperConstructor',
                           optimizer=optimizer, **wrapper),
        train_cfg=dict(by_epoch=True, max_epochs=epochs),
        default_hooks=dict(param_scheduler=dict(type='YOLOParamSchedulerHook', warmup_epochs=warmup_epochs),
                           checkpoint=None),
        default_scope='mmdet')
    runner.optim_wrapper = runner.build_optim_wrapper(runner.optim_wrapper)
    runner._train_loop = runner.build_train_loop(runner._train_loop)
    return runner


def _ids(params):
    return {id(p) for p in params}


@pytest.mark.parametrize('epochs,large,expected', [
    (3, 'MuSGD', 'AdamW'),      # ceil(128 / 64) x 3 = 6 iterations <= 10,000
    (5001, 'MuSGD', 'MuSGD'),   # 10,002 > 10,000: ultralytics 8.4
    (5001, 'SGD', 'SGD'),       # the same with 8.3's choice
])
def test_auto_optimizer_above_10000_iterations(tmp_path, epochs, large, expected):
    runner = _runner(tmp_path, epochs, dict(type='auto', weight_decay=5e-4), auto_large_optimizer=large)
    runner.call_hook('before_run')
    runner.call_hook('before_train')
    wrapper = runner.optim_wrapper
    assert type(wrapper.optimizer).__name__ == expected
    assert wrapper.decision.choice.name == expected and expected in wrapper.decision.choice.reason
    if expected != 'MuSGD':
        assert not any(g.get('use_muon') or 'yolo_lr_scale' in g for g in wrapper.optimizer.param_groups)
        return
    m = runner.model
    head = m.bbox_head.cls_convs[0]
    groups = wrapper.optimizer.param_groups
    by = {(g.get('use_muon', False), bool(g.get('yolo_bias')), g.get('yolo_lr_scale', 1)): g for g in groups}
    assert len(by) == len(groups) == 6
    # the reference's groups: 2-D/4-D -> Muon (weights' decay), biases, norm weights; the class branch x 3
    assert _ids(by[True, False, 1]['params']) == _ids([m.stem.weight, m.fc.weight])
    assert _ids(by[True, False, 3]['params']) == _ids([head[0].weight, head[2].weight])
    assert _ids(by[False, True, 1]['params']) == _ids([m.stem.bias, m.bn.bias, m.fc.bias])
    assert _ids(by[False, True, 3]['params']) == _ids([head[0].bias, head[1].bias, head[2].bias])
    assert _ids(by[False, False, 1]['params']) == _ids([m.bn.weight])
    assert _ids(by[False, False, 3]['params']) == _ids([head[1].weight])
    for g in groups:
        boosted = g.get('yolo_lr_scale') == 3
        assert g['yolo_initial_lr'] == pytest.approx(0.03 if boosted else 0.01)
        assert g['momentum'] == 0.9 and g['nesterov'] and g['muon'] == 0.2 and g['sgd'] == 1.0
        # batch 16: accumulate 4, decay 5e-4 * 16 * 4 / 64 on the Muon groups only
        assert g['weight_decay'] == pytest.approx(5e-4 if g['use_muon'] else 0.0)
    # the scheduler keeps the x 3 during warmup (W = 3 epochs x 8 iterations) and after it
    hook = next(h for h in runner.hooks if type(h).__name__ == 'YOLOParamSchedulerHook')
    for it, epoch in ((10, 1), (5000, 2500)):
        runner.train_loop._iter, runner.train_loop._epoch = it, epoch
        hook.before_train_iter(runner, 0)
        assert by[True, False, 3]['lr'] == pytest.approx(3 * by[True, False, 1]['lr']) and by[True, False, 1]['lr']
        assert by[False, True, 3]['lr'] == pytest.approx(3 * by[False, True, 1]['lr'])
    # one real optimizer step: every parameter with a gradient moves, the Muon ones keep both buffers
    before = [p.detach().clone() for p in m.parameters()]
    sample = runner.train_dataloader.dataset[0]
    runner.model([sample['inputs']], [sample['labels']], mode='loss')['loss'].backward()
    wrapper.step()
    assert m.stem.weight.grad.abs().sum() > 0 and head[2].weight.grad.abs().sum() > 0
    stuck = [n for b, (n, p) in zip(before, m.named_parameters()) if p.grad.abs().max() > 1e-6 and torch.equal(b, p)]
    assert stuck == []
    assert set(wrapper.optimizer.state[m.stem.weight]) == {'muon_momentum_buffer', 'momentum_buffer'}


def test_musgd_boosts_both_class_branches_of_an_end_to_end_head(tmp_path):
    """The reference gives Detect.cv3 and Detect.one2one_cv3 (YOLO26) LR x 3 in its MuSGD groups: ours
    ``bbox_head.cls_convs`` and ``bbox_head.one2one_cls_convs``; the one-to-one box branch is not boosted."""
    runner = _runner(tmp_path, 5001, dict(type='auto', weight_decay=5e-4), end2end=True)
    runner.call_hook('before_run')
    runner.call_hook('before_train')
    head = runner.model.bbox_head
    boosted = {id(p) for g in runner.optim_wrapper.optimizer.param_groups if g.get('yolo_lr_scale') == 3
               for p in g['params']}
    assert type(runner.optim_wrapper.optimizer).__name__ == 'MuSGD'
    assert boosted == _ids([*head.cls_convs.parameters(), *head.one2one_cls_convs.parameters()])
    assert not boosted & _ids(head.one2one_reg_convs.parameters())


def test_musgd_boosted_parameters_of_yolo26_are_the_references():
    """On the YOLO26-n config's model: the boosted prefixes select exactly the parameters whose reference
    names are ``model.23.cv3.*`` and ``model.23.one2one_cv3.*`` (the reference's ``heads`` in build_optimizer)."""
    from mmdet.registry import MODELS
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    from convnextv2_yolo.converters import reference_key
    from convnextv2_yolo.engine.optimizers.optimizer_decision import MUSGD_BOOSTED_PREFIXES
    from tests.helpers.paths import ROOT
    cfg = Config.fromfile(f'{ROOT}/configs/yolo26/yolo26_n_8xb16-500e_coco.py')
    init_default_scope('mmdet')
    with torch.device('meta'):
        model = MODELS.build(cfg.model)
    names = [n for n, _ in model.named_parameters()]
    ours = {reference_key(n, 'yolo26') for n in names if n.startswith(MUSGD_BOOSTED_PREFIXES)}
    theirs = {k for k in (reference_key(n, 'yolo26') for n in names)
              if k.startswith(('model.23.cv3.', 'model.23.one2one_cv3.'))}
    assert ours == theirs
    assert len([k for k in ours if 'one2one_cv3' in k]) == len([k for k in ours if '.cv3.' in k]) > 0


def test_explicit_musgd_config_is_regrouped_before_the_run(tmp_path):
    """optimizer=dict(type='MuSGD') in a config: the constructor's groups are rebuilt as the reference's."""
    runner = _runner(tmp_path, 2, dict(type='MuSGD', lr=0.02, weight_decay=5e-4, muon=0.3))
    wrapper = runner.optim_wrapper
    assert wrapper.decision is None and not any(g['use_muon'] for g in wrapper.optimizer.param_groups)
    with pytest.raises(RuntimeError, match='no optimizer decision'):
        wrapper.update_params(sum(p.sum() for p in runner.model.parameters()))
    runner.call_hook('before_run')
    runner.call_hook('before_train')
    groups = wrapper.optimizer.param_groups
    assert wrapper.decision.choice.reference_groups and len(groups) == 6
    muon = [g for g in groups if g['use_muon']]
    assert sorted(g['lr'] for g in muon) == pytest.approx([0.02, 0.06])
    assert all(g['muon'] == 0.3 and g['weight_decay'] == pytest.approx(5e-4) for g in muon)
    with pytest.raises(ValueError, match='optim_wrapper.auto_large_optimizer'):
        _runner(tmp_path / 'bad', 2, dict(type='auto'), auto_large_optimizer='Adam')


def test_auto_scale_lr_with_the_auto_optimizer_is_said_to_be_ignored(tmp_path):
    """mmengine scales the placeholder's LR, then 'auto' replaces the optimizer: a warning says so."""
    from mmengine.logging import MMLogger
    runner = _runner(tmp_path, 3, dict(type='auto', weight_decay=5e-4))
    runner.auto_scale_lr = dict(enable=True, base_batch_size=64)
    messages = []
    handler = type('H', (logging.Handler,), {'emit': lambda self, r: messages.append(r.getMessage())})()
    logger = MMLogger.get_current_instance()
    logger.addHandler(handler)
    try:
        runner.call_hook('before_run')
    finally:
        logger.removeHandler(handler)
    assert any("does not apply to optimizer 'auto'" in m for m in messages), messages


def test_resume_restores_the_optimizer_choice_of_the_checkpoint(tmp_path):
    """The decision's choice travels with the optimizer state (safe-loadable); a resumed run for which the rule
    decides otherwise (here: max_epochs raised past 10,000 iterations) gets the checkpoint's optimizer back."""
    first = _runner(tmp_path / 'first', 3, dict(type='auto', weight_decay=5e-4))
    first.call_hook('before_run')
    torch.save(first.optim_wrapper.state_dict(), str(tmp_path / 'optimizer.pth'))
    state = torch.load(str(tmp_path / 'optimizer.pth'), weights_only=True)
    assert state['yolo_optimizer_choice']['name'] == 'AdamW'
    longer = _runner(tmp_path / 'longer', 5001, dict(type='auto', weight_decay=5e-4))
    longer.call_hook('before_run')
    wrapper = longer.optim_wrapper
    assert wrapper.decision.choice.name == 'MuSGD'
    wrapper.load_state_dict(state)
    assert type(wrapper.optimizer).__name__ == 'AdamW'
    assert wrapper.decision.choice == first.optim_wrapper.decision.choice and wrapper.decision.accumulate == 4
    decay = [g for g in wrapper.optimizer.param_groups if 'yolo_base_weight_decay' in g]
    assert [g['weight_decay'] for g in decay] == pytest.approx([5e-4])
