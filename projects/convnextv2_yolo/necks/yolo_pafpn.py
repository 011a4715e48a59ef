"""The YOLO11 / YOLO26 / YOLOv8 path-aggregation neck, usable after any backbone."""
import warnings
from typing import Optional, Sequence, Tuple

import torch
import torch.nn as nn
from mmdet.registry import MODELS
from mmengine.model import BaseModule

from ..layers import (C2PSA, C2PSA_VERSIONS, SPPF, SPPF_SETTINGS, Conv, make_csp_layer, resolve_scale, scale_channels,
                      scale_depth)
from ..layers.scaling import deprecated_family, reject_auto

DEFAULT_CSP_BLOCKS = {'yolo11': 2, 'yolov8': 3, 'yolo26': 2}
# The reference's P3/P4/P5 output channels at width 1.0 (its yaml ``head:``).
BASE_OUT_CHANNELS = (256, 512, 1024)


@MODELS.register_module()
class YOLOPAFPN(BaseModule):
    """PAFPN of YOLO11 (C3k2), YOLO26 (C3k2) and YOLOv8 (C2f, no residuals) on
    P3, P4, P5.

    Top-down: P5 is upsampled (nearest, x2), concatenated as ``[up, P4]``
    and fused by ``top_down_layers[0]``; that result is upsampled,
    concatenated with P3 and fused by ``top_down_layers[1]`` (output P3).
    Bottom-up: ``downsample_layers[i]`` (Conv 3x3, stride 2) then
    ``cat[down, lateral]`` fused by ``bottom_up_layers[i]`` (outputs P4, P5),
    the laterals being the top-down P4 and the (SPPF/C2PSA-processed) P5.

    ``in_channels`` are the backbone's real channels and are never
    rescaled, so any backbone (ConvNeXt V2, ResNet, ...) can feed the neck;
    :class:`YOLODetector` reads them from the built backbone when they are
    ``'auto'``. The size is ``scale`` (a row of
    :data:`~convnextv2_yolo.layers.YOLO_SCALES`) or explicit factors, not
    both. ``out_channels`` are real channels; when None they follow the
    width, as the reference's ``ceil(min(c, max_channels) * widen_factor /
    8) * 8`` of (256, 512, 1024). ``self.out_channels`` holds them.

    Args:
        in_channels (Sequence[int]): Real channels of the inputs P3, P4, P5.
        out_channels (Sequence[int], optional): Real output channels.
            Defaults to None (derived from the width, see above); when
            given, ``widen_factor`` / ``max_channels`` are not.
        version (str): Family: 'yolo11' (C3k2, residual blocks), 'yolo26'
            (see above) or 'yolov8' (C2f without residuals). Defaults to
            'yolo11'.
        scale (str, optional): 'n', 's', 'm', 'l' or 'x'. Defaults to None.
        deepen_factor (float, optional): Depth multiplier (1.0 if unset).
        widen_factor (float, optional): Width multiplier (1.0 if unset).
        max_channels (int, optional): Channel cap before widening (1024 if
            unset).
        c3k_all (bool, optional): C3k blocks in every C3k2 (reference scales
            m/l/x); otherwise only in the last bottom-up layer. False if unset.
        num_csp_blocks (int, optional): Blocks per CSP layer before depth
            scaling; None means the reference's 2 (yolo11, yolo26) or 3
            (yolov8). YOLO26's last layer always has one block.
        sppf_c2psa (bool): Run P5 through SPPF(k=5) (+ C2PSA for yolo11/26)
            first, for backbones that lack them (the native backbone ends
            with them already). Defaults to False.
        init_cfg (dict, optional): Defaults to None.

    Raises:
        ValueError: Not three levels, unknown version or scale, a scale
            together with explicit factors, or ``out_channels`` together with
            ``widen_factor`` / ``max_channels``.

    Example:
        >>> import torch
        >>> neck = YOLOPAFPN([128, 128, 256], scale='n')
        >>> feats = [torch.rand(1, c, s, s) for c, s in
        ...          zip([128, 128, 256], [8, 4, 2])]
        >>> [tuple(o.shape) for o in neck(feats)]
        [(1, 64, 8, 8), (1, 128, 4, 4), (1, 256, 2, 2)]
    """

    def __init__(self,
                 in_channels: Sequence[int],
                 out_channels: Optional[Sequence[int]] = None,
                 version: str = 'yolo11',
                 scale: Optional[str] = None,
                 deepen_factor: Optional[float] = None,
                 widen_factor: Optional[float] = None,
                 max_channels: Optional[int] = None,
                 c3k_all: Optional[bool] = None,
                 num_csp_blocks: Optional[int] = None,
                 sppf_c2psa: bool = False,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        owner = type(self).__name__
        reject_auto(owner, in_channels=in_channels, sppf_c2psa=sppf_c2psa)
        factors = resolve_scale(version, scale, deepen_factor, widen_factor, max_channels, c3k_all, owner=owner)
        if out_channels is None:
            out_channels = [scale_channels(c, factors.widen_factor, factors.max_channels)
                            for c in BASE_OUT_CHANNELS]
        elif widen_factor is not None or max_channels is not None:
            raise ValueError(f'{owner}: out_channels are real channels: give either out_channels or '
                             f'widen_factor/max_channels, not both (got out_channels={list(out_channels)}, '
                             f'widen_factor={widen_factor!r}, max_channels={max_channels!r})')
        if len(in_channels) != 3 or len(out_channels) != 3:
            raise ValueError(f'{owner} takes three levels (P3, P4, P5): got '
                             f'in_channels={list(in_channels)}, '
                             f'out_channels={list(out_channels)}')
        self.in_channels = list(in_channels)
        self.version = version
        self.scale = scale
        self.factors = factors
        self.sppf_c2psa = sppf_c2psa
        c3, c4, c5 = in_channels
        o3, o4, o5 = out_channels
        self.out_channels = [o3, o4, o5]
        if num_csp_blocks is None:
            num_csp_blocks = DEFAULT_CSP_BLOCKS[version]
        n = scale_depth(num_csp_blocks, factors.deepen_factor)
        # YOLOv8's neck blocks have no residuals; YOLO11's and YOLO26's do.
        shortcut = version != 'yolov8'
        # YOLO26's yaml rows 13/16/19 say C3k2(c, True): C3k blocks at every scale
        c3k_neck = version == 'yolo26'

        def csp(c_in: int, c_out: int, c3k: bool) -> nn.Module:
            return make_csp_layer(version, c_in, c_out, n, shortcut=shortcut, c3k=c3k or factors.c3k_all)

        if sppf_c2psa:
            self.sppf = SPPF(c5, o5, **SPPF_SETTINGS[version])
            c5 = o5
            if version in C2PSA_VERSIONS:
                self.c2psa = C2PSA(o5, o5, scale_depth(2, factors.deepen_factor))
        self.upsample = nn.Upsample(scale_factor=2, mode='nearest')
        self.top_down_layers = nn.ModuleList([csp(c5 + c4, o4, c3k_neck), csp(o4 + c3, o3, c3k_neck)])
        self.downsample_layers = nn.ModuleList([Conv(o3, o3, 3, 2), Conv(o4, o4, 3, 2)])
        # built in this order (the random initialisation follows it)
        self.bottom_up_layers = nn.ModuleList([csp(o3 + o4, o4, c3k_neck)])
        if version == 'yolo26':  # yaml row 22: C3k2(1024, True, 0.5, True), repeat 1 (not scaled)
            self.bottom_up_layers.append(
                make_csp_layer(version, o4 + c5, o5, 1, shortcut=True, c3k=True, e=0.5, attn=True))
        else:
            self.bottom_up_layers.append(csp(o4 + c5, o5, True))

    def _check_inputs(self, inputs: Sequence[torch.Tensor]) -> None:
        channels = [x.shape[1] for x in inputs]
        if channels != self.in_channels:
            raise ValueError(f'{type(self).__name__} expects inputs with channels {self.in_channels} '
                             f'(P3, P4, P5), got {channels}')

    def forward(self, inputs: Sequence[torch.Tensor]) -> Tuple[torch.Tensor, ...]:
        self._check_inputs(inputs)
        p3, p4, p5 = inputs
        if self.sppf_c2psa:
            p5 = self.sppf(p5)
            if self.version in C2PSA_VERSIONS:
                p5 = self.c2psa(p5)
        td4 = self.top_down_layers[0](torch.cat([self.upsample(p5), p4], 1))
        out3 = self.top_down_layers[1](torch.cat([self.upsample(td4), p3], 1))
        out4 = self.bottom_up_layers[0](torch.cat([self.downsample_layers[0](out3), td4], 1))
        out5 = self.bottom_up_layers[1](torch.cat([self.downsample_layers[1](out4), p5], 1))
        return out3, out4, out5

    def extra_repr(self) -> str:
        return f'in_channels={self.in_channels}, out_channels={self.out_channels}'


@MODELS.register_module()
class YOLO11PAFPN(YOLOPAFPN):
    """Deprecated name of :class:`YOLOPAFPN` (it builds YOLOv8 too), with its
    old arguments: ``arch`` (now ``version``) and ``out_channels`` at width
    1.0, scaled by ``widen_factor`` / ``max_channels`` (now real channels).

    Same modules, so the same state-dict keys.
    """

    def __init__(self,
                 in_channels: Sequence[int],
                 out_channels: Sequence[int] = BASE_OUT_CHANNELS,
                 deepen_factor: Optional[float] = None,
                 widen_factor: Optional[float] = None,
                 max_channels: Optional[int] = None,
                 arch: Optional[str] = None,
                 c3k_all: Optional[bool] = None,
                 version: Optional[str] = None,
                 scale: Optional[str] = None,
                 **kwargs) -> None:
        warnings.warn("'YOLO11PAFPN' is deprecated: use type='YOLOPAFPN' with version= (was arch=) and "
                      "scale='n'/'s'/'m'/'l'/'x'; its out_channels are real channels", FutureWarning,
                      stacklevel=2)
        owner = type(self).__name__
        version = deprecated_family(arch, version, owner)
        if scale is None:  # the alias's old defaults: width-1.0 channels, full depth
            deepen_factor = 1.0 if deepen_factor is None else deepen_factor
            widen_factor = 1.0 if widen_factor is None else widen_factor
            max_channels = 1024 if max_channels is None else max_channels
            c3k_all = False if c3k_all is None else c3k_all
        factors = resolve_scale(version, scale, deepen_factor, widen_factor, max_channels, c3k_all, owner=owner)
        real = [scale_channels(c, factors.widen_factor, factors.max_channels) for c in out_channels]
        if scale is not None:
            super().__init__(in_channels, real, version=version, scale=scale, **kwargs)
        else:
            super().__init__(in_channels, real, version=version, deepen_factor=deepen_factor, c3k_all=c3k_all,
                             **kwargs)
