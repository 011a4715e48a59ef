"""Size and compute of the YOLO11 / YOLOv8 configs equal the reference's.

Models are built on the ``meta`` device (shapes only), so even the x scales
take well under a second; FLOPs are counted at 640x640 without computing.
"""
import os.path as osp

import pytest
import torch

from convnextv2_yolo.utils.complexity import count_flops, count_params
from tests.helpers.paths import ROOT

# Reference parameter counts at 80 classes and GFLOPs at 640x640 (2 x MACs).
REFERENCE = {
    'yolo11': dict(n=(2_624_080, 6.67), s=(9_458_752, 21.84), m=(20_114_688, 68.64),
                   l=(25_372_160, 87.85), x=(56_966_176, 196.32)),
    'yolov8': dict(n=(3_157_200, 8.86), s=(11_166_560, 28.81), m=(25_902_640, 79.31),
                   l=(43_691_520, 165.73), x=(68_229_648, 258.54)),
}
NECK_OUT = {
    'yolo11': dict(n=[64, 128, 256], s=[128, 256, 512], m=[256, 512, 512], l=[256, 512, 512], x=[384, 768, 768]),
    'yolov8': dict(n=[64, 128, 256], s=[128, 256, 512], m=[192, 384, 576], l=[256, 512, 512], x=[320, 640, 640]),
}
SCALE_VARS = {
    'yolo11': dict(n=(0.5, 0.25, 1024), s=(0.5, 0.5, 1024), m=(0.5, 1.0, 512), l=(1.0, 1.0, 512), x=(1.0, 1.5, 512)),
    'yolov8': dict(n=(0.33, 0.25, 1024), s=(0.33, 0.5, 1024), m=(0.67, 0.75, 768), l=(1.0, 1.0, 512),
                   x=(1.0, 1.25, 512)),
}
CASES = [(arch, scale) for arch in REFERENCE for scale in REFERENCE[arch]]


def load_cfg(arch, scale):
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    cfg = Config.fromfile(osp.join(ROOT, 'configs', arch, f'{arch}_{scale}_8xb16-500e_coco.py'))
    init_default_scope(cfg.default_scope)
    return cfg


def build_meta(cfg):
    from mmdet.registry import MODELS
    with torch.device('meta'):
        return MODELS.build(cfg.model)


@pytest.mark.parametrize('arch, scale', CASES)
def test_config_params_flops_and_channels(arch, scale):
    from convnextv2_yolo.layers import YOLO_SCALES
    cfg = load_cfg(arch, scale)
    assert cfg.model.backbone.scale == cfg.model.neck.scale == scale
    row = YOLO_SCALES[arch][scale]  # the reference's scales: row and its C3k choice
    assert (row.deepen_factor, row.widen_factor, row.max_channels) == SCALE_VARS[arch][scale]
    assert row.c3k_all == (arch == 'yolo11' and scale in 'mlx')
    assert cfg.model.bbox_head.num_classes == 80
    model = build_meta(cfg)
    assert model.backbone.out_channels == model.neck.in_channels
    assert model.neck.out_channels == NECK_OUT[arch][scale] == model.bbox_head.in_channels
    params, gflops = REFERENCE[arch][scale]
    assert count_params(model) == params
    measured = count_flops(model, (3, 640, 640)) / 1e9
    assert measured == pytest.approx(gflops, rel=0.02)


def test_count_flops_real_forward_equals_meta():
    """Counting on real tensors (through the mmengine 'tensor' mode) gives the meta count."""
    from mmdet.registry import MODELS
    cfg = load_cfg('yolo11', 'n')
    real = MODELS.build(cfg.model)
    meta = build_meta(cfg)
    assert count_flops(real, (3, 128, 160)) == count_flops(meta, (3, 128, 160))
    assert count_params(real) == 2_624_080
    assert count_params(real, trainable_only=True) == 2_624_080 - 16  # the fixed DFL bins


def test_count_flops_plain_conv():
    conv = torch.nn.Conv2d(3, 8, 3, padding=1, bias=False)
    bn = torch.nn.BatchNorm2d(8)
    # 2 * (8 * 16 * 16 outputs * 27 MACs) + thop's 4 ops per affine-BN element, doubled
    assert count_flops(torch.nn.Sequential(conv, bn), (3, 16, 16)) == 2 * 8 * 256 * 27 + 2 * 4 * 8 * 256
    assert count_flops(conv, (3, 16, 16), count_norm=False) == 2 * 8 * 256 * 27
