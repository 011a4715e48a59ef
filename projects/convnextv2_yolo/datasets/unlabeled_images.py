"""Unlabeled images for self-supervised pretraining (FCMAE): folders, list files, data.yaml splits."""
import logging
import os.path as osp
from typing import List, Optional, Sequence, Union

from mmdet.registry import DATASETS
from mmengine.dataset import BaseDataset
from mmengine.logging import print_log

from .yolo_format import list_images, load_data_yaml, verify_image

# How many skipped file names the log lists in full.
_MAX_LISTED = 50


@DATASETS.register_module()
class UnlabeledImageDataset(BaseDataset):
    """Every image of folders, list files or ``data.yaml`` splits, without labels.

    ``source`` entries may be

    - a folder, searched recursively for the extensions of ``yolo_format.IMG_EXTENSIONS`` (jpg, png, bmp,
      tiff, webp, ...); the ``images/`` folder of any detection dataset works as it is (labels are ignored);
    - a ``.txt`` list file, one image path a line (relative to the list's folder, or absolute);
    - a ``data.yaml`` (the reference's layout, read by :func:`~convnextv2_yolo.datasets.load_data_yaml`):
      the images of its ``splits`` (train only by default; the labels are ignored).

    Every image's header is checked once (:func:`~convnextv2_yolo.datasets.yolo_format.verify_image`:
    unreadable, truncated, unsupported or under 10 px); those files, and list entries that do not exist, are
    skipped, with their count and their names (the first 50) in the log. Each sample is
    ``dict(img_path=...)`` for the pipeline (e.g. LoadImageFromFile -> RandomResizedCrop -> RandomFlip ->
    PackInputs).

    Args:
        source (str | Sequence[str]): Folders, list files and/or data.yaml files.
        splits (Sequence[str]): Splits taken from a data.yaml. Defaults to ('train',).
        check_images (bool): Check every image's header when the dataset is built. Defaults to True.
        pipeline (list): Transforms.
        **kwargs: Other ``BaseDataset`` arguments (``indices``, ``serialize_data``, ``lazy_init`` ...).

    Raises:
        FileNotFoundError: a source does not exist.
        DataYamlError: a data.yaml is unreadable or lacks one of ``splits`` (naming the yaml and key).
        ValueError: no usable image was found (naming the sources).
    """

    METAINFO = dict(classes=())

    def __init__(self, source: Union[str, Sequence[str]], splits: Sequence[str] = ('train', ),
                 check_images: bool = True, pipeline: Optional[list] = None, **kwargs) -> None:
        self.sources = [source] if isinstance(source, str) else list(source)
        if not self.sources:
            raise ValueError('UnlabeledImageDataset: "source" names no folder, list or data.yaml')
        self.splits = tuple(splits)
        self.check_images = check_images
        super().__init__(ann_file='', data_root='', pipeline=pipeline or [], **kwargs)

    def _expand(self, missing: List[str]) -> List[str]:
        """Image paths of every source (data.yaml splits expanded)."""
        images: List[str] = []
        for src in self.sources:
            src = osp.abspath(osp.expanduser(str(src)))
            if osp.isfile(src) and src.lower().endswith(('.yaml', '.yml')):
                data = load_data_yaml(src)
                for split in self.splits:
                    images += data.images(split, missing)
            else:
                images += list_images([src], missing)
        return sorted(dict.fromkeys(images))

    def load_data_list(self) -> List[dict]:
        """``[dict(img_path=...)]`` of the usable images; logs what was skipped."""
        skipped: List[str] = []
        images = self._expand(skipped)
        usable = []
        for path in images:
            if self.check_images:
                _, reason = verify_image(path)
                if reason is not None:
                    skipped.append(f'{path}: {reason}')
                    continue
            usable.append(dict(img_path=path))
        if skipped:
            listed = '\n  '.join(skipped[:_MAX_LISTED])
            more = f'\n  ... and {len(skipped) - _MAX_LISTED} more' if len(skipped) > _MAX_LISTED else ''
            print_log(f'UnlabeledImageDataset: skipped {len(skipped)} unreadable or missing file(s):\n  '
                      f'{listed}{more}', logger='current', level=logging.WARNING)
        if not usable:
            raise ValueError(f'UnlabeledImageDataset: no usable image in {self.sources}'
                             + (f' ({len(skipped)} skipped)' if skipped else ''))
        print_log(f'UnlabeledImageDataset: {len(usable)} images from {self.sources}'
                  + (f', {len(skipped)} skipped' if skipped else ''), logger='current')
        return usable
