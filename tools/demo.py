"""The demo: train the headline model on the synthetic shapes dataset (or your data.yaml).

ConvNeXt V2-atto + YOLO11 PAFPN neck + YOLO11 head, from scratch (no weights
can be downloaded), on a generated dataset (made on first use). Prints progress
with an ETA, evaluates with COCO metrics, then writes a picture of detections
on validation images and a plot of the loss and mAP curves.

    python tools/demo.py [--config CFG] [--work-dir DIR] [--data-root DIR]
                         [--data DATA_YAML] [--imgsz N] [--epochs N] [--cfg-options k=v ...]

``--data`` trains the demo model on a dataset in the reference's layout
(``data.yaml``) instead of the synthetic one; ``--imgsz`` sets the image size.
"""
import argparse
import glob
import os.path as osp
import sys
import time

from mmengine.config import Config, DictAction
from mmengine.runner import Runner

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, osp.join(ROOT, 'projects'))
import convnextv2_yolo  # noqa: E402,F401
from convnextv2_yolo.datasets.synthetic import make_synthetic_dataset  # noqa: E402
from convnextv2_yolo.datasets.yolo_format import load_data_yaml  # noqa: E402
from convnextv2_yolo.utils.data_overrides import apply_data_args  # noqa: E402
from convnextv2_yolo.utils.demo_report import (plot_curves,  # noqa: E402
                                               render_detections)

DEFAULT_CONFIG = osp.join(ROOT, 'configs', 'demo', 'yolo11_convnextv2-atto_synthetic.py')


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--config', default=DEFAULT_CONFIG, help='demo config')
    p.add_argument('--work-dir', default=osp.join(ROOT, 'work_dirs', 'demo'))
    p.add_argument('--data-root', default=None,
                   help='dataset folder (default: the config\'s data_root); generated if absent')
    p.add_argument('--data', metavar='DATA_YAML', default=None,
                   help="train on this dataset (the reference's data.yaml layout) instead of the synthetic one")
    p.add_argument('--imgsz', type=int, default=None, help='image size (multiple of 32)')
    p.add_argument('--epochs', type=int, default=None, help='override max_epochs')
    p.add_argument('--num-vis', type=int, default=8, help='validation images in the picture')
    p.add_argument('--cfg-options', nargs='+', action=DictAction, help='override config keys')
    return p.parse_args()


def set_epochs(cfg: Config, epochs: int) -> None:
    """Change max_epochs and stretch the epoch-based LR schedulers that end with it."""
    if epochs < 1:
        raise SystemExit(f'--epochs must be >= 1, got {epochs}')
    old = cfg.train_cfg.max_epochs
    cfg.train_cfg.max_epochs = epochs
    kept = []
    for sched in cfg.get('param_scheduler') or []:
        if sched.get('by_epoch', True) and sched.get('end') == old:
            if sched.get('begin', 0) >= epochs:  # starts after the shortened run: dropped
                continue
            sched['end'] = epochs
            if 'T_max' in sched:
                sched['T_max'] = epochs - sched.get('begin', 0)
        kept.append(sched)
    if cfg.get('param_scheduler'):
        cfg.param_scheduler = kept


def final_metrics(runner) -> dict:
    """The last validation's metrics (the EMA weights); validates again if none ran."""
    hub = runner.message_hub
    if 'val/coco/bbox_mAP' in hub.log_scalars:
        return {k[len('val/'):]: v.current() for k, v in hub.log_scalars.items()
                if k.startswith('val/coco/')}
    return runner.val_loop.run()


def main() -> None:
    args = parse_args()
    cfg = Config.fromfile(args.config)
    if args.cfg_options:  # before the dataset is made (e.g. synthetic_dataset.min_size=10) ...
        cfg.merge_from_dict(args.cfg_options)
    if args.data:
        data = load_data_yaml(args.data)
        vis_images, metainfo = None, dict(classes=data.names)  # the val dataset's usable images, once built
        print(f'[demo] dataset {data.file}: {len(data.names)} classes {", ".join(data.names)}', flush=True)
    else:
        data_root = osp.abspath(args.data_root or osp.join(ROOT, cfg.data_root))
        t0 = time.time()
        ds = make_synthetic_dataset(data_root, **cfg.synthetic_dataset)
        print(f'[demo] dataset {"reused" if ds.reused else "generated"} at {data_root} '
              f'({cfg.synthetic_dataset["num_train"]} train / {cfg.synthetic_dataset["num_val"]} val images, '
              f'{time.time() - t0:.1f}s)', flush=True)
        for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
            cfg[key].dataset.data_root = data_root + '/'
        for key, loader in (('val_evaluator', 'val_dataloader'), ('test_evaluator', 'test_dataloader')):
            cfg[key].ann_file = osp.join(data_root, cfg[loader].dataset.ann_file)
        vis_images = sorted(glob.glob(osp.join(ds.img_dirs['val'], '*')))[:args.num_vis]
        metainfo = ds.metainfo
    apply_data_args(cfg, args.data, args.imgsz)
    if args.cfg_options and (args.data or args.imgsz):  # ... and over what --data / --imgsz set
        cfg.merge_from_dict(args.cfg_options)
    if args.epochs is not None:
        set_epochs(cfg, args.epochs)
    cfg.work_dir = osp.abspath(args.work_dir)
    cfg.launcher = 'none'

    runner = Runner.from_cfg(cfg)
    t0 = time.time()
    runner.train()
    train_s = time.time() - t0
    metrics = final_metrics(runner)
    print(f'[demo] training took {train_s / 60:.1f} min', flush=True)
    print(f'[demo] COCO bbox metrics on the {"val split of " + args.data if args.data else "synthetic val split"}:')
    for k, v in metrics.items():
        if k.startswith('coco/bbox_'):
            print(f'    {k[len("coco/bbox_"):]:<8} {v:.3f}')

    vis_path = osp.join(cfg.work_dir, 'detections.png')
    curve_path = osp.join(cfg.work_dir, 'curves.png')
    if vis_images is None:
        val = runner.val_dataloader.dataset
        vis_images = [val.get_data_info(i)['img_path'] for i in range(min(args.num_vis, len(val)))]
    render_detections(runner, vis_images, metainfo, vis_path)
    plot_curves(runner.log_dir, curve_path)
    print(f'[demo] detections on validation images: {vis_path}')
    print(f'[demo] loss and mAP curves:            {curve_path}')
    print(f'[demo] checkpoints and logs:           {cfg.work_dir}')


if __name__ == '__main__':
    main()
