"""mmdet's COCO metric on a checked annotation file, quiet about empty results."""
import logging
from typing import Dict, Optional, Sequence

from mmdet.evaluation.metrics import CocoMetric
from mmdet.registry import METRICS
from mmengine.fileio import get_local_path
from mmengine.logging import print_log

from ...datasets.coco_api import CheckedCOCO
from ...utils.class_names import as_class_names


@METRICS.register_module()
class CheckedCocoMetric(CocoMetric):
    """``CocoMetric`` whose ground truth file is read like ``CheckedCocoDataset``'s.

    - ``ann_file`` goes through :class:`~convnextv2_yolo.datasets.coco_api.CheckedCOCO`:
      a missing ``area`` (which pycocotools' evaluation needs) is computed from
      the box, a missing ``iscrowd`` is 0, and any other malformed field stops
      with one error naming the file, the id and the field;
    - without ``ann_file`` the ground truth is built in memory from the data
      samples' ``instances`` (original-image boxes), as in ``CocoMetric``: the
      test pipeline's ``PackDetInputs`` must keep ``'instances'`` in its
      ``meta_keys`` (a ``KeyError`` says so otherwise);
    - a validation without a single detection (an untrained model, a high
      ``score_thr``) logs a warning and evaluates to zeros; mmdet logs it at
      ERROR level and returns no metric at all (with ``patches.coco_empty_results``
      the evaluation itself runs);
    - predicted labels map to category ids in the order of the config's
      ``classes`` by name (``patches.coco_cat_ids_in_requested_order``); each
      class must be a category of ``ann_file`` (``ValueError`` naming the
      missing ones when the runner sets the dataset's classes; mmdet maps
      labels of a missing class to the wrong category, or fails with an
      ``IndexError``).

    Args: as :class:`mmdet.evaluation.CocoMetric`.
    """

    def __init__(self, ann_file: Optional[str] = None, sort_categories: bool = False, **kwargs) -> None:
        super().__init__(ann_file=None, sort_categories=False, **kwargs)
        self.ann_file_path = ann_file
        if ann_file is not None:
            with get_local_path(ann_file, backend_args=self.backend_args) as local_path:
                self._coco_api = CheckedCOCO(local_path)
            if sort_categories:  # as CocoMetric (objects365's inconsistent category lists)
                cats = self._coco_api.cats
                self._coco_api.cats = {i: cats[i] for i in sorted(cats)}
                self._coco_api.dataset['categories'] = sorted(self._coco_api.dataset['categories'],
                                                              key=lambda c: c['id'])

    @property
    def dataset_meta(self) -> Optional[dict]:
        return self._dataset_meta

    @dataset_meta.setter
    def dataset_meta(self, dataset_meta: dict) -> None:
        """Set the classes; with an ``ann_file``, each must be one of its categories (by name)."""
        self._dataset_meta = dataset_meta
        if self._coco_api is not None and dataset_meta and dataset_meta.get('classes'):
            names = [c['name'] for c in self._coco_api.dataset['categories']]
            unknown = [c for c in as_class_names(dataset_meta['classes']) if c not in names]
            if unknown:
                raise ValueError(f"{type(self).__name__}: classes {unknown} are not categories of its ann_file "
                                 f'{self.ann_file_path}; its categories are {names} (is ann_file the '
                                 "dataset's own annotation file?)")

    def process(self, data_batch: dict, data_samples: Sequence[dict]) -> None:
        if self._coco_api is None and data_samples and 'instances' not in data_samples[0]:
            raise KeyError(f"{type(self).__name__} without ann_file builds the ground truth from the data samples' "
                           "'instances': add 'instances' to the meta_keys of PackDetInputs in the test pipeline")
        super().process(data_batch, data_samples)

    def compute_metrics(self, results: list) -> Dict[str, float]:
        if results and not self.format_only and not any(len(pred['labels']) for _, pred in results):
            print_log(f'{type(self).__name__}: no detection in any of the {len(results)} images (an untrained '
                      'model or a high score_thr?): every AP is 0', logger='current', level=logging.WARNING)
        return super().compute_metrics(results)
