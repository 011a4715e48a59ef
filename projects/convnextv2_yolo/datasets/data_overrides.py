"""``--data data.yaml`` and ``--imgsz N`` for any config, as the reference's ``data=`` / ``imgsz=``."""
import os.path as osp
from typing import Any, Iterator, List, Optional

from mmengine.config import Config, ConfigDict

LOADERS = {'train_dataloader': 'train', 'val_dataloader': 'val', 'test_dataloader': 'test'}
COCO_METRICS = ('CocoMetric', 'CheckedCocoMetric', 'YOLODetMetric')
# dataset keys of a COCO-style dataset that mean nothing to a YOLODataset
_COCO_ONLY_KEYS = ('ann_file', 'data_prefix', 'data_root', 'check_image_sizes')


def inner_dataset(loader: Optional[dict]) -> Optional[dict]:
    """The dataset config of a loader, inside wrappers (RepeatDataset, ClassBalancedDataset, ...)."""
    dataset = loader.get('dataset') if loader else None
    while isinstance(dataset, dict) and isinstance(dataset.get('dataset'), dict):
        dataset = dataset['dataset']
    return dataset if isinstance(dataset, dict) else None


def _pipelines(cfg: Config) -> Iterator[list]:
    """Every pipeline of the config: the loaders' datasets and the pipeline-switch hooks."""
    for key in LOADERS:
        dataset = inner_dataset(cfg.get(key))
        if dataset is not None and isinstance(dataset.get('pipeline'), list):
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
      pipelines, inside any dataset wrapper (a yaml without ``test`` tests on
      ``val``; a yaml without ``train`` fails when training starts, naming it);
    - ``model.bbox_head.num_classes`` = the yaml's number of names; the
      datasets take their class names from the yaml;
    - val/test evaluators: ``CheckedCocoMetric`` (``YOLODetMetric`` where the
      config has it, and in place of a non-COCO evaluator) with the ground
      truth built in memory from the labels (no annotation file), keeping the
      config's ``CocoMetric`` options (``classwise``, ``outfile_prefix``, ...);
    - ``YOLOMixUp`` / ``YOLOCopyPaste`` set to the reference's default.yaml
      (0.0 / 0.0: custom data trains without them; the YOLO11 configs' values
      are the reference's COCO recipe), logged when that changes a value;
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
        DataYamlError: the yaml has no ``val`` split, or its path does not exist.
    """
    from mmengine.logging import print_log

    from .yolo_format import load_data_yaml
    data = load_data_yaml(data_yaml)
    data.sources('val')  # validation needs it now (a missing train/test split fails where it is used)
    for key, split in LOADERS.items():
        dataset = inner_dataset(cfg.get(key))
        if dataset is None:
            continue
        if split == 'test' and 'test' not in data.declared:
            split = 'val'
        for k in _COCO_ONLY_KEYS:
            dataset.pop(k, None)
        dataset.update(type='YOLODataset', data_yaml=data.file, split=split, metainfo=dict(classes=data.names))
        if split != 'train':
            dataset['test_mode'] = True
            _keep_instances(dataset.get('pipeline', []))
    for key in ('val_evaluator', 'test_evaluator'):
        evaluator = cfg.get(key)
        if isinstance(evaluator, dict) and str(evaluator.get('type', '')).split('.')[-1] in COCO_METRICS:
            yolo = str(evaluator.get('type', '')).split('.')[-1] == 'YOLODetMetric'
            evaluator.update(type='YOLODetMetric' if yolo else 'CheckedCocoMetric',
                             ann_file=None)  # keeps classwise, outfile_prefix, ...
        elif evaluator:
            cfg[key] = ConfigDict(type='YOLODetMetric', metric='bbox', ann_file=None, match_boxes='unclipped')
    cfg.model.bbox_head.num_classes = len(data.names)
    if 'num_classes' in cfg:  # the config's own variable, so that its dump reads right
        cfg.num_classes = len(data.names)
    optim = cfg.get('optim_wrapper', {})
    if auto_optimizer and optim.get('constructor') == 'YOLOOptimWrapperConstructor':
        old = dict(optim.get('optimizer', {}))
        optim['optimizer'] = ConfigDict(type='auto', weight_decay=old.get('weight_decay', 5e-4))
        if old.get('type') != 'auto':
            print_log(f"--data: optimizer=auto (the reference's default for custom data) replaces {old}; "
                      "set --cfg-options optim_wrapper.optimizer.type=... to keep another", logger='current')
    changed = set_mix_augmentation(cfg, **MIX_DEFAULTS)
    if changed:
        print_log(f"--data: {', '.join(changed)} (the reference's default.yaml, what it trains custom data with; "
                  'the per-scale values are its COCO recipe); set them with tools/train.py --mixup P --copy-paste R',
                  logger='current')
    cfg.data_yaml = data.file
    return cfg


# the reference's default.yaml: custom data trains without MixUp and CopyPaste
MIX_DEFAULTS = dict(mixup=0.0, copy_paste=0.0)


def set_mix_augmentation(cfg: Config, mixup: Optional[float] = None, copy_paste: Optional[float] = None,
                         strict: bool = False) -> List[str]:
    """Set ``YOLOMixUp.prob`` (the reference's ``mixup``) and ``YOLOCopyPaste.ratio`` (``copy_paste``).

    In every pipeline of the config (loaders, pipeline-switch hooks), nested
    ones included; None leaves a value as it is.

    Args:
        cfg (Config): The config, changed in place.
        mixup (float, optional): MixUp probability in [0, 1].
        copy_paste (float, optional): CopyPaste fraction in [0, 1].
        strict (bool): Raise when a value is given but no pipeline holds the
            transform (a user's explicit request). Defaults to False.

    Returns:
        list[str]: ``'mixup 0.15 -> 0.0'``-style descriptions of what changed.

    Raises:
        ValueError: a value outside [0, 1]; with ``strict``, no such transform.
    """
    changed, found = [], set()
    for name, kind, key, value in (('mixup', 'YOLOMixUp', 'prob', mixup),
                                   ('copy_paste', 'YOLOCopyPaste', 'ratio', copy_paste)):
        if value is None:
            continue
        if not 0 <= value <= 1:
            raise ValueError(f'{name} must be in [0, 1], got {value}')
        for pipeline in _pipelines(cfg):
            for t in nested_transforms(pipeline):
                if str(t.get('type', '')).split('.')[-1] == kind:
                    found.add(name)
                    old = t.get(key, 0.0)
                    if float(old) != float(value):
                        changed.append(f'{name} {old} -> {value}')
                    t[key] = float(value)
        if strict and name not in found:
            raise ValueError(f'{name}={value}: the config\'s pipelines have no {kind} (see '
                             'configs/_base_/datasets/yolo_coco_detection.py for the recipe\'s train pipeline)')
        own = cfg.get(name)  # the config's own variable (the recipe's `mixup` / `copy_paste`), so its dump reads right
        if name in found and isinstance(own, dict) and str(own.get('type', '')).split('.')[-1] == kind:
            own[key] = float(value)
    return changed


def _square(value: Any, imgsz: int) -> Any:
    return imgsz if isinstance(value, int) else (imgsz, imgsz)


def nested_transforms(pipeline):
    """The transforms of a pipeline and those wrapped in them (``YOLOMixUp``'s ``transforms``)."""
    for t in pipeline:
        yield t
        for key in ('transforms', 'pre_transform'):
            if isinstance(t, dict) and isinstance(t.get(key), (list, tuple)):
                yield from nested_transforms(t[key])


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
        for t in nested_transforms(pipeline):
            kind = str(t.get('type', '')).split('.')[-1]
            if kind in ('YOLOMosaic', 'Mosaic', 'CachedMosaic'):
                t['img_scale'] = _square(t.get('img_scale'), imgsz)
            elif kind in ('YOLORandomAffine', 'RandomAffine') and any(t.get('border', (0, 0))):
                t['border'] = (-imgsz // 2, -imgsz // 2)
            elif kind in ('LetterResize', 'Resize', 'RandomResize', 'RandomResizedCrop') and 'scale' in t:
                t['scale'] = _square(t['scale'], imgsz)
            elif kind == 'Pad' and 'size' in t:
                t['size'] = (imgsz, imgsz)
    for key in ('img_scale', 'img_size'):  # the config's own variables, so that its dump reads right
        if key in cfg:
            cfg[key] = _square(cfg[key], imgsz)
    cfg.imgsz = imgsz
    return cfg


def apply_data_args(cfg: Config, data_yaml: Optional[str], imgsz: Optional[int]) -> Config:
    """``--data`` then ``--imgsz`` (either may be None)."""
    train_set = inner_dataset(cfg.get('train_dataloader'))
    if data_yaml and train_set is not None and str(train_set.get('type')).endswith('UnlabeledImageDataset'):
        train_set['source'] = osp.abspath(osp.expanduser(data_yaml))  # FCMAE pretraining: its images, no labels
    elif data_yaml:
        use_data_yaml(cfg, osp.expanduser(data_yaml))
    if imgsz:
        set_image_size(cfg, imgsz)
    return cfg
