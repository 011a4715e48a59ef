"""ConvNeXt (V1/V2) checkpoint formats: safe loading, detection, conversion.

Every supported layout is converted in memory to the mmpretrain layout
(``backbone.downsample_layers.*``, ``backbone.stages.i.j.{depthwise_conv,
norm, pointwise_conv1, pointwise_conv2, grn.gamma, grn.beta, gamma}``,
``backbone.norm3``), which is what :class:`ConvNeXtV2` holds.

Formats (see ``docs/convnextv2_backbone.md``):

- ``mmpretrain``: mmpretrain checkpoints (FCMAE-converted and fine-tuned),
  also mmdet detector checkpoints whose backbone is ours.
- ``fcmae``: official FCMAE pre-training checkpoints
  (``convnextv2_*_1k_224_fcmae.pt``) with MinkowskiEngine sparse layout.
- ``official``: official dense checkpoints (``convnextv2_*_ema.pt`` and
  ConvNeXt V1 ``convnext_*.pth``).
- ``timm``: timm ``convnext*`` / ``convnextv2_*`` state dicts.
"""
import math
import os
import os.path as osp
import re
from collections import OrderedDict
from typing import Dict, Optional

import torch

from ..utils.checkpoint_io import CheckpointLoadError, safe_torch_load

FORMATS = ('mmpretrain', 'fcmae', 'official', 'timm')
BACKBONE_PREFIX = 'backbone.'
# Containers that wrap the state dict in the known checkpoint files.
_WRAPPER_KEYS = ('state_dict', 'model', 'model_ema', 'module')
_REMOTE_PREFIXES = ('http://', 'https://')


class CheckpointFormatError(ValueError):
    """A checkpoint that cannot be read, is unsafe, or has no known layout."""


# --------------------------------------------------------------------------- #
# Loading
# --------------------------------------------------------------------------- #
def is_remote(path: str) -> bool:
    """Whether ``path`` is a URL (or another non-local mmengine backend)."""
    return '://' in str(path)


def _resolve_url(url: str) -> str:
    """Download ``url`` once into the torch hub cache and return the file.

    Raises:
        OSError: the download failed (no network, a proxy, a moved file): the message names the URL,
            the file it would have written and the two ways round it (a local file, or no weights).
    """
    cache_dir = osp.join(torch.hub.get_dir(), 'checkpoints')
    os.makedirs(cache_dir, exist_ok=True)
    dst = osp.join(cache_dir, osp.basename(url.split('?')[0]))
    if not osp.isfile(dst):
        try:
            torch.hub.download_url_to_file(url, dst, progress=True)
        except (OSError, ValueError) as e:  # urllib's URLError / HTTPError are OSErrors
            raise OSError(
                f'ConvNeXt V2 backbone weights: cannot download {url} ({type(e).__name__}: {e}). Put the file '
                f'at {dst} (the cache it is read from), or set the backbone\'s init_cfg.checkpoint to a local '
                'copy (--cfg-options model.backbone.init_cfg.checkpoint=PATH), or train without pretrained '
                'weights (--cfg-options model.backbone.init_cfg=None)') from e
    return dst


def load_checkpoint_dict(path: str) -> dict:
    """:func:`~convnextv2_yolo.utils.checkpoint_io.safe_torch_load` on CPU, wanting a dict.

    Args:
        path (str): Local checkpoint file.

    Returns:
        dict: The loaded object (must be a dict).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        CheckpointFormatError: the file holds pickled code/objects (refused
            by safe loading), is corrupt or truncated, or is not a dict.
    """
    try:
        obj = safe_torch_load(path, map_location='cpu')
    except CheckpointLoadError as e:
        raise CheckpointFormatError(str(e)) from None
    if not isinstance(obj, dict):
        raise CheckpointFormatError(
            f'Checkpoint {path} holds a {type(obj).__name__}, expected a dict '
            'of tensors (or a dict with "state_dict"/"model").')
    return obj


def load_checkpoint_file(path_or_url: str) -> dict:
    """Load a raw checkpoint from a local path or a URL, safely.

    URLs (``http(s)://``) are cached in ``$TORCH_HOME/hub/checkpoints`` and
    then loaded like a local file; other mmengine backends (``s3://``,
    ``open-mmlab://`` ...) go through mmengine's ``CheckpointLoader``, which
    uses ``torch.load``'s safe default on torch >= 2.6.

    Args:
        path_or_url (str): Local path or URL.

    Returns:
        dict: The raw checkpoint.
    """
    path_or_url = str(path_or_url)
    if path_or_url.startswith(_REMOTE_PREFIXES):
        return load_checkpoint_dict(_resolve_url(path_or_url))
    if is_remote(path_or_url):
        from mmengine.runner.checkpoint import CheckpointLoader
        return CheckpointLoader.load_checkpoint(
            path_or_url, map_location='cpu')
    return load_checkpoint_dict(osp.expanduser(path_or_url))


def extract_state_dict(ckpt: dict) -> Dict[str, torch.Tensor]:
    """Unwrap ``state_dict`` / ``model`` containers and ``module.`` prefixes.

    Args:
        ckpt (dict): Raw checkpoint.

    Returns:
        dict: Flat ``name -> tensor`` mapping.
    """
    state = ckpt
    while True:
        inner = next((state[k] for k in _WRAPPER_KEYS
                      if isinstance(state.get(k), dict) and state[k]), None)
        if inner is None:
            break
        state = inner
    tensors = OrderedDict()
    for k, v in state.items():
        if isinstance(v, torch.Tensor):
            if not isinstance(k, str):
                raise CheckpointFormatError(f'The checkpoint names a tensor {k!r}: not a string.')
            tensors[k[len('module.'):] if k.startswith('module.') else k] = v
    if not tensors:
        raise CheckpointFormatError(
            'The checkpoint holds no tensors (top-level keys: '
            f'{list(ckpt)[:10]}).')
    return tensors


def select_prefix(state_dict: Dict[str, torch.Tensor],
                  prefix: Optional[str]) -> Dict[str, torch.Tensor]:
    """Keep the keys under ``prefix`` and strip it (mmengine semantics).

    Args:
        state_dict (dict): Flat state dict.
        prefix (str, optional): e.g. ``'backbone.'``; None keeps everything.

    Returns:
        dict: The selected keys, prefix removed.
    """
    if not prefix:
        return state_dict
    if not prefix.endswith('.'):
        prefix += '.'
    out = OrderedDict((k[len(prefix):], v) for k, v in state_dict.items()
                      if k.startswith(prefix))
    if not out:
        raise CheckpointFormatError(
            f'No key of the checkpoint starts with prefix "{prefix}" '
            f'(first keys: {list(state_dict)[:5]}).')
    return out


# --------------------------------------------------------------------------- #
# Detection
# --------------------------------------------------------------------------- #
def detect_format(state_dict: Dict[str, torch.Tensor]) -> str:
    """Tell which ConvNeXt checkpoint layout ``state_dict`` uses.

    Args:
        state_dict (dict): Flat state dict (wrappers removed).

    Returns:
        str: One of :data:`FORMATS`.

    Raises:
        CheckpointFormatError: No ConvNeXt layout recognised.
    """
    keys = list(state_dict)

    def has(pattern: str) -> bool:
        regex = re.compile(pattern)
        return any(regex.search(k) for k in keys)

    if has(r'(^|\.)stages\.\d+\.\d+\.(depthwise_conv|pointwise_conv1)\.'):
        return 'mmpretrain'
    if has(r'^encoder\.') and has(
            r'^encoder\..*(\.kernel$|\.ln\.|\.linear\.)'):
        return 'fcmae'
    if has(r'^stages\.\d+\.blocks\.\d+\.(conv_dw|mlp\.fc1)\.') or has(
            r'^stem\.0\.'):
        return 'timm'
    if has(r'^(encoder\.)?stages\.\d+\.\d+\.(dwconv|pwconv1)\.'):
        return 'official'
    raise CheckpointFormatError(
        'Unrecognised checkpoint layout: expected a ConvNeXt checkpoint from '
        f'mmpretrain, the official FCMAE/fine-tuned release or timm. First '
        f'keys: {keys[:8]}')


# --------------------------------------------------------------------------- #
# Conversion
# --------------------------------------------------------------------------- #
def _sparse_to_dense_kernel(v: torch.Tensor) -> torch.Tensor:
    """Official ``remap_checkpoint_keys`` for Minkowski kernels.

    (kv, Cin, Cout) -> (Cout, Cin, k, k); depthwise (kv, C) -> (C, 1, k, k);
    both transposed in the spatial dims as the official remap does.
    """
    if v.dim() not in (2, 3):
        raise CheckpointFormatError(
            f'Sparse kernel of unexpected shape {tuple(v.shape)}.')
    ks = int(math.isqrt(v.shape[0]))
    if ks * ks != v.shape[0]:
        raise CheckpointFormatError(
            f'Sparse kernel of shape {tuple(v.shape)}: the kernel volume '
            f'{v.shape[0]} is not a square.')
    if v.dim() == 3:
        kv, cin, cout = v.shape
        return v.permute(2, 1, 0).reshape(cout, cin, ks, ks).transpose(3, 2)
    return v.permute(1, 0).reshape(v.shape[1], 1, ks, ks).transpose(3, 2)


def _fcmae_to_official(sd: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """Official FCMAE layout -> official dense layout (encoder keys only).

    Decoder-side keys (``proj``, ``mask_token``, ``decoder``, ``pred``) keep
    their names, so they are reported as unexpected by the loader.
    """
    out = OrderedDict()
    for k, v in sd.items():
        if not k.startswith('encoder.'):
            out[k] = v
            continue
        parts = k[len('encoder.'):].split('.')
        if parts[-1] == 'kernel':
            parts[-1] = 'weight'
            v = _sparse_to_dense_kernel(v)
        elif len(parts) >= 2 and parts[-2] in ('ln', 'linear'):
            parts.pop(-2)
        if parts[-1] == 'bias' and v.dim() != 1:
            v = v.reshape(-1)
        out['.'.join(parts)] = v
    return out


def _timm_to_official(sd: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """timm ConvNeXt layout -> official dense layout."""
    out = OrderedDict()
    for k, v in sd.items():
        new_k = k
        if k.startswith('stem.'):
            new_k = 'downsample_layers.0.' + k[len('stem.'):]
        elif k.startswith('stages.'):
            m = re.match(r'stages\.(\d+)\.downsample\.(.*)', k)
            if m:
                new_k = f'downsample_layers.{m.group(1)}.{m.group(2)}'
            else:
                new_k = re.sub(r'^stages\.(\d+)\.blocks\.(\d+)\.',
                               r'stages.\1.\2.', k)
                new_k = (new_k.replace('.conv_dw.', '.dwconv.')
                         .replace('.mlp.fc1.', '.pwconv1.')
                         .replace('.mlp.fc2.', '.pwconv2.')
                         .replace('.mlp.grn.weight', '.grn.gamma')
                         .replace('.mlp.grn.bias', '.grn.beta'))
                if re.search(r'\.pwconv[12]\.weight$', new_k) and v.dim() == 4:
                    v = v.flatten(1)  # timm conv_mlp=True: 1x1 conv weights
        elif k.startswith('head.norm.'):
            new_k = 'norm.' + k[len('head.norm.'):]
        elif k.startswith('head.fc.'):
            new_k = 'head.' + k[len('head.fc.'):]
        out[new_k] = v
    return out


def _official_to_mmpretrain(
        sd: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """Official dense layout -> mmpretrain layout (``backbone.`` prefix)."""
    out = OrderedDict()
    for k, v in sd.items():
        if k.startswith('stages.'):
            new_k = (k.replace('.dwconv.', '.depthwise_conv.')
                     .replace('.pwconv1.', '.pointwise_conv1.')
                     .replace('.pwconv2.', '.pointwise_conv2.'))
            if '.grn.' in new_k:
                v = v.reshape(-1)  # official (1, 1, 1, C) -> (C,)
            out[BACKBONE_PREFIX + new_k] = v
        elif k.startswith('downsample_layers.'):
            out[BACKBONE_PREFIX + k] = v
        elif k.startswith('norm.'):
            # Final norm of the classifier; mmpretrain calls it norm3.
            out[BACKBONE_PREFIX + 'norm3.' + k[len('norm.'):]] = v
        elif k.startswith('head.'):
            out['head.fc.' + k[len('head.'):]] = v
        else:
            out[k] = v
    return out


def _mmpretrain_normalise(
        sd: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """Add the ``backbone.`` prefix to bare mmpretrain backbone keys."""
    bare = re.compile(r'^(downsample_layers|stages|norm\d)\.')
    out = OrderedDict()
    for k, v in sd.items():
        if bare.match(k):
            k = BACKBONE_PREFIX + k
        if k.startswith(BACKBONE_PREFIX) and k.endswith(
                ('.grn.gamma', '.grn.beta')) and v.dim() != 1:
            v = v.reshape(-1)
        out[k] = v
    return out


def convert_to_mmpretrain(state_dict: Dict[str, torch.Tensor],
                          src_format: Optional[str] = None
                          ) -> Dict[str, torch.Tensor]:
    """Convert any supported ConvNeXt layout to the mmpretrain layout.

    Args:
        state_dict (dict): Flat state dict (see :func:`extract_state_dict`).
        src_format (str, optional): One of :data:`FORMATS`; detected when
            None.

    Returns:
        dict: Backbone tensors under ``backbone.``; the other tensors
        (classifier ``head.fc.*``, FCMAE ``decoder.*``/``proj``/``pred``, neck
        and head ...) keep a non-backbone name.
    """
    fmt = src_format or detect_format(state_dict)
    if fmt not in FORMATS:
        raise CheckpointFormatError(
            f'Unknown checkpoint format "{fmt}"; valid: {FORMATS}.')
    if fmt == 'mmpretrain':
        return _mmpretrain_normalise(state_dict)
    if fmt == 'fcmae':
        state_dict = _fcmae_to_official(state_dict)
    elif fmt == 'timm':
        state_dict = _timm_to_official(state_dict)
    elif fmt == 'official':
        state_dict = OrderedDict(
            (k[len('encoder.'):] if k.startswith('encoder.') else k, v)
            for k, v in state_dict.items())
    return _official_to_mmpretrain(state_dict)


def load_mmpretrain_state_dict(path_or_url: str,
                               prefix: Optional[str] = None,
                               src_format: Optional[str] = None):
    """Load any supported checkpoint and convert it to mmpretrain layout.

    Args:
        path_or_url (str): Local path or URL.
        prefix (str, optional): Only use keys under this prefix (stripped
            before detection), like mmengine's ``Pretrained(prefix=...)``.
        src_format (str, optional): Force a format instead of detecting it.

    Returns:
        tuple[dict, str]: The converted state dict and the source format.

    Raises:
        FileNotFoundError: ``path_or_url`` does not exist.
        CheckpointFormatError: unreadable, unsafe or corrupt file, a key that
            is not a string, no tensors, no known layout, or a tensor whose
            shape the conversion cannot take (names the file).
    """
    raw = load_checkpoint_file(path_or_url)
    try:
        raw = select_prefix(extract_state_dict(raw), prefix)
        fmt = src_format or detect_format(raw)
        return convert_to_mmpretrain(raw, fmt), fmt
    except CheckpointFormatError as e:  # the messages after loading name keys and shapes: add the file
        raise CheckpointFormatError(f'{path_or_url}: {e}') from None


def infer_arch(state_dict: Dict[str, torch.Tensor]) -> Optional[dict]:
    """Read ``depths``/``channels`` from an mmpretrain-layout state dict.

    Args:
        state_dict (dict): Output of :func:`convert_to_mmpretrain`.

    Returns:
        dict | None: ``dict(depths=[...], channels=[...])`` or None when the
        stages are not all present.
    """
    depths: Dict[int, int] = {}
    channels: Dict[int, int] = {}
    regex = re.compile(
        rf'^{re.escape(BACKBONE_PREFIX)}stages\.(\d+)\.(\d+)\.'
        r'depthwise_conv\.weight$')
    for k, v in state_dict.items():
        m = regex.match(k)
        if m:
            if v.dim() == 0:  # not a conv weight: no channel count to read
                return None
            i, j = int(m.group(1)), int(m.group(2))
            depths[i] = max(depths.get(i, 0), j + 1)
            channels[i] = v.shape[0]
    if not depths or sorted(depths) != list(range(len(depths))):
        return None
    return dict(depths=[depths[i] for i in sorted(depths)],
                channels=[channels[i] for i in sorted(channels)])
