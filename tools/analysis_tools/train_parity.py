"""Train our YOLO11 (or YOLO26) and the reference's side by side on one dataset and compare mAP and time.

    python tools/analysis_tools/train_parity.py DATA_YAML --ref-python REF_VENV/bin/python \\
        [--config CFG] [--imgsz 320] [--epochs 60] [--batch 16] [--seeds 0 1] [--close-mosaic 10] \\
        [--threads 1] [--workers 0] [--work-dir DIR] [--cfg-options k=v ...] [--finetune-from REF.pt]
    python tools/analysis_tools/train_parity.py DATA_YAML --ref-python ... --throughput

Per seed, both sides start from identical weights: the reference's own initial model for the dataset's
classes (built in its venv, seeded like its trainer) converted with ``ultralytics_to_mmdet.py`` and given to
our run as ``load_from``; with ``--finetune-from`` a reference checkpoint trained on another dataset is the
start of both (our converter and loader keep its class-branch width and copy the class rows whose names
match). Both train with the same image size, epochs, batch, seed, close-mosaic, CPU threads, loader workers
and the reference's automatic optimizer (``optimizer=auto``), save their EMA weights after every epoch
(ours through ``CheckpointHook``, the reference's through a training callback of
``ultralytics_driver.py``), and every one of those checkpoints is evaluated afterwards by the same
evaluator: our config's validation loop and ``CheckedCocoMetric`` on the yaml's ``val`` split, the
reference's weights converted. The reference runs as a black box in its own venv (never imported here).

Outputs in ``--work-dir``: ``parity.csv`` (one row per side, seed and epoch: train-loop seconds with data
loading, cumulative seconds, mAP50-95, mAP50, the loss components per image), ``parity.png`` (mAP50-95 per
epoch and per second, both sides on the same axes, and the losses), ``summary.json`` / ``summary.md``. With
``--throughput``: seconds per epoch for every combination of ``--tp-threads``, ``--tp-workers`` and
``--tp-imgsz`` (``throughput.csv``/``.md``; no evaluation). Without ``--ref-python`` our side runs alone
and the reference side is reported as skipped.

``--ref-model yolo26n.yaml`` compares YOLO26 (our config then defaults to configs/yolo26/yolo26_n_*.py): the
loss columns are ``box_loss, cls_loss, l1_loss``, the one-to-one branch's unweighted items (what the
reference's ``E2ELoss`` logs; ours ``o2o_bbox, o2o_cls, o2o_l1``); the evaluator uses our config's test path
for both sides (end-to-end top-k; ``--cfg-options model.test_cfg.end2end=False`` for one-to-many + NMS).

Make the reference venv once (outside this repository; the package never depends on it)::

    python3.11 -m venv ~/ultralytics-venv
    ~/ultralytics-venv/bin/pip install torch==2.11.0 torchvision==0.26.0 ultralytics
"""
import argparse
import csv
import io
import json
import math
import os
import os.path as osp
import shutil
import statistics
import subprocess
import sys
import time
from typing import Dict, List, Optional

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DRIVER = osp.join(ROOT, 'tools', 'analysis_tools', 'ultralytics_driver.py')
CONVERTER = osp.join(ROOT, 'tools', 'model_converters', 'ultralytics_to_mmdet.py')
DEFAULT_CONFIG = osp.join(ROOT, 'configs', 'yolo11', 'yolo11_n_8xb16-500e_coco.py')
SIDES = ('ours', 'reference')
LOSSES = ('box_loss', 'cls_loss', 'dfl_loss')  # the reference's names; ours: loss_bbox, loss_cls, loss_dfl
OUR_LOSSES = dict(box_loss='loss_bbox', cls_loss='loss_cls', dfl_loss='loss_dfl')
# end-to-end models (YOLO26, yolo26*.yaml): the reference logs the one-to-one branch's unweighted items
# (E2ELoss) as box_loss, cls_loss, l1_loss; ours logs them as o2o_bbox, o2o_cls, o2o_l1 (x batch, as ours)
E2E_LOSSES = ('box_loss', 'cls_loss', 'l1_loss')
E2E_OUR_LOSSES = dict(box_loss='o2o_bbox', cls_loss='o2o_cls', l1_loss='o2o_l1')


def is_end2end(ref_model: str) -> bool:
    """Whether the reference's model yaml is an end-to-end YOLO26 (``yolo26n.yaml``, ``yolo26.yaml``, ...)."""
    return osp.basename(str(ref_model)).lower().startswith('yolo26')


def loss_names(ref_model: str):
    """``(the reference's logged loss names, {reference name: our logged key})`` for the reference's model."""
    return (E2E_LOSSES, E2E_OUR_LOSSES) if is_end2end(ref_model) else (LOSSES, OUR_LOSSES)


def default_config(ref_model: str) -> str:
    """Our config matching the reference's model yaml: YOLO26 (``yolo26{scale}.yaml``) or YOLO11 (default),
    at the yaml's scale letter (n when it names none)."""
    name = osp.splitext(osp.basename(str(ref_model)))[0].lower()
    family = 'yolo26' if is_end2end(ref_model) else 'yolo11'
    scale = name[len(family):len(family) + 1] if name.startswith(family) else ''
    scale = scale if scale and scale in 'nsmlx' else 'n'
    return osp.join(ROOT, 'configs', family, f'{family}_{scale}_8xb16-500e_coco.py')


def parse_args(argv=None) -> argparse.Namespace:
    from mmengine.config import DictAction
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0], epilog=__doc__.split('\n', 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('data', metavar='DATA_YAML', help="dataset in the reference's layout")
    p.add_argument('--ref-python', help='python of a venv with ultralytics (the reference side is skipped without)')
    p.add_argument('--ref-model', default='yolo11n.yaml', help="the reference's model yaml (default yolo11n.yaml)")
    p.add_argument('--config', default=None,
                   help="our config (default: the --ref-model's: YOLO11-n for yolo11n.yaml, YOLO26-n for yolo26n.yaml)")
    p.add_argument('--imgsz', type=int, default=320)
    p.add_argument('--epochs', type=int, default=60)
    p.add_argument('--batch', type=int, default=16)
    p.add_argument('--seeds', type=int, nargs='+', default=[0, 1])
    p.add_argument('--close-mosaic', type=int, default=10)
    p.add_argument('--threads', type=int, default=1, help='torch CPU threads, both sides (the reference: cpu_count-1)')
    p.add_argument('--workers', type=int, default=0,
                   help='data loader workers, both sides (the reference forces 0 on CPU; the driver restores it)')
    p.add_argument('--sides', nargs='+', choices=SIDES, default=list(SIDES))
    p.add_argument('--finetune-from', metavar='REF_PT',
                   help='a reference checkpoint (e.g. trained on another dataset) both sides fine-tune from')
    p.add_argument('--work-dir', default=osp.join(ROOT, 'work_dirs', 'train_parity'))
    p.add_argument('--name', default=None, help='label of our side in the outputs (e.g. a recipe variant)')
    p.add_argument('--keep-checkpoints', action='store_true', help='keep the per-epoch checkpoints')
    p.add_argument('--eval-interval', type=int, default=1, metavar='K',
                   help='evaluate every K-th epoch and the last (default 1: every epoch)')
    p.add_argument('--reuse', action='store_true',
                   help='skip the training of a side whose finished run is already in --work-dir, and the '
                        'evaluations already recorded there (seed*/evaluations.jsonl)')
    p.add_argument('--ref-val', action='store_true',
                   help="also validate the reference's final model with its own validator, rectangular "
                        'batches (its default) and square letterboxes (ours), to compare the protocols')
    p.add_argument('--ref-env', nargs='+', default=[], metavar='KEY=VALUE',
                   help="environment of the reference's processes, e.g. MALLOC_TRIM_THRESHOLD_=-1 MALLOC_MMAP_MAX_=0 "
                        "(glibc's allocator as our recipe's env_cfg.malloc sets it in our process)")
    p.add_argument('--cfg-options', nargs='+', action=DictAction, default={},
                   help='our side only, applied last, e.g. a recipe variant')
    p.add_argument('--throughput', action='store_true', help='time epochs over the --tp-* grid instead')
    p.add_argument('--tp-threads', type=int, nargs='+', default=[1, 2])
    p.add_argument('--tp-workers', type=int, nargs='+', default=[0, 2])
    p.add_argument('--tp-imgsz', type=int, nargs='+', default=[320, 640])
    p.add_argument('--tp-epochs', type=int, default=3, help='epochs per timing run (the first is not counted)')
    args = p.parse_args(argv)
    if args.config is None:
        args.config = default_config(args.ref_model)
    if not osp.isfile(args.data):
        p.error(f'DATA_YAML not found: {args.data}')
    if args.ref_python and not osp.isfile(args.ref_python):
        p.error(f'--ref-python not found: {args.ref_python}')
    if args.finetune_from and not osp.isfile(args.finetune_from):
        p.error(f'--finetune-from not found: {args.finetune_from}')
    if args.eval_interval < 1:
        p.error('--eval-interval must be >= 1')
    bad_env = [kv for kv in args.ref_env if '=' not in kv or not kv.split('=', 1)[0]]
    if bad_env:
        p.error(f'--ref-env takes KEY=VALUE, got {bad_env}')
    if not args.ref_python and (args.sides == ['reference'] or args.ref_env):
        p.error(f"{'--sides reference' if args.sides == ['reference'] else '--ref-env'} needs --ref-python")
    if args.throughput and args.tp_epochs < 2:
        p.error('--tp-epochs must be at least 2 (the first epoch is not timed)')
    return args


def log(msg: str) -> None:
    print(f'[train_parity {time.strftime("%H:%M:%S")}] {msg}', flush=True)


def run(cmd: List[str], log_file: str, env: Optional[dict] = None) -> dict:
    """Run ``cmd``, its output to ``log_file``; the ``RESULT {...}`` line it printed, parsed.

    Raises:
        RuntimeError: non-zero exit, with the end of the log.
    """
    from convnextv2_yolo.utils.reference_driver import read_result
    with open(log_file, 'w') as f:
        proc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
    with open(log_file, errors='replace') as f:
        text = f.read()
    if proc.returncode:
        raise RuntimeError(f'{cmd[1] if len(cmd) > 1 else cmd[0]} failed (exit {proc.returncode}); '
                           f'the end of {log_file}:\n{text[-3000:]}')
    return read_result(text) or {}


def thread_env(threads: int) -> dict:
    return dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))


def active_sides(args: argparse.Namespace) -> List[str]:
    """The sides to run: ``--sides`` less the reference when no ``--ref-python`` is given (said in the log)."""
    if 'reference' in args.sides and not args.ref_python:
        log('reference side skipped: no --ref-python (make its venv as in this tool\'s help)')
    return [s for s in args.sides if s == 'ours' or args.ref_python]


def reference_env(args: argparse.Namespace, threads: int) -> dict:
    """Environment of the reference's processes: :func:`thread_env` and ``--ref-env``."""
    env = thread_env(threads)
    env.update(kv.split('=', 1) for kv in args.ref_env)
    return env


# --------------------------------------------------------------------------------------------- data


def absolute_data_yaml(data_yaml: str, out_dir: str) -> str:
    """The yaml with ``path`` made absolute (the reference resolves a relative ``path`` against its own
    datasets folder, not the yaml's; our ``YOLODataset`` against the yaml's folder). Same splits/names."""
    import yaml

    from convnextv2_yolo.datasets.yolo_format import load_data_yaml
    data = load_data_yaml(data_yaml)
    with open(data.file, encoding='utf-8') as f:
        raw = yaml.safe_load(f)
    raw['path'] = str(data.root)
    raw['names'] = {i: n for i, n in enumerate(data.names)}
    raw.pop('nc', None)
    raw.pop('download', None)
    from convnextv2_yolo.utils.checkpoint_io import write_atomic
    out = osp.join(out_dir, 'data.yaml')
    write_atomic(out, yaml.safe_dump(raw, sort_keys=False))  # whole or not at all: a parallel side reads it
    return out


# --------------------------------------------------------------------------------------------- configs


def _hooks_of(cfg, kind: str) -> list:
    return [h for h in cfg.get('custom_hooks', []) if str(h.get('type', '')).split('.')[-1] == kind]


def our_config(args: argparse.Namespace, data_yaml: str, seed: int, imgsz: int, epochs: int, workers: int,
               work_dir: str, load_from: Optional[str]) -> str:
    """Our config for one run, dumped to ``work_dir/parity_config.py``: the data, the shared settings,
    a checkpoint (EMA weights) after every epoch, no validation during training, per-iteration logs."""
    from mmengine.config import Config

    from convnextv2_yolo.datasets.data_overrides import apply_data_args, nested_transforms
    cfg = Config.fromfile(args.config)
    apply_data_args(cfg, data_yaml, imgsz)
    cfg.train_cfg.max_epochs = epochs
    cfg.train_cfg.val_interval = epochs + 1  # every checkpoint is evaluated afterwards, both sides alike
    cfg.train_cfg.pop('dynamic_intervals', None)
    for hook in _hooks_of(cfg, 'CloseMosaicHook'):
        hook['close_epochs'] = args.close_mosaic
    loader = cfg.train_dataloader
    loader.batch_size = args.batch
    loader.num_workers = workers
    loader.persistent_workers = workers > 0
    # the reference's buffer: min(n, batch x 8, 1000)
    for t in nested_transforms(loader.dataset.get('pipeline', [])):
        if str(t.get('type', '')).split('.')[-1] == 'YOLOMosaic':
            t['max_cached_images'] = min(args.batch * 8, 1000)
    cfg.randomness = dict(seed=seed)
    cfg.load_from = load_from
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=1, max_keep_ckpts=-1, save_best=None,
                                        save_optimizer=False, save_param_scheduler=False)
    cfg.default_hooks.logger = dict(type='LoggerHook', interval=1)
    cfg.log_processor = dict(type='LogProcessor', window_size=1, by_epoch=True)
    cfg.work_dir = work_dir
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    os.makedirs(work_dir, exist_ok=True)
    path = osp.join(work_dir, 'parity_config.py')
    cfg.dump(path)
    return path


# --------------------------------------------------------------------------------------------- runs


def initial_weights(args: argparse.Namespace, seed: int, names: List[str], run_dir: str) -> Dict[str, str]:
    """The start of both sides: ``{'reference': .pt, 'ours': converted .pth}`` (empty without the reference)."""
    if args.finetune_from:
        ref_pt = args.finetune_from
    elif args.ref_python:
        ref_pt = osp.join(run_dir, 'init.pt')
        ours = osp.join(run_dir, 'init_converted.pth')
        if args.reuse and osp.isfile(ref_pt) and osp.isfile(ours):
            return dict(reference=ref_pt, ours=ours)
        part = f'{ref_pt}.{os.getpid()}.part'  # renamed when complete: a side running beside us never reads half
        run([args.ref_python, DRIVER, 'init', '--model', args.ref_model, '--nc', str(len(names)),
             '--seed', str(seed), '--out', part, '--names', *names], osp.join(run_dir, f'init.{os.getpid()}.log'),
            env=reference_env(args, args.threads))
        os.replace(part, ref_pt)
    else:
        return {}
    ours = osp.join(run_dir, 'init_converted.pth')
    part = f'{ours}.{os.getpid()}.part'
    run([sys.executable, CONVERTER, ref_pt, part], osp.join(run_dir, f'convert.{os.getpid()}.log'))
    os.replace(part, ours)
    return dict(reference=ref_pt, ours=ours)


def our_rows(work_dir: str, seed: int, epochs: int, batch: int, our_losses: Optional[dict] = None,
             num_images: Optional[int] = None) -> Optional[List[dict]]:
    """Per-epoch rows of a finished run of ours (None when it is missing or incomplete): seconds of the
    train loop including data loading (sum of mmengine's per-iteration ``time``), losses per image under
    the reference's names (``our_losses``: reference name -> our logged key; default YOLO11's).

    Our logged losses are per image x the iteration's batch size; each is divided by its own batch size
    (the last batch of an epoch holds ``num_images - (iterations - 1) x batch`` images; ``num_images``
    None: every batch counted full) and the epoch's value is the unweighted mean over its iterations,
    as the reference averages its per-iteration items."""
    from convnextv2_yolo.utils.demo_report import read_scalars
    stamps = sorted(d for d in os.listdir(work_dir) if osp.isfile(osp.join(work_dir, d, 'vis_data', 'scalars.json'))) \
        if osp.isdir(work_dir) else []
    if not stamps:
        return None
    rows = [r for r in read_scalars(osp.join(work_dir, stamps[-1])) if 'loss' in r and 'epoch' in r]
    out = []
    for e in range(1, epochs + 1):
        its = [r for r in rows if r['epoch'] == e]
        if not its:
            return None
        sizes = [batch] * len(its)
        if num_images is not None and 0 < num_images - (len(its) - 1) * batch <= batch:
            sizes[-1] = num_images - (len(its) - 1) * batch
        row = dict(side='ours', seed=seed, epoch=e, seconds=sum(r['time'] for r in its),
                   checkpoint=osp.join(work_dir, f'epoch_{e}.pth'))
        for ref_name, our_name in (our_losses or OUR_LOSSES).items():
            row[ref_name] = statistics.fmean(r[our_name] / n for r, n in zip(its, sizes))
        out.append(row)
    return out


def train_images(data_yaml: str) -> int:
    """Images of the ``train`` split of ``data_yaml`` (the batch sizes of our logged losses)."""
    from convnextv2_yolo.datasets.yolo_format import list_images, load_data_yaml
    return len(list_images(load_data_yaml(data_yaml).splits['train']))


def train_ours(args, data_yaml: str, seed: int, imgsz: int, epochs: int, threads: int, workers: int,
               run_dir: str, load_from: Optional[str]) -> List[dict]:
    """Train our side (or, with ``--reuse``, read a finished run); its per-epoch rows."""
    work_dir = osp.join(run_dir, 'ours')
    our_losses = loss_names(args.ref_model)[1]
    num_images = train_images(data_yaml)
    rows = our_rows(work_dir, seed, epochs, args.batch, our_losses, num_images) if args.reuse else None
    if rows is not None:
        log(f'reusing our finished run in {work_dir}')
        return rows
    shutil.rmtree(work_dir, ignore_errors=True)
    cfg_path = our_config(args, data_yaml, seed, imgsz, epochs, workers, work_dir, load_from)
    run([sys.executable, osp.join(ROOT, 'tools', 'train.py'), cfg_path], osp.join(run_dir, 'ours_train.log'),
        env=thread_env(threads))
    rows = our_rows(work_dir, seed, epochs, args.batch, our_losses, num_images)
    if rows is None:
        raise RuntimeError(f'our run logged fewer than {epochs} epochs ({work_dir})')
    return rows


def reference_rows(out: str, seed: int, epochs: int, losses=LOSSES) -> Optional[List[dict]]:
    """Per-epoch rows the driver's callback wrote (None when missing or incomplete); ``losses``: the
    reference's logged loss names."""
    path = osp.join(out, 'epochs.jsonl')
    if not osp.isfile(path):
        return None
    with open(path) as f:
        rows = [json.loads(line) for line in f if line.strip()]
    if len(rows) < epochs:
        return None
    out_rows = []
    for r in rows:
        row = dict(side='reference', seed=seed, epoch=r['epoch'], seconds=r['seconds'],
                   checkpoint=r['checkpoint'], optimizer=r.get('optimizer'))
        row.update({k: r.get(f'train/{k}') for k in losses})
        out_rows.append(row)
    return out_rows


def train_reference(args, data_yaml: str, seed: int, imgsz: int, epochs: int, threads: int, workers: int,
                    run_dir: str, init: str) -> List[dict]:
    """Train the reference through the driver (or, with ``--reuse``, read a finished run); its rows."""
    out = osp.join(run_dir, 'reference')
    losses = loss_names(args.ref_model)[0]
    rows = reference_rows(out, seed, epochs, losses) if args.reuse else None
    if rows is not None:
        log(f'reusing the reference\'s finished run in {out}')
    else:
        shutil.rmtree(out, ignore_errors=True)
        run([args.ref_python, DRIVER, 'train', '--init', init, '--data', data_yaml, '--imgsz', str(imgsz),
             '--epochs', str(epochs), '--batch', str(args.batch), '--seed', str(seed),
             '--close-mosaic', str(args.close_mosaic), '--threads', str(threads), '--workers', str(workers),
             '--out', out], osp.join(run_dir, 'reference_train.log'), env=reference_env(args, threads))
        rows = reference_rows(out, seed, epochs, losses)
        if rows is None:
            raise RuntimeError(f'the reference logged fewer than {epochs} epochs ({out}/epochs.jsonl)')
    if args.ref_val:  # its own validator on its saved final model (fp16 EMA), rect and square
        last = osp.join(out, 'run', 'weights', 'last.pt')
        for rect in (True, False):
            res = run([args.ref_python, DRIVER, 'val', '--weights', last, '--data', data_yaml, '--imgsz', str(imgsz),
                       '--batch', str(args.batch * 2), '--threads', str(threads)] + ([] if rect else ['--no-rect']),
                      osp.join(run_dir, f'reference_val_{"rect" if rect else "square"}.log'),
                      env=reference_env(args, threads))
            rows[-1][f'own_val_{"rect" if rect else "square"}'] = res
    return rows


EVALUATIONS = 'evaluations.jsonl'  # per seed folder: the metrics of every evaluated checkpoint


def read_evaluations(run_dir: str) -> Dict[tuple, dict]:
    """``{(side, epoch): {'mAP50-95': ..., 'mAP50': ...}}`` recorded in ``run_dir`` (the last wins)."""
    path = osp.join(run_dir, EVALUATIONS)
    if not osp.isfile(path):
        return {}
    out = {}
    with open(path) as f:
        for line in f:
            if line.strip():
                e = json.loads(line)
                out[e['side'], e['epoch']] = {k: e[k] for k in ('mAP50-95', 'mAP50')}
    return out


class Evaluator:
    """Our validation loop + ``CheckedCocoMetric`` on the val split, built at the first call (a ``--reuse``
    call may need none), then fed any checkpoint."""

    def __init__(self, cfg_path: str, work_dir: str) -> None:
        self.cfg_path, self.work_dir = cfg_path, work_dir
        self.runner = None

    def _build_runner(self):
        from mmengine.config import Config

        import convnextv2_yolo  # noqa: F401
        from convnextv2_yolo.engine.runner import fit_head_to_checkpoint
        from convnextv2_yolo.utils.launch import build_runner
        cfg = Config.fromfile(self.cfg_path)
        if cfg.get('load_from'):  # fine-tuning: the class-branch width of the start (as YOLORunner builds it)
            fit_head_to_checkpoint(cfg.model, cfg.load_from)
        cfg.custom_hooks = []  # no EMA swap: the checkpoints already hold the EMA weights
        cfg.load_from, cfg.resume = None, False
        cfg.work_dir = self.work_dir
        cfg.default_hooks.logger = dict(type='LoggerHook', interval=50)
        runner = build_runner(cfg)
        runner._val_loop = runner.build_val_loop(runner._val_loop)
        return runner

    def __call__(self, side: str, checkpoint: str) -> Dict[str, float]:
        import torch

        from convnextv2_yolo.converters import convert_state_dict, detect_version
        from convnextv2_yolo.utils.checkpoint_io import safe_torch_load
        if self.runner is None:
            self.runner = self._build_runner()
        model = self.runner.model
        if side == 'ours':
            state = safe_torch_load(checkpoint, map_location='cpu')['state_dict']
        else:
            ref = safe_torch_load(checkpoint, map_location='cpu')
            state = convert_state_dict(ref, detect_version(ref))
        missing, unexpected = model.load_state_dict({k: v.float() if torch.is_floating_point(v) else v
                                                     for k, v in state.items()}, strict=False)
        if missing or unexpected:
            raise RuntimeError(f'{checkpoint} does not fit the config: missing {missing[:5]}, '
                               f'unexpected {unexpected[:5]}')
        metrics = self.runner.val_loop.run()
        return {'mAP50-95': float(metrics['coco/bbox_mAP']), 'mAP50': float(metrics['coco/bbox_mAP_50'])}


# --------------------------------------------------------------------------------------------- outputs


CSV_FIELDS = ['side', 'seed', 'epoch', 'seconds', 'cum_seconds', 'mAP50-95', 'mAP50', *LOSSES]


def csv_fields(losses=LOSSES) -> List[str]:
    """The columns of ``parity.csv`` with the run's loss names (YOLO11's: :data:`CSV_FIELDS`)."""
    return CSV_FIELDS[:-len(LOSSES)] + list(losses)


def write_csv(rows: List[dict], path: str, fields: List[str]) -> None:
    from convnextv2_yolo.utils.checkpoint_io import write_atomic
    buf = io.StringIO(newline='')
    w = csv.DictWriter(buf, fieldnames=fields, extrasaction='ignore')
    w.writeheader()
    for r in rows:
        w.writerow({k: (round(v, 5) if isinstance(v, float) else v) for k, v in r.items()})
    write_atomic(path, buf.getvalue())


def add_cumulative(rows: List[dict]) -> None:
    total = {}
    for r in sorted(rows, key=lambda r: (r['side'], r['seed'], r['epoch'])):
        key = (r['side'], r['seed'])
        total[key] = total.get(key, 0.0) + r['seconds']
        r['cum_seconds'] = total[key]


def summarize(rows: List[dict], labels: Dict[str, str]) -> dict:
    """Final mAP per seed and their mean, median seconds per epoch (the first epoch excluded)."""
    out = {}
    for side in SIDES:
        seeds = sorted({r['seed'] for r in rows if r['side'] == side})
        if not seeds:
            continue
        finals = [max((r for r in rows if r['side'] == side and r['seed'] == s), key=lambda r: r['epoch'])
                  for s in seeds]
        secs = [r['seconds'] for r in rows if r['side'] == side and r['epoch'] > 1] or \
               [r['seconds'] for r in rows if r['side'] == side]
        out[side] = dict(label=labels.get(side, side), seeds=seeds,
                         final_mAP50_95=[f.get('mAP50-95') for f in finals],
                         final_mAP50=[f.get('mAP50') for f in finals],
                         mean_mAP50_95=statistics.fmean(f.get('mAP50-95', math.nan) for f in finals),
                         mean_mAP50=statistics.fmean(f.get('mAP50', math.nan) for f in finals),
                         seconds_per_epoch=statistics.median(secs))
    if 'ours' in out and 'reference' in out:
        out['epoch_time_ratio'] = out['ours']['seconds_per_epoch'] / out['reference']['seconds_per_epoch']
    return out


def summary_markdown(summary: dict, args) -> str:
    lines = ['| side | seeds | final mAP50-95 | mean | final mAP50 | mean | s/epoch |', '|---|---|---|---|---|---|---|']
    for side in SIDES:
        if side not in summary:
            continue
        s = summary[side]
        lines.append(f"| {s['label']} | {', '.join(map(str, s['seeds']))} | "
                     f"{' / '.join(f'{v:.3f}' for v in s['final_mAP50_95'])} | {s['mean_mAP50_95']:.3f} | "
                     f"{' / '.join(f'{v:.3f}' for v in s['final_mAP50'])} | {s['mean_mAP50']:.3f} | "
                     f"{s['seconds_per_epoch']:.1f} |")
    if 'epoch_time_ratio' in summary:
        lines.append(f"\nepoch time ours / reference: {summary['epoch_time_ratio']:.2f}x")
    return '\n'.join(lines) + '\n'


def plot(rows: List[dict], path: str, labels: Dict[str, str], title: str, losses=LOSSES) -> str:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(2, 3, figsize=(15, 8))
    colors = dict(ours='tab:blue', reference='tab:orange')
    panels = [('epoch', 'mAP50-95', axes[0, 0]), ('cum_seconds', 'mAP50-95', axes[0, 1]),
              ('epoch', 'mAP50', axes[0, 2])] + [('epoch', k, axes[1, i]) for i, k in enumerate(losses)]
    for x, y, ax in panels:
        for side in SIDES:
            for i, seed in enumerate(sorted({r['seed'] for r in rows if r['side'] == side})):
                pts = [(r[x], r[y]) for r in sorted(rows, key=lambda r: r['epoch'])
                       if r['side'] == side and r['seed'] == seed and r.get(y) is not None]
                if pts:
                    ax.plot(*zip(*pts), color=colors[side], linestyle=('-', '--', ':', '-.')[i % 4],
                            label=f'{labels.get(side, side)} seed {seed}')
        ax.set_xlabel('training seconds (data loading included)' if x == 'cum_seconds' else 'epoch')
        ax.set_title(y + (' per image (train)' if y in losses else ' (val, same COCO evaluator)'))
        ax.grid(alpha=0.3)
    axes[0, 0].legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


# --------------------------------------------------------------------------------------------- modes


def parity(args: argparse.Namespace) -> dict:
    from convnextv2_yolo.datasets.yolo_format import load_data_yaml
    os.makedirs(args.work_dir, exist_ok=True)
    data_yaml = absolute_data_yaml(args.data, args.work_dir)
    names = list(load_data_yaml(data_yaml).names)
    sides = active_sides(args)
    losses = loss_names(args.ref_model)[0]
    labels = dict(ours=args.name or f'ours ({osp.basename(args.config)})', reference='reference (ultralytics)')
    rows: List[dict] = []
    own_val: Dict[str, list] = {}
    evaluator = None
    for seed in args.seeds:
        run_dir = osp.join(args.work_dir, f'seed{seed}')
        os.makedirs(run_dir, exist_ok=True)
        init = initial_weights(args, seed, names, run_dir)
        seed_rows = []
        for side in sides:
            log(f'seed {seed}: training {side} ({args.epochs} epochs, {args.imgsz} px, batch {args.batch}, '
                f'{args.threads} threads, {args.workers} workers)')
            if side == 'ours':
                seed_rows += train_ours(args, data_yaml, seed, args.imgsz, args.epochs, args.threads,
                                        args.workers, run_dir, init.get('ours'))
            else:
                seed_rows += train_reference(args, data_yaml, seed, args.imgsz, args.epochs, args.threads,
                                             args.workers, run_dir, init['reference'])
        if evaluator is None:  # its own config: our side may not have run (--sides reference)
            # one per process (sides and seeds may run in parallel, merged later with --reuse)
            eval_dir = osp.join(args.work_dir, 'eval', '-'.join(sides) + '_seed' + '-'.join(map(str, args.seeds)))
            evaluator = Evaluator(our_config(args, data_yaml, seed, args.imgsz, args.epochs, args.workers, eval_dir,
                                             init.get('ours')), eval_dir)
        done = read_evaluations(run_dir) if args.reuse else {}
        for r in seed_rows:
            due = r['epoch'] % args.eval_interval == 0 or r['epoch'] == args.epochs
            if due and (r['side'], r['epoch']) in done:  # --reuse: evaluated by an earlier call
                r.update(done[r['side'], r['epoch']])
            elif due and osp.isfile(r['checkpoint']):
                r.update(evaluator(r['side'], r['checkpoint']))
                with open(osp.join(run_dir, EVALUATIONS), 'a') as f:
                    f.write(json.dumps({k: r[k] for k in ('side', 'epoch', 'mAP50-95', 'mAP50')}) + '\n')
            elif due:
                log(f"{r['side']} seed {seed} epoch {r['epoch']}: checkpoint gone ({r['checkpoint']}), not evaluated")
            if not args.keep_checkpoints and osp.isfile(r['checkpoint']):
                os.remove(r['checkpoint'])
        for side in sides:
            last = max((r for r in seed_rows if r['side'] == side), key=lambda r: r['epoch'])
            log(f"seed {seed} {side}: final mAP50-95 {last.get('mAP50-95', float('nan')):.4f}, "
                f"mAP50 {last.get('mAP50', float('nan')):.4f}")
            for key in ('own_val_rect', 'own_val_square'):
                if key in last:
                    log(f"seed {seed} reference's own validator ({key[8:]}): {last[key]}")
                    own_val.setdefault(key, []).append(dict(seed=seed, ours_evaluator=last['mAP50-95'], **last[key]))
        rows += seed_rows
        add_cumulative(rows)
        write_csv(rows, osp.join(args.work_dir, 'parity.csv'), csv_fields(losses))  # as it comes
    summary = summarize(rows, labels)
    if own_val:
        summary['reference_own_validator'] = own_val
    summary['settings'] = dict(data=args.data, config=args.config, ref_model=args.ref_model, imgsz=args.imgsz,
                               epochs=args.epochs,
                               batch=args.batch, seeds=args.seeds, close_mosaic=args.close_mosaic,
                               threads=args.threads, workers=args.workers, finetune_from=args.finetune_from,
                               cfg_options=args.cfg_options, reference='skipped' if not args.ref_python
                               else 'ultralytics')
    title = (f'{osp.basename(osp.dirname(osp.abspath(args.data)))}: {args.imgsz} px, {args.epochs} epochs, '
             f'batch {args.batch}, {args.threads} thread{"s" * (args.threads != 1)}, {args.workers} workers'
             + (', fine-tuned from a reference checkpoint' if args.finetune_from else ''))
    summary['png'] = plot(rows, osp.join(args.work_dir, 'parity.png'), labels, title, losses)
    return summary


def throughput(args: argparse.Namespace) -> dict:
    """Seconds per epoch (data loading included; epochs after the first) over the threads/workers/size grid."""
    from convnextv2_yolo.datasets.yolo_format import load_data_yaml
    from convnextv2_yolo.utils.checkpoint_io import write_atomic
    os.makedirs(args.work_dir, exist_ok=True)
    data_yaml = absolute_data_yaml(args.data, args.work_dir)
    names = list(load_data_yaml(data_yaml).names)
    seed = args.seeds[0]
    sides = active_sides(args)
    init = initial_weights(args, seed, names, args.work_dir)
    rows = []
    for imgsz in args.tp_imgsz:
        for threads in args.tp_threads:
            for workers in args.tp_workers:
                row = dict(imgsz=imgsz, threads=threads, workers=workers)
                for side in sides:
                    run_dir = osp.join(args.work_dir, f'tp_{imgsz}_t{threads}_w{workers}')
                    os.makedirs(run_dir, exist_ok=True)
                    if side == 'ours':
                        ep = train_ours(args, data_yaml, seed, imgsz, args.tp_epochs, threads, workers, run_dir,
                                        init.get('ours'))
                    else:
                        ep = train_reference(args, data_yaml, seed, imgsz, args.tp_epochs, threads, workers,
                                             run_dir, init['reference'])
                    row[f'{side}_s_per_epoch'] = statistics.fmean(r['seconds'] for r in ep[1:])
                    shutil.rmtree(run_dir, ignore_errors=True)
                if len(sides) == 2:
                    row['ratio'] = row['ours_s_per_epoch'] / row['reference_s_per_epoch']
                log(f'throughput {row}')
                rows.append(row)
                write_csv(rows, osp.join(args.work_dir, 'throughput.csv'), list(rows[0]))
    md = ['| imgsz | threads | workers | ' + ' | '.join(f'{s} s/epoch' for s in sides)
          + (' | ours / reference |' if len(sides) == 2 else ' |'), '|---' * (3 + len(sides) + (len(sides) == 2)) + '|']
    for r in rows:
        md.append(f"| {r['imgsz']} | {r['threads']} | {r['workers']} | "
                  + ' | '.join(f"{r[f'{s}_s_per_epoch']:.1f}" for s in sides)
                  + (f" | {r['ratio']:.2f}x |" if 'ratio' in r else ' |'))
    write_atomic(osp.join(args.work_dir, 'throughput.md'), '\n'.join(md) + '\n')
    return dict(rows=rows, table='\n'.join(md), reference='ultralytics' if args.ref_python else 'skipped')


def main(argv=None) -> int:
    from convnextv2_yolo.utils.checkpoint_io import write_atomic
    from convnextv2_yolo.utils.demo_setup import git_commit, machine_info
    args = parse_args(argv)
    if args.throughput:
        res = throughput(args)
        print(res['table'])
    else:
        res = parity(args)
        md = summary_markdown(res, args)
        write_atomic(osp.join(args.work_dir, 'summary.md'), md)
        print(md)
    # where the numbers come from (the README's tables are rendered from committed summary.json files)
    res['provenance'] = dict(command=' '.join(['tools/analysis_tools/train_parity.py'] + sys.argv[1:]),
                             git=git_commit(ROOT), machine=machine_info())
    write_atomic(osp.join(args.work_dir, 'summary.json'), json.dumps(res, indent=2) + '\n')
    log(f'wrote {args.work_dir}/summary.json, '
        + ('throughput.csv, throughput.md' if args.throughput else 'summary.md, parity.csv, parity.png'))
    return 0


if __name__ == '__main__':
    sys.exit(main())
