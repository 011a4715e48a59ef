"""A tiny version of the demo recipe for tests: a few 64-px images, 96-px inputs."""
import os
import os.path as osp

from .paths import ROOT

DEMO_CFG = osp.join(ROOT, 'configs', 'demo', 'yolo11_convnextv2-atto_synthetic.py')


def make_tiny_data(root: str, num_train: int = 8, num_val: int = 4, seed: int = 1):
    from convnextv2_yolo.datasets.synthetic import make_synthetic_dataset
    return make_synthetic_dataset(root, num_train=num_train, num_val=num_val, seed=seed, img_size=64,
                                  min_size=6, max_objects=3)


def pipelines(size: int):
    """(mosaic, plain, test) pipelines of the YOLO recipe at ``size`` px."""
    pre = [dict(type='LoadImageFromFile'), dict(type='LoadAnnotations', with_bbox=True)]
    post = [dict(type='YOLOHSVRandomAug'), dict(type='RandomFlip', prob=0.5),
            dict(type='FilterAnnotations', min_gt_bbox_wh=(1, 1), keep_empty=True),
            dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                                                  'scale_factor', 'flip', 'flip_direction'))]
    letterbox = dict(type='LetterResize', scale=(size, size), pad_val=dict(img=114), allow_scale_up=True)
    mosaic = pre + [dict(type='YOLOMosaic', img_scale=(size, size), pad_val=114.0, max_cached_images=8),
                    dict(type='YOLORandomAffine', max_rotate_degree=0, max_shear_degree=0,
                         scaling_ratio_range=(0.5, 1.5), border=(-size // 2, -size // 2),
                         border_val=(114, 114, 114))] + post
    plain = pre + [letterbox] + post
    test = [dict(type='LoadImageFromFile'), dict(letterbox, allow_scale_up=False),
            dict(type='LoadAnnotations', with_bbox=True),
            dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                                                  'scale_factor', 'pad_param'))]
    return mosaic, plain, test


def tiny_cfg(data, work_dir: str, max_epochs: int = 2, size: int = 96, batch_size: int = 4,
             close_epochs: int = 1, val_interval: int = 100, mosaic: bool = True):
    """The demo's model and schedule with the recipe's mosaic -> plain pipelines, shrunk for tests.

    Mosaic for the first ``max_epochs - close_epochs`` epochs (CloseMosaicHook), no
    workers, a checkpoint every epoch.
    """
    from mmengine.config import Config
    cfg = Config.fromfile(DEMO_CFG)
    mosaic_pipeline, plain, test = pipelines(size)
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        dl = cfg[loader]
        dl.num_workers, dl.persistent_workers, dl.batch_size = 0, False, batch_size
        dl.dataset.data_root = data.root + '/'
        dl.dataset.pipeline = test
    cfg.train_dataloader.dataset.pipeline = mosaic_pipeline if mosaic else plain
    cfg.val_evaluator.ann_file = cfg.test_evaluator.ann_file = data.ann_files['val']
    cfg.custom_hooks = [h for h in cfg.custom_hooks if h['type'] != 'CloseMosaicHook']
    if mosaic:
        cfg.custom_hooks.append(dict(type='CloseMosaicHook', close_epochs=close_epochs, switch_pipeline=plain))
    cfg.train_cfg.max_epochs = max_epochs
    cfg.train_cfg.val_interval = val_interval
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=1)
    cfg.default_hooks.logger.interval = 1
    cfg.work_dir = work_dir
    # mmengine names a runner's logger by experiment name + second: two runners built in the same second
    # would share one logger (and log file); the work dir makes the name unique per test
    cfg.experiment_name = 'tiny' + work_dir.replace(os.sep, '_')
    cfg.launcher = 'none'
    return cfg
