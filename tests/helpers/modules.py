"""Random weights for module tests (blocks, layouts, end-to-end head); configs and models of the repository."""
import os.path as osp

import torch
import torch.nn as nn

from .paths import ROOT


def randomize(module: nn.Module, seed: int = 0) -> nn.Module:
    """He-scaled random kernels, random BN affine and statistics; eval mode."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in module.state_dict().items():
            if name.endswith('num_batches_tracked'):
                continue
            if name.endswith('running_var') or name.endswith('bn.weight'):
                t.copy_(torch.rand(t.shape, generator=g) + 0.5)
            elif t.dim() == 4:
                t.copy_(torch.randn(t.shape, generator=g) * (2 / t[0].numel())**0.5)
            else:
                t.copy_(torch.randn(t.shape, generator=g) * 0.1)
    return module.eval()


def load_cfg(scale: str, folder: str = 'yolo26', name: str = None):
    """A config of the repository (default: YOLO26 at ``scale``), with its default scope set."""
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    cfg = Config.fromfile(osp.join(ROOT, 'configs', folder, name or f'yolo26_{scale}_8xb16-500e_coco.py'))
    init_default_scope(cfg.default_scope)
    return cfg


def build(cfg, meta: bool = False):
    """The model of ``cfg`` (on the meta device: shapes only, no memory)."""
    from mmdet.registry import MODELS
    if meta:
        with torch.device('meta'):
            return MODELS.build(cfg.model)
    return MODELS.build(cfg.model)
