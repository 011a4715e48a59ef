"""ConvNeXt V2 (and V1) detection backbone on top of mmpretrain's ConvNeXt."""
import copy
import re
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
from mmdet.registry import MODELS
from mmengine.logging import print_log
from mmpretrain.models.backbones import ConvNeXt as _MMPretrainConvNeXt
from torch.utils.checkpoint import checkpoint

from ..layers import GRN
from .convnextv2_checkpoint import BACKBONE_PREFIX, CheckpointFormatError, infer_arch, load_mmpretrain_state_dict

# Official variants per version (depths / channels come from mmpretrain).
ARCHS: Dict[str, Tuple[str, ...]] = {
    'v2': ('atto', 'femto', 'pico', 'nano', 'tiny', 'base', 'large', 'huge'),
    'v1': ('tiny', 'small', 'base', 'large', 'xlarge'),
}
# Block settings that distinguish the versions (mmpretrain arguments).
_VERSION_CFG = {
    'v2': dict(use_grn=True, layer_scale_init_value=0.),
    'v1': dict(use_grn=False, layer_scale_init_value=1e-6),
}
# mmpretrain's default initialisation (used for what the checkpoint lacks).
_DEFAULT_INIT = [
    dict(type='TruncNormal', layer=['Conv2d', 'Linear'], std=.02, bias=0.),
    dict(type='Constant', layer=['LayerNorm'], val=1., bias=0.),
]
# Output norms exist only in detection backbones: a checkpoint may lack them.
_OPTIONAL_KEY = re.compile(r'^norm\d+\.')


def lr_decay_num_layers(depths: Sequence[int]) -> int:
    """``num_layers`` for mmdet's ``LearningRateDecayOptimizerConstructor``.

    Args:
        depths (Sequence[int]): Blocks per stage.

    Returns:
        int: 6 when the third stage has at most 9 blocks, else 12.
    """
    return 12 if depths[2] > 9 else 6


def _split_pretrained(init_cfg) -> Tuple[Optional[dict], list]:
    """Separate a ``Pretrained`` entry from the other init configs."""
    if init_cfg is None:
        return None, copy.deepcopy(_DEFAULT_INIT)
    cfgs = [init_cfg] if isinstance(init_cfg, dict) else list(init_cfg)
    pretrained = [c for c in cfgs if c.get('type') == 'Pretrained']
    others = [c for c in cfgs if c.get('type') != 'Pretrained']
    if len(pretrained) > 1:
        raise ValueError('ConvNeXtV2 accepts one Pretrained init_cfg, got '
                         f'{len(pretrained)}.')
    if pretrained and not pretrained[0].get('checkpoint'):
        raise ValueError('init_cfg of type Pretrained needs "checkpoint" '
                         '(a local path or a URL).')
    return (dict(pretrained[0]) if pretrained else None), (
        others or copy.deepcopy(_DEFAULT_INIT))


@MODELS.register_module()
class ConvNeXtV2(_MMPretrainConvNeXt):
    """ConvNeXt V2 backbone for detection (ConvNeXt V1 with ``version='v1'``).

    mmpretrain's ``ConvNeXt`` with V2 blocks (GRN, no layer scale), spatial
    output norms, FCMAE weights from any release format and gradient
    checkpointing that uses the non-reentrant variant.

    Args:
        arch (str | dict): ``atto``, ``femto``, ``pico``, ``nano``, ``tiny``,
            ``base``, ``large``, ``huge`` for V2 (``tiny``, ``small``,
            ``base``, ``large``, ``xlarge`` for V1), or a dict with
            ``depths`` and ``channels``. Defaults to 'tiny'.
        version (str): 'v2' (GRN, no layer scale) or 'v1' (layer scale 1e-6,
            no GRN). Defaults to 'v2'.
        in_channels (int): Input image channels. Defaults to 3.
        out_indices (Sequence[int]): Stages whose (normed) outputs are
            returned; (1, 2, 3) gives P3/P4/P5 (strides 8/16/32).
        drop_path_rate (float): Stochastic depth rate. Defaults to 0.
        frozen_stages (int): Freeze the stem/downsampling layers, blocks and
            output norms of the first ``frozen_stages`` stages (0-4; -1 as
            in mmdet backbones also means none). Defaults to 0.
        with_cp (bool): Gradient checkpointing per block (saves memory,
            costs one extra forward). Defaults to False.
        init_cfg (dict | list[dict], optional): ``dict(type='Pretrained',
            checkpoint=PATH_OR_URL, prefix=None)`` loads mmpretrain, official
            FCMAE, official fine-tuned or timm weights (auto-detected);
            other entries initialise the rest.
        **kwargs: Other mmpretrain ``ConvNeXt`` arguments (``norm_cfg``,
            ``act_cfg``, ``stem_patch_size``, ``layer_scale_init_value`` ...).
    """

    def __init__(self,
                 arch: Union[str, dict] = 'tiny',
                 version: str = 'v2',
                 in_channels: int = 3,
                 out_indices: Sequence[int] = (1, 2, 3),
                 drop_path_rate: float = 0.,
                 frozen_stages: int = 0,
                 with_cp: bool = False,
                 init_cfg: Optional[Union[dict, List[dict]]] = None,
                 **kwargs) -> None:
        if version not in ARCHS:
            raise ValueError(f'Unknown ConvNeXt version "{version}"; valid: '
                             f'{list(ARCHS)}.')
        if isinstance(arch, str):
            if arch not in ARCHS[version]:
                raise ValueError(
                    f'Unknown ConvNeXt {version.upper()} arch "{arch}"; '
                    f'valid: {list(ARCHS[version])} (or a dict with '
                    '"depths" and "channels").')
            arch = self.arch_settings[arch]
        elif not (isinstance(arch, dict) and 'depths' in arch
                  and 'channels' in arch):
            raise ValueError('arch must be a name or a dict with "depths" and '
                             f'"channels", got {arch!r}.')
        arch = dict(depths=list(arch['depths']),
                    channels=list(arch['channels']))
        num_stages = len(arch['depths'])
        out_indices = [i % num_stages if i < 0 else i for i in out_indices]
        if not out_indices or any(i >= num_stages for i in out_indices):
            raise ValueError(f'out_indices {out_indices} must be non-empty '
                             f'stage indices below {num_stages}.')
        if not -1 <= frozen_stages <= num_stages:
            raise ValueError(
                f'frozen_stages must be in [-1, {num_stages}] (-1 or 0: '
                f'none), got {frozen_stages}.')
        frozen_stages = max(frozen_stages, 0)
        block_cfg = {**_VERSION_CFG[version], **kwargs}
        self._pretrained_cfg, other_init = _split_pretrained(init_cfg)
        super().__init__(
            arch=arch,
            in_channels=in_channels,
            out_indices=sorted(out_indices),
            drop_path_rate=drop_path_rate,
            frozen_stages=frozen_stages,
            gap_before_final_norm=False,
            with_cp=False,  # checkpointing is done here, non-reentrant
            init_cfg=other_init,
            **block_cfg)
        for stage in self.stages:
            for block in stage:
                if getattr(block, 'grn', None) is not None:
                    block.grn = GRN(block.grn.in_channels, block.grn.eps)
        self._freeze_stages()  # the new GRNs of frozen stages too
        self.arch = arch
        self.version = version
        self.with_cp = with_cp
        self.out_channels: List[int] = [
            self.channels[i] for i in self.out_indices
        ]

    @property
    def lr_decay_num_layers(self) -> int:
        """``num_layers`` to give mmdet's layer-wise LR decay constructor."""
        return lr_decay_num_layers(self.depths)

    def _freeze_stages(self) -> None:
        """Freeze the first stages, their output norms included."""
        super()._freeze_stages()
        for i in range(self.frozen_stages):
            norm = getattr(self, f'norm{i}', None)
            if norm is not None:
                norm.eval()
                for param in norm.parameters():
                    param.requires_grad = False

    def train(self, mode: bool = True) -> 'ConvNeXtV2':
        """Set train mode, keeping frozen stages in eval (returns self)."""
        super().train(mode)
        return self

    def _run_stage(self, stage: nn.Module, x: torch.Tensor) -> torch.Tensor:
        """Run the blocks of a stage, checkpointing each when asked."""
        if not (self.with_cp and torch.is_grad_enabled()):
            return stage(x)
        for block in stage:
            x = checkpoint(block, x, use_reentrant=False)
        return x

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        """Return the normed feature maps of ``out_indices``."""
        outs = []
        last = self.out_indices[-1]
        for i, stage in enumerate(self.stages):
            x = self.downsample_layers[i](x)
            x = self._run_stage(stage, x)
            if i in self.out_indices:
                outs.append(getattr(self, f'norm{i}')(x))
            if i == last:
                break
        return tuple(outs)

    def init_weights(self) -> None:
        """Default init, then the ``Pretrained`` checkpoint if configured."""
        first_call = not self._is_init
        super().init_weights()
        if first_call and self._pretrained_cfg is not None:
            self.load_pretrained(
                self._pretrained_cfg['checkpoint'],
                prefix=self._pretrained_cfg.get('prefix'),
                src_format=self._pretrained_cfg.get('format'))

    def load_pretrained(self,
                        checkpoint: str,
                        prefix: Optional[str] = None,
                        src_format: Optional[str] = None) -> dict:
        """Load weights of any supported format, strictly for the backbone.

        Every backbone tensor must be present with the right shape; only the
        output norms ``norm{i}`` may be missing (FCMAE weights lack them).

        Args:
            checkpoint (str): Local path or URL.
            prefix (str, optional): Use only the keys under this prefix.
            src_format (str, optional): Force the format (else detected).

        Returns:
            dict: Summary with ``format``, ``loaded``, ``missing`` and
            ``unexpected`` keys.
        """
        converted, fmt = load_mmpretrain_state_dict(checkpoint, prefix,
                                                    src_format)
        own = self.state_dict()
        ckpt = {
            k[len(BACKBONE_PREFIX):]: v
            for k, v in converted.items() if k.startswith(BACKBONE_PREFIX)
        }
        unexpected = [k for k in converted if not k.startswith(
            BACKBONE_PREFIX)] + [BACKBONE_PREFIX + k for k in ckpt
                                 if k not in own]
        missing = [k for k in own if k not in ckpt]
        required = [k for k in missing if not _OPTIONAL_KEY.match(k)]
        where = f'Checkpoint {checkpoint} (format: {fmt}'
        src_arch = infer_arch(converted)
        where += f', depths={src_arch["depths"]}, channels=' \
            f'{src_arch["channels"]})' if src_arch else ')'
        bad = [(k, tuple(v.shape), tuple(own[k].shape))
               for k, v in ckpt.items()
               if k in own and v.shape != own[k].shape]
        if bad:
            k, src, dst = bad[0]
            raise CheckpointFormatError(
                f'{where} does not fit {self._describe()}: "{k}" has shape '
                f'{src} in the checkpoint but {dst} in the model '
                f'({len(bad)} mismatched tensor(s)).')
        if required:
            raise CheckpointFormatError(
                f'{where} lacks {len(required)} backbone tensor(s) of '
                f'{self._describe()}: {required[:6]}'
                f'{" ..." if len(required) > 6 else ""}')
        to_load = {k: v for k, v in ckpt.items() if k in own}
        self.load_state_dict(to_load, strict=False)
        summary = dict(
            format=fmt,
            loaded=len(to_load),
            total=len(own),
            missing=missing,
            unexpected=unexpected)
        print_log(_format_summary(checkpoint, summary), logger='current')
        return summary

    def _describe(self) -> str:
        return (f'ConvNeXt{self.version.upper()}(depths={self.depths}, '
                f'channels={self.channels})')


def _group(keys: List[str]) -> str:
    """Compress keys into ``module.*(n)`` groups for one-screen logging."""
    groups: Dict[str, int] = {}
    for k in keys:
        parts = k.split('.')
        head = '.'.join(parts[:2]) if parts[0] in ('backbone',
                                                   'head') else parts[0]
        groups[head] = groups.get(head, 0) + 1
    return ', '.join(f'{g}.* ({n})' if n > 1 else g
                     for g, n in groups.items())


def _format_summary(checkpoint: str, s: dict) -> str:
    lines = [
        f'ConvNeXtV2 weights from {checkpoint}',
        f'  format detected : {s["format"]}',
        f'  tensors loaded  : {s["loaded"]} / {s["total"]} backbone tensors',
        f'  missing         : {_group(s["missing"]) or "none"}'
        + (' (output norms, freshly initialised)' if s['missing'] else ''),
        f'  unexpected      : {_group(s["unexpected"]) or "none"}'
        + (' (ignored)' if s['unexpected'] else ''),
    ]
    return '\n'.join(lines)
