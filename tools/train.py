"""Train a detector (MMDetection's CLI, with convnextv2_yolo registered).

    python tools/train.py CONFIG [--data DATA_YAML] [--imgsz N] [--work-dir DIR] [--amp]
                          [--auto-scale-lr] [--resume [CKPT]] [--vis-backend NAME ...] [--no-plots]
                          [--mixup P] [--copy-paste R]
                          [--cfg-options k=v ...] [--launcher ...]
"""
import argparse

from mmengine.config import Config

import convnextv2_yolo  # noqa: F401  (registers modules, applies compat fixes)
from convnextv2_yolo.utils.launch import (add_plots_arg, build_runner, close_distributed, parse_common_args,
                                          prepare_train_cfg)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Train a detector')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument('--amp', action='store_true', help='automatic mixed precision training')
    parser.add_argument('--auto-scale-lr', action='store_true',
                        help='scale the LR by total batch / auto_scale_lr.base_batch_size')
    parser.add_argument('--resume', nargs='?', type=str, const='auto',
                        help='resume from CKPT, or from the latest checkpoint of the work dir')
    parser.add_argument('--vis-backend', nargs='+', metavar='NAME',
                        help="also log to these mmengine backends: tensorboard, wandb, mlflow, clearml, neptune, "
                             "dvclive, aim (each needs its package); the config's own stay")
    parser.add_argument('--mixup', type=float, metavar='P',
                        help="the reference's mixup: YOLOMixUp probability (the YOLO11 configs: 0.0-0.2 by scale; "
                             '--data sets 0.0, the reference\'s default)')
    parser.add_argument('--copy-paste', type=float, metavar='R',
                        help="the reference's copy_paste ('flip' mode): fraction of the eligible mirrored "
                             'instances pasted where images have polygons (--data sets 0.0)')
    add_plots_arg(parser)
    return parse_common_args(parser)


def main() -> None:
    args = parse_args()
    cfg = prepare_train_cfg(Config.fromfile(args.config), args)
    runner = build_runner(cfg)
    runner.train()
    del runner  # its DDP wrapper holds the process group
    close_distributed()


if __name__ == '__main__':
    main()
