"""Pictures for the demo: detections on validation images, loss/mAP curves."""
import json
import os.path as osp
from typing import Dict, List, Sequence

import numpy as np


def inference_model(runner):
    """The EMA model when an ``EMAHook`` ran, else the trained model (eval mode)."""
    from mmengine.hooks import EMAHook
    model = runner.model
    for hook in runner.hooks:
        if isinstance(hook, EMAHook) and hasattr(hook, 'ema_model'):  # YOLOEMAHook too
            model = hook.ema_model.module
    model.cfg = runner.cfg  # mmdet.apis.inference_detector reads the test pipeline from it
    return model.eval()


def render_detections(runner, image_paths: Sequence[str], metainfo: dict, out_path: str,
                      score_thr: float = 0.3, cols: int = 4) -> str:
    """Draw predicted boxes and class names on images as one grid (tiles of 320 px).

    Args:
        runner: The trained runner (its EMA weights are used when present).
        image_paths (Sequence[str]): Images to draw, in order.
        metainfo (dict): ``classes`` (and optionally ``palette``) for the names.
        out_path (str): The PNG to write.
        score_thr (float): Draw boxes above this score. Defaults to 0.3.
        cols (int): Tiles per row. Defaults to 4.

    Raises:
        FileNotFoundError: ``image_paths`` is empty.
    """
    import cv2
    import mmcv
    from mmdet.apis import inference_detector
    from mmdet.visualization import DetLocalVisualizer

    model = inference_model(runner)
    paths = list(image_paths)
    if not paths:
        raise FileNotFoundError('no images to draw detections on')
    results = inference_detector(model, paths)
    vis = DetLocalVisualizer(name=f'demo_vis_{id(out_path)}')
    vis.dataset_meta = dict(metainfo)  # classes (and their palette)
    tiles = []
    for path, result in zip(paths, results):
        img = mmcv.imread(path, channel_order='rgb')
        vis.add_datasample(osp.basename(path), img, data_sample=result, draw_gt=False,
                           pred_score_thr=score_thr, show=False)
        tiles.append(cv2.resize(vis.get_image(), (320, 320), interpolation=cv2.INTER_NEAREST))
    while len(tiles) % cols:
        tiles.append(np.full_like(tiles[0], 255))
    rows = [np.concatenate(tiles[i:i + cols], axis=1) for i in range(0, len(tiles), cols)]
    grid = np.concatenate(rows, axis=0)
    mmcv.imwrite(grid[..., ::-1], out_path)
    return out_path


def read_scalars(log_dir: str) -> List[Dict]:
    """Rows of mmengine's ``vis_data/scalars.json`` (one JSON object a line)."""
    path = osp.join(log_dir, 'vis_data', 'scalars.json')
    if not osp.isfile(path):
        raise FileNotFoundError(f'no scalars log at {path}')
    with open(path, encoding='utf-8') as f:
        return [json.loads(line) for line in f if line.strip()]


def plot_curves(log_dir: str, out_path: str) -> str:
    """Plot the training losses per iteration and COCO mAP per validation."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    rows = read_scalars(log_dir)
    train = [r for r in rows if 'loss' in r]
    val = [r for r in rows if 'coco/bbox_mAP' in r]
    fig, (ax_loss, ax_map) = plt.subplots(1, 2, figsize=(11, 4))
    for key in ('loss', 'loss_cls', 'loss_bbox', 'loss_dfl'):
        pts = [(r['iter'], r[key]) for r in train if key in r and 'iter' in r]
        if pts:
            ax_loss.plot(*zip(*pts), label=key)
    ax_loss.set_xlabel('iteration')
    ax_loss.set_title('training loss')
    ax_loss.legend()
    for key, label in (('coco/bbox_mAP', 'mAP@[.5:.95]'), ('coco/bbox_mAP_50', 'mAP@.5')):
        pts = [(r['step'], r[key]) for r in val if key in r]
        if pts:
            ax_map.plot(*zip(*pts), marker='o', label=label)
    ax_map.set_xlabel('epoch')
    ax_map.set_ylim(0, 1)
    ax_map.set_title('validation (COCO bbox)')
    ax_map.legend()
    fig.tight_layout()
    fig.savefig(out_path, dpi=100)
    plt.close(fig)
    return out_path
