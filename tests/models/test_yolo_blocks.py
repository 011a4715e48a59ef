"""YOLO11/YOLOv8 blocks, native backbone and PAFPN neck.

Each block is checked against an independent functional computation
(F.conv2d / F.batch_norm / softmax attention written out here) using the
block's own weights, with random BatchNorm statistics, in eval mode.
"""
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from convnextv2_yolo.layers import (C2PSA, SPPF, Attention, Bottleneck, C2f, C3k, C3k2, Conv, PSABlock, scale_channels,
                                    scale_depth)
from tests.helpers.modules import randomize


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def conv_f(m: Conv, x: torch.Tensor, act: bool = True) -> torch.Tensor:
    k = m.conv.kernel_size[0]
    y = F.conv2d(x, m.conv.weight, None, m.conv.stride, k // 2, 1, m.conv.groups)
    y = F.batch_norm(y, m.bn.running_mean, m.bn.running_var, m.bn.weight, m.bn.bias, False, 0.0, 1e-3)
    return F.silu(y) if act else y


def bottleneck_f(m: Bottleneck, x: torch.Tensor, residual: bool) -> torch.Tensor:
    y = conv_f(m.cv2, conv_f(m.cv1, x))
    return x + y if residual else y


def c3k_f(m: C3k, x: torch.Tensor) -> torch.Tensor:
    y = conv_f(m.cv1, x)
    for b in m.m:
        y = bottleneck_f(b, y, True)
    return conv_f(m.cv3, torch.cat([y, conv_f(m.cv2, x)], 1))


def c2f_f(m: nn.Module, x: torch.Tensor, block_f) -> torch.Tensor:
    y = conv_f(m.cv1, x)
    half = y.shape[1] // 2
    ys = [y[:, :half], y[:, half:]]
    for b in m.m:
        ys.append(block_f(b, ys[-1]))
    return conv_f(m.cv2, torch.cat(ys, 1))


def attention_f(m: Attention, x: torch.Tensor, heads: int) -> torch.Tensor:
    b, c, h, w = x.shape
    hd = c // heads
    kd = hd // 2
    qkv = conv_f(m.qkv, x, act=False).reshape(b, heads, 2 * kd + hd, h * w)
    q, k, v = qkv[:, :, :kd], qkv[:, :, kd:2 * kd], qkv[:, :, 2 * kd:]
    weights = (torch.einsum('bhdn,bhdm->bhnm', q, k) / kd**0.5).softmax(-1)
    out = torch.einsum('bhdm,bhnm->bhdn', v, weights).reshape(b, c, h, w)
    out = out + conv_f(m.pe, v.reshape(b, c, h, w), act=False)
    return conv_f(m.proj, out, act=False)


def psa_f(m: PSABlock, x: torch.Tensor, heads: int) -> torch.Tensor:
    x = x + attention_f(m.attn, x, heads)
    return x + conv_f(m.ffn[1], conv_f(m.ffn[0], x), act=False)


def test_bottleneck_residual_only_when_shapes_match():
    x = torch.randn(2, 16, 8, 8)
    same = randomize(Bottleneck(16, 16, shortcut=True))
    other = randomize(Bottleneck(16, 24, shortcut=True))
    off = randomize(Bottleneck(16, 16, shortcut=False))
    torch.testing.assert_close(same(x), bottleneck_f(same, x, True))
    torch.testing.assert_close(other(x), bottleneck_f(other, x, False))
    torch.testing.assert_close(off(x), bottleneck_f(off, x, False))
    assert same.cv1.conv.out_channels == 8  # e=0.5


@pytest.mark.parametrize('shortcut', [True, False])
def test_c2f_matches_functional(shortcut):
    m = randomize(C2f(16, 32, n=2, shortcut=shortcut))
    x = torch.randn(1, 16, 8, 8)
    ref = c2f_f(m, x, lambda b, y: bottleneck_f(b, y, shortcut))
    torch.testing.assert_close(m(x), ref)
    assert m.cv2.conv.in_channels == (2 + 2) * 16


def test_c3k2_with_bottlenecks_matches_functional():
    m = randomize(C3k2(16, 64, n=2, c3k=False, e=0.25))
    assert all(isinstance(b, Bottleneck) for b in m.m)
    assert m.m[0].cv1.conv.out_channels == 8  # Bottleneck(c, c, e=0.5), c = 64 * 0.25
    x = torch.randn(1, 16, 8, 8)
    torch.testing.assert_close(m(x), c2f_f(m, x, lambda b, y: bottleneck_f(b, y, True)))


def test_c3k2_with_c3k_matches_functional_and_names():
    m = randomize(C3k2(32, 32, n=1, c3k=True))
    assert isinstance(m.m[0], C3k) and len(m.m[0].m) == 2
    assert m.m[0].m[0].cv1.conv.kernel_size == (3, 3)  # C3k: k x k in both convs
    keys = set(m.state_dict())
    for key in ('cv1.conv.weight', 'cv2.bn.running_var', 'm.0.cv1.conv.weight', 'm.0.cv3.conv.weight',
                'm.0.m.0.cv1.conv.weight', 'm.0.m.1.cv2.bn.weight'):
        assert key in keys
    x = torch.randn(2, 32, 8, 8)
    torch.testing.assert_close(m(x), c2f_f(m, x, c3k_f))


def test_sppf_matches_functional():
    m = randomize(SPPF(32, 48, k=5))
    x = torch.randn(1, 32, 10, 10)
    y0 = conv_f(m.cv1, x)
    y1 = F.max_pool2d(y0, 5, 1, 2)
    y2 = F.max_pool2d(y1, 5, 1, 2)
    y3 = F.max_pool2d(y2, 5, 1, 2)
    torch.testing.assert_close(m(x), conv_f(m.cv2, torch.cat([y0, y1, y2, y3], 1)))
    assert m.cv1.conv.out_channels == 16


def test_attention_matches_functional():
    m = randomize(Attention(128, num_heads=2, attn_ratio=0.5)).double()
    # head_dim 64, key_dim 32: qkv = dim + 2 * key_dim * heads channels
    assert m.qkv.conv.out_channels == 128 + 2 * 32 * 2
    assert m.pe.conv.groups == 128 and m.pe.conv.kernel_size == (3, 3)
    assert isinstance(m.qkv.act, nn.Identity) and isinstance(m.proj.act, nn.Identity)
    x = torch.randn(2, 128, 5, 6, dtype=torch.float64)
    torch.testing.assert_close(m(x), attention_f(m, x, 2))


def test_c2psa_matches_functional_and_names():
    m = randomize(C2PSA(256, 256, n=2)).double()
    assert m.m[0].attn.num_heads == 2  # (256 * 0.5) // 64
    keys = set(m.state_dict())
    for key in ('m.0.attn.qkv.conv.weight', 'm.0.attn.proj.bn.weight', 'm.0.attn.pe.conv.weight',
                'm.0.ffn.0.conv.weight', 'm.1.ffn.1.bn.bias', 'cv2.conv.weight'):
        assert key in keys
    x = torch.randn(1, 256, 4, 4, dtype=torch.float64)
    a, b = conv_f(m.cv1, x).split(128, 1)
    for blk in m.m:
        b = psa_f(blk, b, 2)
    ref = conv_f(m.cv2, torch.cat([a, b], 1))
    torch.testing.assert_close(m(x), ref)
    with pytest.raises(ValueError, match='c1 == c2'):
        C2PSA(256, 128)


@pytest.mark.parametrize('c, w, mc, expected', [(64, 0.25, 1024, 16), (1024, 0.25, 1024, 256), (1024, 1.0, 512, 512),
                                                (1024, 1.5, 512, 768), (1024, 0.75, 768, 576), (256, 0.75, 768, 192),
                                                (1024, 1.25, 512, 640), (100, 0.3, 1024, 32)])
def test_scale_channels(c, w, mc, expected):
    assert scale_channels(c, w, mc) == expected


@pytest.mark.parametrize('n, d, expected', [(3, 0.33, 1), (6, 0.33, 2), (3, 0.67, 2), (6, 0.67, 4), (2, 0.5, 1),
                                            (2, 1.0, 2), (1, 0.33, 1), (1, 2.0, 1)])
def test_scale_depth(n, d, expected):
    assert scale_depth(n, d) == expected


# --------------------------------------------------------------------------- backbone
def test_backbone_yolo11_n_shapes():
    from convnextv2_yolo.backbones import YOLOCSPDarknet
    net = YOLOCSPDarknet('yolo11', deepen_factor=0.5, widen_factor=0.25).eval()
    outs = net(torch.randn(1, 3, 64, 96))
    assert [tuple(o.shape) for o in outs] == [(1, 128, 8, 12), (1, 128, 4, 6), (1, 256, 2, 3)]
    assert net.out_channels == [128, 128, 256]
    assert [type(m).__name__ for m in net.stage4] == ['Conv', 'C3k2', 'SPPF', 'C2PSA']
    assert isinstance(net.stage3[1].m[0], C3k) and isinstance(net.stage2[1].m[0], Bottleneck)
    assert net.stage1[1].c == 16  # C3k2(256, e=0.25) at width 0.25


def test_backbone_yolov8_and_c3k_all():
    from convnextv2_yolo.backbones import YOLOCSPDarknet
    v8 = YOLOCSPDarknet('yolov8', deepen_factor=0.33, widen_factor=0.25, out_indices=(1, 2, 3, 4))
    assert v8.out_channels == [32, 64, 128, 256]
    assert [type(m).__name__ for m in v8.stage4] == ['Conv', 'C2f', 'SPPF']
    assert len(v8.stage2[1].m) == 2 and v8.stage2[1].m[0].add  # 6 * 0.33 -> 2, residual
    assert len(v8(torch.randn(1, 3, 64, 64))) == 4
    every = YOLOCSPDarknet('yolo11', deepen_factor=0.5, widen_factor=0.25, c3k_all=True)
    assert isinstance(every.stage1[1].m[0], C3k)
    with pytest.raises(ValueError, match='version'):
        YOLOCSPDarknet('yolov5')
    with pytest.raises(ValueError, match='out_indices'):
        YOLOCSPDarknet(out_indices=(5, ))


def test_backbone_frozen_stages_and_norm_eval():
    from convnextv2_yolo.backbones import YOLOCSPDarknet
    net = YOLOCSPDarknet(deepen_factor=0.5, widen_factor=0.25, frozen_stages=1, norm_eval=True)
    net.train()
    assert not any(p.requires_grad for p in net.stem.parameters())
    assert not any(p.requires_grad for p in net.stage1.parameters())
    assert all(p.requires_grad for p in net.stage2.parameters())
    assert not net.stage1.training
    assert all(not m.training for m in net.modules() if isinstance(m, nn.BatchNorm2d))
    assert net.stage2[0].conv.training  # only norms are kept in eval mode


# --------------------------------------------------------------------------- neck
def test_neck_on_foreign_backbone_with_sppf_c2psa():
    from convnextv2_yolo.necks import YOLOPAFPN
    in_channels = [80, 160, 320]  # ConvNeXt V2 atto: never rescaled by widen_factor
    neck = YOLOPAFPN(in_channels, deepen_factor=0.5, widen_factor=0.25, sppf_c2psa=True).eval()
    assert neck.out_channels == [64, 128, 256]
    assert neck.sppf.cv1.conv.in_channels == 320 and neck.sppf.cv2.conv.out_channels == 256
    assert neck.c2psa.cv1.conv.in_channels == 256
    assert neck.top_down_layers[0].cv1.conv.in_channels == 256 + 160
    assert neck.top_down_layers[1].cv1.conv.in_channels == 128 + 80
    assert neck.bottom_up_layers[1].cv1.conv.in_channels == 128 + 256
    assert isinstance(neck.bottom_up_layers[1].m[0], C3k)  # the last C3k2 uses c3k
    assert isinstance(neck.top_down_layers[0].m[0], Bottleneck)
    feats = [torch.randn(2, c, s, s) for c, s in zip(in_channels, (16, 8, 4))]
    outs = neck(feats)
    assert [tuple(o.shape) for o in outs] == [(2, 64, 16, 16), (2, 128, 8, 8), (2, 256, 4, 4)]


def test_neck_wiring_matches_reference_order():
    """Concats are [upsampled/downsampled, lateral] as the reference."""
    from convnextv2_yolo.necks import YOLOPAFPN
    neck = randomize(YOLOPAFPN([32, 48, 64], deepen_factor=0.5, widen_factor=0.25))
    p3, p4, p5 = (torch.randn(1, c, s, s) for c, s in zip([32, 48, 64], (8, 4, 2)))
    up = lambda t: F.interpolate(t, scale_factor=2.0, mode='nearest')  # noqa: E731
    td4 = neck.top_down_layers[0](torch.cat([up(p5), p4], 1))
    o3 = neck.top_down_layers[1](torch.cat([up(td4), p3], 1))
    o4 = neck.bottom_up_layers[0](torch.cat([neck.downsample_layers[0](o3), td4], 1))
    o5 = neck.bottom_up_layers[1](torch.cat([neck.downsample_layers[1](o4), p5], 1))
    for got, ref in zip(neck([p3, p4, p5]), (o3, o4, o5)):
        torch.testing.assert_close(got, ref)
    assert neck.downsample_layers[0].conv.stride == (2, 2)


def test_neck_yolov8_and_bad_inputs():
    from convnextv2_yolo.necks import YOLOPAFPN
    neck = YOLOPAFPN([64, 128, 256], deepen_factor=0.33, widen_factor=0.25, version='yolov8', sppf_c2psa=True)
    assert isinstance(neck.top_down_layers[0], C2f) and not isinstance(neck.top_down_layers[0], C3k2)
    assert not neck.top_down_layers[0].m[0].add  # YOLOv8's neck C2f: no residuals
    assert hasattr(neck, 'sppf') and not hasattr(neck, 'c2psa')
    with pytest.raises(ValueError, match=r'\[64, 128, 256\]'):
        neck([torch.randn(1, 32, 8, 8), torch.randn(1, 128, 4, 4), torch.randn(1, 256, 2, 2)])
    with pytest.raises(ValueError, match='three levels'):
        YOLOPAFPN([64, 128])


# --------------------------------------------------------------------------- scales
def _shapes(module):
    return {k: tuple(v.shape) for k, v in module.state_dict().items()}


@pytest.mark.parametrize('version', ['yolo11', 'yolov8'])
@pytest.mark.parametrize('scale', ['n', 's', 'm', 'l', 'x'])
def test_scale_is_its_table_row(version, scale):
    """scale='s' builds what the row's explicit factors build (the reference's scales: table)."""
    from convnextv2_yolo.backbones import YOLOCSPDarknet
    from convnextv2_yolo.layers import YOLO_SCALES
    from convnextv2_yolo.necks import YOLOPAFPN
    row = YOLO_SCALES[version][scale]._asdict()
    with torch.device('meta'):
        by_scale = YOLOCSPDarknet(version, scale=scale)
        by_factors = YOLOCSPDarknet(version, **row)
        neck = YOLOPAFPN(by_scale.out_channels, version=version, scale=scale)
        neck_factors = YOLOPAFPN(by_scale.out_channels, version=version, **row)
    assert _shapes(by_scale) == _shapes(by_factors)
    assert _shapes(neck) == _shapes(neck_factors)


def test_scale_and_explicit_factors_is_an_error():
    from convnextv2_yolo.backbones import YOLOCSPDarknet
    from convnextv2_yolo.necks import YOLOPAFPN
    with pytest.raises(ValueError, match=r"scale='s' and widen_factor=0\.5"):
        YOLOCSPDarknet(scale='s', widen_factor=0.5)
    with pytest.raises(ValueError, match=r"scale='n' and deepen_factor=0\.5, c3k_all=True"):
        YOLOPAFPN([64, 128, 256], scale='n', deepen_factor=0.5, c3k_all=True)
    with pytest.raises(ValueError, match='has scales'):
        YOLOCSPDarknet('yolov8', scale='t')
    with pytest.raises(ValueError, match='out_channels are real channels'):
        YOLOPAFPN([64, 128, 256], out_channels=[64, 128, 256], widen_factor=0.25)


def test_neck_out_channels_are_real_or_follow_the_scale():
    from convnextv2_yolo.necks import YOLOPAFPN
    assert YOLOPAFPN([80, 160, 320], scale='n').out_channels == [64, 128, 256]
    assert YOLOPAFPN([80, 160, 320], version='yolov8', scale='m').out_channels == [192, 384, 576]
    custom = YOLOPAFPN([80, 160, 320], out_channels=[48, 96, 192], scale='n')  # depth of n, own widths
    assert custom.out_channels == [48, 96, 192] and custom.bottom_up_layers[1].cv2.conv.out_channels == 192


def test_deprecated_names_build_the_same_modules():
    """Older configs (YOLO11CSPDarknet / YOLO11PAFPN with arch= and width-1.0 out_channels) still build."""
    from convnextv2_yolo.backbones import YOLO11CSPDarknet, YOLOCSPDarknet
    from convnextv2_yolo.necks import YOLO11PAFPN, YOLOPAFPN
    with pytest.warns(FutureWarning, match='YOLOCSPDarknet'):
        old = YOLO11CSPDarknet(arch='yolov8', deepen_factor=0.67, widen_factor=0.75, max_channels=768)
    assert _shapes(old) == _shapes(YOLOCSPDarknet('yolov8', scale='m'))
    with pytest.warns(FutureWarning, match='YOLOPAFPN'):
        old = YOLO11PAFPN([80, 160, 320], out_channels=[256, 512, 1024], deepen_factor=0.5, widen_factor=1.0,
                          max_channels=512, c3k_all=True, sppf_c2psa=True)
    new = YOLOPAFPN([80, 160, 320], scale='m', sppf_c2psa=True)
    assert old.out_channels == new.out_channels == [256, 512, 512] and _shapes(old) == _shapes(new)
    from convnextv2_yolo.dense_heads import YOLO11Head, YOLOHead
    with pytest.warns(FutureWarning, match='YOLOHead'):
        old = YOLO11Head(num_classes=3, in_channels=[64, 128, 256], cls_branch='yolov8')
    assert isinstance(old, YOLOHead)
    assert _shapes(old) == _shapes(YOLOHead(num_classes=3, in_channels=[64, 128, 256], cls_branch='yolov8'))


def test_deprecated_names_take_scale_and_both_family_names():
    """Old names with new arguments: scale= on the alias, and arch= next to version= (effective-config dumps of
    old configs write both); users see the deprecation (FutureWarning is shown by default)."""
    import warnings

    from convnextv2_yolo.backbones import YOLO11CSPDarknet, YOLOCSPDarknet
    from convnextv2_yolo.necks import YOLO11PAFPN, YOLOPAFPN
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', FutureWarning)
        neck = YOLO11PAFPN([64, 128, 256], scale='n')
        assert _shapes(neck) == _shapes(YOLOPAFPN([64, 128, 256], scale='n'))
        assert YOLO11CSPDarknet(arch='yolov8', version=None, scale='n').version == 'yolov8'
        assert _shapes(YOLO11CSPDarknet(arch='yolo11', version='yolo11', scale='n')) == \
            _shapes(YOLOCSPDarknet(scale='n'))
        with pytest.raises(ValueError, match="arch='yolov8'.*version='yolo11' differ"):
            YOLO11CSPDarknet(arch='yolov8', version='yolo11', scale='n')
    assert issubclass(FutureWarning, Warning) and not issubclass(FutureWarning, DeprecationWarning)


def test_auto_channels_need_the_detector():
    """'auto' is resolved by YOLODetector; a module built alone says so instead of misreading the string."""
    from convnextv2_yolo.dense_heads import YOLOHead
    from convnextv2_yolo.necks import YOLOPAFPN
    with pytest.raises(ValueError, match="in_channels='auto' is resolved by YOLODetector"):
        YOLOPAFPN('auto', scale='n')
    with pytest.raises(ValueError, match="sppf_c2psa='auto'"):
        YOLOPAFPN([64, 128, 256], scale='n', sppf_c2psa='auto')
    with pytest.raises(ValueError, match="YOLOHead: in_channels='auto'"):
        YOLOHead(num_classes=3, in_channels='auto')


def test_detector_reads_head_channels_from_the_neck():
    from mmdet.registry import MODELS
    from mmengine.registry import init_default_scope
    init_default_scope('mmdet')
    model = MODELS.build(dict(
        type='YOLODetector',
        backbone=dict(type='ConvNeXtV2', arch='atto'),
        neck=dict(type='YOLOPAFPN', scale='s', in_channels='auto', sppf_c2psa='auto'),
        bbox_head=dict(type='YOLOHead', num_classes=3)))  # in_channels left out: 'auto'
    assert model.neck.in_channels == [80, 160, 320] and hasattr(model.neck, 'c2psa')
    assert model.bbox_head.in_channels == model.neck.out_channels == [128, 256, 512]
