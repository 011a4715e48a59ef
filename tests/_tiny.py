"""A tiny version of the demo recipe for tests: a few 64-px images, 96-px inputs."""
import os.path as osp

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
DEMO_CFG = osp.join(ROOT, 'configs', 'demo', 'yolo11_convnextv2-atto_synthetic.py')


def make_tiny_data(root: str, num_train: int = 8, num_val: int = 4, seed: int = 1):
    from convnextv2_yolo.datasets.synthetic import make_synthetic_dataset
    return make_synthetic_dataset(root, num_train=num_train, num_val=num_val, seed=seed, img_size=64,
                                  min_size=6, max_objects=3)


def _resize_pipeline(pipeline, size: int) -> None:
    for t in pipeline:
        if t['type'] == 'LetterResize':
            t['scale'] = (size, size)
        elif t['type'] == 'CachedMosaic':
            t['img_scale'] = (size, size)
        elif t['type'] == 'YOLORandomAffine' and 'border' in t:
            t['border'] = (-size // 2, -size // 2)


def tiny_cfg(data, work_dir: str, max_epochs: int = 2, size: int = 96, batch_size: int = 4,
             close_epochs: int = 1, val_interval: int = 100):
    """The demo config shrunk for tests (no workers, checkpoint every epoch)."""
    from mmengine.config import Config
    cfg = Config.fromfile(DEMO_CFG)
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        dl = cfg[loader]
        dl.num_workers, dl.persistent_workers, dl.batch_size = 0, False, batch_size
        dl.dataset.data_root = data.root + '/'
        _resize_pipeline(dl.dataset.pipeline, size)
    cfg.val_evaluator.ann_file = cfg.test_evaluator.ann_file = data.ann_files['val']
    for hook in cfg.custom_hooks:
        if hook['type'] == 'CloseMosaicHook':
            hook['close_epochs'] = close_epochs
            _resize_pipeline(hook['switch_pipeline'], size)
    cfg.train_cfg.max_epochs = max_epochs
    cfg.train_cfg.val_interval = val_interval
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=1)
    cfg.default_hooks.logger.interval = 1
    cfg.work_dir = work_dir
    cfg.launcher = 'none'
    return cfg


def write_tiny_config(path: str, data, work_dir: str, **kwargs) -> str:
    """Dump a tiny config to a file, for the command-line tools."""
    tiny_cfg(data, work_dir, **kwargs).dump(path)
    return path
