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


# ---------------------------------------------------------------- random-weight detectors to export
DFL_CONFIGS = {  # the DFL-head models the export tests trace

    'yolo11n': 'configs/yolo11/yolo11_n_8xb16-500e_coco.py',
    'yolov8n': 'configs/yolov8/yolov8_n_8xb16-500e_coco.py',
    'convnextv2-atto': 'configs/convnextv2_yolo/yolo11_convnextv2-atto_fcmae_8xb16-300e_coco.py',
}


def randomise_dfl_head(model: nn.Module, seed: int) -> None:
    """Random BatchNorm statistics and affine terms; class logits ~N(0, 1.5); DFL peaked near 2 bins."""
    g = torch.Generator().manual_seed(seed)
    randomise_batchnorm(model, g)
    with torch.no_grad():
        head = model.bbox_head
        for cls, reg in zip(head.cls_convs, head.reg_convs):
            cls[-1].weight.mul_(1.0)
            cls[-1].bias.copy_(torch.randn(cls[-1].bias.shape, generator=g) * 1.5)
            bins = torch.arange(head.reg_max, dtype=torch.float)
            reg[-1].bias.copy_((-0.5 * (bins - 2) ** 2).repeat(4))


def random_dfl_checkpoint(name: str, path: str, seed: int = 0, size: int = 128) -> str:
    """A random-weight checkpoint of ``DFL_CONFIGS[name]`` (4 classes) for the export tests."""
    cfg = shapes_config(DFL_CONFIGS[name], size)
    cfg.model.backbone.init_cfg = None
    return save_random_checkpoint(cfg, path, seed, randomise_dfl_head)


YOLO26 = 'configs/yolo26/yolo26_n_8xb16-500e_coco.py'


def e2e_config(end2end: bool = True, size: int = 128, path: str = YOLO26):
    """The YOLO26-n shapes config; ``end2end=False`` as ``--cfg-options model.test_cfg.end2end=False``."""
    cfg = shapes_config(path, size)
    if not end2end:
        cfg.merge_from_dict({'model.test_cfg.end2end': False})  # as --cfg-options does
    return cfg


def randomise_e2e_head(model: nn.Module, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    randomise_batchnorm(model, g)
    with torch.no_grad():
        head = model.bbox_head
        for cls, reg in zip([*head.cls_convs, *head.one2one_cls_convs], [*head.reg_convs, *head.one2one_reg_convs]):
            cls[-1].bias.copy_(torch.randn(cls[-1].bias.shape, generator=g) * 1.5)
            reg[-1].bias.copy_(torch.rand(4, generator=g) + 1.0)


def random_e2e_checkpoint(path: str, seed: int = 0, size: int = 128) -> str:
    """A random-weight YOLO26-n checkpoint (4 classes, names in its meta)."""
    return save_random_checkpoint(e2e_config(size=size), path, seed, randomise_e2e_head)


def assert_same_detections(ref, got, what: str) -> None:
    """The same detections (one-to-one: same label, boxes within 1e-3 px, scores within 1e-5), both by
    descending score; the order of detections whose scores differ by float rounding may differ."""
    assert len(ref) == len(got), f'{what}: {len(ref)} PyTorch detections, {len(got)} ONNX Runtime'
    if not len(ref):
        return
    same_label = ref.labels.long()[:, None] == got.labels.long()[None]
    box_err = (ref.bboxes[:, None] - got.bboxes[None]).abs().amax(-1)
    box_err = torch.where(same_label, box_err, torch.full_like(box_err, float('inf')))
    match = box_err.argmin(1)
    assert len(set(match.tolist())) == len(ref), f'{what}: detections are not one-to-one'
    assert box_err.min(1).values.max().item() <= 1e-3, what
    assert (ref.scores - got.scores[match]).abs().max().item() <= 1e-5, what
    for res in (ref, got):
        assert (res.scores[1:] <= res.scores[:-1]).all(), what
    assert (match - torch.arange(len(ref))).abs().max().item() <= 2, f'{what}: order differs beyond ties'
