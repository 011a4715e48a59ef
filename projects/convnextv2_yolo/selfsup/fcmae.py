"""FCMAE: fully convolutional masked autoencoder pretraining of the ConvNeXt V2 encoder.

Follows ``models/fcmae.py`` of facebookresearch/ConvNeXt-V2 (Woo et al., "ConvNeXt V2: Co-designing and Scaling
ConvNets with Masked Autoencoders", CVPR 2023): random masking of 32 x 32 patches, a *sparse* encoder, a light
decoder and an MSE loss on per-patch-normalised pixels of the masked patches. The sparse encoder is emulated
densely with mmpretrain 1.2.0's SparK machinery (``SparseConvNeXt`` + ``SparseHelper``: every convolution's output
and every LayerNorm is masked), so masked positions are exactly zero after the stem, through every block and every
downsampling. The encoder's tensor names are those of :class:`~convnextv2_yolo.backbones.ConvNeXtV2` under
``backbone.``, so a pretraining checkpoint loads into any detection config with
``model.backbone.init_cfg=dict(type='Pretrained', checkpoint=...)`` and no conversion.
"""
import logging
from collections import OrderedDict
from typing import Dict, List, Optional, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmdet.registry import MODELS
from mmengine.logging import print_log
from mmengine.model import BaseModel
from mmpretrain.models.backbones.convnext import ConvNeXtBlock
from mmpretrain.models.backbones.sparse_convnext import SparseConvNeXt
from mmpretrain.models.utils import SparseHelper

from ..backbones.convnextv2_checkpoint import (BACKBONE_PREFIX, CheckpointFormatError, _official_to_mmpretrain,
                                               convert_to_mmpretrain, detect_format, extract_state_dict,
                                               load_checkpoint_file)
from ..layers import GRN

# Encoder arguments that make mmpretrain's ConvNeXt a V2 (GRN, no layer scale), as in our ConvNeXtV2.
_V2_BLOCKS = dict(use_grn=True, layer_scale_init_value=0.)


class MaskedGRN(GRN):
    """GRN whose statistics come from the visible positions only (the sparse GRN of FCMAE's encoder).

    The dense emulation keeps masked positions at zero before each block's LayerNorm, but the first pointwise
    layer's bias and GELU make them non-zero again before GRN; zeroing them first makes the per-channel L2 norm
    (``||x||_2`` over H, W of each sample) that of the visible positions, as the sparse tensor of the official
    encoder holds only those. Outputs at masked positions are discarded by the block (``SparseConvNeXtBlock``
    multiplies its output by the mask). The active map comes from ``SparseHelper._cur_active`` (B, 1, h, w),
    set by :class:`FCMAE` before the encoder runs. Note: the official MinkowskiEngine GRN pools over all active
    points of the whole batch (ConvNeXt-V2 issue #86); this one is per sample, like the dense GRN used at
    fine-tuning time.
    """

    def forward(self, x: torch.Tensor, data_format: str = 'channel_first') -> torch.Tensor:
        height = x.shape[1] if data_format == 'channel_last' else x.shape[2]
        active = SparseHelper._get_active_map_or_index(H=height, returning_active_map=True)  # (B, 1, H, W)
        if data_format == 'channel_last':
            active = active.permute(0, 2, 3, 1)
        return super().forward(x * active, data_format)


def _fused_grn(module: nn.Module, grn_type=GRN) -> None:
    """Replace every mmpretrain GRN under ``module`` by ``grn_type`` (same parameters, same names)."""
    for block in module.modules():
        grn = getattr(block, 'grn', None)
        if grn is not None and not isinstance(grn, grn_type):
            block.grn = grn_type(grn.in_channels, grn.eps)


@MODELS.register_module()
class FCMAE(BaseModel):
    """Fully convolutional masked autoencoder (FCMAE) for the ConvNeXt V2 encoder.

    Per image, a random ``mask_ratio`` of the ``patch_size`` x ``patch_size`` patches is masked; the encoder
    (mmpretrain ``SparseConvNeXt`` with V2 blocks and :class:`MaskedGRN`) sees only the visible ones; the
    decoder projects the stride-32 features to ``decoder_dim`` channels (1x1 conv), puts a learned mask token
    at masked positions, runs ``decoder_depth`` ConvNeXt V2 blocks and predicts each patch's
    ``patch_size**2 * 3`` pixels (1x1 conv); the loss is the MSE to the per-patch-normalised pixels (mean 0,
    variance 1 per patch and image, eps 1e-6), averaged over the masked patches only.

    Tensor names: the encoder is ``backbone.*`` with the names of our ``ConvNeXtV2`` (mmpretrain layout:
    ``downsample_layers.*``, ``stages.i.j.{depthwise_conv, norm, pointwise_conv1, grn, pointwise_conv2}``;
    only the detection output norms ``norm{i}`` are absent, as in every FCMAE release); the decoder keeps the
    official names ``proj``, ``mask_token``, ``decoder.0.*`` (mmpretrain block names), ``pred``.

    Args:
        arch (str | dict): Encoder arch, as for ``ConvNeXtV2`` (``atto`` ... ``huge`` or dict with ``depths``
            and ``channels``). Defaults to 'atto'.
        patch_size (int): Masking patch, in input pixels; must be the encoder's total stride (32 for 4
            stages). Defaults to 32.
        mask_ratio (float): Fraction of patches masked per image, in [0, 1). Defaults to 0.6.
        decoder_dim (int): Decoder channels. Defaults to 512.
        decoder_depth (int): Decoder ConvNeXt V2 blocks. Defaults to 1.
        norm_pix_loss (bool): Normalise each target patch. Defaults to True.
        data_preprocessor (dict, optional): e.g. ``dict(type='ImgDataPreprocessor', mean=..., std=...,
            bgr_to_rgb=True)``.
        init_cfg (dict | list[dict], optional): ``dict(type='Pretrained', checkpoint=PATH_OR_URL)`` continues
            from an FCMAE checkpoint of any layout the backbone reads (the official sparse
            ``convnextv2_*_fcmae.pt`` with its decoder, mmpretrain's converted encoder weights, ours); see
            :meth:`load_pretrained`.

    Inputs: images (B, 3, H, W), H and W multiples of ``patch_size``.

    Raises:
        ValueError: bad ``mask_ratio``/``patch_size``/``init_cfg``, or input sizes not multiples of the patch.
    """

    def __init__(self,
                 arch: Union[str, dict] = 'atto',
                 patch_size: int = 32,
                 mask_ratio: float = 0.6,
                 decoder_dim: int = 512,
                 decoder_depth: int = 1,
                 norm_pix_loss: bool = True,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[Union[dict, List[dict]]] = None) -> None:
        pretrained = [c for c in ([init_cfg] if isinstance(init_cfg, dict) else list(init_cfg or []))
                      if c.get('type') == 'Pretrained']
        if pretrained and not pretrained[0].get('checkpoint'):
            raise ValueError('FCMAE init_cfg of type Pretrained needs "checkpoint" (a path or URL).')
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=None)
        self._pretrained = pretrained[0]['checkpoint'] if pretrained else None
        if not 0. <= mask_ratio < 1.:
            raise ValueError(f'FCMAE mask_ratio must be in [0, 1), got {mask_ratio}')
        if isinstance(arch, str) and arch not in SparseConvNeXt.arch_settings:
            raise ValueError(f'Unknown ConvNeXt V2 arch {arch!r}; valid: atto, femto, pico, nano, tiny, base, '
                             'large, huge (or a dict with "depths" and "channels")')
        # mmpretrain's SparK encoder (SparseConv2d / SparseLN2d / SparseConvNeXtBlock), with V2 blocks; its
        # tensor names are mmpretrain ConvNeXt's = our ConvNeXtV2's. Its dense GRN would pool over masked
        # positions too, hence MaskedGRN (the one piece we could not take from mmpretrain as it is).
        self.backbone = SparseConvNeXt(arch=arch, out_indices=[3], gap_before_output=False, **_V2_BLOCKS)
        _fused_grn(self.backbone, MaskedGRN)
        stride = 4 * 2 ** (len(self.backbone.depths) - 1)
        if patch_size != stride:
            raise ValueError(f'FCMAE patch_size must equal the encoder stride {stride}, got {patch_size}')
        self.patch_size = patch_size
        self.mask_ratio = mask_ratio
        self.norm_pix_loss = norm_pix_loss
        self.proj = nn.Conv2d(self.backbone.channels[-1], decoder_dim, kernel_size=1)
        self.mask_token = nn.Parameter(torch.zeros(1, decoder_dim, 1, 1))
        self.decoder = nn.Sequential(*[
            ConvNeXtBlock(decoder_dim, drop_path_rate=0., **_V2_BLOCKS) for _ in range(decoder_depth)])
        _fused_grn(self.decoder)
        self.pred = nn.Conv2d(decoder_dim, patch_size ** 2 * 3, kernel_size=1)

    # ------------------------------------------------------------------ weights
    def init_weights(self) -> None:
        """The official initialisation, then the ``Pretrained`` checkpoint if any.

        Conv and Linear weights truncated normal (std 0.02, bias 0), LayerNorm 1/0, GRN 0, mask token
        normal (std 0.02), as ``FCMAE._init_weights`` of the official code.
        """
        super().init_weights()
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.trunc_normal_(m.weight, std=.02)
                nn.init.constant_(m.bias, 0)
            elif isinstance(m, nn.LayerNorm):
                nn.init.constant_(m.weight, 1.)
                nn.init.constant_(m.bias, 0.)
        nn.init.normal_(self.mask_token, std=.02)
        if self._pretrained:
            self.load_pretrained(self._pretrained)

    def load_pretrained(self, checkpoint: str) -> dict:
        """Continue from an FCMAE checkpoint (the official sparse release, mmpretrain's or ours).

        Every encoder tensor must be in the checkpoint, with the model's shape; decoder tensors (``proj``,
        ``mask_token``, ``decoder``, ``pred``) are loaded when present (the official release has them,
        mmpretrain's converted weights have not: the decoder then starts fresh, with a warning).

        Args:
            checkpoint (str): Path or URL of a checkpoint in any layout ``ConvNeXtV2`` reads.

        Returns:
            dict: ``format``, ``loaded`` (count), ``missing`` and ``unexpected`` key lists.

        Raises:
            CheckpointFormatError: unreadable file, unknown layout, a missing encoder tensor or a shape
                mismatch (naming the checkpoint and the tensor).
        """
        raw = extract_state_dict(load_checkpoint_file(checkpoint))
        fmt = detect_format(raw)
        state = convert_to_mmpretrain(raw, fmt)
        # the official decoder block has the official block names: map them like an encoder stage's
        decoder = {'stages.' + k[len('decoder.'):]: state.pop(k) for k in list(state) if k.startswith('decoder.')}
        state.update(('decoder.' + k[len(BACKBONE_PREFIX + 'stages.'):], v)
                     for k, v in _official_to_mmpretrain(decoder).items())
        own = self.state_dict()
        bad = [(k, tuple(v.shape), tuple(own[k].shape)) for k, v in state.items()
               if k in own and v.shape != own[k].shape]
        if bad:
            k, src, dst = bad[0]
            raise CheckpointFormatError(f'{checkpoint} (format {fmt}) does not fit this FCMAE: "{k}" has shape '
                                        f'{src} in the checkpoint, {dst} in the model ({len(bad)} mismatch(es))')
        missing = [k for k in own if k not in state]
        encoder_missing = [k for k in missing if k.startswith(BACKBONE_PREFIX)]
        if encoder_missing:
            raise CheckpointFormatError(f'{checkpoint} (format {fmt}) lacks {len(encoder_missing)} encoder '
                                        f'tensor(s) of this FCMAE: {encoder_missing[:6]}')
        unexpected = [k for k in state if k not in own]
        self.load_state_dict(OrderedDict((k, v) for k, v in state.items() if k in own), strict=False)
        summary = dict(format=fmt, loaded=len(own) - len(missing), missing=missing, unexpected=unexpected)
        print_log(f'FCMAE weights from {checkpoint} (format {fmt}): {summary["loaded"]} / {len(own)} tensors '
                  f'loaded; missing: {missing or "none"}; unexpected (ignored): {unexpected or "none"}',
                  logger='current', level=logging.WARNING if missing else logging.INFO)
        return summary

    # ------------------------------------------------------------------ masking / encoder / decoder
    def _grid(self, imgs: torch.Tensor) -> Tuple[int, int]:
        h, w = imgs.shape[-2:]
        if h % self.patch_size or w % self.patch_size:
            raise ValueError(f'FCMAE input size {h}x{w} must be a multiple of the patch size {self.patch_size} '
                             '(set the RandomResizedCrop scale to a multiple of it)')
        return h // self.patch_size, w // self.patch_size

    def random_mask(self, imgs: torch.Tensor, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """Random per-image patch mask, as the official ``gen_random_mask``.

        Args:
            imgs (Tensor): (B, 3, H, W).
            generator (torch.Generator, optional): For reproducible masks.

        Returns:
            Tensor: (B, h, w) float, 1 = masked, with ``int(h * w * (1 - mask_ratio))`` visible patches per
            image (h = H / patch_size, w = W / patch_size).
        """
        h, w = self._grid(imgs)
        num, keep = imgs.shape[0], int(h * w * (1 - self.mask_ratio))
        noise = torch.rand(num, h * w, generator=generator, device='cpu').to(imgs.device)
        order = noise.argsort(dim=1)
        mask = torch.ones(num, h * w, device=imgs.device)
        mask.scatter_(1, order[:, :keep], 0.)
        return mask.view(num, h, w)

    def encode(self, imgs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The masked encoder: (B, 3, H, W) and mask (B, h, w) -> features (B, C_last, h, w).

        Masked positions are exactly zero in every intermediate feature (stem, each block, each downsampling).
        """
        SparseHelper._cur_active = (mask < 0.5).unsqueeze(1)  # (B, 1, h, w), True = visible
        try:
            return self.backbone(imgs)[-1]
        finally:
            SparseHelper._cur_active = None

    def decode(self, feats: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Decoder: (B, C_last, h, w) -> per-patch pixel predictions (B, patch**2 * 3, h, w)."""
        x = self.proj(feats)
        m = mask.unsqueeze(1).type_as(x)
        x = x * (1. - m) + self.mask_token.to(x.dtype) * m
        return self.pred(self.decoder(x))

    def patchify(self, imgs: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) -> (B, h * w, patch**2 * 3), pixels in (row, column, channel) order as the official."""
        h, w = self._grid(imgs)
        p = self.patch_size
        x = imgs.reshape(imgs.shape[0], 3, h, p, w, p)
        return torch.einsum('nchpwq->nhwpqc', x).reshape(imgs.shape[0], h * w, p * p * 3)

    def unpatchify(self, patches: torch.Tensor, h: int, w: int) -> torch.Tensor:
        """(B, h * w, patch**2 * 3) -> (B, 3, h * patch, w * patch); inverse of :meth:`patchify`."""
        p = self.patch_size
        x = patches.reshape(patches.shape[0], h, w, p, p, 3)
        return torch.einsum('nhwpqc->nchpwq', x).reshape(patches.shape[0], 3, h * p, w * p)

    def target(self, imgs: torch.Tensor) -> torch.Tensor:
        """Per-patch targets (B, h * w, patch**2 * 3), normalised per patch when ``norm_pix_loss``."""
        target = self.patchify(imgs)
        if self.norm_pix_loss:
            mean = target.mean(dim=-1, keepdim=True)
            var = target.var(dim=-1, keepdim=True)
            target = (target - mean) / (var + 1.e-6) ** .5
        return target

    def reconstruction_loss(self, imgs: torch.Tensor, pred: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """MSE over the masked patches only (official ``forward_loss``).

        Args:
            imgs (Tensor): (B, 3, H, W) model inputs.
            pred (Tensor): (B, patch**2 * 3, h, w) decoder output.
            mask (Tensor): (B, h, w), 1 = masked.

        Returns:
            Tensor: scalar loss (0 when nothing is masked).
        """
        pred = pred.flatten(2).transpose(1, 2)  # (B, h*w, p*p*3)
        per_patch = F.mse_loss(pred, self.target(imgs), reduction='none').mean(dim=-1)
        mask = mask.flatten(1).type_as(per_patch)
        return (per_patch * mask).sum() / mask.sum().clamp(min=1.)

    # ------------------------------------------------------------------ BaseModel interface
    def parse_losses(self, losses: dict) -> tuple:
        """mmengine's ``parse_losses``; the components are kept (detached) in ``loss_components``,
        which the optimizer wrapper logs when it skips a step with a non-finite loss or gradient."""
        loss, log_vars = super().parse_losses(losses)
        self.loss_components = {k: v.detach() for k, v in log_vars.items()}
        return loss, log_vars

    def forward(self, inputs: torch.Tensor, data_samples: Optional[list] = None,
                mode: str = 'loss') -> Union[Dict[str, torch.Tensor], Tuple[torch.Tensor, ...]]:
        """``mode='loss'``: ``dict(loss=...)``; ``'predict'``/``'tensor'``: ``(pred, mask)``.

        Args:
            inputs (Tensor): (B, 3, H, W) preprocessed images.
            data_samples (list, optional): Unused (no labels).
            mode (str): 'loss', 'predict' or 'tensor'.
        """
        mask = self.random_mask(inputs)
        pred = self.decode(self.encode(inputs, mask), mask)
        if mode == 'loss':
            return dict(loss=self.reconstruction_loss(inputs, pred, mask))
        if mode in ('predict', 'tensor'):
            return pred, mask
        raise ValueError(f'FCMAE.forward: unknown mode {mode!r} (loss, predict or tensor)')

    def reconstruct(self, imgs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Reconstructed images (B, 3, H, W) in the input's value space, for visual checks.

        With ``norm_pix_loss`` the prediction of each patch is de-normalised with the mean and variance of
        the true patch (as the official visualisations do); visible patches are copied from the input.
        """
        h, w = self._grid(imgs)
        pred = self.decode(self.encode(imgs, mask), mask).flatten(2).transpose(1, 2)
        if self.norm_pix_loss:
            patches = self.patchify(imgs)
            mean = patches.mean(dim=-1, keepdim=True)
            var = patches.var(dim=-1, keepdim=True)
            pred = pred * (var + 1.e-6) ** .5 + mean
        rec = self.unpatchify(pred, h, w)
        full = F.interpolate(mask.unsqueeze(1).type_as(imgs), scale_factor=self.patch_size, mode='nearest')
        return imgs * (1 - full) + rec * full
