"""Speed of FCMAE's masked encoder vs a plain forward + backward of the same encoder.

Images per second of (a) the plain ``ConvNeXtV2`` encoder (stages 0-3, dense) forward + backward, (b) FCMAE's
masked encoder (mask ratio 0.6, masked positions kept at zero) forward + backward, (c) a whole FCMAE training
step (encoder + decoder + loss, forward + backward), at ``--size`` px, best of ``--runs`` timed runs after a
warm-up, on the CPU with ``--threads`` threads and on a CUDA GPU when one is visible (``--device``). The ratio
(b)/(a) in time per image is the masked encoder's cost (target: at most 1.5x).

Example::

    nice -n 15 python tools/analysis_tools/benchmark_fcmae.py --arch atto --size 224 --batch 16 --runs 5
"""
import argparse
import json
import sys
import time
from typing import Callable, Dict

import torch


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--arch', default='atto', help='ConvNeXt V2 arch (atto ... huge)')
    parser.add_argument('--size', type=int, default=224, help='input size in px (multiple of 32)')
    parser.add_argument('--batch', type=int, default=16)
    parser.add_argument('--runs', type=int, default=5, help='timed runs (the best is reported)')
    parser.add_argument('--threads', type=int, default=2, help='CPU threads')
    parser.add_argument('--device', default='auto', help="'cpu', 'cuda' or 'auto' (cuda when available)")
    parser.add_argument('--out', help='also write the results as JSON here')
    return parser.parse_args(argv)


def best_time(step: Callable[[], None], runs: int, device: str) -> float:
    """Best wall time in seconds of ``step`` over ``runs`` runs, after one warm-up."""
    step()
    best = float('inf')
    for _ in range(runs):
        if device == 'cuda':
            torch.cuda.synchronize()
        start = time.perf_counter()
        step()
        if device == 'cuda':
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return best


def measure(arch: str, size: int, batch: int, runs: int, device: str) -> Dict[str, float]:
    """Images/s of the plain encoder, the masked encoder and a full FCMAE step (forward + backward each).

    Returns:
        dict: ``plain_img_s``, ``masked_img_s``, ``fcmae_step_img_s`` and ``masked_vs_plain`` (time ratio).
    """
    from convnextv2_yolo.backbones import ConvNeXtV2
    from convnextv2_yolo.selfsup import FCMAE
    torch.manual_seed(0)
    fcmae = FCMAE(arch=arch).to(device)
    fcmae.init_weights()
    plain = ConvNeXtV2(arch=arch, out_indices=(3, )).to(device)
    plain.load_state_dict(fcmae.backbone.state_dict(), strict=False)  # same weights; norm3 stays
    imgs = torch.randn(batch, 3, size, size, device=device)

    def plain_step():
        plain.zero_grad(set_to_none=True)
        plain(imgs)[-1].float().pow(2).mean().backward()

    def masked_step():
        fcmae.zero_grad(set_to_none=True)
        fcmae.encode(imgs, fcmae.random_mask(imgs)).float().pow(2).mean().backward()

    def fcmae_step():
        fcmae.zero_grad(set_to_none=True)
        fcmae(imgs)['loss'].backward()

    times = {name: best_time(fn, runs, device) for name, fn in
             (('plain', plain_step), ('masked', masked_step), ('fcmae_step', fcmae_step))}
    out = {f'{k}_img_s': batch / v for k, v in times.items()}
    out['masked_vs_plain'] = times['masked'] / times['plain']
    return out


def main(argv=None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    devices = ['cpu'] + (['cuda'] if torch.cuda.is_available() else []) if args.device == 'auto' else [args.device]
    results = {}
    for device in devices:
        r = measure(args.arch, args.size, args.batch, args.runs, device)
        results[device] = r
        print(f'{device} ({args.threads} threads)' if device == 'cpu' else device,
              f'ConvNeXt V2-{args.arch} {args.size}px batch {args.batch}, best of {args.runs}: '
              f'plain encoder fwd+bwd {r["plain_img_s"]:.1f} img/s | masked encoder fwd+bwd '
              f'{r["masked_img_s"]:.1f} img/s ({r["masked_vs_plain"]:.2f}x the plain time) | '
              f'full FCMAE step {r["fcmae_step_img_s"]:.1f} img/s')
    if args.out:
        with open(args.out, 'w') as f:
            json.dump(dict(args=vars(args), results=results), f, indent=1)
    return 0


if __name__ == '__main__':
    sys.exit(main())
