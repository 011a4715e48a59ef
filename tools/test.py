"""Test (and evaluate) a detector (MMDetection's CLI, with convnextv2_yolo registered).

    python tools/test.py CONFIG CHECKPOINT [--data DATA_YAML] [--imgsz N] [--work-dir DIR] [--out results.pkl]
                         [--show-dir DIR] [--no-plots] [--cfg-options k=v ...] [--launcher ...]
"""
import argparse

from mmengine.config import Config

import convnextv2_yolo  # noqa: F401
from convnextv2_yolo.utils.launch import (add_plots_arg, build_runner, close_distributed, parse_common_args,
                                          prepare_test_cfg)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Test (and evaluate) a detector')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir', help='the dir to save the evaluation metrics')
    parser.add_argument('--out', help='dump predictions to a .pkl file for offline evaluation')
    parser.add_argument('--show', action='store_true', help='show prediction results')
    parser.add_argument('--show-dir', help='save painted images under work_dir/TIMESTAMP/SHOW_DIR')
    parser.add_argument('--wait-time', type=float, default=2, help='the interval of show (s)')
    add_plots_arg(parser)
    return parse_common_args(parser)


def main() -> None:
    args = parse_args()
    cfg = prepare_test_cfg(Config.fromfile(args.config), args)
    runner = build_runner(cfg)
    runner.checkpoint_must_fit = True  # YOLORunner: a checkpoint that leaves tensors untouched is an error
    if args.out is not None:
        from mmdet.evaluation import DumpDetResults
        if not args.out.endswith(('.pkl', '.pickle')):
            raise SystemExit(f'--out must be a .pkl file, got {args.out}')
        runner.test_evaluator.metrics.append(DumpDetResults(out_file_path=args.out))
    runner.test()
    del runner  # its DDP wrapper holds the process group
    close_distributed()


if __name__ == '__main__':
    main()
