"""Shared pieces of the ONNX export tests: the shapes configs, random BatchNorm statistics, input images,
and tools/infer.py run with both backends."""
import json
import os.path as osp

import torch
from torch import nn

from .paths import ROOT
from .processes import PY, run_tool

CLASSES = ('rectangle', 'ellipse', 'triangle', 'star')  # the synthetic generator's


def shapes_config(path: str, size: int):
    """The config at ``path`` (relative to the repository root) at ``size`` px, with the shapes' classes."""
    from mmengine.config import Config

    from convnextv2_yolo.datasets.data_overrides import apply_data_args
    cfg = apply_data_args(Config.fromfile(osp.join(ROOT, path)), None, size)
    cfg.model.bbox_head.num_classes = len(CLASSES)
    return cfg


def randomise_batchnorm(model: nn.Module, g: torch.Generator) -> None:
    """Random BatchNorm statistics and affine terms (drawn from ``g``), so that fusion matters."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) * 0.2 + 0.2)
                m.weight.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.bias.copy_(torch.randn(m.num_features, generator=g) * 0.1)


def pattern_images(batch: int, seed: int, size) -> torch.Tensor:
    """Pixel noise on a strong low-frequency pattern: features (and scores) vary from anchor to anchor."""
    g = torch.Generator().manual_seed(seed)
    blobs = nn.functional.interpolate(torch.randn(batch, 3, 8, 8, generator=g) * 3, size=size, mode='bilinear',
                                      align_corners=False)
    return blobs + torch.rand(batch, 3, *size, generator=g)


def infer_with_both_backends(img_dir: str, onnx_path: str, cfg_path: str, ckpt: str, out_root: str,
                             num_images: int) -> dict:
    """tools/infer.py (CPU, score_thr 0.5) on ``img_dir`` with the ONNX file and with the PyTorch config and
    checkpoint: {backend: {'000001.json': predictions, ...}} for the first ``num_images`` images; asserts
    that each backend drew every picture."""
    names = [f'{i:06d}' for i in range(1, num_images + 1)]
    outs = {}
    for backend, model_args in (('onnxruntime', [onnx_path, '--backend', 'onnxruntime']),
                                ('pytorch', [cfg_path, ckpt])):
        out_dir = osp.join(out_root, backend)
        run_tool([PY, 'tools/infer.py', img_dir, *model_args, '--out-dir', out_dir, '--device', 'cpu',
                  '--score-thr', '0.5'])
        outs[backend] = {f'{n}.json': json.load(open(osp.join(out_dir, 'preds', f'{n}.json'))) for n in names}
        assert all(osp.isfile(osp.join(out_dir, 'vis', f'{n}.jpg')) for n in names)
    return outs


def save_random_checkpoint(cfg, path: str, seed: int, randomise) -> str:
    """``cfg.model`` (no train_cfg) built after ``torch.manual_seed(seed)``, ``randomise(model, seed)`` applied,
    saved to ``path`` with the shapes' class names in its meta; returns ``path``."""
    from mmdet.registry import MODELS
    from mmengine.registry import init_default_scope
    init_default_scope('mmdet')
    cfg.model.train_cfg = None
    torch.manual_seed(seed)
    model = MODELS.build(cfg.model)
    randomise(model, seed)
    torch.save(dict(state_dict=model.state_dict(), meta=dict(dataset_meta=dict(classes=CLASSES))), path)
    return path
