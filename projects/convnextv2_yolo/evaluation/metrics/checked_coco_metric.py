"""mmdet's COCO metric on a checked annotation file, quiet about empty results."""
import logging
from typing import Dict, Optional

from mmdet.evaluation.metrics import CocoMetric
from mmdet.registry import METRICS
from mmengine.fileio import get_local_path
from mmengine.logging import print_log

from ...datasets.coco_api import CheckedCOCO


@METRICS.register_module()
class CheckedCocoMetric(CocoMetric):
    """``CocoMetric`` whose ground truth file is read like ``CheckedCocoDataset``'s.

    - ``ann_file`` goes through :class:`~convnextv2_yolo.datasets.coco_api.CheckedCOCO`:
      a missing ``area`` (which pycocotools' evaluation needs) is computed from
      the box, a missing ``iscrowd`` is 0, and any other malformed field stops
      with one error naming the file, the id and the field;
    - without ``ann_file`` the ground truth is built in memory from the
      dataset, as in ``CocoMetric``;
    - a validation without a single detection (an untrained model, a high
      ``score_thr``) logs a warning and evaluates to zeros; mmdet logs it at
      ERROR level and returns no metric at all (with ``compat.coco_empty_results``
      the evaluation itself runs);
    - predicted labels map to category ids in the order of the config's
      ``classes`` by name (``compat.coco_cat_ids_in_requested_order``).

    Args: as :class:`mmdet.evaluation.CocoMetric`.
    """

    def __init__(self, ann_file: Optional[str] = None, sort_categories: bool = False, **kwargs) -> None:
        super().__init__(ann_file=None, sort_categories=False, **kwargs)
        if ann_file is not None:
            with get_local_path(ann_file, backend_args=self.backend_args) as local_path:
                self._coco_api = CheckedCOCO(local_path)
            if sort_categories:  # as CocoMetric (objects365's inconsistent category lists)
                cats = self._coco_api.cats
                self._coco_api.cats = {i: cats[i] for i in sorted(cats)}
                self._coco_api.dataset['categories'] = sorted(self._coco_api.dataset['categories'],
                                                              key=lambda c: c['id'])

    def compute_metrics(self, results: list) -> Dict[str, float]:
        if results and not self.format_only and not any(len(pred['labels']) for _, pred in results):
            print_log(f'{type(self).__name__}: no detection in any of the {len(results)} images (an untrained '
                      'model or a high score_thr?): every AP is 0', logger='current', level=logging.WARNING)
        return super().compute_metrics(results)
