"""The native CSP-Darknet backbone of YOLO11, YOLO26 and YOLOv8."""
import warnings
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
from mmdet.registry import MODELS
from mmengine.model import BaseModule
from torch.nn.modules.batchnorm import _BatchNorm

from ..layers import (C2PSA, C2PSA_VERSIONS, SPPF, SPPF_SETTINGS, Conv, make_csp_layer, resolve_scale, scale_channels,
                      scale_depth)
from ..layers.scaling import deprecated_family

# Per family and stage: downsample-conv channels, CSP-layer channels, CSP
# blocks, c3k flag (yolo11; scales m/l/x force it on), hidden ratio e. Values
# at width 1.0 (the reference's yaml ``backbone:``); the scale rows are in
# layers/scaling.py (YOLO_SCALES).
STAGE_SETTINGS = {
    'yolo11': [(128, 256, 2, False, 0.25), (256, 512, 2, False, 0.25),
               (512, 512, 2, True, 0.5), (1024, 1024, 2, True, 0.5)],
    'yolov8': [(128, 128, 3, False, 0.5), (256, 256, 6, False, 0.5),
               (512, 512, 6, False, 0.5), (1024, 1024, 3, False, 0.5)],
}
# YOLO26's stages are YOLO11's (ultralytics/cfg/models/26/yolo26.yaml, layers 0-8)
STAGE_SETTINGS['yolo26'] = STAGE_SETTINGS['yolo11']

STEM_CHANNELS = 64
C2PSA_BLOCKS = 2


@MODELS.register_module()
class YOLOCSPDarknet(BaseModule):
    """CSP-Darknet backbone of YOLO11 (C3k2 blocks, SPPF + C2PSA at P5), of
    YOLO26 (YOLO11's, with a residual SPPF whose ``cv1`` has no activation)
    and of YOLOv8 (C2f blocks, SPPF at P5).

    Layout (channels at width 1.0, yolo11): ``stem`` Conv(64, 3, s2) ->
    ``stage1`` [Conv(128, 3, s2), C3k2(256, e=0.25)] -> ``stage2`` [Conv(256,
    3, s2), C3k2(512, e=0.25)] -> ``stage3`` [Conv(512, 3, s2), C3k2(512,
    c3k)] -> ``stage4`` [Conv(1024, 3, s2), C3k2(1024, c3k), SPPF(1024, 5),
    C2PSA(1024)]. Channels are scaled as ``ceil(min(c, max_channels) *
    widen_factor / 8) * 8`` and block counts as ``max(round(n *
    deepen_factor), 1)``, which reproduces the reference model exactly.

    The size is either ``scale`` (a row of the reference's ``scales:`` table,
    :data:`~convnextv2_yolo.layers.YOLO_SCALES`, as ``yolo11n.yaml`` picks
    one) or explicit factors for a custom size; not both.

    Args:
        version (str): Family: 'yolo11' (C3k2 + C2PSA), 'yolo26' (as
            yolo11, with ``SPPF(k=5, n=3, shortcut=True, cv1_act=False)``,
            ultralytics/cfg/models/26/yolo26.yaml) or 'yolov8' (C2f).
            Defaults to 'yolo11'.
        scale (str, optional): 'n', 's', 'm', 'l' or 'x'. Defaults to None
            (explicit factors, each defaulting to the width-1.0 layout).
        deepen_factor (float, optional): Depth multiplier (1.0 if unset).
        widen_factor (float, optional): Width multiplier (1.0 if unset).
        max_channels (int, optional): Channel cap applied before widening
            (1024 if unset).
        c3k_all (bool, optional): Use C3k blocks in every C3k2 (the
            reference does so at scales m, l and x). False if unset.
        in_channels (int): Image channels. Defaults to 3.
        out_indices (Sequence[int]): Outputs among stem (0) and stages 1-4;
            (2, 3, 4) are P3, P4, P5. Defaults to (2, 3, 4).
        frozen_stages (int): Freeze the stem and stages up to this index
            (-1: nothing frozen). Defaults to -1.
        norm_eval (bool): Keep BatchNorm layers in eval mode while
            training. Defaults to False.
        init_cfg (dict, optional): Defaults to None (PyTorch's default
            initialisation, as the reference).

    Raises:
        ValueError: Unknown version or scale, a scale together with explicit
            factors, or out-of-range ``out_indices`` / ``frozen_stages``.

    Example:
        >>> import torch
        >>> net = YOLOCSPDarknet(scale='n')
        >>> [tuple(o.shape) for o in net(torch.rand(1, 3, 64, 64))]
        [(1, 128, 8, 8), (1, 128, 4, 4), (1, 256, 2, 2)]
        >>> net.out_channels
        [128, 128, 256]
    """

    def __init__(self,
                 version: str = 'yolo11',
                 scale: Optional[str] = None,
                 deepen_factor: Optional[float] = None,
                 widen_factor: Optional[float] = None,
                 max_channels: Optional[int] = None,
                 c3k_all: Optional[bool] = None,
                 in_channels: int = 3,
                 out_indices: Sequence[int] = (2, 3, 4),
                 frozen_stages: int = -1,
                 norm_eval: bool = False,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        factors = resolve_scale(version, scale, deepen_factor, widen_factor, max_channels, c3k_all,
                                owner=type(self).__name__)
        num_layers = len(STAGE_SETTINGS[version]) + 1
        out_indices = tuple(out_indices)
        if not out_indices or any(i not in range(num_layers) for i in out_indices):
            raise ValueError(f'out_indices must be in 0..{num_layers - 1}, got {out_indices}')
        if frozen_stages not in range(-1, num_layers):
            raise ValueError(f'frozen_stages must be in -1..{num_layers - 1}, got {frozen_stages}')
        self.version = version
        self.scale = scale
        self.factors = factors
        self.out_indices = out_indices
        self.frozen_stages = frozen_stages
        self.norm_eval = norm_eval

        def width(c: int) -> int:
            return scale_channels(c, factors.widen_factor, factors.max_channels)

        channels = [width(STEM_CHANNELS)]
        self.stem = Conv(in_channels, channels[0], 3, 2)
        self.layers = ['stem']
        last = len(STAGE_SETTINGS[version]) - 1
        for i, (conv_c, csp_c, n, c3k, e) in enumerate(STAGE_SETTINGS[version]):
            conv_c, csp_c = width(conv_c), width(csp_c)
            stage: List[nn.Module] = [
                Conv(channels[-1], conv_c, 3, 2),
                make_csp_layer(version, conv_c, csp_c, scale_depth(n, factors.deepen_factor),
                               shortcut=True, c3k=c3k or factors.c3k_all, e=e)
            ]
            if i == last:
                stage.append(SPPF(csp_c, csp_c, **SPPF_SETTINGS[version]))
                if version in C2PSA_VERSIONS:
                    stage.append(C2PSA(csp_c, csp_c, scale_depth(C2PSA_BLOCKS, factors.deepen_factor)))
            name = f'stage{i + 1}'
            self.add_module(name, nn.Sequential(*stage))
            self.layers.append(name)
            channels.append(csp_c)
        self.out_channels = [channels[i] for i in out_indices]
        self._freeze_stages()

    def _freeze_stages(self) -> None:
        for name in self.layers[:self.frozen_stages + 1]:
            layer = getattr(self, name)
            layer.eval()
            for param in layer.parameters():
                param.requires_grad = False

    def train(self, mode: bool = True) -> 'YOLOCSPDarknet':
        super().train(mode)
        self._freeze_stages()
        if mode and self.norm_eval:
            for m in self.modules():
                if isinstance(m, _BatchNorm):
                    m.eval()
        return self

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        outs = []
        for i, name in enumerate(self.layers):
            x = getattr(self, name)(x)
            if i in self.out_indices:
                outs.append(x)
        return tuple(outs)


@MODELS.register_module()
class YOLO11CSPDarknet(YOLOCSPDarknet):
    """Deprecated name of :class:`YOLOCSPDarknet` (it builds YOLOv8 too).

    Kept so that older configs build unchanged: ``arch`` is the family,
    now ``version``. Same modules, so the same state-dict keys.
    """

    def __init__(self, arch: Optional[str] = None, version: Optional[str] = None, **kwargs) -> None:
        warnings.warn("'YOLO11CSPDarknet' is deprecated: use type='YOLOCSPDarknet' with version= (was arch=) "
                      "and scale='n'/'s'/'m'/'l'/'x'", FutureWarning, stacklevel=2)
        super().__init__(version=deprecated_family(arch, version, type(self).__name__), **kwargs)
