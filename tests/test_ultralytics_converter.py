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
import importlib.util
import math
import os
import os.path as osp
import pathlib
import sys
import types

import numpy as np
import pytest
import torch
import torch.nn as nn

from convnextv2_yolo.layers import C2PSA, SPPF, C2f, C3k2, Conv, DWConv

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


def _load_converter():
    path = osp.join(ROOT, 'tools', 'model_converters', 'ultralytics_to_mmdet.py')
    spec = importlib.util.spec_from_file_location('ultralytics_to_mmdet', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


conv = _load_converter()


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
SCALES = {'yolo11': {'n': (0.5, 0.25, 1024), 's': (0.5, 0.5, 1024)},
          'yolov8': {'n': (0.33, 0.25, 1024)}}


class Concat(nn.Module):

    def forward(self, xs):
        return torch.cat(xs, 1)


class DFL(nn.Module):

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(16, 1, 1, bias=False).requires_grad_(False)
        self.conv.weight.data[:] = torch.arange(16, dtype=torch.float).view(1, 16, 1, 1)


class Detect(nn.Module):
    """Raw outputs per level: cat(box distribution logits, class logits)."""

    def __init__(self, nc, ch, v8):
        super().__init__()
        c2, c3 = max(16, ch[0] // 4, 64), max(ch[0], min(nc, 100))
        self.cv2 = nn.ModuleList(nn.Sequential(Conv(x, c2, 3), Conv(c2, c2, 3), nn.Conv2d(c2, 64, 1)) for x in ch)
        if v8:
            self.cv3 = nn.ModuleList(
                nn.Sequential(Conv(x, c3, 3), Conv(c3, c3, 3), nn.Conv2d(c3, nc, 1)) for x in ch)
        else:
            self.cv3 = nn.ModuleList(
                nn.Sequential(nn.Sequential(DWConv(x, x, 3), Conv(x, c3, 1)),
                              nn.Sequential(DWConv(c3, c3, 3), Conv(c3, c3, 1)), nn.Conv2d(c3, nc, 1)) for x in ch)
        self.dfl = DFL()

    def forward(self, xs):
        return [torch.cat((box(x), cls(x)), 1) for x, box, cls in zip(xs, self.cv2, self.cv3)]


class DetectionModel(nn.Module):
    """The reference's layer list, built from the yaml with its scaling rules."""

    def __init__(self, arch, scale, nc=80):
        super().__init__()
        depth, width, max_ch = SCALES[arch][scale]
        yaml = YOLO11_YAML if arch == 'yolo11' else YOLOV8_YAML
        chs, layers, self.froms = [3], [], []
        for f, n, name, args in yaml:
            n = max(round(n * depth), 1) if n > 1 else n
            c1 = chs[f] if isinstance(f, int) else None
            if name in ('Conv', 'C3k2', 'C2f', 'SPPF', 'C2PSA'):
                c2 = math.ceil(min(args[0], max_ch) * width / 8) * 8
                if name == 'Conv':
                    m = Conv(c1, c2, *args[1:])
                elif name == 'SPPF':
                    m = SPPF(c1, c2, *args[1:])
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
                m, c2 = Detect(nc, [chs[i + 1] for i in f], arch == 'yolov8'), None
            layers.append(m)
            self.froms.append(f)
            chs.append(c2)
        self.model = nn.Sequential(*layers)
        self.names = {i: f'class{i}' for i in range(nc)}
        self.yaml = {'scale': scale, 'nc': nc}

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


def save_like_reference(model, path, ema=None):
    """torch.save a {'model': DetectionModel, 'ema': ...} whose classes live in a fake ``ultralytics``."""
    fake = {}
    for name in ('ultralytics', 'ultralytics.nn', 'ultralytics.nn.modules', 'ultralytics.nn.modules.block',
                 'ultralytics.nn.modules.conv', 'ultralytics.nn.modules.head', 'ultralytics.nn.tasks'):
        fake[name] = types.ModuleType(name)
    model = copy.deepcopy(model).half()  # the reference saves fp16
    ema = copy.deepcopy(ema).half() if ema is not None else None
    renamed = {}
    for m in [*model.modules(), *(ema.modules() if ema is not None else [])]:
        cls = type(m)
        if cls.__module__.startswith('torch.nn'):
            continue
        mod = FAKE_MODULES.get(cls, 'ultralytics.nn.modules.block')
        if cls not in renamed:
            renamed[cls] = type(cls.__name__, (cls, ), {'__module__': mod, '__qualname__': cls.__name__})
            setattr(fake[mod], cls.__name__, renamed[cls])
        m.__class__ = renamed[cls]
    ckpt = {'date': datetime.datetime.now().isoformat(), 'version': '8.3.0', 'license': 'AGPL-3.0',
            'model': model, 'ema': ema, 'updates': 1000 if ema is not None else None, 'optimizer': None,
            'train_args': {'imgsz': 640, 'save_dir': pathlib.PurePosixPath('runs/detect/train')},
            'train_metrics': {'metrics/mAP50-95(B)': np.float64(0.395)},
            'hooks': {'on_end': model.forward}}  # a bound method: pickled through builtins.getattr
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


def build_ours(arch, scale, num_classes=80):
    from mmengine.config import Config

    from mmengine.registry import init_default_scope

    from mmdet.registry import MODELS
    cfg = Config.fromfile(conv.config_path(arch, scale))
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
    out = conv.convert(src, dst, arch='yolo11', scale='n')
    assert 'ultralytics' not in sys.modules  # nothing imported a real (or the fake) package
    assert out['meta']['arch'] == 'yolo11' and out['meta']['num_classes'] == 80
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
    assert (meta['arch'], meta['scale']) == ('yolo11', 'n')


def test_wrong_scale_names_first_mismatched_key(reference_n, tmp_path):
    _, _, pt_path = reference_n
    with pytest.raises(conv.ConversionError) as e:
        conv.convert(pt_path, str(tmp_path / 'x.pth'), arch='yolo11', scale='s')
    msg = str(e.value)
    assert "'backbone.stem.conv.weight'" in msg and "'model.0.conv.weight'" in msg
    assert '(16, 3, 3, 3)' in msg and '(32, 3, 3, 3)' in msg
    assert not os.path.exists(tmp_path / 'x.pth')
    with pytest.raises(conv.ConversionError, match='yolov8'):
        conv.convert(pt_path, arch='yolov8', scale='n')


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


def test_cli(reference_n, tmp_path, capsys):
    _, _, pt_path = reference_n
    dst = str(tmp_path / 'cli.pth')
    assert conv.main([pt_path, dst, '--arch', 'yolo11', '--scale', 'n']) == 0
    assert osp.isfile(dst)
    assert conv.main([pt_path, dst, '--scale', 's']) == 1
    assert 'shape mismatch' in capsys.readouterr().err


def test_yolov8_n_same_outputs(tmp_path):
    ref = randomize(DetectionModel('yolov8', 'n'), seed=1)
    assert sum(p.numel() for p in ref.parameters()) == 3_157_200
    src, dst = str(tmp_path / 'yolov8n.pt'), str(tmp_path / 'yolov8n.pth')
    save_like_reference(ref, src)
    assert conv.convert(src, dst)['meta']['arch'] == 'yolov8'
    ours = build_ours('yolov8', 'n')
    ours.load_state_dict(torch.load(dst, weights_only=True)['state_dict'], strict=True)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        for e, g in zip(ref(x), ours_raw_outputs(ours, x)):
            torch.testing.assert_close(g, e, rtol=1e-4, atol=1e-3)


def test_key_mapping_round_trip_and_errors():
    ours = build_ours('yolo11', 'n')
    for key in ours.state_dict():
        assert conv.map_key(conv.reference_key(key, 'yolo11'), 'yolo11') == key
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
    bad.write_bytes(b'not a checkpoint at all')
    with pytest.raises(conv.ConversionError, match='bad.pt'):
        conv.convert(str(bad), check=False)
    with pytest.raises(FileNotFoundError, match='missing.pt'):
        conv.convert(str(tmp_path / 'missing.pt'))
