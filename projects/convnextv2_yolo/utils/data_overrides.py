"""``--data data.yaml`` and ``--imgsz N`` for any config, as the reference's ``data=`` / ``imgsz=``."""
import os.path as osp
from typing import Any, Iterator, List, Optional

from mmengine.config import Config, ConfigDict

LOADERS = {'train_dataloader': 'train', 'val_dataloader': 'val', 'test_dataloader': 'test'}
# dataset keys of a COCO-style dataset that mean nothing to a YOLODataset
_COCO_ONLY_KEYS = ('ann_file', 'data_prefix', 'data_root', 'check_image_sizes')


def _pipelines(cfg: Config) -> Iterator[list]:
    """Every pipeline of the config: the loaders' datasets and the pipeline-switch hooks."""
    for key in LOADERS:
        dataset = cfg.get(key, {}).get('dataset') if cfg.get(key) else None
        while isinstance(dataset, dict) and 'dataset' in dataset and 'pipeline' not in dataset:
            dataset = dataset['dataset']  # wrappers (RepeatDataset, ...)
        if isinstance(dataset, dict) and isinstance(dataset.get('pipeline'), list):
            yield dataset['pipeline']
    for hook in cfg.get('custom_hooks', None) or []:
        if isinstance(hook.get('switch_pipeline'), list):
            yield hook['switch_pipeline']


def _keep_instances(pipeline: List[dict]) -> None:
    """Let the metric build the ground truth from the samples: 'instances' in PackDetInputs meta_keys."""
    for t in pipeline:
        if t.get('type') in ('PackDetInputs', 'mmdet.PackDetInputs') and 'meta_keys' in t:
            if 'instances' not in t['meta_keys']:
                t['meta_keys'] = tuple(t['meta_keys']) + ('instances', )


def use_data_yaml(cfg: Config, data_yaml: str, auto_optimizer: bool = True) -> Config:
    """Point a config's datasets, classes and evaluation at a ``data.yaml``.

    - train/val/test loaders get ``YOLODataset(data_yaml, split)`` with their
      pipelines (a yaml without ``test`` tests on ``val``);
    - ``model.bbox_head.num_classes`` = the yaml's number of names; the
      datasets take their class names from the yaml;
    - val/test evaluators: ``CheckedCocoMetric`` with the ground truth built in
      memory from the labels (no annotation file);
    - with ``auto_optimizer``, a config using the reference's optimizer
      constructor (``YOLOOptimWrapperConstructor``) gets
      ``optimizer=dict(type='auto')``, the reference's default for custom data
      (AdamW for short schedules); other optimizers are kept.

    Args:
        cfg (Config): Any of our model configs.
        data_yaml (str): The ``data.yaml``.
        auto_optimizer (bool): See above. Defaults to True.

    Returns:
        Config: ``cfg``, changed in place.

    Raises:
        FileNotFoundError / DataYamlError: the yaml or its paths.
        ValueError: the yaml has no ``val`` split.
    """
    from ..datasets.yolo_format import load_data_yaml
    data = load_data_yaml(data_yaml)
    if 'val' not in data.splits:
        raise ValueError(f"{data.file}: --data needs a 'val' split to validate on")
    for key, split in LOADERS.items():
        if not cfg.get(key):
            continue
        split = split if split in data.splits else 'val'
        dataset = cfg[key].dataset
        for k in _COCO_ONLY_KEYS:
            dataset.pop(k, None)
        dataset.update(type='YOLODataset', data_yaml=data.file, split=split, metainfo=dict(classes=data.names))
        if split != 'train':
            dataset['test_mode'] = True
            _keep_instances(dataset.get('pipeline', []))
    for key in ('val_evaluator', 'test_evaluator'):
        if cfg.get(key):
            cfg[key] = ConfigDict(type='CheckedCocoMetric', metric='bbox', ann_file=None)
    cfg.model.bbox_head.num_classes = len(data.names)
    optim = cfg.get('optim_wrapper', {})
    if auto_optimizer and optim.get('constructor') == 'YOLOOptimWrapperConstructor':
        weight_decay = optim.get('optimizer', {}).get('weight_decay', 5e-4)
        optim['optimizer'] = ConfigDict(type='auto', weight_decay=weight_decay)
    cfg.data_yaml = data.file
    return cfg


def _square(value: Any, imgsz: int) -> Any:
    return imgsz if isinstance(value, int) else (imgsz, imgsz)


def set_image_size(cfg: Config, imgsz: int) -> Config:
    """Train and test at ``imgsz`` x ``imgsz`` wherever the size appears in a pipeline.

    ``YOLOMosaic`` / mmdet's ``Mosaic``/``CachedMosaic`` ``img_scale`` (canvas
    2 x imgsz), ``YOLORandomAffine``/``RandomAffine`` ``border`` (-imgsz/2 after
    a mosaic, else unchanged), ``LetterResize`` and mmdet's ``Resize``/
    ``RandomResize`` ``scale``, ``Pad`` ``size``, in every loader and in the
    close-mosaic hook's pipeline.

    Args:
        cfg (Config): The config.
        imgsz (int): Image size in pixels, a multiple of 32 (the largest stride).

    Raises:
        ValueError: ``imgsz`` is not a positive multiple of 32.
    """
    if not isinstance(imgsz, int) or imgsz <= 0 or imgsz % 32:
        raise ValueError(f'--imgsz must be a positive multiple of 32 (the largest feature stride), got {imgsz!r}')
    for pipeline in _pipelines(cfg):
        for t in pipeline:
            kind = str(t.get('type', '')).split('.')[-1]
            if kind in ('YOLOMosaic', 'Mosaic', 'CachedMosaic'):
                t['img_scale'] = _square(t.get('img_scale'), imgsz)
            elif kind in ('YOLORandomAffine', 'RandomAffine') and any(t.get('border', (0, 0))):
                t['border'] = (-imgsz // 2, -imgsz // 2)
            elif kind in ('LetterResize', 'Resize', 'RandomResize') and 'scale' in t:
                t['scale'] = _square(t['scale'], imgsz)
            elif kind == 'Pad' and 'size' in t:
                t['size'] = (imgsz, imgsz)
    cfg.imgsz = imgsz
    return cfg


def apply_data_args(cfg: Config, data_yaml: Optional[str], imgsz: Optional[int]) -> Config:
    """``--data`` then ``--imgsz`` (either may be None)."""
    if data_yaml:
        use_data_yaml(cfg, osp.expanduser(data_yaml))
    if imgsz:
        set_image_size(cfg, imgsz)
    return cfg

