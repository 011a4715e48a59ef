"""Where a dataset's splits are: from a ``data.yaml``, or from a config's dataloaders.

A config's ``train_dataloader`` / ``val_dataloader`` / ``test_dataloader`` datasets are ``YOLODataset``
(``data_yaml`` + ``split``, or an image folder / list) or ``CocoDataset`` / ``CheckedCocoDataset``
(``ann_file`` + ``data_prefix.img``), possibly inside wrappers (``RepeatDataset``, ``ConcatDataset``...).
"""
import os.path as osp
from typing import Any, List, Optional, Sequence

from ..datasets import yolo_format as yf
from .check_problems import SplitSource


def sources_from_yaml(path: str, splits: Optional[Sequence[str]]) -> List[SplitSource]:
    """The splits of a ``data.yaml``.

    Raises:
        FileNotFoundError, DataYamlError: see :func:`yolo_format.load_data_yaml`;
            a requested split the yaml lacks.
    """
    data = yf.load_data_yaml(path)
    wanted = list(splits) if splits else data.declared
    return [SplitSource(split=s, kind='yolo', names=data.names, sources=data.sources(s)) for s in wanted]


def _join(root: str, path: str) -> str:
    return path if not root or not path or osp.isabs(path) else osp.join(root, path)


def _leaf_datasets(cfg: Any) -> List[Any]:
    """The datasets inside wrappers (``dataset`` / ``datasets`` keys), in order."""
    if cfg is None:
        return []
    if isinstance(cfg, (list, tuple)):
        return [leaf for c in cfg for leaf in _leaf_datasets(c)]
    if 'data_yaml' in cfg or 'ann_file' in cfg or 'data_prefix' in cfg:
        return [cfg]
    if 'datasets' in cfg:
        return _leaf_datasets(cfg['datasets'])
    if 'dataset' in cfg:
        return _leaf_datasets(cfg['dataset'])
    return [cfg]


def source_from_dataset_cfg(ds: Any, split: str, config: str) -> SplitSource:
    """A :class:`SplitSource` from one dataset config.

    Raises:
        ValueError: a dataset type that is neither YOLO nor COCO.
        FileNotFoundError, DataYamlError: the yaml cannot be found or read.
    """
    root = ds.get('data_root') or ''
    prefix = ds.get('data_prefix') or {}
    img = prefix.get('img') or prefix.get('img_path') or ''
    classes = (ds.get('metainfo') or {}).get('classes')
    if ds.get('type') == 'YOLODataset':
        if ds.get('data_yaml'):
            tried = [_join(root, ds['data_yaml']), ds['data_yaml']]
            yaml_file = next((p for p in tried if osp.isfile(p)), tried[0])
            data = yf.load_data_yaml(yaml_file)
            return SplitSource(split=split, kind='yolo', names=data.names,
                               sources=data.sources(ds.get('split', 'train')))
        if not classes:
            raise ValueError(f'{config}: the {split} YOLODataset has no data_yaml and no metainfo.classes')
        ann = ds.get('ann_file')
        return SplitSource(split=split, kind='yolo', names=tuple(classes),
                           sources=[osp.abspath(_join(root, ann) if ann else _join(root, img))])
    if 'Coco' in str(ds.get('type')) or str(ds.get('ann_file', '')).endswith('.json'):
        return SplitSource(split=split, kind='coco', ann_file=_join(root, ds.get('ann_file', '')),
                           img_dir=_join(root, img) or root, classes=tuple(classes) if classes else None)
    raise ValueError(f'{config}: the {split} dataset type {ds.get("type")!r} is neither YOLODataset nor a '
                     'COCO dataset with ann_file')


def sources_from_config(path: str, splits: Optional[Sequence[str]]) -> List[SplitSource]:
    """The train / val / test datasets of a config (wrappers unwrapped; ``ConcatDataset`` parts as ``train.1``...)."""
    from mmengine.config import Config
    cfg = Config.fromfile(path)
    found = []
    for split in splits or yf.SPLITS:
        loader = cfg.get(f'{split}_dataloader')
        leaves = _leaf_datasets(loader.get('dataset') if loader else None)
        if splits and not leaves:
            raise ValueError(f'{path}: no {split}_dataloader with a dataset')
        for i, ds in enumerate(leaves):
            found.append(source_from_dataset_cfg(ds, split if len(leaves) == 1 else f'{split}.{i}', path))
    if not found:
        raise ValueError(f'{path}: no train/val/test dataloader with a dataset')
    return found


# ----------------------------------------------------------------------------- outputs
