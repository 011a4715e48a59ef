"""CLI and config preparation shared by tools/train.py, tools/test.py and the demo."""
import os
import os.path as osp
from argparse import ArgumentParser, Namespace

from mmengine.config import Config, DictAction


def parse_common_args(parser: ArgumentParser) -> Namespace:
    """Add mmdet's shared options (--cfg-options, --launcher, --local-rank) and parse."""
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config keys, e.g. train_dataloader.batch_size=8')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none',
                        help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args()
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def build_runner(cfg: Config):
    """mmengine's Runner, or the config's ``runner_type``."""
    from mmengine.registry import RUNNERS
    from mmengine.runner import Runner
    return Runner.from_cfg(cfg) if 'runner_type' not in cfg else RUNNERS.build(cfg)


def _common(cfg: Config, args: Namespace) -> Config:
    cfg.launcher = args.launcher
    if getattr(args, 'cfg_options', None):
        cfg.merge_from_dict(args.cfg_options)
    if getattr(args, 'work_dir', None):
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(cfg.filename))[0])
    if args.launcher != 'none':
        _pick_dist_backend(cfg)
    return cfg


def _pick_dist_backend(cfg: Config) -> None:
    """NCCL needs GPUs: fall back to gloo for CPU-only distributed runs."""
    import torch
    if not torch.cuda.is_available():
        env = cfg.setdefault('env_cfg', {})
        env.setdefault('dist_cfg', {})['backend'] = 'gloo'


def prepare_train_cfg(cfg: Config, args: Namespace) -> Config:
    """Apply mmdet's train CLI semantics (--amp, --auto-scale-lr, --resume)."""
    cfg = _common(cfg, args)
    if getattr(args, 'amp', False):
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.loss_scale = 'dynamic'
    if getattr(args, 'auto_scale_lr', False):
        if 'base_batch_size' not in cfg.get('auto_scale_lr', {}):
            raise RuntimeError('--auto-scale-lr needs auto_scale_lr.base_batch_size in the config')
        cfg.auto_scale_lr.enable = True
    resume = getattr(args, 'resume', None)
    if resume == 'auto':
        cfg.resume, cfg.load_from = True, None
    elif resume is not None:
        if not osp.isfile(resume):
            raise FileNotFoundError(f'--resume checkpoint not found: {resume}')
        cfg.resume, cfg.load_from = True, resume
    return cfg


def prepare_test_cfg(cfg: Config, args: Namespace) -> Config:
    """Apply mmdet's test CLI semantics (checkpoint, --show/--show-dir)."""
    cfg = _common(cfg, args)
    if not osp.isfile(args.checkpoint) and not str(args.checkpoint).startswith(('http://', 'https://')):
        raise FileNotFoundError(f'checkpoint not found: {args.checkpoint}')
    cfg.load_from = args.checkpoint
    if args.show or args.show_dir:
        from mmdet.engine.hooks.utils import trigger_visualization_hook
        cfg = trigger_visualization_hook(cfg, args)
    return cfg
