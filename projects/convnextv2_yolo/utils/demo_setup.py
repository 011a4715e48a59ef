"""The demo's configuration and its results file (``tools/demo.py`` is the command line over this)."""
import glob
import json
import os
import os.path as osp
import platform
import subprocess
import time
from typing import Dict, List, NamedTuple, Optional, Sequence

from mmengine.config import Config


class DemoSetup(NamedTuple):
    """What :func:`prepare_demo_cfg` returns.

    Attributes:
        cfg (Config): The config to train.
        vis_images (list[str] | None): Validation images to draw (None: the val dataset's first ones).
        metainfo (dict): ``classes`` (and palette) for the picture.
        dataset_note (str): One line on the dataset used (printed by the demo).
    """
    cfg: Config
    vis_images: Optional[List[str]]
    metainfo: dict
    dataset_note: str


def set_epochs(cfg: Config, epochs: int) -> None:
    """Change ``train_cfg.max_epochs`` and stretch the epoch-based LR schedulers that end with it.

    Raises:
        ValueError: ``epochs`` < 1.
    """
    if epochs < 1:
        raise ValueError(f'--epochs must be >= 1, got {epochs}')
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


def prepare_demo_cfg(config: str, work_dir: str, root: str, data_root: Optional[str] = None,
                     data: Optional[str] = None, imgsz: Optional[int] = None, epochs: Optional[int] = None,
                     cfg_options: Optional[dict] = None, num_vis: int = 8) -> DemoSetup:
    """The demo's config: its synthetic dataset (generated on first use) or ``data``, sizes, epochs.

    Args:
        config (str): The demo config file.
        work_dir (str): Work dir of the run.
        root (str): The checkout (the config's relative ``data_root`` is taken from it).
        data_root (str, optional): Synthetic dataset folder (default: the config's ``data_root``).
        data (str, optional): A ``data.yaml`` in the reference's layout to train on instead.
        imgsz (int, optional): Image size (``--imgsz``).
        epochs (int, optional): ``max_epochs`` (the schedule is stretched, :func:`set_epochs`).
        cfg_options (dict, optional): Overrides, applied before the dataset is made (so
            ``synthetic_dataset.*`` keys take effect) and again after ``data``/``imgsz``.
        num_vis (int): Validation images for the picture.
    """
    from ..datasets.data_overrides import apply_data_args
    from ..datasets.synthetic import make_synthetic_dataset
    from ..datasets.yolo_format import load_data_yaml
    cfg = Config.fromfile(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    if data:
        yaml = load_data_yaml(data)
        vis_images, metainfo = None, dict(classes=yaml.names)
        note = f'dataset {yaml.file}: {len(yaml.names)} classes {", ".join(yaml.names)}'
    else:
        data_root = osp.abspath(data_root or osp.join(root, cfg.data_root))
        t0 = time.time()
        ds = make_synthetic_dataset(data_root, **cfg.synthetic_dataset)
        note = (f'dataset {"reused" if ds.reused else "generated"} at {data_root} '
                f'({cfg.synthetic_dataset["num_train"]} train / {cfg.synthetic_dataset["num_val"]} val images, '
                f'{time.time() - t0:.1f}s)')
        for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
            cfg[key].dataset.data_root = data_root + '/'
        for key, loader in (('val_evaluator', 'val_dataloader'), ('test_evaluator', 'test_dataloader')):
            cfg[key].ann_file = osp.join(data_root, cfg[loader].dataset.ann_file)
        vis_images = sorted(glob.glob(osp.join(ds.img_dirs['val'], '*')))[:num_vis]
        metainfo = ds.metainfo
    apply_data_args(cfg, data, imgsz)
    if cfg_options and (data or imgsz):  # ... and over what data / imgsz set
        cfg.merge_from_dict(cfg_options)
    if epochs is not None:
        set_epochs(cfg, epochs)
    cfg.work_dir = osp.abspath(work_dir)
    cfg.launcher = 'none'
    return DemoSetup(cfg, vis_images, metainfo, note)


def final_metrics(runner) -> dict:
    """The last validation's metrics (the EMA weights); validates again if none ran."""
    hub = runner.message_hub
    if 'val/coco/bbox_mAP' in hub.log_scalars:
        return {k[len('val/'):]: v.current() for k, v in hub.log_scalars.items() if k.startswith('val/coco/')}
    return runner.val_loop.run()


# ------------------------------------------------------------------------------------ results

def git_commit(root: str) -> Dict[str, object]:
    """``{'commit': sha or None, 'dirty': bool or None}`` of the checkout at ``root``."""
    try:
        sha = subprocess.run(['git', 'rev-parse', 'HEAD'], cwd=root, capture_output=True, text=True,
                             timeout=30).stdout.strip() or None
        status = subprocess.run(['git', 'status', '--porcelain', '--untracked-files=no'], cwd=root,
                                capture_output=True, text=True, timeout=30).stdout
        return dict(commit=sha, dirty=bool(status.strip()) if sha else None)
    except (OSError, subprocess.SubprocessError):
        return dict(commit=None, dirty=None)


def machine_info() -> Dict[str, object]:
    """What the numbers of a CPU run depend on: CPU model, cores, torch threads and kernels, versions."""
    import mmdet
    import mmengine
    import torch
    cpu = platform.processor() or ''
    try:
        with open('/proc/cpuinfo') as f:
            cpu = next((line.split(':', 1)[1].strip() for line in f if line.startswith('model name')), cpu)
    except OSError:
        pass
    return dict(cpu=cpu, cores=os.cpu_count(), torch_threads=torch.get_num_threads(),
                cpu_capability=torch.backends.cpu.get_cpu_capability(),
                cuda=torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
                python=platform.python_version(), torch=torch.__version__, mmengine=mmengine.__version__,
                mmdet=mmdet.__version__)


def validation_history(log_dir: str) -> List[Dict[str, float]]:
    """Every validation of a run, from mmengine's ``vis_data/scalars.json``: ``epoch`` and the
    ``coco/bbox_*`` metrics, rounded to 4 digits."""
    from .demo_report import read_scalars
    out = []
    for row in read_scalars(log_dir):
        if 'coco/bbox_mAP' in row:
            out.append(dict(epoch=int(row['step']),
                            **{k: round(float(v), 4) for k, v in row.items() if k.startswith('coco/bbox_')}))
    return out


def demo_result(runner, root: str, config: str, wall_s: float, train_s: float,
                final: Dict[str, float], argv: Sequence[str]) -> dict:
    """The demo's results record (what ``tools/demo.py`` writes to ``<work_dir>/demo_result.json``).

    Keys: ``command``, ``config`` (relative to ``root``), ``git`` (:func:`git_commit`), ``machine``
    (:func:`machine_info`), ``seed``, ``epochs``, ``iterations``, ``validations``
    (:func:`validation_history`), ``final`` (the last validation's ``coco/bbox_*``), ``train_seconds``
    (``runner.train()``) and ``wall_seconds`` (the whole command: set-up check excluded, dataset,
    training, validations, pictures).
    """
    cfg = runner.cfg
    return dict(
        command=' '.join(argv), config=osp.relpath(osp.abspath(config), root), git=git_commit(root),
        machine=machine_info(), seed=(cfg.get('randomness') or {}).get('seed'),
        epochs=int(cfg.train_cfg.max_epochs), iterations=int(runner.iter),
        validations=validation_history(runner.log_dir),
        final={k: round(float(v), 4) for k, v in final.items() if k.startswith('coco/bbox_')},
        train_seconds=round(train_s, 1), wall_seconds=round(wall_s, 1))


def write_json(path: str, data: dict) -> str:
    """Write ``data`` as indented JSON (atomically: a reader never sees half a file)."""
    from .checkpoint_io import write_atomic
    write_atomic(path, json.dumps(data, indent=2) + '\n')
    return path
