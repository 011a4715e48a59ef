"""YOLO26: blocks, backbone/neck layout, the end-to-end head, sizes, and outputs equal to the reference's.

The reference comparison runs the reference (Ultralytics 8.4) in its own Python
(tests/helpers/reference_yolo26.py) and is skipped when that Python is absent; the rest needs
nothing but this package.
"""
import math
import os
import os.path as osp

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from convnextv2_yolo.dense_heads import YOLOE2EHead, YOLOHead, topk_detections
from convnextv2_yolo.layers import SPPF, YOLO_SCALES, Bottleneck, C3k, C3k2, PSABlock
from convnextv2_yolo.utils.complexity import count_flops, count_params
from tests.helpers.modules import build, load_cfg, randomize
from tests.helpers.paths import ROOT
from tests.helpers.processes import PY, run_tool

# ultralytics/cfg/models/26/yolo26.yaml, 8.4.190: the training model (both head branches), 80 classes;
# GFLOPs as the reference prints them (train-mode profile: both branches) at 640x640
REFERENCE = dict(n=(2_572_280, 6.2), s=(10_009_784, 23.1), m=(21_896_248, 75.6), l=(26_299_704, 94.2),
                 x=(58_993_368, 210.1))
# the one-to-one half of the head (spec: head.py, deepcopy of cv2 / cv3)
O2O_PARAMS = dict(n=154_828, s=496_892, m=1_460_988, l=1_460_988, x=3_220_476)
NECK_OUT = dict(n=[64, 128, 256], s=[128, 256, 512], m=[256, 512, 512], l=[256, 512, 512], x=[384, 768, 768])
# the reference's Python (Ultralytics installed), beside the clone by default
REF_PYTHON = os.environ.get('CONVNEXTV2_YOLO_REFERENCE_PYTHON', osp.join(osp.dirname(ROOT), 'refvenv', 'bin', 'python'))


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


# ----------------------------------------------------------------------------- blocks
def test_sppf_yolo26_residual_without_cv1_activation():
    m = randomize(SPPF(32, 32, k=5, n=3, shortcut=True, cv1_act=False))
    assert isinstance(m.cv1.act, nn.Identity) and m.add and m.n == 3
    x = torch.randn(2, 32, 12, 12)
    conv = lambda c, t, act: (lambda y: F.silu(y) if act else y)(  # noqa: E731
        F.batch_norm(F.conv2d(t, c.conv.weight), c.bn.running_mean, c.bn.running_var, c.bn.weight, c.bn.bias,
                     False, 0.0, 1e-3))
    ys = [conv(m.cv1, x, False)]
    for _ in range(3):
        ys.append(F.max_pool2d(ys[-1], 5, 1, 2))
    expected = conv(m.cv2, torch.cat(ys, 1), True) + x
    with torch.no_grad():
        torch.testing.assert_close(m(x), expected, rtol=1e-5, atol=1e-5)
    # n poolings change cv2's input; no residual when the channels differ
    assert SPPF(32, 16, n=2, shortcut=True).cv2.conv.in_channels == 16 * 3
    assert not SPPF(32, 16, shortcut=True).add


def test_sppf_defaults_are_yolo11s():
    m = SPPF(32, 32)
    assert isinstance(m.cv1.act, nn.SiLU) and not m.add and m.n == 3
    assert [k for k in m.state_dict()] == [k for k in SPPF(32, 32, n=3, shortcut=True, cv1_act=False).state_dict()]


def test_c3k2_attention_blocks():
    m = C3k2(64, 128, n=1, c3k=True, e=0.5, attn=True)  # the reference's positional order: attn 6th
    assert m.c == 64 and len(m.m) == 1
    block = m.m[0]
    assert isinstance(block, nn.Sequential) and isinstance(block[0], Bottleneck) and isinstance(block[1], PSABlock)
    assert block[0].add and block[0].cv1.conv.kernel_size == (3, 3) and block[0].cv1.conv.out_channels == 32
    assert block[1].attn.num_heads == 1 and block[1].add  # max(64 // 64, 1)
    assert C3k2(256, 256, 1, False, 0.5, True).m[0][1].attn.num_heads == 2
    assert isinstance(C3k2(64, 64, 1, True).m[0], C3k)  # without attn, c3k as before
    with torch.no_grad():
        assert m.eval()(torch.randn(1, 64, 8, 8)).shape == (1, 128, 8, 8)


# ----------------------------------------------------------------------------- layout and sizes
@pytest.mark.parametrize('scale', list(REFERENCE))
def test_params_flops_and_layout(scale):
    cfg = load_cfg(scale)
    assert cfg.model.backbone.scale == cfg.model.neck.scale == scale
    assert YOLO_SCALES['yolo26'][scale] == YOLO_SCALES['yolo11'][scale]
    model = build(cfg, meta=True)
    head = model.bbox_head
    assert type(head) is YOLOE2EHead and model.neck.out_channels == NECK_OUT[scale] == head.in_channels
    params, gflops = REFERENCE[scale]
    assert count_params(model) == params
    assert sum(p.numel() for n, p in head.named_parameters() if n.startswith('one2one_')) == O2O_PARAMS[scale]
    assert count_flops(model, (3, 640, 640)) / 1e9 == pytest.approx(gflops, rel=0.01)
    sppf = model.backbone.stage4[2]
    assert sppf.add and isinstance(sppf.cv1.act, nn.Identity) and sppf.n == 3
    neck = model.neck
    for layer in (*neck.top_down_layers, neck.bottom_up_layers[0]):  # rows 13/16/19: C3k at every scale
        assert all(isinstance(b, C3k) for b in layer.m)
        assert len(layer.m) == (2 if scale in 'lx' else 1)
    last = neck.bottom_up_layers[1]  # row 22: one Bottleneck + PSABlock, e=0.5
    assert len(last.m) == 1 and isinstance(last.m[0][1], PSABlock) and last.c == NECK_OUT[scale][2] // 2
    assert head.reg_convs[0][-1].out_channels == 4 and isinstance(head.dfl, nn.Identity)
    assert head.reg_convs[0][0].conv.out_channels == max(16, NECK_OUT[scale][0] // 4, 4)


@pytest.mark.parametrize('arch', ['atto', 'femto', 'nano', 'tiny'])
def test_convnextv2_yolo26_configs(arch):
    """The YOLO26 neck and head after ConvNeXt V2 (their YOLO11 configs but for the model base)."""
    name = f'yolo26_convnextv2-{arch}_fcmae_8xb16-300e_coco.py'
    cfg = load_cfg(None, 'convnextv2_yolo', name)
    yolo11 = load_cfg(None, 'convnextv2_yolo', name.replace('yolo26', 'yolo11'))
    assert cfg.model.backbone == yolo11.model.backbone and cfg.model.neck.scale == yolo11.model.neck.scale
    assert cfg.model.neck.version == 'yolo26' and cfg.model.bbox_head.type == 'YOLOE2EHead'
    if arch != 'atto':
        return  # one build is enough (ConvNeXt V2 cannot be built on the meta device)
    model = build(cfg)
    assert model.neck.in_channels == [80, 160, 320] and model.neck.sppf.n == 3
    assert isinstance(model.neck.sppf.cv1.act, nn.Identity) and hasattr(model.neck, 'c2psa')
    model.eval()
    with torch.no_grad():
        outs = model(torch.rand(1, 3, 64, 96), mode='tensor')
    assert len(outs) == 4 and tuple(outs[3][0].shape) == (1, 4, 8, 12)


YOLO26_CONFIGS = [('yolo26', f'yolo26_{s}_8xb16-500e_coco.py') for s in REFERENCE] + [
    ('convnextv2_yolo', f'yolo26_convnextv2-{a}_fcmae_8xb16-300e_coco.py') for a in ('atto', 'femto', 'nano', 'tiny')]


@pytest.mark.parametrize('folder,name', YOLO26_CONFIGS, ids=[n for _, n in YOLO26_CONFIGS])
def test_configs_state_the_training(folder, name):
    """The reference's E2ELoss settings are written in every YOLO26 config, not left to code defaults:
    the assigners (o2m topk 10; o2o topk 7 then 1; alpha 0.5, beta 6, eps 1e-9, YOLO11's 16 px
    candidate enlargement), the distance L1 loss (gain 1.5) and the per-epoch schedule hook."""
    cfg = load_cfg(None, folder, name)
    yolo11 = load_cfg(None, 'yolo11', 'yolo11_n_8xb16-500e_coco.py').model.train_cfg.assigner
    train_cfg = cfg.model.train_cfg
    assert yolo11.min_gt_size == 16
    common = dict(type='BatchTaskAlignedAssigner', alpha=0.5, beta=6.0, eps=1e-9, min_gt_size=yolo11.min_gt_size)
    assert train_cfg.assigner == dict(common, topk=10)
    assert train_cfg.o2o_assigner == dict(common, topk=7, topk2=1)
    head = cfg.model.bbox_head
    assert head.type == 'YOLOE2EHead' and head.reg_max == 1 and head.o2m_weight == 0.8
    assert head.loss_l1 == dict(type='YOLODistanceL1Loss', reduction='sum', loss_weight=1.5)
    assert head.loss_bbox.loss_weight == 7.5 and head.loss_cls.loss_weight == 0.5
    hooks = [h for h in cfg.custom_hooks if h.type == 'E2ELossScheduleHook']
    assert hooks == [dict(type='E2ELossScheduleHook', start=0.8, final=0.1)]
    assert len(cfg.custom_hooks) > 1  # the recipe's hooks (EMA, close mosaic, class check) are kept


def test_head_trains_with_the_e2e_loss():
    """The config's head: YOLOE2EHeadLossMixin first in the MRO, the distance L1 loss, both assigners."""
    from convnextv2_yolo.dense_heads.yolo_e2e_head_loss import YOLOE2EHeadLossMixin
    from convnextv2_yolo.losses import YOLODistanceL1Loss
    assert YOLOE2EHead.__mro__[1] is YOLOE2EHeadLossMixin
    model = build(load_cfg('n'), meta=True)
    head = model.bbox_head
    assert isinstance(head.loss_l1, YOLODistanceL1Loss) and head.loss_l1.loss_weight == 1.5
    assert (head.assigner.topk, head.assigner.topk2, head.o2o_assigner.topk, head.o2o_assigner.topk2) == (
        10, None, 7, 1)
    assert YOLOE2EHead.loss_by_feat is YOLOE2EHeadLossMixin.loss_by_feat


# ----------------------------------------------------------------------------- head
def small_head(**kwargs):
    kwargs.setdefault('test_cfg', dict(end2end=True, max_per_img=300, score_thr=0.001))
    head = YOLOE2EHead(num_classes=5, in_channels=[16, 32, 64], **kwargs)
    head.init_weights()
    return head


def test_head_initial_weights_and_branches():
    head = small_head(init_cfg=dict(type='Normal', layer='Conv2d', std=0.01))  # random draws per branch
    sd = head.state_dict()
    for key, value in sd.items():
        if key.startswith('one2one_'):
            twin = key.replace('one2one_reg_convs', 'reg_convs').replace('one2one_cls_convs', 'cls_convs')
            torch.testing.assert_close(value, sd[twin], rtol=0, atol=0)
    for i, stride in enumerate((8, 16, 32)):
        for prefix in ('', 'one2one_'):
            assert torch.all(sd[f'{prefix}reg_convs.{i}.2.bias'] == 2.0)
            torch.testing.assert_close(sd[f'{prefix}cls_convs.{i}.2.bias'],
                                       torch.full((5, ), math.log(5 / 5 / (640 / stride)**2)))
    assert head.o2m_weight == 0.8 and head.assigner is None and head.o2o_assigner is None
    assert not any('dfl' in k for k in sd)
    with pytest.raises(ValueError, match='reg_max must be 1'):
        YOLOE2EHead(num_classes=5, in_channels=[16, 32, 64], reg_max=16)
    for bad in (1.5, -0.1):
        with pytest.raises(ValueError, match=r'o2m_weight must be in \[0, 1\]'):
            YOLOE2EHead(num_classes=5, in_channels=[16, 32, 64], o2m_weight=bad)
    with pytest.raises(ValueError, match='loss_l1 is required'):
        YOLOE2EHead(num_classes=5, in_channels=[16, 32, 64], loss_l1=None)
    with pytest.raises(ValueError, match='loss_dfl must be None'):
        YOLOE2EHead(num_classes=5, in_channels=[16, 32, 64], loss_dfl=dict(type='YOLODFLLoss'))


def test_head_assigners_from_train_cfg():
    assigner = dict(type='BatchTaskAlignedAssigner', topk=10)
    head = small_head(train_cfg=dict(assigner=assigner, o2o_assigner=dict(assigner, topk=7)), o2m_weight=0.5)
    assert (head.assigner.topk, head.o2o_assigner.topk, head.o2m_weight) == (10, 7, 0.5)


def test_head_o2o_branch_detached_in_training():
    head = small_head().train()
    feats = [torch.randn(2, c, s, s, requires_grad=True) for c, s in zip([16, 32, 64], [8, 4, 2])]
    cls, box, o2o_cls, o2o_box = head(feats)
    assert [tuple(t.shape) for t in o2o_box] == [(2, 4, 8, 8), (2, 4, 4, 4), (2, 4, 2, 2)]
    assert tuple(o2o_cls[0].shape) == (2, 5, 8, 8)
    sum(t.sum() for t in o2o_cls + o2o_box).backward()
    assert all(f.grad is None for f in feats)  # only the one-to-one convs learn from it
    assert head.one2one_cls_convs[0][-1].weight.grad is not None
    sum(t.sum() for t in cls + box).backward()
    assert all(f.grad is not None for f in feats)
    head.eval()  # eval: the same features, not detached (no graph needed), same values as o2m at init
    with torch.no_grad():
        outs = head([f.detach() for f in feats])
    torch.testing.assert_close(outs[2][0], outs[0][0])


def test_topk_detections_multi_label():
    """The reference's two-stage top-k: one anchor may give several (anchor, class) pairs."""
    scores = torch.tensor([[[0.9, 0.8, 0.1], [0.7, 0.1, 0.1], [0.2, 0.3, 0.05], [0.6, 0.05, 0.5],
                            [0.1, 0.1, 0.1]]])
    boxes = torch.arange(20.).view(1, 5, 4)
    dets = topk_detections(boxes, scores, max_det=4)
    assert dets.shape == (1, 4, 6)
    assert dets[0, :, 4].tolist() == pytest.approx([0.9, 0.8, 0.7, 0.6])
    assert dets[0, :, 5].tolist() == [0, 1, 0, 0]
    assert dets[0, :2, :4].tolist() == [[0, 1, 2, 3]] * 2 and dets[0, 2, :4].tolist() == [4, 5, 6, 7]
    # the pairs come from the 4 best anchors only: anchor 4 (max 0.1) never appears; 0.5 (anchor 3, class 2)
    # is 5th and dropped
    assert topk_detections(boxes, scores, max_det=10).shape == (1, 5, 6)  # k = min(max_det, anchors)


def test_predict_end2end_and_nms_paths():
    head = randomize(small_head())  # random biases too: scores spread over (0, 1)
    feats = [torch.randn(1, c, s, s) for c, s in zip([16, 32, 64], [16, 8, 4])]
    with torch.no_grad():
        outs = head(feats)
        # distinct one-to-one outputs, so that the path taken shows
        outs = (outs[0], outs[1], [t * 1.5 + 0.3 for t in outs[2]], [t + 0.5 for t in outs[3]])
        meta = dict(scale_factor=(2.0, 2.0), ori_shape=(64, 64), pad_param=[0., 0., 0., 0.])
        dense = head.predict_dense(outs[2], outs[3], max_det=50)
        thr = float(dense[0, 24, 4])  # strictly above: the first 24 stay
        res = head.predict_by_feat(*outs, batch_img_metas=[meta],
                                   cfg=dict(end2end=True, max_per_img=50, score_thr=thr), rescale=True)[0]
        keep = dense[0, :, 4] > thr
        assert keep.sum() == 24 == len(res)
        torch.testing.assert_close(res.scores, dense[0, keep, 4])
        torch.testing.assert_close(res.labels, dense[0, keep, 5].long())
        torch.testing.assert_close(res.bboxes, (dense[0, keep, :4] / 2).clamp(0, 64))
        # end2end=False: the one-to-many branch through YOLOHead's NMS path, exactly
        nms_cfg = dict(end2end=False, score_thr=0.01, nms_pre=1000, nms=dict(type='nms', iou_threshold=0.7),
                       max_per_img=50, multi_label=True)
        got = head.predict_by_feat(*outs, batch_img_metas=[meta], cfg=nms_cfg, rescale=True)[0]
        expected = YOLOHead.predict_by_feat(head, outs[0], outs[1], batch_img_metas=[meta], cfg=nms_cfg,
                                            rescale=True)[0]
    for key in ('bboxes', 'scores', 'labels'):
        torch.testing.assert_close(got.get(key), expected.get(key), rtol=0, atol=0)
    # boxes decoded without any activation or clamp: anchor -/+ distance * stride
    points, strides = head.get_priors([t.shape[-2:] for t in outs[3]], torch.float32, torch.device('cpu'))
    dist = torch.cat([t.flatten(2) for t in outs[3]], 2)[0].T
    decoded = torch.cat([points - dist[:, :2], points + dist[:, 2:]], 1) * strides
    anchor = (decoded[:, None, :] == dense[0, :1, None, :4]).all(-1).nonzero()
    assert len(anchor) == 1


# ----------------------------------------------------------------------------- against the reference
@pytest.fixture(scope='module')
def reference_outputs(tmp_path_factory):
    if not osp.isfile(REF_PYTHON):
        pytest.skip(f'no reference Python at {REF_PYTHON} (CONVNEXTV2_YOLO_REFERENCE_PYTHON)')
    out = str(tmp_path_factory.mktemp('ref26'))
    run_tool([REF_PYTHON, 'tests/helpers/reference_yolo26.py', out, 'n', 's'], OMP_NUM_THREADS='1')
    return out


def _flat(maps):
    return torch.cat([m.flatten(2) for m in maps], 2)


@pytest.mark.parametrize('scale', ['n', 's'])
def test_outputs_equal_the_reference(reference_outputs, scale, tmp_path):
    """The reference's trainer-style last.pt (network under 'ema', 'model': None), converted and loaded
    into our config's model: raw outputs of both branches, the default decoded (one-to-many) output and
    the end-to-end (B, 300, 6) detections equal the reference's within 1e-4 (float64 on both sides, so
    that near-equal scores keep their order; in float32 the raw outputs agree to 1e-3 of their range:
    the rounding of two implementations, amplified through the depth of a random model)."""
    from convnextv2_yolo import converters as conv
    src = osp.join(reference_outputs, f'yolo26{scale}_last.pt')
    out = conv.convert(src, str(tmp_path / 'converted.pth'))
    meta = out['meta']
    assert (meta['version'], meta['scale'], meta['source_entry'], meta['architecture_verified']) == (
        'yolo26', scale, 'ema', True)
    ref = torch.load(osp.join(reference_outputs, f'ref_out_{scale}.pt'), map_location='cpu', weights_only=True)
    assert ref['num_params'] == REFERENCE[scale][0] and ref['end2end_default'] is False
    model = build(load_cfg(scale))
    model.load_state_dict(out['state_dict'], strict=True)
    model.eval()
    for precision, dtype in (('fp64', torch.float64), ('fp32', torch.float32)):
        net = model.to(dtype)
        with torch.no_grad():
            cls, box, o2o_cls, o2o_box = net.bbox_head(net.extract_feat(ref['x'].to(dtype)))
            pairs = {'one2many_boxes': box, 'one2many_scores': cls, 'one2one_boxes': o2o_box,
                     'one2one_scores': o2o_cls}
            for key, ours in pairs.items():
                expected = ref[f'{precision}/{key}']
                if precision == 'fp64':
                    torch.testing.assert_close(_flat(ours), expected, rtol=0, atol=1e-4)
                else:  # float32 rounding: our Attention scales q^T k, the reference q (same maths)
                    assert (_flat(ours) - expected).abs().max() <= 1e-3 * expected.abs().max()
            if precision == 'fp32':
                continue
            e2e = net.bbox_head.predict_dense(o2o_cls, o2o_box, max_det=300)
            expected = ref['fp64/e2e']
            assert e2e.shape == expected.shape == (2, 300, 6)
            torch.testing.assert_close(e2e, expected, rtol=0, atol=1e-4)
            boxes, scores = net.bbox_head.decode_dense(cls, box)  # float32 (as YOLOHead)
            xywh = torch.cat([(boxes[..., :2] + boxes[..., 2:]) / 2, boxes[..., 2:] - boxes[..., :2]], -1)
            decoded = torch.cat([xywh, scores], -1).transpose(1, 2).double()
            torch.testing.assert_close(decoded, ref['fp64/decoded_o2m'], rtol=1e-6, atol=1e-4)


def test_plain_state_dict_of_the_reference(reference_outputs):
    from convnextv2_yolo import converters as conv
    meta = conv.convert(osp.join(reference_outputs, 'yolo26n_state_dict.pth'))['meta']
    assert (meta['version'], meta['scale'], meta['architecture_verified']) == ('yolo26', 'n', False)
    res = run_tool([PY, 'tools/model_converters/ultralytics_to_mmdet.py',
                    osp.join(reference_outputs, 'yolo26s_last.pt'), osp.join(reference_outputs, 's.pth')])
    assert 'yolo26-s, 708 tensors, 80 classes' in res.stdout
