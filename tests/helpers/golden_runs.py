"""Golden runs: short, deterministic trainings of the four shipped training paths, traced per iteration.

Each run goes through the code path a user's command takes (the demo's set-up, ``tools/train.py``'s
``prepare_train_cfg`` + ``build_runner`` with ``--data``/``--imgsz``) on a tiny generated dataset, with
a :class:`~convnextv2_yolo.engine.hooks.TrainingTraceHook` that writes, per iteration, the LR /
momentum / weight decay of every param group, the gradient accumulation, the optimizer steps, the
EMA updates and decay, the losses and the GT boxes of every sample, and after training a checksum of
the evaluated (EMA) weights. ``tests/engine/test_golden_runs.py`` compares the traces with the committed
ones in ``tests/golden/``.

    python -m tests.helpers.golden_runs --out DIR          # run all, write DIR/<run>.json
    python -m tests.helpers.golden_runs --update           # rewrite tests/golden/*.json (its own commit, saying why)
    python -m tests.helpers.golden_runs --compare DIR      # compare DIR/<run>.json with tests/golden/

Numerics: the process pins what CPU results depend on (one thread; AVX2 kernels in ATen, oneDNN and
MKL, whatever the CPU), so that a machine with AVX-512 and one without give the same numbers; a run
of the demo showed that thread count or kernel choice alone changes a training's trajectory.
"""
import argparse
import json
import os
import os.path as osp
import sys
from typing import Dict, List, Optional

from .paths import ROOT

GOLDEN_DIR = osp.join(ROOT, 'tests', 'golden')
RUNS = ('demo', 'yolo11n_data', 'convnextv2_swap', 'fcmae')
# What CPU results depend on, pinned for golden runs (read when the libraries load): one thread, and the
# AVX2 code paths of ATen, MKL (bit-reproducible across CPUs in this mode), oneDNN, OpenCV (warps and
# resizes round differently with its AVX-512 kernels: 0.1% of a training image's pixel sum, measured)
# and NumPy, whatever the CPU offers above AVX2. Names a CPU or build lacks are ignored with a warning.
NUMERICS_ENV = dict(OMP_NUM_THREADS='1', MKL_NUM_THREADS='1', ATEN_CPU_CAPABILITY='avx2', ONEDNN_MAX_CPU_ISA='AVX2',
                    MKL_CBWR='AVX2,STRICT',
                    OPENCV_CPU_DISABLE='AVX512-SKX,AVX512-CLX,AVX512-CNL,AVX512-ICL,AVX512-COMMON,AVX_VNNI',
                    NPY_DISABLE_CPU_FEATURES='X86_V4 AVX512_ICL AVX512_SPR')
EPOCHS = 3
BATCH = 4
NUM_TRAIN = 32  # 8 iterations per epoch, 24 in all
IMGSZ = 96


def pin_numerics() -> None:
    """One thread, and convolutions through ATen + MKL (whose AVX2 path MKL_CBWR pins bit for bit across
    CPUs) instead of oneDNN (whose blocking may follow the CPU's cache sizes)."""
    import torch
    torch.set_num_threads(1)
    torch.backends.mkldnn.enabled = False


def make_data(root: str):
    """The tiny dataset of the golden runs: 32 train / 4 val PNG images of 64 px, 4 shape classes."""
    from convnextv2_yolo.datasets.synthetic import make_synthetic_dataset
    return make_synthetic_dataset(root, num_train=NUM_TRAIN, num_val=4, seed=7, img_size=64, min_size=6,
                                  max_objects=4, img_format='png')


def _common_options(work_dir: str) -> dict:
    return {'train_dataloader.batch_size': BATCH, 'train_dataloader.num_workers': 0,
            'train_dataloader.persistent_workers': False, 'train_cfg.max_epochs': EPOCHS,
            'train_cfg.val_interval': EPOCHS + 1, 'train_cfg.val_begin': EPOCHS + 1, 'randomness': dict(seed=0),
            'default_hooks.checkpoint': dict(type='CheckpointHook', interval=EPOCHS + 1, save_last=False),
            'default_hooks.logger.interval': 1, 'work_dir': work_dir,
            # mmengine names a runner's logger by experiment name + second: unique per run
            'experiment_name': 'golden' + work_dir.replace(os.sep, '_')}


def _train_cfg(config: str, data_yaml: str, imgsz: int, work_dir: str, options: dict):
    """A config prepared as ``tools/train.py CONFIG --data DATA --imgsz N --cfg-options ...`` does."""
    from mmengine.config import Config

    from convnextv2_yolo.utils.launch import prepare_train_cfg
    args = argparse.Namespace(data=data_yaml, imgsz=imgsz, cfg_options=options, launcher='none', work_dir=work_dir,
                              amp=False, auto_scale_lr=False, resume=None)
    return prepare_train_cfg(Config.fromfile(osp.join(ROOT, 'configs', config)), args)


def _close_mosaic_last_epoch(cfg) -> None:
    for hook in cfg.custom_hooks:
        if str(hook.get('type', '')).split('.')[-1] == 'CloseMosaicHook':
            hook['close_epochs'] = 1  # mosaic for epochs 1-2, the plain pipeline for epoch 3


def build_cfg(run: str, data, work_dir: str, workers: int = 0, epochs: int = EPOCHS):
    """The config of golden run ``run`` on ``data`` (:func:`make_data`), ``workers`` loader processes."""
    options = _common_options(work_dir)
    options['train_dataloader.num_workers'] = workers
    options['train_dataloader.persistent_workers'] = False
    options['train_cfg.max_epochs'] = epochs
    if run == 'demo':  # tools/demo.py --data-root ... --imgsz 96 --epochs 3 (its synthetic set made smaller)
        from convnextv2_yolo.utils.demo_setup import prepare_demo_cfg
        options.update({'synthetic_dataset.num_train': NUM_TRAIN, 'synthetic_dataset.num_val': 4,
                        'synthetic_dataset.img_size': 64, 'synthetic_dataset.min_size': 6,
                        'synthetic_dataset.max_objects': 4, 'synthetic_dataset.seed': 7,
                        'synthetic_dataset.img_format': 'png'})
        cfg = prepare_demo_cfg(osp.join(ROOT, 'configs', 'demo', 'yolo11_convnextv2-atto_synthetic.py'), work_dir,
                               ROOT, data_root=osp.join(osp.dirname(data.root), 'demo_shapes'), imgsz=IMGSZ,
                               epochs=epochs, cfg_options=options).cfg
    elif run in ('yolo11n_data', 'convnextv2_swap'):  # tools/train.py CONFIG --data data.yaml --imgsz 96
        config = ('yolo11/yolo11_n_8xb16-500e_coco.py' if run == 'yolo11n_data'
                  else 'custom/yolo11_n_convnextv2-atto_backbone-swap.py')
        cfg = _train_cfg(config, data.data_yaml, IMGSZ, work_dir, options)
        _close_mosaic_last_epoch(cfg)
    elif run == 'fcmae':  # tools/train.py configs/fcmae/... --data data.yaml --imgsz 64, a 3-epoch schedule
        options.update({'param_scheduler': [
            dict(type='LinearLR', start_factor=1e-4, by_epoch=True, begin=0, end=1, convert_to_iter_based=True),
            dict(type='CosineAnnealingLR', T_max=epochs - 1, eta_min=0., by_epoch=True, begin=1, end=epochs,
                 convert_to_iter_based=True)]})
        cfg = _train_cfg('fcmae/fcmae_convnextv2-atto_8xb64-800e.py', data.data_yaml, 64, work_dir, options)
    else:
        raise ValueError(f'unknown golden run {run!r}; runs: {RUNS}')
    cfg.custom_hooks = list(cfg.get('custom_hooks') or []) + [dict(type='TrainingTraceHook')]
    return cfg


GROUP_KEYS = ('lr', 'momentum', 'weight_decay')  # one value per optimizer param group


def run_lengths(values: list) -> list:
    """``[a, a, b]`` -> ``[[a, 2], [b, 1]]`` (per-group values repeat over hundreds of groups)."""
    out: list = []
    for v in values:
        if out and out[-1][0] == v:
            out[-1][1] += 1
        else:
            out.append([v, 1])
    return out


def read_trace(path: str) -> dict:
    """``{'iterations': [...], 'final': {...}, 'weights': 'ema'|'model'}`` of a ``trace.jsonl``, the
    per-group values run-length encoded (:func:`run_lengths`)."""
    iterations, final = [], {}
    with open(path, encoding='utf-8') as f:
        for line in f:
            row = json.loads(line)
            if 'final' in row:
                final = row
            else:
                iterations.append({k: run_lengths(v) if k in GROUP_KEYS else v for k, v in row.items()})
    return dict(iterations=iterations, final=final.get('final', {}), weights=final.get('weights'))


def write_trace(trace: dict, path: str) -> None:
    """One iteration per line (diffs of a golden file then show which iterations moved)."""
    head = {k: v for k, v in trace.items() if k != 'iterations'}
    with open(path, 'w', encoding='utf-8') as f:
        f.write('{\n' + ''.join(f' {json.dumps(k)}: {json.dumps(v)},\n' for k, v in head.items()))
        f.write(' "iterations": [\n' + ',\n'.join('  ' + json.dumps(r) for r in trace['iterations']) + '\n ]\n}\n')


def run_one(run: str, data, work_dir: str, workers: int = 0, epochs: int = EPOCHS) -> dict:
    """Train golden run ``run`` in this process; its trace (:func:`read_trace`)."""
    import convnextv2_yolo  # noqa: F401
    from convnextv2_yolo.utils.launch import build_runner
    os.makedirs(work_dir, exist_ok=True)
    cfg = build_cfg(run, data, work_dir, workers, epochs)
    runner = build_runner(cfg)
    runner.train()
    return read_trace(osp.join(work_dir, 'trace.jsonl'))


def run_all(out_dir: str, runs=RUNS) -> Dict[str, dict]:
    """Every golden run (one thread), traces written to ``out_dir/<run>.json``."""
    pin_numerics()
    data = make_data(osp.join(out_dir, 'data', 'shapes'))
    traces = {}
    for run in runs:
        trace = run_one(run, data, osp.join(out_dir, 'work', run))
        trace['run'] = run
        write_trace(trace, osp.join(out_dir, f'{run}.json'))
        traces[run] = trace
    return traces


# ------------------------------------------------------------------------------------ comparison

# Tolerances. The schedule is computed in float64 from counts (written with 10 digits); pixels and boxes
# come from integer / float32 data ops (boxes written with 3 decimals); losses and weights are relative.
# With the numerics pinned two runs are bit identical, so these only absorb the written rounding: under
# unpinned AVX-512 kernels the demo's losses already differ by 5e-5 after one step and by up to 70% after
# 24 (measured), the other runs' by up to 8e-5 and their weights by 1e-7.
TOL = dict(schedule=1e-8, pixels=1e-7, boxes=2e-3, losses=1e-5, weights=1e-5)


def _close(a: float, b: float, rel: float, abs_: float = 0.0) -> bool:
    if a is None or b is None:
        return a is b
    return abs(a - b) <= max(rel * max(abs(a), abs(b)), abs_)


def compare(golden: dict, trace: dict, tol: dict = TOL, limit: int = 20) -> List[str]:
    """Differences between two traces beyond the tolerances (empty: they agree)."""
    out: List[str] = []

    def add(msg: str) -> None:
        if len(out) < limit:
            out.append(msg)

    g_its, t_its = golden['iterations'], trace['iterations']
    if len(g_its) != len(t_its):
        add(f'{len(t_its)} iterations, golden {len(g_its)}')
    for g, t in zip(g_its, t_its):
        at = f"iter {g['iter']} (epoch {g['epoch']})"
        for key in ('epoch', 'iter', 'accumulation', 'optimizer_steps', 'ema_updates'):
            if g.get(key) != t.get(key):
                add(f'{at}: {key} {t.get(key)}, golden {g.get(key)}')
        for key in GROUP_KEYS:  # [[value, number of groups], ...]
            gv, tv = g.get(key) or [], t.get(key) or []
            if len(gv) != len(tv) or not all(a[1] == b[1] and _close(a[0], b[0], tol['schedule'])
                                             for a, b in zip(gv, tv)):
                add(f'{at}: {key} {tv[:3]}{"..." if len(tv) > 3 else ""}, golden {gv[:3]}')
        if not _close(g.get('ema_decay'), t.get('ema_decay'), tol['schedule']):
            add(f"{at}: ema_decay {t.get('ema_decay')}, golden {g.get('ema_decay')}")
        gl, tl = g.get('losses', {}), t.get('losses', {})
        if set(gl) != set(tl):
            add(f'{at}: losses {sorted(tl)}, golden {sorted(gl)}')
        for k in sorted(set(gl) & set(tl)):
            if not _close(gl[k], tl[k], tol['losses'], 1e-6):
                add(f'{at}: {k} {tl[k]}, golden {gl[k]}')
        gs, ts = g.get('samples', []), t.get('samples', [])
        if len(gs) != len(ts):
            add(f'{at}: {len(ts)} samples, golden {len(gs)}')
        for i, (a, b) in enumerate(zip(gs, ts)):
            if a.get('img') != b.get('img') or a.get('labels') != b.get('labels'):
                add(f"{at} sample {i}: {b.get('img')} labels {b.get('labels')}, golden {a.get('img')} "
                    f"{a.get('labels')}")
                continue
            if not _close(a.get('pixel_sum'), b.get('pixel_sum'), tol['pixels']):
                add(f"{at} sample {i} ({a.get('img')}): pixel sum {b.get('pixel_sum')}, golden {a.get('pixel_sum')}")
            for j, (ba, bb) in enumerate(zip(a.get('boxes', []), b.get('boxes', []))):
                if any(abs(x - y) > tol['boxes'] for x, y in zip(ba, bb)):
                    add(f"{at} sample {i} ({a.get('img')}) box {j}: {bb}, golden {ba}")
    gf, tf = golden.get('final', {}), trace.get('final', {})
    if set(gf) != set(tf):
        add(f'final weights: modules {sorted(tf)}, golden {sorted(gf)}')
    for prefix in sorted(set(gf) & set(tf)):
        names = ('values', 'sum', 'abs sum', 'probe')
        for name, a, b in zip(names, gf[prefix], tf[prefix]):
            scale = gf[prefix][2]  # sums are compared relative to the sum of |x|
            if abs(a - b) > tol['weights'] * max(abs(scale), 1e-12):
                add(f'final {golden.get("weights", "")} weights {prefix}: {name} {b}, golden {a}')
    return out


def golden_path(run: str) -> str:
    return osp.join(GOLDEN_DIR, f'{run}.json')


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0], epilog=__doc__.split('\n', 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--out', help='run and write the traces here')
    p.add_argument('--update', action='store_true', help='run and rewrite tests/golden/')
    p.add_argument('--compare', metavar='DIR', help='compare DIR/<run>.json with tests/golden/ (no run)')
    p.add_argument('--runs', nargs='+', choices=RUNS, default=list(RUNS))
    args = p.parse_args(argv)
    if not (args.out or args.update or args.compare):
        p.error('give --out DIR, --update or --compare DIR')
    missing = {k: v for k, v in NUMERICS_ENV.items() if os.environ.get(k) != v}
    if (args.out or args.update) and missing:  # re-run with the pinned numerics (read when torch loads)
        env = dict(os.environ, **NUMERICS_ENV)
        return os.spawnve(os.P_WAIT, sys.executable, [sys.executable] + sys.argv, env)
    if args.compare:
        bad = 0
        for run in args.runs:
            with open(golden_path(run)) as f, open(osp.join(args.compare, f'{run}.json')) as g:
                diffs = compare(json.load(f), json.load(g))
            print(f'{run}: ' + ('agrees with the golden trace' if not diffs else f'{len(diffs)}+ differences'))
            for d in diffs:
                print('   ', d)
            bad += bool(diffs)
        return 1 if bad else 0
    import tempfile
    out = args.out or tempfile.mkdtemp(prefix='golden_')
    os.makedirs(out, exist_ok=True)
    traces = run_all(out, args.runs)
    if args.update:
        os.makedirs(GOLDEN_DIR, exist_ok=True)
        for run, trace in traces.items():
            write_trace(trace, golden_path(run))
            print(f'wrote {osp.relpath(golden_path(run), ROOT)}')
        print('commit the golden files on their own, saying why the numbers moved')
    else:
        print(f'traces in {out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
