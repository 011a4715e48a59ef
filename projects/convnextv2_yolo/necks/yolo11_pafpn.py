"""The YOLO11 / YOLOv8 path-aggregation neck, usable after any backbone."""
from typing import Optional, Sequence, Tuple

import torch
import torch.nn as nn
from mmdet.registry import MODELS
from mmengine.model import BaseModule

from ..layers import (C2PSA, SPPF, YOLO_ARCHS, Conv, make_csp_layer,
                      scale_channels, scale_depth)

DEFAULT_CSP_BLOCKS = {'yolo11': 2, 'yolov8': 3}


@MODELS.register_module()
class YOLO11PAFPN(BaseModule):
    """PAFPN of YOLO11 (C3k2) and YOLOv8 (C2f, no residuals) on P3, P4, P5.

    Top-down: P5 is upsampled (nearest, x2), concatenated as ``[up, P4]``
    and fused by ``top_down_layers[0]``; that result is upsampled,
    concatenated with P3 and fused by ``top_down_layers[1]`` (output P3).
    Bottom-up: ``downsample_layers[i]`` (Conv 3x3, stride 2) then
    ``cat[down, lateral]`` fused by ``bottom_up_layers[i]`` (outputs P4, P5),
    the laterals being the top-down P4 and the (SPPF/C2PSA-processed) P5.

    ``in_channels`` are the backbone's real channels and are never
    rescaled, so any backbone (ConvNeXt V2, ResNet, ...) can feed the neck.
    ``out_channels`` are given at width 1.0 and scaled like the reference
    (``ceil(min(c, max_channels) * widen_factor / 8) * 8``); the attribute
    ``self.out_channels`` holds the real channels of the three outputs.

    Args:
        in_channels (Sequence[int]): Real channels of the inputs P3, P4, P5.
        out_channels (Sequence[int]): Output channels at width 1.0.
            Defaults to (256, 512, 1024).
        deepen_factor (float): Depth multiplier. Defaults to 1.0.
        widen_factor (float): Width multiplier. Defaults to 1.0.
        max_channels (int): Channel cap before widening. Defaults to 1024.
        arch (str): 'yolo11' (C3k2, residual blocks) or 'yolov8' (C2f
            without residuals). Defaults to 'yolo11'.
        c3k_all (bool): C3k blocks in every C3k2 (reference scales m/l/x);
            otherwise only in the last bottom-up layer. Defaults to False.
        num_csp_blocks (int, optional): Blocks per CSP layer before depth
            scaling; None means the reference's 2 (yolo11) or 3 (yolov8).
        sppf_c2psa (bool): Run P5 through SPPF(k=5) (+ C2PSA for yolo11)
            first, for backbones that lack them (the native backbone ends
            with them already). Defaults to False.
        init_cfg (dict, optional): Defaults to None.

    Example:
        >>> import torch
        >>> neck = YOLO11PAFPN([128, 128, 256], deepen_factor=0.5,
        ...                    widen_factor=0.25)
        >>> feats = [torch.rand(1, c, s, s) for c, s in
        ...          zip([128, 128, 256], [8, 4, 2])]
        >>> [tuple(o.shape) for o in neck(feats)]
        [(1, 64, 8, 8), (1, 128, 4, 4), (1, 256, 2, 2)]
    """

    def __init__(self,
                 in_channels: Sequence[int],
                 out_channels: Sequence[int] = (256, 512, 1024),
                 deepen_factor: float = 1.0,
                 widen_factor: float = 1.0,
                 max_channels: int = 1024,
                 arch: str = 'yolo11',
                 c3k_all: bool = False,
                 num_csp_blocks: Optional[int] = None,
                 sppf_c2psa: bool = False,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if arch not in YOLO_ARCHS:
            raise ValueError(f'arch must be one of {YOLO_ARCHS}, got {arch!r}')
        if len(in_channels) != 3 or len(out_channels) != 3:
            raise ValueError('YOLO11PAFPN takes three levels (P3, P4, P5): got '
                             f'in_channels={list(in_channels)}, '
                             f'out_channels={list(out_channels)}')
        self.in_channels = list(in_channels)
        self.arch = arch
        self.sppf_c2psa = sppf_c2psa
        c3, c4, c5 = in_channels
        o3, o4, o5 = (scale_channels(c, widen_factor, max_channels) for c in out_channels)
        self.out_channels = [o3, o4, o5]
        if num_csp_blocks is None:
            num_csp_blocks = DEFAULT_CSP_BLOCKS[arch]
        n = scale_depth(num_csp_blocks, deepen_factor)
        # YOLOv8's neck blocks have no residuals; YOLO11's do.
        shortcut = arch == 'yolo11'

        def csp(c_in: int, c_out: int, c3k: bool) -> nn.Module:
            return make_csp_layer(arch, c_in, c_out, n, shortcut=shortcut, c3k=c3k or c3k_all)

        if sppf_c2psa:
            self.sppf = SPPF(c5, o5, 5)
            c5 = o5
            if arch == 'yolo11':
                self.c2psa = C2PSA(o5, o5, scale_depth(2, deepen_factor))
        self.upsample = nn.Upsample(scale_factor=2, mode='nearest')
        self.top_down_layers = nn.ModuleList([csp(c5 + c4, o4, False), csp(o4 + c3, o3, False)])
        self.downsample_layers = nn.ModuleList([Conv(o3, o3, 3, 2), Conv(o4, o4, 3, 2)])
        self.bottom_up_layers = nn.ModuleList([csp(o3 + o4, o4, False), csp(o4 + c5, o5, True)])

    def _check_inputs(self, inputs: Sequence[torch.Tensor]) -> None:
        channels = [x.shape[1] for x in inputs]
        if channels != self.in_channels:
            raise ValueError(f'YOLO11PAFPN expects inputs with channels {self.in_channels} '
                             f'(P3, P4, P5), got {channels}')

    def forward(self, inputs: Sequence[torch.Tensor]) -> Tuple[torch.Tensor, ...]:
        self._check_inputs(inputs)
        p3, p4, p5 = inputs
        if self.sppf_c2psa:
            p5 = self.sppf(p5)
            if self.arch == 'yolo11':
                p5 = self.c2psa(p5)
        td4 = self.top_down_layers[0](torch.cat([self.upsample(p5), p4], 1))
        out3 = self.top_down_layers[1](torch.cat([self.upsample(td4), p3], 1))
        out4 = self.bottom_up_layers[0](torch.cat([self.downsample_layers[0](out3), td4], 1))
        out5 = self.bottom_up_layers[1](torch.cat([self.downsample_layers[1](out4), p5], 1))
        return out3, out4, out5

    def extra_repr(self) -> str:
        return f'in_channels={self.in_channels}, out_channels={self.out_channels}'
