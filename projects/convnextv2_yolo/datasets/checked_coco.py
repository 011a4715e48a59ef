"""COCO dataset that fails early, naming the file or key at fault."""
import logging
import os.path as osp
from typing import Any, Callable, Dict, List, Optional, Set

from mmdet.datasets import CocoDataset
from mmdet.registry import DATASETS
from mmengine.logging import print_log

from ..utils.class_names import as_class_names
from .bad_images import DEFAULT_MAX_SKIP_FRACTION, SkipBadImagesMixin
from .coco_api import CheckedCOCO
from .image_size import describe_size_mismatch, read_image_size


@DATASETS.register_module()
class CheckedCocoDataset(SkipBadImagesMixin, CocoDataset):
    """mmdet's ``CocoDataset`` with checks before (and while) training.

    - ``FileNotFoundError`` naming a missing annotation file or image folder;
    - the annotation file is checked by :func:`~.coco_api.check_coco_dict`:
      one ``ValueError`` naming the file and, per problem, the image /
      annotation id and the field; a missing ``area`` is computed from the box
      and a missing ``iscrowd`` is 0 (labelling-tool exports often omit both);
    - ``ValueError`` naming ``metainfo.classes`` entries absent from the
      file's categories (mmdet silently drops their boxes), or repeated;
    - labels follow the order of ``metainfo.classes`` by name, whatever the
      file's category order or ids (see ``patches.coco_cat_ids_in_requested_order``);
    - image sizes: every time an image is loaded, its decoded size (EXIF
      orientation applied, as OpenCV decodes) is compared with the file's
      ``width``/``height``; a mismatch is logged once per image and process as
      a warning naming the image, both sizes and the likely cause.
      ``check_image_sizes=True`` also checks every image's header at start-up;
    - an image that fails to load while training (missing, unreadable, not
      decoding) is skipped with a warning naming it, counted, and replaced by
      another sample; more than ``max_skip_fraction`` of the loads skipped
      stops the run listing the files (:class:`~.bad_images.SkipBadImagesMixin`).
      ``strict=True`` and ``test_mode`` raise at the first such file.

    Args:
        check_image_sizes (bool): Read every image header when the dataset is
            built and log each size mismatch (a few ms per 100 images).
            Defaults to False.
        strict (bool): Raise ``BadImageError`` at the first image that fails
            to load instead of skipping it. Defaults to False.
        max_skip_fraction (float): Largest fraction of image loads (per
            data-loader process) that may be skipped. Defaults to 0.01.
        *args, **kwargs: ``CocoDataset`` arguments.
    """

    def __init__(self, *args, check_image_sizes: bool = False, strict: bool = False,
                 max_skip_fraction: float = DEFAULT_MAX_SKIP_FRACTION, **kwargs) -> None:
        self._init_skip_bad_images(strict, max_skip_fraction)
        self.check_image_sizes = check_image_sizes
        self._reported_sizes: Set[str] = set()
        super().__init__(*args, **kwargs)

    def parse_data_info(self, raw_data_info: dict) -> dict:
        """mmdet's parser, counting the boxes of listed classes that it drops."""
        info = super().parse_data_info(raw_data_info)
        wanted = [a for a in raw_data_info['raw_ann_info']
                  if a['category_id'] in self.cat_ids and not a.get('ignore', False)]
        if len(info['instances']) < len(wanted):
            img = raw_data_info['raw_img_info']
            for ann in wanted:
                reason = _dropped_by_mmdet(ann, img['width'], img['height'])
                if reason:
                    self._dropped.setdefault(reason, []).append(ann['id'])
        return info

    def load_data_list(self) -> List[dict]:
        if self.backend_args is None:  # local files: check the paths first
            if not osp.isfile(self.ann_file):
                raise FileNotFoundError(f'annotation file not found: {self.ann_file} '
                                        f'(data_root={self.data_root!r}, ann_file key)')
            img_dir = self.data_prefix.get('img', '')
            if img_dir and not osp.isdir(img_dir):
                raise FileNotFoundError(f'image folder not found: {img_dir} '
                                        f'(data_root={self.data_root!r}, data_prefix.img key)')
        self._dropped: Dict[str, List[Any]] = {}
        data_list = super().load_data_list()
        for reason, ids in self._dropped.items():
            print_log(f'{self.ann_file}: {len(ids)} boxes dropped because {reason} (annotation ids '
                      f'{ids[:5]}{", ..." if len(ids) > 5 else ""})', logger='current', level=logging.WARNING)
        if self.check_image_sizes and self.backend_args is None:
            self.report_size_mismatches(data_list)
        return data_list

    @property
    def COCOAPI(self) -> Callable[[str], CheckedCOCO]:  # noqa: N802 (mmdet's attribute name)
        def load(path: str) -> CheckedCOCO:
            coco = CheckedCOCO(path)
            self._check_classes(coco)
            return coco
        return load

    def _check_classes(self, coco: CheckedCOCO) -> None:
        classes = as_class_names(self.metainfo['classes'])
        names = [c['name'] for c in coco.dataset['categories']]
        unknown = [c for c in classes if c not in names]
        if unknown:
            raise ValueError(f'metainfo.classes {unknown} are not categories of {self.ann_file}; '
                             f'its categories are {names}')

    # ------------------------------------------------------------ image sizes
    def report_size_mismatches(self, data_list: List[dict]) -> int:
        """Compare every image's header size with its record; log each mismatch or unreadable image.

        Returns:
            int: Number of mismatching or unreadable images.
        """
        mismatched, unreadable = 0, 0
        for info in data_list:
            path = info['img_path']
            try:
                width, height, orientation = read_image_size(path)
            except (FileNotFoundError, ValueError) as e:
                unreadable += 1
                self._warn_once(path, str(e))
                continue
            if (width, height) != (info['width'], info['height']):
                mismatched += 1
                self._warn_once(path, describe_size_mismatch(
                    path, (info['width'], info['height']), (width, height), orientation))
        if mismatched or unreadable:
            print_log(f'{type(self).__name__}: of {len(data_list)} images of {self.ann_file}, {mismatched} do not '
                      f'match their recorded size and {unreadable} are missing or unreadable (see the warnings '
                      'above)', logger='current', level=logging.WARNING)
        return mismatched + unreadable

    def prepare_data(self, idx: int) -> Any:
        # results['dataset'] for a pipeline with YOLOMixUp (its partner image); None: a bad image, skipped
        data = self.prepare_or_skip(idx)
        self._check_decoded_size(idx, data)
        return data

    def _check_decoded_size(self, idx: int, data: Any) -> None:
        sample = data.get('data_samples') if isinstance(data, dict) else None
        ori_shape = getattr(sample, 'metainfo', {}).get('ori_shape') if sample is not None else None
        if ori_shape is None:
            return
        info = self.get_data_info(idx)
        recorded = (info.get('width'), info.get('height'))
        actual = (int(ori_shape[1]), int(ori_shape[0]))
        if None not in recorded and actual != tuple(recorded):
            self._warn_once(info['img_path'], describe_size_mismatch(info['img_path'], recorded, actual))

    def _warn_once(self, path: str, message: str) -> None:
        if path in self._reported_sizes:
            return
        self._reported_sizes.add(path)
        print_log(message, logger='current', level=logging.WARNING)


def _dropped_by_mmdet(ann: dict, width: float, height: float) -> Optional[str]:
    """Why mmdet's ``CocoDataset.parse_data_info`` drops a box (None: kept)."""
    x, y, w, h = ann['bbox']
    if max(0, min(x + w, width) - max(x, 0)) * max(0, min(y + h, height) - max(y, 0)) == 0:
        return 'they lie outside their image'
    if ann['area'] <= 0:
        return 'their area is 0'
    if w < 1 or h < 1:
        return 'they are under 1 px wide or high (normalised coordinates?)'
    return None
