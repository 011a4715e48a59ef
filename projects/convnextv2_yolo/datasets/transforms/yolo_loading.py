"""Annotations with instance polygons where every instance has one (for the reference's CopyPaste)."""
from typing import Any, List, Optional

import numpy as np
from mmdet.datasets.transforms import LoadAnnotations
from mmdet.registry import TRANSFORMS
from mmdet.structures.mask import PolygonMasks


def polygon_parts(mask: Any) -> Optional[List[np.ndarray]]:
    """The parts of a polygon ``mask`` as float64 arrays, or None when it is not one.

    A polygon mask is what ``CocoDataset`` gives ``instance['mask']`` from a COCO
    polygon ``segmentation`` (and ``YOLODataset`` from a polygon row): a non-empty
    list of flat ``[x1, y1, x2, y2, ...]`` parts, each of an even number >= 6 of
    finite numbers. None for anything else: no mask, a crowd's RLE dict, a part
    too short, odd or not numeric.
    """
    if not isinstance(mask, (list, tuple)) or not mask:
        return None
    parts = []
    for part in mask:
        if not isinstance(part, (list, tuple, np.ndarray)):
            return None
        values = np.asarray(part)
        if values.ndim != 1 or values.dtype.kind not in 'iuf' or len(values) < 6 or len(values) % 2:
            return None
        values = values.astype(np.float64)
        if not np.isfinite(values).all():
            return None
        parts.append(values)
    return parts


@TRANSFORMS.register_module()
class YOLOLoadAnnotations(LoadAnnotations):
    """mmdet's ``LoadAnnotations`` plus instance polygons as ``gt_masks`` where EVERY instance has one.

    Boxes, labels and ignore flags (and seg maps, when asked) load exactly as
    ``LoadAnnotations`` loads them. Then, with ``with_polygons``: when every
    instance of the image has a polygon ``mask`` (see :func:`polygon_parts`;
    every part of a multi-part COCO polygon is kept),
    ``results['gt_masks'] = PolygonMasks(polygons, h, w)`` (in px, ``h, w`` from
    ``ori_shape``, else ``img_shape``); an image without instances gets an empty
    ``PolygonMasks([], h, w)``. When any instance has none (a box row of a YOLO
    label file, a COCO annotation without ``segmentation``, a crowd's RLE), the
    image gets NO ``gt_masks`` key (a stale one is popped): never a
    ``KeyError``, unlike ``LoadAnnotations(with_mask=True)``, which needs a
    ``mask`` for every instance.

    Why: the reference's (Ultralytics 8.4) ``CopyPaste`` pastes the polygons of
    images that have them and leaves the others unchanged
    (``ultralytics/data/augment.py`` ``CopyPaste.__call__``: ``if
    len(labels["instances"].segments) == 0 or self.p == 0: return labels``),
    and ``YOLOCopyPaste`` likewise skips a sample without ``gt_masks``. A
    dataset of boxes (or with a few box-only instances per image) thus trains
    as with ``LoadAnnotations``; one with polygons gets them. The masks follow
    the format of ``LoadAnnotations(with_mask=True, poly2mask=False)``
    (``mmdet/datasets/transforms/loading.py``: ``_process_masks`` /
    ``_load_masks``), whose instance ``mask`` come from ``CocoDataset``
    (``instance['mask'] = ann['segmentation']``) or ``YOLODataset``.
    Unlike it, an instance with a bad polygon is not turned into an ignored
    instance with a fake mask: the image simply has no ``gt_masks``.

    Required keys: ``instances`` (``bbox``, ``bbox_label``, ``ignore_flag``,
    optional ``mask``), and ``ori_shape`` or ``img_shape`` when polygons are
    set (load the image first). Added keys: ``gt_bboxes``,
    ``gt_bboxes_labels``, ``gt_ignore_flags`` (as ``LoadAnnotations``), and
    ``gt_masks`` (``PolygonMasks``) only when every instance has a polygon.

    Args:
        with_polygons (bool): Set ``gt_masks`` as above. Defaults to True.
        **kwargs: ``LoadAnnotations`` arguments (``with_bbox=True``,
            ``with_label=True``, ``with_seg=False``, ``box_type='hbox'``,
            ...). ``with_mask=True`` (mmdet's masks, raising without a
            ``mask``) only with ``with_polygons=False``.

    Raises:
        ValueError: ``with_polygons`` and ``with_mask`` both set.
    """

    def __init__(self, with_polygons: bool = True, **kwargs) -> None:
        if with_polygons and kwargs.get('with_mask', False):
            raise ValueError('YOLOLoadAnnotations: with_polygons=True sets gt_masks itself (only where every '
                             'instance has a polygon); with_mask=True too would load them twice, and raise on '
                             'instances without a mask: set one of them')
        super().__init__(**kwargs)
        self.with_polygons = bool(with_polygons)

    def transform(self, results: dict) -> dict:
        results = super().transform(results)
        if self.with_polygons:
            self._load_polygons(results)
        return results

    def _load_polygons(self, results: dict) -> None:
        """``results['gt_masks']`` when every instance has a polygon, else no such key."""
        polygons = []
        for instance in results.get('instances', []):
            parts = polygon_parts(instance.get('mask'))
            if parts is None:
                results.pop('gt_masks', None)
                return
            polygons.append(parts)
        shape = results.get('ori_shape', results.get('img_shape'))
        if shape is None:
            raise KeyError("YOLOLoadAnnotations: results lack 'ori_shape' and 'img_shape' (load the image first)")
        results['gt_masks'] = PolygonMasks(polygons, int(shape[0]), int(shape[1]))

    def __repr__(self) -> str:
        return f'{super().__repr__()[:-1]}, with_polygons={self.with_polygons})'
