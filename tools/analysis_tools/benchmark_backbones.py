"""Size, compute and CPU speed of the ConvNeXt V2 backbones vs YOLO11's own.

For every ConvNeXt V2 arch: parameters, FLOPs at 640x640 (2 x multiply-adds),
CPU forward latency at batch 1 (median and best of the runs, ``--threads``
threads), side by side with the native YOLO11 backbone of the scale it is paired with
(atto/femto -> n, pico/nano -> s, tiny -> m, base -> l, large/huge -> x).
``--memory`` adds the peak memory of a forward+backward with and without
``with_cp`` (each in a fresh process, peak RSS).

Example::

    python tools/analysis_tools/benchmark_backbones.py --archs atto tiny \
        --memory large --out bench.md
"""
import argparse
import json
import statistics
import subprocess
import sys
import time
from typing import Callable, Dict, List, Optional, Tuple

import torch
import torch.nn as nn

PAIRS = {
    'atto': 'n', 'femto': 'n', 'pico': 's', 'nano': 's', 'tiny': 'm',
    'base': 'l', 'large': 'x', 'huge': 'x'
}


def build_convnextv2(arch: str, with_cp: bool = False) -> nn.Module:
    from convnextv2_yolo.backbones import ConvNeXtV2
    return ConvNeXtV2(arch=arch, with_cp=with_cp)


def build_yolo11(scale: str) -> Optional[nn.Module]:
    """Native YOLO11 backbone of ``scale`` (None when not available)."""
    try:
        from convnextv2_yolo.backbones import YOLOCSPDarknet
    except ImportError:
        return None
    return YOLOCSPDarknet(version='yolo11', scale=scale)


def flops_counter() -> Callable[[nn.Module, int], int]:
    """The project's FLOP counter, or mmengine's (2 x MACs) as fallback."""
    try:
        from convnextv2_yolo.utils.complexity import count_flops
        return lambda model, size: count_flops(model, (3, size, size))
    except ImportError:
        from mmengine.analysis import get_model_complexity_info

        def count(model: nn.Module, size: int) -> int:
            info = get_model_complexity_info(
                model, (3, size, size), show_table=False, show_arch=False)
            return 2 * int(info['flops'])

        return count


@torch.inference_mode()
def cpu_latency_ms(model: nn.Module, size: int, runs: int,
                   warmup: int) -> Tuple[float, float]:
    """Median and best forward time at batch 1 on CPU, in milliseconds.

    The best run is the figure least disturbed by other processes.
    """
    model.eval()
    x = torch.randn(1, 3, size, size)
    for _ in range(warmup):
        model(x)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        model(x)
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times), min(times)


def measure(name: str, build: Callable[[], nn.Module], args, count) -> Dict:
    """Parameters, FLOPs (counted on the meta device) and CPU latency."""
    model = build()
    flops = count(model.to('meta'), args.size)
    model = build()
    params = sum(p.numel() for p in model.parameters())
    runs = max(1, args.runs if params < 1e8 else args.runs_large)
    median, best = cpu_latency_ms(model, args.size, runs, args.warmup)
    latency = f'{median:.0f} / {best:.0f}'
    print(f'{name}: {params / 1e6:.2f}M params, {flops / 1e9:.1f} GFLOPs, '
          f'{latency} ms', file=sys.stderr, flush=True)
    return dict(
        name=name,
        params=params,
        flops=flops,
        latency=latency,
        out_channels=list(getattr(model, 'out_channels', [])))


def memory_worker(arch: str, with_cp: bool, size: int) -> None:
    """Run in a fresh process: print the memory of one forward+backward.

    ``peak`` is the process high-water mark (VmHWM, reset by exec, unlike
    ``ru_maxrss``); ``saved`` the bytes autograd keeps for the backward.
    """
    torch.set_num_threads(2)
    model = build_convnextv2(arch, with_cp=with_cp).train()
    base = _proc_status_bytes('VmRSS')
    saved = [0]

    def pack(t: torch.Tensor) -> torch.Tensor:
        saved[0] += t.numel() * t.element_size()
        return t

    x = torch.randn(1, 3, size, size)
    start = time.perf_counter()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = sum(o.float().mean() for o in model(x))
    loss.backward()
    elapsed = time.perf_counter() - start
    print(json.dumps(dict(base=base, peak=_proc_status_bytes('VmHWM'),
                          saved=saved[0], seconds=elapsed)))


def _proc_status_bytes(field: str) -> int:
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith(field + ':'):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f'{field} not in /proc/self/status')


def memory_rows(archs: List[str], size: int) -> List[str]:
    rows = []
    for arch in archs:
        res = {}
        for with_cp in (False, True):
            out = subprocess.run(
                [sys.executable, __file__, '--_memory-worker', arch,
                 str(int(with_cp)), str(size)],
                capture_output=True, text=True, check=True)
            res[with_cp] = json.loads(out.stdout.strip().splitlines()[-1])
        gb, mb = 1024**3, 1024**2
        plain, cp = res[False], res[True]
        rows.append(
            f'| {arch} | {size}x{size} | {plain["base"] / gb:.2f} | '
            f'{plain["peak"] / gb:.2f} | {cp["peak"] / gb:.2f} | '
            f'{plain["saved"] / mb:.0f} | {cp["saved"] / mb:.0f} | '
            f'{plain["seconds"]:.1f} / {cp["seconds"]:.1f} |')
        print(rows[-1], file=sys.stderr, flush=True)
    header = [
        'Forward+backward at batch 1 on CPU, each in a fresh process: '
        'RSS after building the model, peak RSS (VmHWM, GiB) and the '
        'activations autograd keeps for the backward (MiB):',
        '',
        '| arch | input | RSS after build | peak | peak with_cp | '
        'saved activations | saved with_cp | fwd+bwd s (plain / with_cp) |',
        '|---|---|---|---|---|---|---|---|',
    ]
    return header + rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--archs', nargs='+', default=list(PAIRS),
                        choices=list(PAIRS))
    parser.add_argument('--size', type=int, default=640)
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--runs', type=int, default=10)
    parser.add_argument('--runs-large', type=int, default=3,
                        help='runs for models over 100M parameters')
    parser.add_argument('--warmup', type=int, default=2)
    parser.add_argument('--no-yolo', action='store_true',
                        help='skip the native YOLO11 backbones')
    parser.add_argument('--memory', nargs='*', default=[],
                        choices=list(PAIRS),
                        help='archs whose fwd+bwd memory to measure')
    parser.add_argument('--memory-size', type=int, default=320)
    parser.add_argument('--out', help='also write the markdown here')
    parser.add_argument('--_memory-worker', nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args._memory_worker:
        arch, with_cp, size = args._memory_worker
        memory_worker(arch, bool(int(with_cp)), int(size))
        return 0

    torch.set_num_threads(args.threads)
    count = flops_counter()
    lines = [
        f'Backbone only, input {args.size}x{args.size}, batch 1, CPU '
        f'({args.threads} threads), torch {torch.__version__}; FLOPs = '
        '2 x multiply-adds.',
        '',
        '| backbone | params (M) | GFLOPs | CPU ms (median / best) | '
        'out channels | paired YOLO11 backbone | params (M) | GFLOPs | '
        'CPU ms (median / best) |',
        '|---|---|---|---|---|---|---|---|---|',
    ]
    yolo_cache: Dict[str, Optional[Dict]] = {}
    for arch in args.archs:
        row = measure(f'convnextv2-{arch}',
                      lambda: build_convnextv2(arch), args, count)
        scale = PAIRS[arch]
        if scale not in yolo_cache:
            available = not args.no_yolo and build_yolo11(scale) is not None
            yolo_cache[scale] = measure(
                f'yolo11{scale}', lambda: build_yolo11(scale), args,
                count) if available else None
        y = yolo_cache[scale]
        native = (f'| YOLO11-{scale} | {y["params"] / 1e6:.2f} | '
                  f'{y["flops"] / 1e9:.1f} | {y["latency"]} |'
                  if y else f'| YOLO11-{scale} | - | - | - |')
        lines.append(
            f'| ConvNeXtV2-{arch} | {row["params"] / 1e6:.2f} | '
            f'{row["flops"] / 1e9:.1f} | {row["latency"]} | '
            f'{"/".join(map(str, row["out_channels"]))} {native}')
    if args.memory:
        lines += [''] + memory_rows(args.memory, args.memory_size)
    text = '\n'.join(lines)
    print(text)
    if args.out:
        with open(args.out, 'w') as f:
            f.write(text + '\n')
    return 0


if __name__ == '__main__':
    sys.exit(main())
