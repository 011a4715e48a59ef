"""mmdet's ``COCO`` wrapper (pycocotools) on category order and empty results."""
from typing import List, Sequence

from ._util import replace


def coco_cat_ids_in_requested_order() -> None:
    """``COCO.get_cat_ids(cat_names=...)`` returns ids in the order of ``cat_names``.

    Upstream defect: ``mmdet.datasets.api_wrappers.COCO.get_cat_ids`` (mmdet
    3.3.0, pycocotools' ``getCatIds``) returns the ids in the file's category
    order, not in the order of ``cat_names``; ``CocoDataset`` and ``CocoMetric``
    map label ``i`` to ``ids[i]``, so a config whose ``classes`` order differs
    from the JSON's silently swaps labels. Ids now follow ``cat_names``
    (categories sharing a name keep the file's order).

    Applies to: mmdet 3.x with pycocotools 2.0.x.
    """
    from mmdet.datasets.api_wrappers import COCO

    def make(original):
        def get_cat_ids(self, cat_names: Sequence[str] = [], sup_names: Sequence[str] = [],
                        cat_ids: Sequence[int] = []) -> List[int]:
            ids = original(self, cat_names, sup_names, cat_ids)
            names = [cat_names] if isinstance(cat_names, str) else list(cat_names)
            if not names:
                return ids
            position = {}
            for i, n in enumerate(names):
                position.setdefault(n, i)
            # stable: categories sharing a name keep the file's order
            return sorted(ids, key=lambda cat_id: position[self.cats[cat_id]['name']])
        return get_cat_ids

    replace(COCO, 'get_cat_ids', make)


def coco_empty_results() -> None:
    """``COCO.loadRes([])`` gives an empty result set instead of an ``IndexError``.

    Upstream defect: pycocotools' ``COCO.loadRes`` (2.0.x) reads ``anns[0]`` and
    raises ``IndexError`` on an empty result list (a model that detects nothing,
    e.g. early in training); mmdet 3.3.0's ``CocoMetric`` logs that at ERROR
    level and returns no metrics at all. An empty result set now evaluates (to
    zeros).

    Applies to: pycocotools 2.0.x with mmdet 3.x.
    """
    from mmdet.datasets.api_wrappers import COCO

    def make(original):
        def loadRes(self, resFile):  # noqa: N802 (pycocotools' name)
            if isinstance(resFile, (list, tuple)) and len(resFile) == 0:
                res = COCO()
                res.dataset['images'] = list(self.dataset.get('images', []))
                res.dataset['categories'] = [dict(c) for c in self.dataset.get('categories', [])]
                res.dataset['annotations'] = []
                res.createIndex()
                return res
            return original(self, resFile)
        return loadRes

    replace(COCO, 'loadRes', make)
