"""Convert a ConvNeXt V2 (or V1) checkpoint to the layout our backbone uses.

Accepts every format the ``ConvNeXtV2`` backbone loads (auto-detected):
mmpretrain checkpoints, the official FCMAE pre-training checkpoints
(``convnextv2_*_1k_224_fcmae.pt``, sparse Minkowski layout), the official
dense fine-tuned checkpoints (``convnextv2_*_ema.pt``) and timm state dicts.
Writes ``{'state_dict': {'backbone.*': ...}, 'meta': {...}}``, loadable with
``init_cfg=dict(type='Pretrained', checkpoint=DST)`` by ``ConvNeXtV2``, and
with ``prefix='backbone.'`` by ``mmpretrain.ConvNeXt``.

Example::

    python tools/model_converters/convnextv2_to_mmdet.py \
        convnextv2_atto_1k_224_fcmae.pt convnextv2-atto_fcmae_mmdet.pth
"""
import argparse
import importlib
import os
import os.path as osp
import sys
import types
from collections import Counter

import torch

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def _checkpoint_module():
    """The format module, without importing mmdet when it is unavailable."""
    try:
        from convnextv2_yolo.backbones import convnextv2_checkpoint
        return convnextv2_checkpoint
    except ImportError:
        # bare packages (no __init__ run, so no mmdet) over the source folders:
        # the module and its relative import of ``utils.checkpoint_io`` need torch only
        pkg = osp.join(ROOT, 'projects', 'convnextv2_yolo')
        for name, folder in (('convnextv2_yolo', pkg),
                             ('convnextv2_yolo.backbones', osp.join(pkg, 'backbones'))):
            module = types.ModuleType(name)
            module.__path__ = [folder]
            sys.modules[name] = module
        return importlib.import_module('convnextv2_yolo.backbones.convnextv2_checkpoint')


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('src', help='source checkpoint (path or URL)')
    parser.add_argument('dst', help='converted checkpoint to write')
    parser.add_argument(
        '--format',
        default=None,
        choices=['mmpretrain', 'fcmae', 'official', 'timm'],
        help='source format (default: detected)')
    parser.add_argument(
        '--prefix', default=None, help='only use source keys under PREFIX')
    parser.add_argument(
        '--keep-others',
        action='store_true',
        help='also keep non-backbone tensors (classifier head, FCMAE decoder)')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    ckpt = _checkpoint_module()
    converted, fmt = ckpt.load_mmpretrain_state_dict(args.src, args.prefix,
                                                     args.format)
    prefix = ckpt.BACKBONE_PREFIX
    backbone = {k: v for k, v in converted.items() if k.startswith(prefix)}
    others = {k: v for k, v in converted.items() if not k.startswith(prefix)}
    if not backbone:
        raise SystemExit(f'{args.src}: no backbone tensor after conversion.')
    out = dict(backbone)
    if args.keep_others:
        out.update(others)
    arch = ckpt.infer_arch(backbone)
    meta = dict(
        source=str(args.src),
        source_format=fmt,
        arch=arch,
        converter='tools/model_converters/convnextv2_to_mmdet.py')
    os.makedirs(osp.dirname(osp.abspath(args.dst)), exist_ok=True)
    torch.save(dict(state_dict=out, meta=meta), args.dst)
    dropped = Counter(k.split('.')[0] for k in others)
    print(f'format detected : {fmt}')
    print(f'arch            : {arch}')
    print(f'backbone tensors: {len(backbone)}')
    print(f'{"kept" if args.keep_others else "dropped"} others   : '
          + (', '.join(f'{g} ({n})' for g, n in dropped.items()) or 'none'))
    print(f'written         : {args.dst}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
