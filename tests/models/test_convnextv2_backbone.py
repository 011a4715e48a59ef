"""ConvNeXtV2 backbone: variants, outputs, freezing, checkpointing, V1."""
import warnings

import pytest
import torch
import torch.nn as nn
from mmdet.registry import MODELS

from convnextv2_yolo.backbones import ConvNeXtV2
from convnextv2_yolo.backbones.convnextv2 import ARCHS, lr_decay_num_layers

TINY = dict(depths=[1, 1, 2, 1], channels=[8, 16, 24, 32])

# Variants of the official release (depths, dims).
OFFICIAL_V2 = {
    'atto': ([2, 2, 6, 2], [40, 80, 160, 320]),
    'femto': ([2, 2, 6, 2], [48, 96, 192, 384]),
    'pico': ([2, 2, 6, 2], [64, 128, 256, 512]),
    'nano': ([2, 2, 8, 2], [80, 160, 320, 640]),
    'tiny': ([3, 3, 9, 3], [96, 192, 384, 768]),
    'base': ([3, 3, 27, 3], [128, 256, 512, 1024]),
    'large': ([3, 3, 27, 3], [192, 384, 768, 1536]),
    'huge': ([3, 3, 27, 3], [352, 704, 1408, 2816]),
}


def test_arch_table_matches_official_release():
    assert list(ARCHS['v2']) == list(OFFICIAL_V2)
    for name, (depths, dims) in OFFICIAL_V2.items():
        setting = ConvNeXtV2.arch_settings[name]
        assert setting['depths'] == depths and setting['channels'] == dims
        assert lr_decay_num_layers(depths) == (6 if depths[2] <= 9 else 12)


def test_atto_outputs_and_param_count():
    model = MODELS.build(dict(type='ConvNeXtV2', arch='atto'))
    assert 'ConvNeXt' in type(model).__name__
    assert model.out_channels == [80, 160, 320]
    assert model.lr_decay_num_layers == 6
    # official atto: 3.7M with the 1000-class head (321k) and final norm
    n = sum(p.numel() for p in model.parameters())
    assert 3.35e6 < n < 3.45e6
    with torch.no_grad():
        outs = model(torch.randn(1, 3, 96, 128))
    assert [tuple(o.shape) for o in outs] == [(1, 80, 12, 16),
                                              (1, 160, 6, 8),
                                              (1, 320, 3, 4)]
    # V2 blocks: GRN with (C,) parameters, no layer scale
    block = model.stages[0][0]
    assert block.grn.gamma.shape == (160, ) and block.gamma is None


def test_unknown_arch_lists_valid_ones():
    with pytest.raises(ValueError) as e:
        ConvNeXtV2(arch='medium')
    for name in OFFICIAL_V2:
        assert name in str(e.value)
    with pytest.raises(ValueError, match='xlarge'):
        ConvNeXtV2(arch='atto', version='v1')
    with pytest.raises(ValueError, match='version'):
        ConvNeXtV2(arch='tiny', version='v3')
    with pytest.raises(ValueError, match='out_indices'):
        ConvNeXtV2(arch=TINY, out_indices=(4, ))


def test_version_v1_blocks():
    model = ConvNeXtV2(arch=TINY, version='v1', out_indices=(0, 1, 2, 3))
    block = model.stages[2][1]
    assert block.grn is None
    assert torch.allclose(block.gamma, torch.full((24, ), 1e-6))
    assert model.out_channels == [8, 16, 24, 32]
    assert len(model(torch.randn(1, 3, 64, 64))) == 4


def test_out_indices_subset_and_drop_path():
    model = ConvNeXtV2(arch=TINY, out_indices=(2, ), drop_path_rate=0.3)
    assert not hasattr(model, 'norm1') and model.out_channels == [24]
    assert model.stages[3][0].drop_path.drop_prob == pytest.approx(0.3)
    out, = model.eval()(torch.randn(1, 3, 64, 64))
    assert out.shape == (1, 24, 4, 4)


def test_frozen_stages_include_output_norms():
    model = ConvNeXtV2(arch=TINY, out_indices=(0, 1, 2, 3), frozen_stages=2)
    model.train()
    for i in range(4):
        frozen = i < 2
        for module in (model.downsample_layers[i], model.stages[i],
                       getattr(model, f'norm{i}')):
            assert all(p.requires_grad != frozen
                       for p in module.parameters()), (i, module)
            assert module.training != frozen
    with pytest.raises(ValueError, match='frozen_stages'):
        ConvNeXtV2(arch=TINY, frozen_stages=5)


def test_with_cp_same_gradients_and_no_warning():
    torch.manual_seed(0)
    plain = ConvNeXtV2(arch=TINY, drop_path_rate=0.)
    cp = ConvNeXtV2(arch=TINY, with_cp=True)
    cp.load_state_dict(plain.state_dict())
    x = torch.randn(2, 3, 64, 64)
    grads = []
    for model in (plain, cp):
        model.train()
        with warnings.catch_warnings():
            warnings.simplefilter('error')  # torch warns without use_reentrant
            loss = sum(o.square().mean() for o in model(x))
            loss.backward()
        grads.append({n: p.grad for n, p in model.named_parameters()})
    for name, g in grads[0].items():
        torch.testing.assert_close(grads[1][name], g, rtol=1e-5, atol=1e-6)


def test_pretrained_init_cfg_does_not_block_default_init():
    model = ConvNeXtV2(
        arch=TINY,
        init_cfg=[
            dict(type='Pretrained', checkpoint='https://example.com/x.pth'),
            dict(type='Constant', layer='Linear', val=0.5, bias=0.)
        ])
    # only the non-Pretrained part reaches mmengine's init machinery
    assert model.init_cfg == [dict(type='Constant', layer='Linear', val=0.5,
                                   bias=0.)]
    assert model._pretrained_cfg['checkpoint'].startswith('https://')
    with pytest.raises(ValueError, match='checkpoint'):
        ConvNeXtV2(arch=TINY, init_cfg=dict(type='Pretrained'))


def test_gradients_reach_all_stages():
    model = ConvNeXtV2(arch=TINY).train()
    sum(o.mean() for o in model(torch.randn(1, 3, 64, 64))).backward()
    head = nn.ModuleList([model.downsample_layers[0], model.stages[0]])
    assert all(p.grad is not None for p in head.parameters())


@pytest.mark.parametrize('data_format,shape', [('channel_last', (2, 5, 6, 8)),
                                               ('channel_first', (2, 8, 5, 6))])
def test_fused_grn_matches_mmpretrain(data_format, shape):
    from mmpretrain.models.utils import GRN as MMPretrainGRN

    from convnextv2_yolo.layers import GRN
    ref, ours = MMPretrainGRN(8), GRN(8)
    with torch.no_grad():
        ref.gamma.normal_()
        ref.beta.normal_()
    ours.load_state_dict(ref.state_dict())
    x = torch.randn(*shape, requires_grad=True)
    y_ref, y = ref(x, data_format), ours(x, data_format)
    torch.testing.assert_close(y, y_ref)
    g_ref = torch.autograd.grad(y_ref.square().sum(), [x, ref.gamma, ref.beta])
    g = torch.autograd.grad(y.square().sum(), [x, ours.gamma, ours.beta])
    for a, b in zip(g, g_ref):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match='data_format'):
        ours(x, 'nhwc')


def test_backbone_uses_fused_grn_with_mmpretrain_keys():
    from convnextv2_yolo.layers import GRN
    model = ConvNeXtV2(arch=TINY)
    grns = [m for m in model.modules() if 'GRN' in type(m).__name__]
    assert grns and all(isinstance(m, GRN) for m in grns)
    assert 'stages.0.0.grn.gamma' in model.state_dict()
