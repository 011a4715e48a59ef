"""Parameters, FLOPs, latency and throughput of detectors built from configs.

    python tools/analysis_tools/benchmark.py CONFIG [CONFIG ...] [--img-size 640]
        [--batch 8] [--device cpu|cuda] [--threads 2] [--runs 5] [--json out.json]

One row per config: parameters, GFLOPs (2 x multiply-adds, at batch 1),
forward latency at batch 1 and throughput (images/s) at ``--batch``, for the
network forward (backbone + neck + head, no post-processing). No weights are
loaded (``init_cfg`` is ignored): size and speed do not depend on them.
"""
import argparse
import json
import os.path as osp
import statistics
import time
from typing import Dict, List

import torch

import convnextv2_yolo  # noqa: F401
from convnextv2_yolo.utils.complexity import count_flops, count_params


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('configs', nargs='+', help='model configs')
    p.add_argument('--img-size', type=int, default=640)
    p.add_argument('--batch', type=int, default=8, help='batch size for throughput')
    p.add_argument('--device', default='cpu')
    p.add_argument('--threads', type=int, default=2, help='torch CPU threads')
    p.add_argument('--runs', type=int, default=5, help='timed runs (median reported)')
    p.add_argument('--warmup', type=int, default=2)
    p.add_argument('--channels-last', action='store_true', help='NHWC memory format')
    p.add_argument('--json', help='also save the rows here')
    return p.parse_args()


def build(config: str):
    from mmdet.registry import MODELS
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    if not osp.isfile(config):
        raise FileNotFoundError(f'config not found: {config}')
    cfg = Config.fromfile(config)
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    if cfg.model.get('backbone', {}).get('init_cfg'):
        cfg.model.backbone.init_cfg = None
    return MODELS.build(cfg.model).eval()


def _time(fn, runs: int, warmup: int, device: str) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        if device.startswith('cuda'):
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        if device.startswith('cuda'):
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def measure(config: str, args: argparse.Namespace) -> Dict:
    model = build(config)
    params = count_params(model)
    flops = count_flops(model, (3, args.img_size, args.img_size))
    model = model.to(args.device)
    fmt = torch.channels_last if args.channels_last else torch.contiguous_format
    model = model.to(memory_format=fmt)

    def run(batch: int):
        x = torch.rand(batch, 3, args.img_size, args.img_size, device=args.device).contiguous(memory_format=fmt)
        return lambda: model(x, mode='tensor')

    with torch.no_grad():
        latency = _time(run(1), args.runs, args.warmup, args.device)
        batch_time = _time(run(args.batch), args.runs, args.warmup, args.device)
    return dict(config=osp.relpath(config), params=params, gflops=flops / 1e9, latency_ms=latency * 1e3,
                throughput=args.batch / batch_time)


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    rows: List[Dict] = [measure(c, args) for c in args.configs]
    print(f'\n{args.img_size}x{args.img_size}, device {args.device}'
          f'{f", {args.threads} threads" if args.device == "cpu" else ""}, latency at batch 1, '
          f'throughput at batch {args.batch}\n')
    print('| config | params | GFLOPs | latency (ms) | throughput (img/s) |')
    print('|---|---|---|---|---|')
    for r in rows:
        print(f'| {r["config"]} | {r["params"]:,} | {r["gflops"]:.2f} | {r["latency_ms"]:.1f} | '
              f'{r["throughput"]:.1f} |')
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(rows, f, indent=1)


if __name__ == '__main__':
    main()
