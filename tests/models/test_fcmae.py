"""FCMAE pretraining: sparse emulation, loss, data, a CPU training iteration, hand-over, official checkpoints."""
import os
import os.path as osp
from collections import OrderedDict

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from convnextv2_yolo.selfsup import FCMAE, MaskedGRN
from tests.helpers.convnextv2_reference import ARCH as TINY_ARCH
from tests.helpers.convnextv2_reference import fcmae_state, make_reference
from tests.helpers.paths import ROOT
from tests.helpers.tiny import DEMO_CFG

FCMAE_CFG = osp.join(ROOT, 'configs', 'fcmae', 'fcmae_convnextv2-atto_8xb64-800e.py')


def _model(arch='atto', **kwargs):
    torch.manual_seed(0)
    model = FCMAE(arch=arch, **kwargs)
    model.init_weights()
    with torch.no_grad():  # non-zero GRN / biases, so that a leak through them would show
        for name, p in model.named_parameters():
            if p.dim() == 1:
                p.add_(0.1 * torch.randn_like(p))
    return model


def _active(mask, shape):
    """Visible map (B, 1, H, W) of a (B, h, w) patch mask at a feature's resolution."""
    return F.interpolate((mask < 0.5).float().unsqueeze(1), size=shape, mode='nearest') > 0.5


def test_masked_positions_stay_exactly_zero_through_the_encoder():
    model = _model()
    imgs = torch.randn(2, 3, 96, 96)
    mask = model.random_mask(imgs, torch.Generator().manual_seed(1))
    feats = []
    hooks = [m.register_forward_hook(lambda m, i, o, n=n: feats.append((n, o)))
             for n, m in model.backbone.named_modules()
             if n.startswith(('downsample_layers.', 'stages.')) and n.count('.') in (1, 2)]
    model.encode(imgs, mask)
    for h in hooks:
        h.remove()
    names = [n for n, _ in feats]
    assert 'downsample_layers.0' in names and 'stages.3.1' in names and 'downsample_layers.3.1' in names
    for name, f in feats:  # stem, every block, every downsampling (its LN and its conv)
        visible = _active(mask, f.shape[-2:]).expand_as(f)
        assert (~visible).any() and visible.any()
        assert torch.count_nonzero(f[~visible]) == 0, name
        assert torch.count_nonzero(f[visible]) > 0.9 * visible.sum(), name
    assert (mask.flatten(1).sum(1) == 9 - int(9 * 0.4)).all()  # 3x3 patches, ratio 0.6


def test_encoder_ignores_masked_pixels_and_grn_pools_visible_only():
    model = _model()
    imgs = torch.randn(2, 3, 96, 96)
    mask = model.random_mask(imgs, torch.Generator().manual_seed(2))
    out = model.encode(imgs, mask)
    hidden = F.interpolate(mask.unsqueeze(1), scale_factor=32, mode='nearest').bool().expand_as(imgs)
    changed = imgs.clone()
    changed[hidden] = 100 * torch.randn(int(hidden.sum()))
    torch.testing.assert_close(model.encode(changed, mask), out, rtol=0, atol=0)
    # GRN: values at masked positions do not enter the statistics
    from mmpretrain.models.utils import SparseHelper
    grn = MaskedGRN(8)
    with torch.no_grad():
        grn.gamma.copy_(torch.randn(8))
        grn.beta.copy_(torch.randn(8))
    x = torch.randn(2, 3, 3, 8)  # channel-last, 3x3 positions = the patch grid
    SparseHelper._cur_active = (mask < 0.5).unsqueeze(1)
    try:
        y = grn(x, data_format='channel_last')
        x2 = x.clone()
        x2[mask.bool()] = 50.
        y2 = grn(x2, data_format='channel_last')
    finally:
        SparseHelper._cur_active = None
    vis = mask < 0.5
    torch.testing.assert_close(y[vis], y2[vis])
    visible_only = x * vis.unsqueeze(-1)  # dense GRN on zero-filled input = statistics of the visible points
    gx = visible_only.pow(2).sum(dim=(1, 2), keepdim=True).sqrt()
    nx = gx / (gx.mean(dim=-1, keepdim=True) + 1e-6)
    torch.testing.assert_close(y[vis], (grn.gamma * (x * nx) + grn.beta + x)[vis], rtol=1e-5, atol=1e-5)


def test_loss_is_over_masked_patches_only():
    model = _model()
    imgs = torch.randn(2, 3, 64, 96)  # 2x3 patches, non-square
    mask = model.random_mask(imgs, torch.Generator().manual_seed(3))
    pred = torch.randn(2, 32 * 32 * 3, 2, 3)
    loss = model.reconstruction_loss(imgs, pred, mask)
    # by hand: per-patch-normalised target, mean over pixels, mean over masked patches
    patches = imgs.unfold(2, 32, 32).unfold(3, 32, 32)  # (B, 3, h, w, 32, 32)
    target = patches.permute(0, 2, 3, 4, 5, 1).reshape(2, 6, -1)
    target = (target - target.mean(-1, keepdim=True)) / (target.var(-1, keepdim=True) + 1e-6) ** .5
    per_patch = (pred.flatten(2).transpose(1, 2) - target).pow(2).mean(-1)
    m = mask.flatten(1)
    torch.testing.assert_close(loss, (per_patch * m).sum() / m.sum())
    visible = (mask < 0.5).unsqueeze(1).expand_as(pred)
    other = pred.clone()
    other[visible] += 10.
    torch.testing.assert_close(model.reconstruction_loss(imgs, other, mask), loss, rtol=0, atol=0)
    other = pred.clone()
    other[~visible] += 1.
    assert model.reconstruction_loss(imgs, other, mask) > loss + 0.5
    # patchify / unpatchify round trip
    torch.testing.assert_close(model.unpatchify(model.patchify(imgs), 2, 3), imgs)
    with pytest.raises(ValueError, match='multiple of the patch size 32'):
        model.random_mask(torch.zeros(1, 3, 80, 96))


def _write_images(root, n=6, size=(96, 80)):
    from PIL import Image
    rng = np.random.default_rng(0)
    paths = []
    exts = ['jpg', 'png', 'bmp', 'tiff', 'webp', 'JPG']
    for i in range(n):
        sub = osp.join(root, 'images', f'sub{i % 2}')
        os.makedirs(sub, exist_ok=True)
        path = osp.join(sub, f'img{i}.{exts[i % len(exts)]}')
        Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(
            path,
            format={
                'jpg': 'JPEG',
                'JPG': 'JPEG',
                'tiff': 'TIFF'
            }.get(exts[i % len(exts)], exts[i % len(exts)].upper()))
        paths.append(path)
    return paths


def test_unlabeled_dataset_sources_and_skips(tmp_path, capsys):
    from mmdet.registry import DATASETS
    from mmengine.logging import MMLogger
    MMLogger.get_instance('test_fcmae')
    paths = _write_images(str(tmp_path))
    bad = tmp_path / 'images' / 'sub0' / 'broken.jpg'
    bad.write_bytes(b'\xff\xd8 not a jpeg')
    (tmp_path / 'images' / 'notes.txt').write_text('not an image')
    ds = DATASETS.build(dict(type='UnlabeledImageDataset', source=str(tmp_path / 'images')))
    log = capsys.readouterr().out
    assert sorted(ds.get_data_info(i)['img_path'] for i in range(len(ds))) == sorted(paths)
    assert 'skipped 1 unreadable or missing file(s)' in log and 'broken.jpg: unreadable image' in log
    # a list file (relative paths, one missing) and a data.yaml (train split, labels ignored)
    lst = tmp_path / 'list.txt'
    lst.write_text(osp.relpath(paths[0], tmp_path) + '\nimages/gone.png\n')
    ds = DATASETS.build(dict(type='UnlabeledImageDataset', source=str(lst)))
    assert len(ds) == 1 and 'list.txt:2: image not found: images/gone.png' in capsys.readouterr().out
    (tmp_path / 'data.yaml').write_text('path: .\ntrain: images/sub0\nval: images/sub1\nnames: [a]\n')
    ds = DATASETS.build(dict(type='UnlabeledImageDataset', source=str(tmp_path / 'data.yaml')))
    assert len(ds) == 3
    ds = DATASETS.build(dict(type='UnlabeledImageDataset', source=str(tmp_path / 'data.yaml'),
                             splits=('train', 'val')))
    assert len(ds) == 6
    (tmp_path / 'empty.txt').write_text('')
    with pytest.raises(ValueError, match='no usable image'):
        DATASETS.build(dict(type='UnlabeledImageDataset', source=str(tmp_path / 'empty.txt')))
    with pytest.raises(FileNotFoundError, match='nope'):
        DATASETS.build(dict(type='UnlabeledImageDataset', source=str(tmp_path / 'nope')))


def _official_decoder(model):
    """The official decoder-side tensors (dense Block names, GRN (1, 1, 1, C)) of random values."""
    out = OrderedDict()
    for k, v in model.state_dict().items():
        if k.startswith('backbone.'):
            continue
        new = (k.replace('.depthwise_conv.', '.dwconv.').replace('.pointwise_conv1.', '.pwconv1.')
               .replace('.pointwise_conv2.', '.pwconv2.'))
        val = torch.randn_like(v)
        out[new] = val.reshape(1, 1, 1, -1) if '.grn.' in k else val
    return out


def _sparse_checkpoint(tmp_path):
    """An official FCMAE checkpoint (MinkowskiEngine layout) for a tiny arch, with its whole decoder."""
    ref = make_reference(seed=3, arch=TINY_ARCH)
    model = FCMAE(arch=dict(TINY_ARCH), decoder_dim=16)
    state = fcmae_state(ref)
    state = OrderedDict((k, v) for k, v in state.items() if k.startswith('encoder.'))
    decoder = _official_decoder(model)
    state.update(decoder)
    path = tmp_path / 'convnextv2_tiny-test_1k_224_fcmae.pt'
    torch.save(dict(model=state, epoch=800), path)
    return path, decoder


def test_sparse_fcmae_checkpoint_continues_without_a_key_left_out(tmp_path):
    from convnextv2_yolo.backbones import ConvNeXtV2
    path, decoder = _sparse_checkpoint(tmp_path)
    model = FCMAE(arch=dict(TINY_ARCH), decoder_dim=16, init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    model.init_weights()
    summary = model.load_pretrained(str(path))
    assert summary['format'] == 'fcmae' and summary['missing'] == [] and summary['unexpected'] == []
    assert summary['loaded'] == len(model.state_dict())
    # the encoder gets what the detection backbone gets from the same file (kernel transposition included)
    backbone = ConvNeXtV2(arch=dict(TINY_ARCH))
    backbone.load_pretrained(str(path))
    ref = backbone.state_dict()
    for k, v in model.backbone.state_dict().items():
        torch.testing.assert_close(v, ref[k], rtol=0, atol=0)
    own = model.state_dict()
    for k, v in decoder.items():
        name = (k.replace('.dwconv.', '.depthwise_conv.').replace('.pwconv1.', '.pointwise_conv1.')
                .replace('.pwconv2.', '.pointwise_conv2.'))
        torch.testing.assert_close(own[name], v.reshape(own[name].shape), rtol=0, atol=0)
    # and pretraining continues from it
    before = {k: v.clone() for k, v in model.state_dict().items()}
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    loss = model(torch.randn(2, 3, 64, 64))['loss']
    loss.backward()
    opt.step()
    assert torch.isfinite(loss)
    assert all(not torch.equal(before[k], v) for k, v in model.state_dict().items())
    # a checkpoint without the encoder is refused, naming it
    torch.save(dict(model=OrderedDict((k, v) for k, v in torch.load(path)['model'].items()
                                      if not k.startswith('encoder.stages.3'))), tmp_path / 'cut.pt')
    from convnextv2_yolo.backbones.convnextv2_checkpoint import CheckpointFormatError
    with pytest.raises(CheckpointFormatError, match='cut.pt.*lacks .* encoder'):
        model.load_pretrained(str(tmp_path / 'cut.pt'))


def _pretrain_cfg(tmp_path, images):
    from mmengine.config import Config
    cfg = Config.fromfile(FCMAE_CFG)
    cfg.work_dir = str(tmp_path / 'work')
    cfg.launcher = 'none'
    loader = cfg.train_dataloader
    loader.batch_size, loader.num_workers, loader.persistent_workers, loader.pin_memory = 2, 0, False, False
    loader.dataset.source = images
    loader.dataset.pipeline[1].scale = 64
    cfg.train_cfg.max_epochs = 1
    cfg.param_scheduler = []
    cfg.auto_scale_lr.enable = False
    cfg.optim_wrapper.optimizer.lr = 1e-3
    cfg.default_hooks.logger.interval = 1
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=1)
    # mmengine's visualizer is a per-name singleton: an earlier runner in this process would keep it (and
    # its vis_data folder, where the loss-curve tool looks); a name of its own gives this run its own
    cfg.visualizer = dict(cfg.get('visualizer') or dict(type='Visualizer', vis_backends=[dict(type='LocalVisBackend')]),
                          name=f'fcmae_{tmp_path.name}')
    return cfg


def test_pretraining_iteration_and_hand_over_to_the_detector(tmp_path):
    """tools/train.py's runner pretrains on CPU; the checkpoint feeds the demo detector through init_cfg."""
    from mmdet.registry import MODELS
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    from convnextv2_yolo.utils.launch import build_runner
    _write_images(str(tmp_path), n=4)
    runner = build_runner(_pretrain_cfg(tmp_path, str(tmp_path / 'images')))
    runner.train()
    ckpt = tmp_path / 'work' / 'epoch_1.pth'
    assert ckpt.is_file()
    losses = runner.message_hub.get_scalar('train/loss').data[0]
    assert len(losses) == 2 and np.isfinite(losses).all()
    trained = {k[len('backbone.'):]: v for k, v in runner.model.state_dict().items() if k.startswith('backbone.')}
    del runner
    # the visual check: original | masked | reconstruction per image, and the loss curve from the log
    import cv2

    from tests.helpers.processes import PY, run_tool
    out = tmp_path / 'vis'
    run_tool([PY, 'tools/analysis_tools/visualize_fcmae.py', FCMAE_CFG, str(ckpt), '--images', str(tmp_path / 'images'),
              '--num', '3', '--size', '64', '--out-dir', str(out)])
    grid = cv2.imread(str(out / 'reconstructions.png'))
    assert grid.shape == (3 * 64 + 2 * 4, 3 * 64 + 2 * 4, 3)
    assert (out / 'loss_curve.png').stat().st_size > 1000
    # the README's one-liner (what --cfg-options does to the demo config)
    cfg = Config.fromfile(DEMO_CFG)
    cfg.merge_from_dict({'model.backbone.init_cfg.type': 'Pretrained',
                         'model.backbone.init_cfg.checkpoint': str(ckpt)})
    init_default_scope('mmdet')
    torch.manual_seed(0)
    detector = MODELS.build(cfg.model)
    torch.manual_seed(0)
    fresh = MODELS.build(Config.fromfile(DEMO_CFG).model)
    fresh.init_weights()
    detector.init_weights()
    own = detector.backbone.state_dict()
    initial = fresh.backbone.state_dict()
    assert set(trained) == {k for k in own if not k.startswith('norm')}  # all but the detection output norms
    for k, v in trained.items():
        torch.testing.assert_close(own[k], v, rtol=0, atol=0)
        assert not torch.equal(own[k], initial[k]), f'{k} kept its initial value'


def test_data_and_imgsz_arguments_of_train_py_set_the_pretraining_images():
    """``tools/train.py FCMAE_CONFIG --data data.yaml --imgsz N``: the yaml's images (no labels), N-px crops."""
    from mmengine.config import Config

    from convnextv2_yolo.datasets.data_overrides import apply_data_args
    cfg = apply_data_args(Config.fromfile(FCMAE_CFG), '/some/data.yaml', 96)
    dataset = cfg.train_dataloader.dataset
    assert dataset.type == 'UnlabeledImageDataset' and dataset.source == '/some/data.yaml'
    assert dataset.pipeline[1].type == 'mmpretrain.RandomResizedCrop' and dataset.pipeline[1].scale == 96
    assert cfg.model.type == 'FCMAE' and cfg.val_dataloader is None
    with pytest.raises(ValueError, match='multiple of 32'):
        apply_data_args(Config.fromfile(FCMAE_CFG), None, 100)
