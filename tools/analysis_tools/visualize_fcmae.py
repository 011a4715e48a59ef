"""Look at an FCMAE pretraining: original | masked input | reconstruction for a few images, and the loss curve.

Writes ``reconstructions.png`` (one row per image: the image resized to the model's input size, the visible
patches with masked ones grey, the reconstruction with the predicted patches in place of the masked ones) and,
when the work dir holds an mmengine log, ``loss_curve.png`` (reconstruction loss and learning rate per
iteration, from ``vis_data/scalars.json``, read as the demo's curves are).

Example::

    python tools/analysis_tools/visualize_fcmae.py configs/fcmae/fcmae_convnextv2-atto_8xb64-800e.py \
        work_dirs/fcmae/epoch_800.pth --images path/to/images --num 4 --out-dir work_dirs/fcmae/vis
"""
import argparse
import glob
import os
import os.path as osp
import sys
from typing import List, Optional

import numpy as np

GREY = 128


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', help='the FCMAE config used for pretraining')
    parser.add_argument('checkpoint', help='a pretraining checkpoint (or any FCMAE weights the model loads)')
    parser.add_argument('--images', nargs='+', help='images, folders, list files or a data.yaml (default: '
                        "the config's training source)")
    parser.add_argument('--num', type=int, default=4, help='images to show (the first ones, sorted)')
    parser.add_argument('--size', type=int, help="input size in px (default: the config's img_size, else 224)")
    parser.add_argument('--seed', type=int, default=0, help='seed of the random masks')
    parser.add_argument('--out-dir', help='where to write the PNGs (default: beside the checkpoint)')
    parser.add_argument('--log-dir', help='work dir (or its timestamped run folder) whose log to plot '
                        '(default: the checkpoint folder)')
    return parser.parse_args(argv)


def _to_uint8_rgb(x, mean, std, bgr_to_rgb: bool) -> np.ndarray:
    """(3, H, W) preprocessed tensor -> (H, W, 3) uint8 RGB image."""
    img = (x.detach().cpu() * std.view(3, 1, 1) + mean.view(3, 1, 1)).permute(1, 2, 0).numpy()
    img = np.clip(img, 0, 255).astype(np.uint8)
    return img if bgr_to_rgb else img[..., ::-1]


def reconstruction_grid(model, images: List[str], size: int, seed: int = 0) -> np.ndarray:
    """One RGB uint8 array: per image a row original | masked input | reconstruction.

    Args:
        model: A built :class:`~convnextv2_yolo.selfsup.FCMAE` with weights (its data preprocessor is used).
        images (list[str]): Image files.
        size (int): Square input size, a multiple of the model's patch size.
        seed (int): Seed of the masks.

    Raises:
        FileNotFoundError: an image cannot be read.
    """
    import mmcv
    import torch
    import torch.nn.functional as F
    pre = model.data_preprocessor
    tensors = []
    for path in images:
        img = mmcv.imread(path)  # BGR, as the training pipeline loads it
        if img is None:
            raise FileNotFoundError(f'cannot read image {path}')
        img = mmcv.imresize(img, (size, size), interpolation='bicubic', backend='pillow')
        tensors.append(torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1))))
    batch = pre(dict(inputs=tensors, data_samples=None), False)['inputs']
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        mask = model.random_mask(batch, generator=gen)
        rec = model.reconstruct(batch, mask)
    full = F.interpolate(mask.unsqueeze(1), scale_factor=model.patch_size, mode='nearest')
    bgr_to_rgb = bool(getattr(pre, '_channel_conversion', False))
    mean = getattr(pre, 'mean', torch.zeros(3, 1, 1)).flatten() if getattr(pre, '_enable_normalize', False) \
        else torch.zeros(3)
    std = getattr(pre, 'std', torch.ones(3, 1, 1)).flatten() if getattr(pre, '_enable_normalize', False) \
        else torch.ones(3)
    rows = []
    for i in range(len(images)):
        orig = _to_uint8_rgb(batch[i], mean, std, bgr_to_rgb)
        masked = orig.copy()
        masked[full[i, 0].numpy() > 0.5] = GREY
        recon = _to_uint8_rgb(rec[i], mean, std, bgr_to_rgb)
        sep = np.full((size, 4, 3), 255, np.uint8)
        rows.append(np.concatenate([orig, sep, masked, sep, recon], axis=1))
    gap = np.full((4, rows[0].shape[1], 3), 255, np.uint8)
    return np.concatenate([r for row in rows for r in (row, gap)][:-1], axis=0)


def find_log_dir(path: str) -> Optional[str]:
    """The newest mmengine run folder (holding ``vis_data/scalars.json``) at or under ``path``."""
    if osp.isfile(osp.join(path, 'vis_data', 'scalars.json')):
        return path
    runs = sorted(glob.glob(osp.join(path, '*', 'vis_data', 'scalars.json')), key=osp.getmtime)
    return osp.dirname(osp.dirname(runs[-1])) if runs else None


def plot_loss_curve(log_dir: str, out_path: str) -> str:
    """Reconstruction loss and learning rate per iteration, from the run's ``vis_data/scalars.json``.

    Raises:
        FileNotFoundError: no scalars log; ValueError: it holds no loss.
    """
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    from convnextv2_yolo.utils.demo_report import read_scalars
    rows = [r for r in read_scalars(log_dir) if 'loss' in r and 'iter' in r]
    if not rows:
        raise ValueError(f'{log_dir}: the log holds no training loss')
    fig, (ax_loss, ax_lr) = plt.subplots(1, 2, figsize=(11, 4))
    ax_loss.plot([r['iter'] for r in rows], [r['loss'] for r in rows], label='reconstruction loss (masked patches)')
    ax_loss.set_xlabel('iteration')
    ax_loss.set_title('FCMAE training loss')
    ax_loss.legend()
    ax_lr.plot([r['iter'] for r in rows if 'lr' in r], [r['lr'] for r in rows if 'lr' in r])
    ax_lr.set_xlabel('iteration')
    ax_lr.set_title('learning rate')
    fig.tight_layout()
    fig.savefig(out_path, dpi=100)
    plt.close(fig)
    return out_path


def main(argv=None) -> int:
    args = parse_args(argv)
    import importlib

    import cv2
    from mmdet.registry import DATASETS, MODELS
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmengine.runner import load_checkpoint

    importlib.import_module('convnextv2_yolo')  # registers FCMAE and the dataset
    cfg = Config.fromfile(args.config)
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    cfg.model.pop('init_cfg', None)
    model = MODELS.build(cfg.model).eval()
    if not osp.isfile(args.checkpoint):
        raise SystemExit(f'checkpoint not found: {args.checkpoint}')
    load_checkpoint(model, args.checkpoint, map_location='cpu', strict=True)
    size = args.size or cfg.get('img_size', 224)
    dataset_cfg = dict(cfg.train_dataloader.dataset, pipeline=[], lazy_init=False)
    if args.images:
        dataset_cfg.update(source=args.images)
    dataset = DATASETS.build(dataset_cfg)
    images = [dataset.get_data_info(i)['img_path'] for i in range(min(args.num, len(dataset)))]
    out_dir = args.out_dir or osp.dirname(osp.abspath(args.checkpoint))
    os.makedirs(out_dir, exist_ok=True)
    grid = reconstruction_grid(model, images, size, args.seed)
    out = osp.join(out_dir, 'reconstructions.png')
    cv2.imwrite(out, grid[..., ::-1])
    print(f'{out}: {len(images)} images, original | masked input | reconstruction')
    log_dir = find_log_dir(args.log_dir or osp.dirname(osp.abspath(args.checkpoint)))
    if log_dir:
        print(plot_loss_curve(log_dir, osp.join(out_dir, 'loss_curve.png')) + ': reconstruction loss per iteration')
    elif args.log_dir:
        raise SystemExit(f'no mmengine log (vis_data/scalars.json) at or under {args.log_dir}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
