"""The Ultralytics -> mmdet checkpoint converter.

A reference-layout model (``model.<i>.*`` as the reference's yaml builds it,
with Concat/Upsample layers and a Detect head) is assembled here
independently of our backbone/neck/head code, saved both as a plain state
dict and as a reference-style pickled ``.pt`` (classes living in a fake
``ultralytics`` package that is removed before loading), converted, loaded
into our detector, and the outputs are compared.
"""
import collections
import copy
import datetime
import math
import os
import os.path as osp
import pathlib
import sys
import types
from typing import List, Tuple

import numpy as np
import pytest
import torch
import torch.nn as nn

from convnextv2_yolo import converters as conv
from convnextv2_yolo.layers import C2PSA, SPPF, C2f, C3k2, Conv, DWConv
from convnextv2_yolo.layers.blocks import Attention, Bottleneck
from tests.helpers.paths import ROOT
from tests.helpers.processes import PY, run_tool

TOOL = osp.join(ROOT, 'tools', 'model_converters', 'ultralytics_to_mmdet.py')


def _cli(*args: str) -> Tuple[int, List[str]]:
    """Run the command line; its exit status and the lines it wrote to stderr (without the stack's warnings)."""
    res = run_tool([PY, TOOL, *args], check=False)
    return res.returncode, [line for line in res.stderr.splitlines() if line.startswith(('error: ', 'note: '))]


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


# ----------------------------------------------------------------------------- reference layout
# [from, repeats, module, args] as in the reference's yolo11.yaml / yolov8.yaml.
YOLO11_YAML = [
    [-1, 1, 'Conv', [64, 3, 2]], [-1, 1, 'Conv', [128, 3, 2]], [-1, 2, 'C3k2', [256, False, 0.25]],
    [-1, 1, 'Conv', [256, 3, 2]], [-1, 2, 'C3k2', [512, False, 0.25]], [-1, 1, 'Conv', [512, 3, 2]],
    [-1, 2, 'C3k2', [512, True]], [-1, 1, 'Conv', [1024, 3, 2]], [-1, 2, 'C3k2', [1024, True]],
    [-1, 1, 'SPPF', [1024, 5]], [-1, 2, 'C2PSA', [1024]],
    [-1, 1, 'Upsample', []], [[-1, 6], 1, 'Concat', []], [-1, 2, 'C3k2', [512, False]],
    [-1, 1, 'Upsample', []], [[-1, 4], 1, 'Concat', []], [-1, 2, 'C3k2', [256, False]],
    [-1, 1, 'Conv', [256, 3, 2]], [[-1, 13], 1, 'Concat', []], [-1, 2, 'C3k2', [512, False]],
    [-1, 1, 'Conv', [512, 3, 2]], [[-1, 10], 1, 'Concat', []], [-1, 2, 'C3k2', [1024, True]],
    [[16, 19, 22], 1, 'Detect', []],
]
YOLOV8_YAML = [
    [-1, 1, 'Conv', [64, 3, 2]], [-1, 1, 'Conv', [128, 3, 2]], [-1, 3, 'C2f', [128, True]],
    [-1, 1, 'Conv', [256, 3, 2]], [-1, 6, 'C2f', [256, True]], [-1, 1, 'Conv', [512, 3, 2]],
    [-1, 6, 'C2f', [512, True]], [-1, 1, 'Conv', [1024, 3, 2]], [-1, 3, 'C2f', [1024, True]],
    [-1, 1, 'SPPF', [1024, 5]],
    [-1, 1, 'Upsample', []], [[-1, 6], 1, 'Concat', []], [-1, 3, 'C2f', [512]],
    [-1, 1, 'Upsample', []], [[-1, 4], 1, 'Concat', []], [-1, 3, 'C2f', [256]],
    [-1, 1, 'Conv', [256, 3, 2]], [[-1, 12], 1, 'Concat', []], [-1, 3, 'C2f', [512]],
    [-1, 1, 'Conv', [512, 3, 2]], [[-1, 9], 1, 'Concat', []], [-1, 3, 'C2f', [1024]],
    [[15, 18, 21], 1, 'Detect', []],
]
# yolo26.yaml: YOLO11's rows but for SPPF [1024, 5, 3, True] (3 poolings, residual, cv1 without
# activation), C3k2 c3k=True at 13/16/19 and row 22 C3k2(1024, True, 0.5, True) once (attention)
YOLO26_YAML = copy.deepcopy(YOLO11_YAML)
YOLO26_YAML[9] = [-1, 1, 'SPPF', [1024, 5, 3, True]]
for _i in (13, 16, 19):
    YOLO26_YAML[_i] = [YOLO26_YAML[_i][0], 2, 'C3k2', [YOLO26_YAML[_i][3][0], True]]
YOLO26_YAML[22] = [-1, 1, 'C3k2', [1024, True, 0.5, True]]
SCALES = {'yolo11': {'n': (0.5, 0.25, 1024), 's': (0.5, 0.5, 1024)},
          'yolov8': {'n': (0.33, 0.25, 1024)},
          'yolo26': {'n': (0.5, 0.25, 1024), 's': (0.5, 0.5, 1024)}}


class Concat(nn.Module):

    def forward(self, xs):
        return torch.cat(xs, 1)


class DFL(nn.Module):

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(16, 1, 1, bias=False).requires_grad_(False)
        self.conv.weight.data[:] = torch.arange(16, dtype=torch.float).view(1, 16, 1, 1)


class Detect(nn.Module):
    """Raw outputs per level: cat(box distribution logits, class logits); with ``end2end`` (YOLO26:
    reg_max 1, no DFL) those of the one-to-many branch, then those of the one-to-one copies."""

    def __init__(self, nc, ch, v8, end2end=False):
        super().__init__()
        reg_max = 1 if end2end else 16
        c2, c3 = max(16, ch[0] // 4, 4 * reg_max), max(ch[0], min(nc, 100))
        self.reg_max = reg_max
        self.cv2 = nn.ModuleList(
            nn.Sequential(Conv(x, c2, 3), Conv(c2, c2, 3), nn.Conv2d(c2, 4 * reg_max, 1)) for x in ch)
        if v8:
            self.cv3 = nn.ModuleList(
                nn.Sequential(Conv(x, c3, 3), Conv(c3, c3, 3), nn.Conv2d(c3, nc, 1)) for x in ch)
        else:
            self.cv3 = nn.ModuleList(
                nn.Sequential(nn.Sequential(DWConv(x, x, 3), Conv(x, c3, 1)),
                              nn.Sequential(DWConv(c3, c3, 3), Conv(c3, c3, 1)), nn.Conv2d(c3, nc, 1)) for x in ch)
        self.dfl = nn.Identity() if end2end else DFL()
        if end2end:
            self.one2one_cv2, self.one2one_cv3 = copy.deepcopy(self.cv2), copy.deepcopy(self.cv3)

    def forward(self, xs):
        out = [torch.cat((box(x), cls(x)), 1) for x, box, cls in zip(xs, self.cv2, self.cv3)]
        if hasattr(self, 'one2one_cv2'):
            out += [torch.cat((box(x), cls(x)), 1) for x, box, cls in zip(xs, self.one2one_cv2, self.one2one_cv3)]
        return out


class DetectionModel(nn.Module):
    """The reference's layer list, built from the yaml with its scaling rules."""

    def __init__(self, version, scale, nc=80, activation=None):
        super().__init__()
        depth, width, max_ch = SCALES[version][scale]
        yaml = {'yolo11': YOLO11_YAML, 'yolov8': YOLOV8_YAML, 'yolo26': YOLO26_YAML}[version]
        chs, layers, self.froms = [3], [], []
        for f, n, name, args in yaml:
            n = max(round(n * depth), 1) if n > 1 else n
            c1 = chs[f] if isinstance(f, int) else None
            if name in ('Conv', 'C3k2', 'C2f', 'SPPF', 'C2PSA'):
                c2 = math.ceil(min(args[0], max_ch) * width / 8) * 8
                if name == 'Conv':
                    m = Conv(c1, c2, *args[1:])
                elif name == 'SPPF':  # the reference's parse_model: SiLU after cv1 for short (legacy) rows only
                    m = SPPF(c1, c2, *args[1:], cv1_act=len(args) < 3)
                elif name == 'C2PSA':
                    m = C2PSA(c1, c2, n)
                elif name == 'C2f':
                    m = C2f(c1, c2, n, *args[1:])
                else:
                    c3k = args[1] or scale in 'mlx'
                    m = C3k2(c1, c2, n, c3k, *args[2:])
            elif name == 'Upsample':
                m, c2 = nn.Upsample(None, 2, 'nearest'), c1
            elif name == 'Concat':
                m, c2 = Concat(), sum(chs[i if i < 0 else i + 1] for i in f)
            else:
                m, c2 = Detect(nc, [chs[i + 1] for i in f], version == 'yolov8', version == 'yolo26'), None
            m.i, m.f, m.type = len(layers), f, name  # recorded on every layer, as the reference does
            layers.append(m)
            self.froms.append(f)
            chs.append(c2)
        self.model = nn.Sequential(*layers)
        self.model[-1].stride = self.stride = torch.tensor([8., 16., 32.])
        self.names = {i: f'class{i}' for i in range(nc)}
        self.yaml = {'scale': scale, 'nc': nc}
        if activation is not None:
            self.yaml['activation'] = activation

    def forward(self, x):
        outs = []
        for f, m in zip(self.froms, self.model):
            if isinstance(f, list):
                x = [x if i == -1 else outs[i] for i in f]
            x = m(x)
            outs.append(x)
        return x


def randomize(model, seed=0):
    """Random weights (He-scaled, so the signal neither vanishes nor explodes
    through the depth) and BN statistics, all fp16-representable so that the
    reference's half() save is lossless; eval mode."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if name.endswith('num_batches_tracked') or name.endswith('dfl.conv.weight'):
                continue
            if name.endswith('running_var') or name.endswith('bn.weight'):
                t.copy_(torch.rand(t.shape, generator=g) + 0.5)
            elif t.dim() == 4:  # conv kernels
                t.copy_(torch.randn(t.shape, generator=g) * (2 / t[0].numel())**0.5)
            else:  # BN bias / running_mean, conv bias
                t.copy_(torch.randn(t.shape, generator=g) * 0.1)
            t.copy_(t.half().float())
    return model.eval()


FAKE_MODULES = {
    DetectionModel: 'ultralytics.nn.tasks', Detect: 'ultralytics.nn.modules.head', DFL: 'ultralytics.nn.modules.block',
    Concat: 'ultralytics.nn.modules.conv', Conv: 'ultralytics.nn.modules.conv', DWConv: 'ultralytics.nn.modules.conv',
}


def save_like_reference(model, path, ema=None, modules=None, trainer=False):
    """torch.save a {'model': DetectionModel, 'ema': ...} whose classes live in a fake ``ultralytics``.

    ``modules`` ({class: 'module.path'}) puts classes elsewhere than :data:`FAKE_MODULES` /
    ``ultralytics.nn.modules.block`` (the default for our layer classes). ``trainer``: as the
    reference's trainer saves last.pt / best.pt during training, ``'model': None`` and the network
    (``model``) under ``'ema'``."""
    where = {**FAKE_MODULES, **(modules or {})}
    fake = {}
    model = copy.deepcopy(model).half()  # the reference saves fp16
    ema = copy.deepcopy(ema).half() if ema is not None else None
    renamed = {}
    for m in [*model.modules(), *(ema.modules() if ema is not None else [])]:
        cls = type(m)
        if cls.__module__.startswith('torch.nn') and cls not in where:
            continue
        mod = where.get(cls, 'ultralytics.nn.modules.block')
        for i in range(mod.count('.') + 1):  # the module and its parent packages
            name = mod.rsplit('.', i)[0]
            fake.setdefault(name, types.ModuleType(name))
        if cls not in renamed:
            renamed[cls] = type(cls.__name__, (cls, ), {'__module__': mod, '__qualname__': cls.__name__})
            setattr(fake[mod], cls.__name__, renamed[cls])
        m.__class__ = renamed[cls]
    ckpt = {'date': datetime.datetime.now().isoformat(), 'version': '8.3.0', 'license': 'AGPL-3.0',
            'model': model, 'ema': ema, 'updates': 1000 if ema is not None else None, 'optimizer': None,
            'train_args': {'imgsz': 640, 'save_dir': pathlib.PurePosixPath('runs/detect/train')},
            'train_metrics': {'metrics/mAP50-95(B)': np.float64(0.395)},
            'hooks': {'on_end': model.forward}}  # a bound method: pickled through builtins.getattr
    if trainer:
        ckpt.update(model=None, ema=model, updates=1000, epoch=3)
    sys.modules.update(fake)
    try:
        torch.save(ckpt, path)
    finally:
        for name in fake:
            del sys.modules[name]


@pytest.fixture(scope='module')
def reference_n(tmp_path_factory):
    """yolo11-n reference model and its two file forms."""
    model = randomize(DetectionModel('yolo11', 'n'))
    tmp = tmp_path_factory.mktemp('ultralytics')
    sd_path, pt_path = str(tmp / 'yolo11n_state_dict.pth'), str(tmp / 'yolo11n.pt')
    torch.save(model.state_dict(), sd_path)
    save_like_reference(model, pt_path)
    return model, sd_path, pt_path


def build_ours(version, scale, num_classes=80):
    from mmdet.registry import MODELS
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    cfg = Config.fromfile(conv.config_path(version, scale))
    init_default_scope('mmdet')
    cfg.model.bbox_head.num_classes = num_classes
    return MODELS.build(cfg.model).eval()


def ours_raw_outputs(model, x):
    cls_scores, bbox_dists = model.bbox_head(model.extract_feat(x))
    return [torch.cat((b, c), 1) for c, b in zip(cls_scores, bbox_dists)]


def test_reference_tree_matches_reference_size(reference_n):
    model, _, _ = reference_n
    assert sum(p.numel() for p in model.parameters()) == 2_624_080


@pytest.mark.parametrize('form', ['state_dict', 'pt'])
def test_convert_yolo11_n_same_outputs(reference_n, tmp_path, form):
    ref, sd_path, pt_path = reference_n
    src = sd_path if form == 'state_dict' else pt_path
    dst = str(tmp_path / 'converted.pth')
    out = conv.convert(src, dst, version='yolo11', scale='n')
    assert 'ultralytics' not in sys.modules  # nothing imported a real (or the fake) package
    assert out['meta']['version'] == 'yolo11' and out['meta']['num_classes'] == 80
    if form == 'pt':
        assert out['meta']['source_entry'] == 'model' and out['meta']['ultralytics_version'] == '8.3.0'
        assert out['meta']['dataset_meta']['classes'][:2] == ['class0', 'class1']
    saved = torch.load(dst, map_location='cpu', weights_only=True)  # plain tensors and builtins only
    assert all(v.dtype in (torch.float32, torch.int64) for v in saved['state_dict'].values())

    from mmengine.runner import load_checkpoint
    ours = build_ours('yolo11', 'n')
    load_checkpoint(ours, dst, map_location='cpu', strict=True)  # the path mmdet's load_from takes
    x = torch.randn(1, 3, 96, 128)
    with torch.no_grad():
        expected, got = ref(x), ours_raw_outputs(ours, x)
    assert len(got) == 3
    for e, g in zip(expected, got):
        torch.testing.assert_close(g, e, rtol=1e-4, atol=1e-3)


def test_both_forms_convert_identically(reference_n):
    _, sd_path, pt_path = reference_n
    a = conv.convert(sd_path, check=False)['state_dict']
    b = conv.convert(pt_path, check=False)['state_dict']
    assert list(a) == list(b)
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0)


def test_arch_and_scale_inferred(reference_n):
    _, sd_path, _ = reference_n
    meta = conv.convert(sd_path)['meta']
    assert (meta['version'], meta['scale']) == ('yolo11', 'n')


def test_wrong_scale_names_first_mismatched_key(reference_n, tmp_path):
    _, _, pt_path = reference_n
    with pytest.raises(conv.ConversionError) as e:
        conv.convert(pt_path, str(tmp_path / 'x.pth'), version='yolo11', scale='s')
    msg = str(e.value)
    assert "'backbone.stem.conv.weight'" in msg and "'model.0.conv.weight'" in msg
    assert '(16, 3, 3, 3)' in msg and '(32, 3, 3, 3)' in msg
    assert not os.path.exists(tmp_path / 'x.pth')
    with pytest.raises(conv.ConversionError, match='yolov8'):
        conv.convert(pt_path, version='yolov8', scale='n')


def test_training_checkpoint_uses_ema_and_its_classes(tmp_path):
    """A trained 3-class last.pt: the EMA weights are taken, nc and scale inferred."""
    raw = randomize(DetectionModel('yolo11', 'n', nc=3), seed=2)
    ema = randomize(DetectionModel('yolo11', 'n', nc=3), seed=3)
    src = str(tmp_path / 'last.pt')
    save_like_reference(raw, src, ema=ema)
    out = conv.convert(src, str(tmp_path / 'last.pth'))
    assert out['meta']['source_entry'] == 'ema'
    assert (out['meta']['scale'], out['meta']['num_classes']) == ('n', 3)
    expected = ema.state_dict()
    for key, value in out['state_dict'].items():
        torch.testing.assert_close(value, expected[conv.reference_key(key, 'yolo11')], rtol=0, atol=0)


def test_cli(reference_n, tmp_path):
    _, _, pt_path = reference_n
    dst = str(tmp_path / 'cli.pth')
    assert _cli(pt_path, dst, '--arch', 'yolo11', '--scale', 'n')[0] == 0  # the option keeps its name
    meta = torch.load(dst, map_location='cpu', weights_only=True)['meta']
    assert meta['version'] == meta['arch'] == 'yolo11'  # 'arch': the old key, still written
    rc, err = _cli(pt_path, dst, '--scale', 's')
    assert rc == 1 and len(err) == 1 and 'shape mismatch' in err[0]


def test_old_names_of_version(reference_n, tmp_path):
    """The family was called ``arch`` before (a ConvNeXt V2 size elsewhere): the old names still work."""
    _, sd_path, _ = reference_n
    assert conv.ARCHS is conv.VERSIONS and conv.detect_arch is conv.detect_version
    assert conv.resolve_arch is conv.resolve_version
    with pytest.warns(FutureWarning, match="keyword 'arch' is deprecated, use 'version'"):
        old = conv.convert(sd_path, arch='yolo11', check=False)
    new = conv.convert(sd_path, version='yolo11', check=False)
    assert old['meta'] == new['meta'] and list(old['state_dict']) == list(new['state_dict'])
    with pytest.warns(FutureWarning):
        assert list(conv.convert_state_dict(torch.load(sd_path, weights_only=True), arch='yolo11')) == \
            list(new['state_dict'])
    with pytest.warns(FutureWarning), pytest.raises(conv.ConversionError, match='arch=.*version=.*differ'):
        conv.convert(sd_path, version='yolo11', arch='yolov8', check=False)
    with pytest.raises(conv.ConversionError, match='version must be one of'):
        conv.convert(sd_path, version='yolo12', check=False)


def test_yolov8_n_same_outputs(tmp_path):
    ref = randomize(DetectionModel('yolov8', 'n'), seed=1)
    assert sum(p.numel() for p in ref.parameters()) == 3_157_200
    src, dst = str(tmp_path / 'yolov8n.pt'), str(tmp_path / 'yolov8n.pth')
    save_like_reference(ref, src)
    assert conv.convert(src, dst)['meta']['version'] == 'yolov8'
    ours = build_ours('yolov8', 'n')
    ours.load_state_dict(torch.load(dst, weights_only=True)['state_dict'], strict=True)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        for e, g in zip(ref(x), ours_raw_outputs(ours, x)):
            torch.testing.assert_close(g, e, rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize('version', ['yolo11', 'yolov8', 'yolo26'])
def test_key_mapping_round_trip(version):
    for key in build_ours(version, 'n').state_dict():
        assert conv.map_key(conv.reference_key(key, version), version) == key


def test_key_mapping_and_errors():
    assert conv.map_key('model.23.cv3.1.0.0.conv.weight', 'yolo11') == 'bbox_head.cls_convs.1.0.0.conv.weight'
    assert conv.map_key('model.21.m.0.cv1.bn.bias', 'yolov8') == 'neck.bottom_up_layers.1.m.0.cv1.bn.bias'
    with pytest.raises(conv.ConversionError, match='model.11.foo'):
        conv.map_key('model.11.foo', 'yolo11')
    with pytest.raises(conv.ConversionError, match='one2one_cv2'):
        conv.map_key('model.23.one2one_cv2.0.0.conv.weight', 'yolo11')


class _Evil:

    def __init__(self, payload):
        self.payload = payload

    def __reduce__(self):
        return self.payload


@pytest.mark.parametrize('payload_name', ['os.system', 'builtins.eval', 'builtins.getattr'])
def test_malicious_pickle_refused(tmp_path, payload_name):
    marker = tmp_path / 'pwned'
    payloads = {'os.system': (os.system, (f'touch {marker}', )),
                'builtins.eval': (eval, (f'open({str(marker)!r}, "w")', )),
                'builtins.getattr': (getattr, (collections.OrderedDict, 'fromkeys'))}
    path = str(tmp_path / 'evil.pt')
    torch.save({'model': _Evil(payloads[payload_name]), 'ema': None}, path)
    with pytest.raises(conv.ConversionError, match='refusing'):
        conv.convert(path, check=False)
    assert not marker.exists()


def test_not_a_checkpoint(tmp_path):
    bad = tmp_path / 'bad.pt'
    for content in (b'not a checkpoint at all', bytes(range(256)) * 4, b'', 'a text file\nwith lines\n'.encode()):
        bad.write_bytes(content)
        with pytest.raises(conv.ConversionError, match='bad.pt is not a readable torch checkpoint'):
            conv.convert(str(bad), check=False)
    from mmengine.logging import HistoryBuffer  # what an mmengine checkpoint's message_hub pickles
    mmdet_ckpt = tmp_path / 'epoch_1.pth'
    torch.save(dict(state_dict={'backbone.x': torch.zeros(1)}, message_hub=dict(log=HistoryBuffer())), mmdet_ckpt)
    with pytest.raises(conv.ConversionError, match='an mmdet checkpoint .*not a reference checkpoint'):
        conv.convert(str(mmdet_ckpt), check=False)
    with pytest.raises(FileNotFoundError, match='missing.pt'):
        conv.convert(str(tmp_path / 'missing.pt'))


# ----------------------------------------------------------------------------- architecture checks
YOLO11_N_CONFIG = 'configs/yolo11/yolo11_n_8xb16-500e_coco.py'


def _convs(model):
    return [m for m in model.modules() if isinstance(m, Conv)]


def _silu_to(model, make_act):
    """Replace the SiLU of every Conv (not the act=False ones) by ``make_act()``."""
    for m in _convs(model):
        if isinstance(m.act, nn.SiLU):
            m.act = make_act()
    return model


class BottleneckX(Bottleneck):
    """A Bottleneck under another class name (same names and shapes)."""


class C3k2x(C3k2):
    """A C3k2 under another class name (same names and shapes)."""


class A2C2f(nn.Module):
    """Stands for YOLO12's area-attention block (not part of YOLO11/YOLOv8)."""

    def __init__(self, c1, c2):
        super().__init__()
        self.cv1 = Conv(c1, c2, 1)


def _renamed(module, cls):
    module.__class__ = cls
    return module


def _c3k_flipped(model, index):
    """The C3k2 at ``index`` rebuilt with c3k=True (C3k blocks, other keys and shapes)."""
    old = model.model[index]
    c1, c2 = old.cv1.conv.in_channels, old.cv2.conv.out_channels
    new = C3k2(c1, c2, len(old.m), True, old.c / c2)
    new.i, new.f, new.type = old.i, old.f, old.type
    model.model[index] = new
    return model


def _set(path, value):
    """Mutation setting the attribute at a dotted path of the DetectionModel."""

    def mutate(model):
        owner, _, attr = path.rpartition('.')
        setattr(model.get_submodule(owner), attr, value)
        return model

    return mutate


def _forward_replaced(model):
    conv0 = model.model[0]
    conv0.forward = conv0.forward  # a bound method in the instance dict, as the reference's fuse() leaves
    return model


# (id, version, mutation, place and finding that the message must name)
MISMATCHES = [
    ('relu_deep_in_neck', 'yolo11', _set('model.19.m.0.cv2.act', nn.ReLU()),
     'architecture mismatch at model.19.m.0.cv2.act: ReLU, expected SiLU (our ' + YOLO11_N_CONFIG + ')'),
    ('leaky_relu', 'yolo11', _set('model.4.m.0.cv1.act', nn.LeakyReLU(0.1)),
     'model.4.m.0.cv1.act: LeakyReLU, expected SiLU'),
    ('sppf_cv1_without_act', 'yolo11', _set('model.9.cv1.act', nn.Identity()),
     'model.9.cv1.act: Identity, expected SiLU'),
    ('bottleneck_renamed', 'yolo11', lambda m: (_renamed(m.model[4].m[0], BottleneckX), m)[1],
     'model.4.m.0: BottleneckX, expected Bottleneck'),
    ('shortcut_removed', 'yolo11', _set('model.2.m.0.add', False), 'model.2.m.0.add: False, expected True'),
    ('sppf_k3', 'yolo11', _set('model.9.m', nn.MaxPool2d(3, 1, 1)),
     'model.9.m.kernel_size: 3, expected 5; model.9.m.padding: 1, expected 2'),
    ('bn_eps', 'yolo11', _set('model.16.cv2.bn.eps', 1e-5), 'model.16.cv2.bn.eps: 1e-05, expected 0.001'),
    ('dilated_conv', 'yolo11', lambda m: _set('model.17.conv.padding', (2, 2))(
        _set('model.17.conv.dilation', (2, 2))(m)), 'model.17.conv.dilation: (2, 2), expected (1, 1)'),
    ('upsample_bilinear', 'yolo11', _set('model.11.mode', 'bilinear'),
     "model.11.mode: 'bilinear', expected 'nearest'"),
    ('concat_other_input', 'yolo11', _set('model.12.f', [-1, 4]), 'model.12.f: (-1, 4), expected (-1, 6)'),
    ('detect_strides', 'yolo11', _set('model.23.stride', torch.tensor([4., 8., 16.])),
     'model.23.stride: (4, 8, 16), expected (8, 16, 32)'),
    ('forward_replaced', 'yolo11', _forward_replaced,
     "model.0.forward: replaced by ultralytics.nn.modules.conv.Conv.forward, expected the class's own forward"),
    ('attention_heads', 'yolo11', _set('model.10.m.0.attn', Attention(128, 4)),
     'model.10.m.0.attn.num_heads: 4, expected 2; model.10.m.0.attn.head_dim: 32, expected 64'),
    ('c3k_flipped', 'yolo11', lambda m: _c3k_flipped(m, 4),
     'model.4.m.0: C3k, expected Bottleneck (a C3k2 built with c3k=True where our config has c3k=False)'),
    ('yolov8_neck_shortcut', 'yolov8', _set('model.12.m.0.add', True), 'model.12.m.0.add: True, expected False'),
]


@pytest.mark.parametrize('version,mutate,expected', [c[1:] for c in MISMATCHES], ids=[c[0] for c in MISMATCHES])
def test_architecture_mismatch_refused(tmp_path, version, mutate, expected):
    src, dst = str(tmp_path / 'changed.pt'), str(tmp_path / 'changed.pth')
    save_like_reference(mutate(DetectionModel(version, 'n')), src)
    with pytest.raises(conv.ArchitectureError) as e:
        conv.convert(src, dst, scale='n')
    msg = str(e.value)
    assert expected in msg, msg
    assert msg.startswith('architecture mismatch at ') and "would not reproduce the checkpoint's outputs" in msg
    assert not os.path.exists(dst)


def test_relu_checkpoint_refused_and_would_predict_differently(tmp_path):
    """The bug: ReLU instead of SiLU, same names and shapes, used to convert with exit code 0."""
    silu_ref = randomize(DetectionModel('yolo11', 'n'))
    relu_ref = _silu_to(copy.deepcopy(silu_ref), nn.ReLU)
    src = str(tmp_path / 'relu.pt')
    save_like_reference(relu_ref, src)
    with pytest.raises(conv.ArchitectureError) as e:
        conv.convert(src, version='yolo11', scale='n')
    msg = str(e.value)
    n_acts = sum(isinstance(m.act, nn.ReLU) for m in _convs(relu_ref))
    assert msg.startswith(f'architecture mismatch at {n_acts} places: model.0.act: ReLU, expected SiLU; '
                          'model.1.act: ReLU, expected SiLU; model.2.cv1.act: ReLU, expected SiLU')
    assert f'and {n_acts - conv.MAX_REPORTED} more (our {YOLO11_N_CONFIG})' in msg
    rc, err = _cli(src, str(tmp_path / 'relu.pth'))
    assert rc == 1 and err[0].startswith('error: architecture mismatch at ')

    # Teeth: without the check the same weights load into our (SiLU) model, and its outputs are
    # those of the SiLU reference, not of the ReLU checkpoint.
    unchecked = conv.convert(src, check=False)
    assert not unchecked['meta']['architecture_verified'] and '--no-check' in unchecked['meta']['architecture_note']
    ours = build_ours('yolo11', 'n')
    ours.load_state_dict(unchecked['state_dict'], strict=True)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        got, relu_out, silu_out = ours_raw_outputs(ours, x), relu_ref(x), silu_ref(x)
    for g, r, s in zip(got, relu_out, silu_out):
        torch.testing.assert_close(g, s, rtol=1e-4, atol=1e-3)
        assert (g - r).abs().max() > 0.5


def test_yaml_activation_refused(tmp_path):
    src = str(tmp_path / 'relu_yaml.pt')
    save_like_reference(_silu_to(DetectionModel('yolo11', 'n', activation='nn.ReLU()'), nn.ReLU), src)
    with pytest.raises(conv.ArchitectureError, match=r'at \d+ places: yaml.activation: nn.ReLU\(\), expected '
                       r'nn.SiLU\(\) \(or no entry\); model.0.act: ReLU, expected SiLU'):
        conv.convert(src, scale='n')
    save_like_reference(DetectionModel('yolo11', 'n', activation='nn.SiLU()'), src)
    assert conv.convert(src, scale='n')['meta']['architecture_verified']


def test_bottleneck_from_another_module_path_refused(tmp_path):
    model = DetectionModel('yolo11', 'n')
    fork_cls = type('Bottleneck', (Bottleneck, ), {})
    model.model[4].m[0].__class__ = fork_cls
    src = str(tmp_path / 'fork.pt')
    save_like_reference(model, src, modules={fork_cls: 'ultralytics.nn.extra_modules.block'})
    with pytest.raises(conv.ArchitectureError, match=r'model\.4\.m\.0: ultralytics\.nn\.extra_modules\.block\.'
                       r'Bottleneck, expected ultralytics\.nn\.modules\.block\.Bottleneck \(our'):
        conv.convert(src, scale='n')


def test_c3k_flip_reported_before_the_shapes(tmp_path):
    """c3k=True where the yaml says False changes keys and shapes too: the architecture is named first,
    with the scale given and with the scale inferred."""
    src = str(tmp_path / 'c3k.pt')
    save_like_reference(randomize(_c3k_flipped(DetectionModel('yolo11', 'n'), 13)), src)
    unchecked = conv.convert(src, check=False)['state_dict']
    with pytest.raises(conv.ConversionError, match=r"shape mismatch at .*'model\.13\.m\.0\.cv1\.conv\.weight'"):
        conv.check_shapes(unchecked, conv.model_shapes('yolo11', 'n'), 'yolo11', 'n')
    for scale in ('n', None):
        with pytest.raises(conv.ArchitectureError, match=r'^architecture mismatch at model\.13\.m\.0: C3k, '
                           r'expected Bottleneck \(a C3k2 built with c3k=True where our config has c3k=False\) '
                           r'\(our configs/yolo11/yolo11_n_8xb16-500e_coco\.py\)'):
            conv.convert(src, scale=scale)


def test_size_dependent_settings_checked_after_the_shapes(reference_n):
    """Another scale fails on its shapes (not on its attention heads), and a scale whose blocks differ
    says which scale the checkpoint fits."""
    _, _, pt_path = reference_n
    with pytest.raises(conv.ConversionError, match='shape mismatch') as e:
        conv.convert(pt_path, scale='s')
    assert not isinstance(e.value, conv.ArchitectureError)
    with pytest.raises(conv.ArchitectureError, match=r'model\.2\.m\.0: Bottleneck, expected C3k .*the '
                       r'checkpoint fits yolo11-n: pass --scale n or leave --scale out \(checkpoint .*yolo11n\.pt\)$'):
        conv.convert(pt_path, scale='m')


def _yolo12_like(model):
    old = model.model[6]
    model.model[6] = A2C2f(old.cv1.conv.in_channels, old.cv2.conv.out_channels)
    return model


def _extra_layer(model):
    model.model.append(Conv(8, 8))
    return model


def _segmentation(model):
    model.__class__ = SegmentationModel
    return model


class SegmentationModel(DetectionModel):
    """Another task's model class (YOLO11-seg's)."""


# (id, mutation, module overrides, what the message must name)
UNSUPPORTED = [
    ('yolo12_like', _yolo12_like, None,
     'unsupported architecture: A2C2f (ultralytics.nn.modules.block.A2C2f) at model.6: not a YOLO11 or YOLOv8 '
     'layer class'),
    ('extra_layer', _extra_layer, None,
     'unsupported architecture: 25 layers (YOLO11 has 24, YOLOv8 has 23); model.24 (Conv) follows the last '
     'YOLO11 layer'),
    ('c3k2_renamed', lambda m: (_renamed(m.model[2], C3k2x), m)[1], None,
     'unsupported architecture: C3k2x (ultralytics.nn.modules.block.C3k2x) at model.2'),
    ('c3k2_other_module_path', lambda m: m, {C3k2: 'ultralytics.nn.extra_modules.block'},
     'unsupported architecture: C3k2 (ultralytics.nn.extra_modules.block.C3k2) at model.2, model.4, model.6, '
     'model.8, model.13, model.16, model.19, model.22'),
    ('layers_out_of_order', _set('model.3', nn.Upsample(None, 2, 'nearest')), None,
     'unsupported architecture: model.3 is Upsample where YOLO11 has Conv'),
    ('other_task', _segmentation, {SegmentationModel: 'ultralytics.nn.tasks'},
     "unsupported architecture: the checkpoint's model is ultralytics.nn.tasks.SegmentationModel, not "
     'ultralytics.nn.tasks.DetectionModel'),
]


@pytest.mark.parametrize('mutate,modules,expected', [c[1:] for c in UNSUPPORTED], ids=[c[0] for c in UNSUPPORTED])
def test_unsupported_architecture_refused(tmp_path, mutate, modules, expected):
    src = str(tmp_path / 'other.pt')
    save_like_reference(mutate(DetectionModel('yolo11', 'n')), src, modules=modules)
    for check in (True, False):  # the layer sequence is checked even with --no-check
        with pytest.raises(conv.ArchitectureError) as e:
            conv.convert(src, check=check)
        assert str(e.value).startswith(expected), str(e.value)
        assert 'layer 1' not in str(e.value) and 'key' not in str(e.value)
    rc, err = _cli(src, str(tmp_path / 'other.pth'), '--scale', 'n')
    assert rc == 1 and err[0].startswith(f'error: {expected}')


def test_arch_option_must_match_the_layers(reference_n):
    _, _, pt_path = reference_n
    with pytest.raises(conv.ArchitectureError, match='holds a YOLO11 model .*not yolov8'):
        conv.convert(pt_path, version='yolov8', check=False)


def test_plain_state_dict_converts_unverified(reference_n, tmp_path):
    """A state dict has no module classes: converted by keys and shapes, with a note saying so."""
    _, sd_path, pt_path = reference_n
    meta = conv.convert(sd_path)['meta']
    assert meta['architecture_verified'] is False and 'plain state dict' in meta['architecture_note']
    relu_sd = str(tmp_path / 'relu_state_dict.pth')  # the limitation: nothing tells ReLU here
    torch.save(_silu_to(DetectionModel('yolo11', 'n'), nn.ReLU).state_dict(), relu_sd)
    assert conv.convert(relu_sd)['meta']['architecture_verified'] is False
    rc, err = _cli(sd_path, str(tmp_path / 'sd.pth'))
    assert rc == 0 and err[0].startswith('note: architecture not verified: the source is a plain state dict')
    meta = conv.convert(pt_path)['meta']
    assert meta['architecture_verified'] is True and 'architecture_note' not in meta
    assert _cli(pt_path, str(tmp_path / 'pt.pth')) == (0, [])


def test_class_identity():
    block = 'ultralytics.nn.modules.block.'
    assert conv.same_class(block + 'C3k2', block + 'C3k2')
    assert conv.same_class('ultralytics.nn.modules.C2f', block + 'C2f')  # early 8.0 releases: one file
    assert not conv.same_class(block + 'C3k2Custom', block + 'C3k2')
    assert not conv.same_class('mypkg.blocks.C3k2', block + 'C3k2')
    assert not conv.same_class('ultralytics.nn.modules.conv.C3k2', block + 'C3k2')
    assert conv.same_class('torch.nn.modules.container.Sequential', 'torch.nn.modules.container.ModuleList')
    assert not conv.same_class('torch.nn.modules.activation.ReLU', 'torch.nn.modules.activation.SiLU')
    assert conv.same_value(2, 2.0) and conv.same_value(torch.tensor([8., 16.]), [8, 16])
    assert not conv.same_value(True, 1) and not conv.same_value((1, 1), (1, 1, 1))


def finetuned_reference(coco, nc=5, seed=4):
    """What the reference's trainer builds when it fine-tunes ``coco`` (80 classes) to ``nc``
    classes (``BaseModel.load``, ultralytics/nn/tasks.py 8.4): its class branches at the source
    width (c3 = 80 for YOLO11-n, where the rule for 5 classes gives 64), new final convs."""
    model = DetectionModel('yolo11', 'n', nc=nc)
    head = model.model[-1]
    head.cv3 = copy.deepcopy(coco.model[-1].cv3)
    for branch in head.cv3:
        branch[-1] = nn.Conv2d(branch[-1].in_channels, nc, 1)
    model = randomize(model, seed=seed)
    model.names = {0: 'Car', 1: 'bus', 2: 'plate', 3: 'truck', 4: 'person'}
    return model


def test_finetuned_reference_checkpoint_keeps_its_width(reference_n, tmp_path):
    """A YOLO11-n the reference fine-tuned from a COCO checkpoint to 5 classes (class branch 80
    wide, the rule gives 64) converts ("fits no yolo11 scale" before); the meta builds our config
    to fit and the outputs match."""
    ref = finetuned_reference(reference_n[0])
    assert tuple(ref.model[-1].cv3[0][-1].weight.shape) == (5, 80, 1, 1)
    src, dst = str(tmp_path / 'best.pt'), str(tmp_path / 'best.pth')
    save_like_reference(ref, src)
    out = conv.convert(src, dst)
    meta = out['meta']
    assert (meta['version'], meta['scale'], meta['num_classes'], meta['cls_channels']) == ('yolo11', 'n', 5, 80)
    assert meta['architecture_verified'] and meta['dataset_meta']['classes'] == ['Car', 'bus', 'plate', 'truck',
                                                                                 'person']
    assert meta['cfg_options'] == {'model.bbox_head.num_classes': 5, 'model.bbox_head.cls_channels': 80}
    from mmdet.registry import MODELS
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmengine.runner import load_checkpoint
    cfg = Config.fromfile(conv.config_path('yolo11', 'n'))
    cfg.merge_from_dict(meta['cfg_options'])
    init_default_scope('mmdet')
    ours = MODELS.build(cfg.model).eval()
    load_checkpoint(ours, dst, map_location='cpu', strict=True)
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        for e, g in zip(ref(x), ours_raw_outputs(ours, x)):
            torch.testing.assert_close(g, e, rtol=1e-4, atol=1e-3)
    # the plain state dict too (no classes: keys and shapes only)
    sd = str(tmp_path / 'best_state_dict.pth')
    torch.save(ref.state_dict(), sd)
    assert conv.convert(sd)['meta']['cls_channels'] == 80


def test_unsupported_width_still_refused_clearly(reference_n, tmp_path):
    """A class branch whose width differs between levels is no model of ours: refused, naming the key."""
    ref = finetuned_reference(reference_n[0])
    branch = ref.model[-1].cv3[1]
    branch[1][1].conv = nn.Conv2d(80, 72, 1, bias=False)
    branch[1][1].bn = nn.BatchNorm2d(72)
    branch[2] = nn.Conv2d(72, 5, 1)
    sd = str(tmp_path / 'odd.pth')
    torch.save(ref.state_dict(), sd)
    with pytest.raises(conv.ConversionError, match=r"fits no yolo11 scale.*bbox_head\.cls_convs\.1\.1\.1\.conv"):
        conv.convert(sd)


# ----------------------------------------------------------------------------- YOLO26
def ours_e2e_raw_outputs(model, x):
    """Our YOLOE2EHead's outputs as the fake Detect's: one-to-many levels, then one-to-one levels."""
    cls, box, o2o_cls, o2o_box = model.bbox_head(model.extract_feat(x))
    return ([torch.cat((b, c), 1) for c, b in zip(cls, box)] + [torch.cat((b, c), 1) for c, b in zip(o2o_cls, o2o_box)])


def test_yolo26_reference_tree_matches_reference_size():
    head = DetectionModel('yolo26', 'n').model[-1]
    assert sum(p.numel() for p in DetectionModel('yolo26', 'n').parameters()) == 2_572_280
    assert sum(p.numel() for p in DetectionModel('yolo26', 's').parameters()) == 10_009_784
    assert sum(p.numel() for n, p in head.named_parameters() if n.startswith('one2one_')) == 154_828


@pytest.mark.parametrize('form', ['trainer', 'state_dict'])
def test_convert_yolo26_same_outputs(tmp_path, form):
    """A YOLO26 trainer file (network under 'ema', 'model': None) or plain state dict converts to our
    yolo26 config's model (both branches); the trainer file is verified, the state dict is not."""
    ref = randomize(DetectionModel('yolo26', 's'), seed=5)
    src, dst = str(tmp_path / 'yolo26s.pt'), str(tmp_path / 'yolo26s.pth')
    if form == 'trainer':
        save_like_reference(ref, src, trainer=True)
    else:
        torch.save(ref.state_dict(), src)
    out = conv.convert(src, dst)
    meta = out['meta']
    assert (meta['version'], meta['scale'], meta['num_classes']) == ('yolo26', 's', 80)
    assert meta['config'] == 'configs/yolo26/yolo26_s_8xb16-500e_coco.py'
    assert meta['architecture_verified'] is (form == 'trainer')
    if form == 'trainer':
        assert meta['source_entry'] == 'ema'
    assert not any('dfl' in k for k in out['state_dict'])
    assert out['state_dict']['bbox_head.one2one_cls_convs.2.2.bias'].shape == (80, )
    ours = build_ours('yolo26', 's')
    ours.load_state_dict(torch.load(dst, weights_only=True)['state_dict'], strict=True)
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        expected, got = ref(x), ours_e2e_raw_outputs(ours, x)
    assert len(got) == len(expected) == 6
    for e, g in zip(expected, got):
        torch.testing.assert_close(g, e, rtol=1e-4, atol=1e-3)


def test_yolo26_key_mapping():
    assert conv.map_key('model.23.one2one_cv3.2.2.bias', 'yolo26') == 'bbox_head.one2one_cls_convs.2.2.bias'
    assert conv.map_key('model.23.one2one_cv2.0.1.bn.weight', 'yolo26') == 'bbox_head.one2one_reg_convs.0.1.bn.weight'
    assert conv.map_key('model.22.m.0.1.attn.qkv.conv.weight', 'yolo26') == (
        'neck.bottom_up_layers.1.m.0.1.attn.qkv.conv.weight')
    assert conv.detect_version(DetectionModel('yolo26', 'n').state_dict()) == 'yolo26'
    assert conv.detect_version(DetectionModel('yolo11', 'n').state_dict()) == 'yolo11'


def _yolo11_sppf(model):
    """YOLO11's SPPF behaviour in a YOLO26 file: SiLU after cv1, no residual (same keys and shapes)."""
    model.model[9].cv1.act = nn.SiLU()
    model.model[9].add = False
    return model


def _c3k_at_22(model):
    old = model.model[22]
    new = C3k2(old.cv1.conv.in_channels, old.cv2.conv.out_channels, 1, True, 0.5)
    new.i, new.f, new.type = old.i, old.f, old.type
    model.model[22] = new
    return model


@pytest.mark.parametrize('mutate,expected', [
    (_yolo11_sppf, 'model.9.add: False, expected True; model.9.cv1.act: SiLU, expected Identity'),
    (_set('model.9.n', 4), 'model.9.n: 4, expected 3'),
    (_c3k_at_22, 'model.22.m.0: C3k, expected Sequential'),
    (_set('model.23.one2one_cv3.1.0.0.bn.eps', 1e-5), 'model.23.one2one_cv3.1.0.0.bn.eps: 1e-05, expected 0.001'),
], ids=['sppf_of_yolo11', 'sppf_4_poolings', 'c3k_instead_of_attention', 'o2o_bn_eps'])
def test_yolo26_architecture_mismatch_refused(tmp_path, mutate, expected):
    src = str(tmp_path / 'changed.pt')
    save_like_reference(mutate(DetectionModel('yolo26', 'n')), src, trainer=True)
    with pytest.raises(conv.ArchitectureError) as e:
        conv.convert(src, scale='n')
    assert expected in str(e.value), str(e.value)
    assert 'configs/yolo26/yolo26_n_8xb16-500e_coco.py' in str(e.value)


def test_yolo26_and_yolo11_told_apart(tmp_path):
    src26, sd26, src11 = str(tmp_path / 'y26.pt'), str(tmp_path / 'y26.pth'), str(tmp_path / 'y11.pt')
    save_like_reference(DetectionModel('yolo26', 'n'), src26, trainer=True)
    torch.save(DetectionModel('yolo26', 'n').state_dict(), sd26)
    save_like_reference(DetectionModel('yolo11', 'n'), src11)
    with pytest.raises(conv.ArchitectureError, match='holds a YOLO26 model .*not yolo11'):
        conv.convert(src26, version='yolo11')
    with pytest.raises(conv.ConversionError, match="Detect sub-module 'one2one_cv2' is not part of yolo11"):
        conv.convert(sd26, version='yolo11', check=False)
    with pytest.raises(conv.ArchitectureError, match='holds a YOLO11 model .*not yolo26'):
        conv.convert(src11, version='yolo26')
    assert conv.convert(src11)['meta']['version'] == 'yolo11'


def test_yolo26_unsupported_still_refused(tmp_path):
    src = str(tmp_path / 'extra.pt')
    save_like_reference(_extra_layer(DetectionModel('yolo26', 'n')), src, trainer=True)
    with pytest.raises(conv.ArchitectureError, match=r'^unsupported architecture: 25 layers .*YOLO11, YOLO26 and '
                       'YOLOv8 detection models only'):
        conv.convert(src)
