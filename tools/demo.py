"""The demo: train the headline model on the synthetic shapes dataset (or your data.yaml).

ConvNeXt V2 + YOLO11 PAFPN neck + YOLO11 head, from scratch (no weights can be downloaded), on a
generated dataset (made on first use). Prints progress with an ETA, evaluates with COCO metrics,
then writes a picture of detections on validation images, a plot of the loss and mAP curves and
``demo_result.json`` (every validation, the final metrics, wall time, commit and machine).

    python tools/demo.py [--config CFG] [--work-dir DIR] [--data-root DIR]
                         [--data DATA_YAML] [--imgsz N] [--epochs N] [--cfg-options k=v ...]

``--data`` trains the demo model on a dataset in the reference's layout (``data.yaml``) instead of
the synthetic one; ``--imgsz`` sets the image size.
"""
import time

T0 = time.time()

import argparse  # noqa: E402
import os.path as osp  # noqa: E402
import sys  # noqa: E402

from mmengine.config import DictAction  # noqa: E402

import convnextv2_yolo  # noqa: E402,F401
from convnextv2_yolo.utils.demo_report import plot_curves, render_detections  # noqa: E402
from convnextv2_yolo.utils.demo_setup import demo_result, final_metrics, prepare_demo_cfg, write_json  # noqa: E402
from convnextv2_yolo.utils.launch import build_runner  # noqa: E402

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
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


def main() -> None:
    args = parse_args()
    try:
        setup = prepare_demo_cfg(args.config, args.work_dir, ROOT, data_root=args.data_root, data=args.data,
                                 imgsz=args.imgsz, epochs=args.epochs, cfg_options=args.cfg_options,
                                 num_vis=args.num_vis)
    except ValueError as e:
        raise SystemExit(str(e)) from None
    print(f'[demo] {setup.dataset_note}', flush=True)
    cfg = setup.cfg
    runner = build_runner(cfg)  # the config's runner_type (YOLORunner: env_cfg.malloc and fine-tuning)
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
    vis_images = setup.vis_images
    if vis_images is None:
        val = runner.val_dataloader.dataset
        vis_images = [val.get_data_info(i)['img_path'] for i in range(min(args.num_vis, len(val)))]
    render_detections(runner, vis_images, setup.metainfo, vis_path)
    plot_curves(runner.log_dir, curve_path)
    result_path = write_json(osp.join(cfg.work_dir, 'demo_result.json'),
                             demo_result(runner, ROOT, args.config, time.time() - T0, train_s, metrics,
                                         ['tools/demo.py'] + sys.argv[1:]))
    print(f'[demo] detections on validation images: {vis_path}')
    print(f'[demo] loss and mAP curves:            {curve_path}')
    print(f'[demo] results (metrics, time, commit): {result_path}')
    print(f'[demo] checkpoints and logs:           {cfg.work_dir}')


if __name__ == '__main__':
    main()
