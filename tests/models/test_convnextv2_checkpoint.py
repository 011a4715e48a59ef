"""ConvNeXtV2 weights: every checkpoint format gives the reference features.

A short, independent dense ConvNeXt V2 (the official definition) is built
here with random weights; checkpoints in each supported layout are written
from it and loaded through our backbone, whose stage features must match the
reference (output norms replaced by identity).
"""
import math
import os
import os.path as osp
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn as nn

from convnextv2_yolo.backbones import ConvNeXtV2
from convnextv2_yolo.backbones.convnextv2_checkpoint import (CheckpointFormatError, convert_to_mmpretrain,
                                                             detect_format, extract_state_dict, infer_arch,
                                                             load_checkpoint_dict)
from tests.helpers.convnextv2_reference import (ARCH, fcmae_state, make_reference, mmpretrain_state, official_state,
                                                timm_state)

TOL = 1e-5


BUILDERS = {
    'official': lambda ref: dict(model=official_state(ref)),
    'mmpretrain': lambda ref: dict(
        state_dict=mmpretrain_state(ref), meta=dict(epoch=1)),
    'fcmae': lambda ref: dict(model=fcmae_state(ref), epoch=800),
    'timm': timm_state,
}


def load_backbone(path, arch=ARCH, out_indices=(0, 1, 2, 3), **kwargs):
    model = ConvNeXtV2(
        arch=dict(arch),
        out_indices=out_indices,
        init_cfg=dict(type='Pretrained', checkpoint=str(path), **kwargs))
    model.init_weights()
    for i in model.out_indices:
        setattr(model, f'norm{i}', nn.Identity())
    return model.eval()


def max_feature_diff(ref, model, size=64):
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(2, 3, size, size, generator=gen)
    with torch.no_grad():
        expected = ref.stage_outputs(x)
        got = model(x)
    assert len(got) == len(expected) == 4
    return max((a - b).abs().max().item() for a, b in zip(got, expected))


# --------------------------------------------------------------------------- #
# Tests
# --------------------------------------------------------------------------- #
@pytest.fixture(scope='module')
def ref():
    return make_reference()


@pytest.mark.parametrize('fmt', ['official', 'mmpretrain', 'fcmae', 'timm'])
def test_every_format_gives_reference_features(fmt, ref, tmp_path):
    path = tmp_path / f'{fmt}.pth'
    torch.save(BUILDERS[fmt](ref), path)
    assert detect_format(extract_state_dict(load_checkpoint_dict(str(path)))) == fmt
    model = load_backbone(path)
    assert max_feature_diff(ref, model) <= TOL


def test_timm_conv_mlp_layout(ref, tmp_path):
    # timm's atto..nano use 1x1 convs (4-D weights) for the MLP
    path = tmp_path / 'timm_conv_mlp.pth'
    torch.save(timm_state(ref, conv_mlp=True), path)
    assert max_feature_diff(ref, load_backbone(path)) <= TOL


def test_fcmae_kernels_are_transposed(ref, tmp_path):
    w = ref.stages[0][0].dwconv.weight
    assert not torch.allclose(w, w.transpose(-1, -2))  # asymmetric kernels
    # built without the transposition, the features must differ: the
    # comparison above would catch a loader that skipped it
    path = tmp_path / 'fcmae_untransposed.pth'
    torch.save(dict(model=fcmae_state(ref, transpose=False)), path)
    assert max_feature_diff(ref, load_backbone(path)) > 1e-3


def test_real_arch_fcmae_and_summary(tmp_path, caplog):
    """Named arch (atto), P3-P5 outputs: decoder unexpected, norms missing."""
    arch = ConvNeXtV2.arch_settings['atto']
    ref = make_reference(seed=3, arch=arch)
    state = fcmae_state(ref)
    path = tmp_path / 'convnextv2_atto_1k_224_fcmae.pt'
    torch.save(dict(model=state), path)
    model = ConvNeXtV2(
        arch='atto', init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    model.init_weights()
    summary = model.load_pretrained(str(path))
    assert summary['format'] == 'fcmae'
    assert sorted(summary['missing']) == sorted(
        f'norm{i}.{p}' for i in (1, 2, 3) for p in ('weight', 'bias'))
    assert {'proj.weight', 'mask_token', 'pred.weight'} <= set(
        summary['unexpected'])
    assert summary['loaded'] == summary['total'] - 6
    for i in (1, 2, 3):
        setattr(model, f'norm{i}', nn.Identity())
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        expected = ref.eval().stage_outputs(x)[1:]
        got = model.eval()(x)
    assert [o.shape[1] for o in got] == model.out_channels == [80, 160, 320]
    assert max((a - b).abs().max().item() for a, b in zip(got, expected)) \
        <= TOL


def test_prefix_selects_detector_backbone(ref, tmp_path):
    # an mmdet detector checkpoint: backbone.* plus neck/head tensors
    state = mmpretrain_state(ref)
    state['neck.conv.weight'] = torch.randn(4, 4, 1, 1)
    path = tmp_path / 'detector.pth'
    torch.save(dict(state_dict=state), path)
    assert max_feature_diff(ref, load_backbone(path)) <= TOL
    assert max_feature_diff(ref, load_backbone(path, prefix='backbone.')) \
        <= TOL


def test_wrong_arch_names_key_and_shapes(ref, tmp_path):
    path = tmp_path / 'small.pth'
    torch.save(dict(model=official_state(ref)), path)
    bigger = dict(depths=ARCH['depths'], channels=[16, 32, 48, 64])
    with pytest.raises(CheckpointFormatError) as e:
        load_backbone(path, arch=bigger)
    msg = str(e.value)
    assert 'downsample_layers.0.0.weight' in msg
    assert '(8, 3, 4, 4)' in msg and '(16, 3, 4, 4)' in msg
    assert str(path) in msg


def test_missing_backbone_tensor_is_fatal(ref, tmp_path):
    state = official_state(ref)
    del state['stages.2.1.grn.gamma']
    path = tmp_path / 'incomplete.pth'
    torch.save(state, path)
    with pytest.raises(CheckpointFormatError, match=r'stages\.2\.1\.grn'):
        load_backbone(path)


def test_missing_file_names_path(tmp_path):
    path = tmp_path / 'nope' / 'convnextv2_atto_1k_224_fcmae.pt'
    with pytest.raises(FileNotFoundError, match='convnextv2_atto_1k_224'):
        load_backbone(path)


def test_truncated_and_garbage_files(ref, tmp_path):
    good = tmp_path / 'good.pth'
    torch.save(dict(model=official_state(ref)), good)
    data = good.read_bytes()
    truncated = tmp_path / 'truncated.pth'
    truncated.write_bytes(data[:len(data) // 2])
    garbages = []
    for seed in range(20):  # random bytes fail in many places of the unpickler
        garbages.append(tmp_path / f'garbage{seed}.pth')
        garbages[-1].write_bytes(np.random.default_rng(seed).bytes(2048))
    for path in [truncated] + garbages:
        with pytest.raises(CheckpointFormatError,
                           match='corrupt or truncated') as e:
            load_backbone(path)
        assert str(path) in str(e.value)


class _Payload:
    """Stands for arbitrary pickled code carried by a checkpoint."""


def test_pickled_objects_are_refused(ref, tmp_path):
    path = tmp_path / 'unsafe.pth'
    torch.save(dict(state_dict=official_state(ref), extra=_Payload()), path)
    with pytest.raises(CheckpointFormatError, match='safe loading'):
        load_backbone(path)


def test_unknown_layout_is_reported():
    with pytest.raises(CheckpointFormatError, match='Unrecognised'):
        detect_format({'layer1.conv.weight': torch.zeros(1)})


def test_converter_tool(ref, tmp_path, repo_root):
    src = tmp_path / 'convnextv2_x_1k_224_fcmae.pt'
    torch.save(dict(model=fcmae_state(ref)), src)
    dst = tmp_path / 'out' / 'converted.pth'
    env = dict(os.environ)
    result = subprocess.run(
        [sys.executable,
         osp.join(repo_root, 'tools', 'model_converters',
                  'convnextv2_to_mmdet.py'), str(src), str(dst)],
        capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    assert 'fcmae' in result.stdout
    saved = torch.load(dst, weights_only=True)
    assert saved['meta']['source_format'] == 'fcmae'
    assert saved['meta']['arch'] == ARCH
    assert all(k.startswith('backbone.') for k in saved['state_dict'])
    assert detect_format(saved['state_dict']) == 'mmpretrain'
    assert max_feature_diff(ref, load_backbone(dst)) <= TOL


def test_convert_is_idempotent_on_mmpretrain(ref):
    state = convert_to_mmpretrain(official_state(ref))
    again = convert_to_mmpretrain(state)
    assert state.keys() == again.keys()
    assert infer_arch(state) == ARCH
    assert state['backbone.stages.0.0.grn.gamma'].shape == (32, )
    assert math.isclose(
        (state['backbone.norm3.weight'] - ref.norm.weight).abs().sum().item(),
        0.0)


def test_url_goes_through_torch_hub_cache(ref, tmp_path, monkeypatch):
    """URLs are cached under torch hub's dir (no network: download faked)."""
    src = tmp_path / 'convnextv2_x_1k_224_ema.pt'
    torch.save(dict(model=official_state(ref)), src)
    downloads = []

    def fake_download(url, dst, progress=True):
        downloads.append(url)
        with open(src, 'rb') as f_in, open(dst, 'wb') as f_out:
            f_out.write(f_in.read())

    monkeypatch.setattr(torch.hub, 'get_dir', lambda: str(tmp_path / 'hub'))
    monkeypatch.setattr(torch.hub, 'download_url_to_file', fake_download)
    url = 'https://example.com/weights/convnextv2_x_1k_224_ema.pt'
    for _ in range(2):
        assert max_feature_diff(ref, load_backbone(url)) <= TOL
    assert downloads == [url]  # the second load used the cache
    assert (tmp_path / 'hub' / 'checkpoints' / src.name).is_file()


def test_failed_download_names_the_url_and_the_ways_round_it(tmp_path, monkeypatch):
    import urllib.error

    from convnextv2_yolo.backbones import convnextv2_checkpoint

    def offline(url, dst, progress=True):
        raise urllib.error.URLError('[Errno -2] Name or service not known')

    monkeypatch.setattr(torch.hub, 'get_dir', lambda: str(tmp_path))
    monkeypatch.setattr(torch.hub, 'download_url_to_file', offline)
    url = 'https://download.openmmlab.com/x/convnext-v2-atto_fcmae.pth'
    with pytest.raises(OSError) as e:
        convnextv2_checkpoint._resolve_url(url)
    msg = str(e.value)
    assert f'cannot download {url}' in msg and 'Name or service not known' in msg
    assert str(tmp_path / 'checkpoints' / 'convnext-v2-atto_fcmae.pth') in msg
    assert 'model.backbone.init_cfg.checkpoint=PATH' in msg and 'model.backbone.init_cfg=None' in msg
