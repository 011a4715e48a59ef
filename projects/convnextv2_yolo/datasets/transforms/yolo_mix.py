"""The reference's MixUp and CopyPaste (Ultralytics 8.4 ``ultralytics/data/augment.py``)."""
import logging
import random
from typing import List, Optional

import cv2
import numpy as np
import torch
from mmcv.transforms import BaseTransform, Compose
from mmdet.registry import TRANSFORMS
from mmdet.structures.bbox import HorizontalBoxes, autocast_box_type
from mmdet.structures.mask import PolygonMasks


def bbox_ioa(box1: np.ndarray, box2: np.ndarray, eps: float = 1e-7) -> np.ndarray:
    """Intersection over the area of ``box2``, (N, M), xyxy (the reference's ``utils/metrics.py`` ``bbox_ioa``)."""
    iw = (np.minimum(box1[:, None, 2], box2[:, 2]) - np.maximum(box1[:, None, 0], box2[:, 0])).clip(0)
    ih = (np.minimum(box1[:, None, 3], box2[:, 3]) - np.maximum(box1[:, None, 1], box2[:, 1])).clip(0)
    area = (box2[:, 2] - box2[:, 0]) * (box2[:, 3] - box2[:, 1])
    return iw * ih / (area + eps)


def prepare_with_dataset(dataset, idx: int, data_info: Optional[dict] = None):
    """mmengine's ``BaseDataset.prepare_data`` that also gives the pipeline ``results['dataset']``
    when one of its transforms has ``needs_dataset`` (``YOLOMixUp``: the partner image).
    ``data_info``: ``dataset.get_data_info(idx)`` when the caller already has it."""
    from ..data_state import restore_pending_worker_state
    restore_pending_worker_state(dataset)  # a data-loader worker of a resumed run: its saved state, once
    if data_info is None:
        data_info = dataset.get_data_info(idx)
    needs = getattr(dataset, '_pipeline_needs_dataset', None)
    if needs is None:
        needs = any(getattr(t, 'needs_dataset', False) for t in getattr(dataset.pipeline, 'transforms', ()))
        dataset._pipeline_needs_dataset = needs
    if needs:
        data_info['dataset'] = dataset
    return dataset.pipeline(data_info)


def _transform_objects(transform):
    """The transforms inside ``transform`` (a ``Compose``, ``YOLOMixUp``'s ``transforms``), recursively."""
    for t in getattr(transform, 'transforms', None) or ():
        yield t
        yield from _transform_objects(t)


def report_copy_paste_inputs(dataset, max_images: int = 1000) -> None:
    """Log how many images can feed a ``YOLOCopyPaste`` with ``ratio > 0`` in ``dataset``'s pipeline.

    CopyPaste needs a polygon for every instance of an image (``YOLOLoadAnnotations``); a dataset of boxes
    trains as without it. Up to ``max_images`` images (evenly spaced) are checked after the dataset's
    ``full_init``: a warning when none of them has polygons, else an info line with the count. Nothing
    without such a transform.
    """
    from mmengine.logging import print_log

    from .yolo_loading import polygon_parts
    ratios = [t.ratio for t in _transform_objects(getattr(dataset, 'pipeline', None))
              if isinstance(t, YOLOCopyPaste) and t.ratio > 0]
    if not ratios or not len(dataset):
        return
    indices = np.unique(np.linspace(0, len(dataset) - 1, min(len(dataset), max_images)).astype(int))
    with_polygons = 0
    for i in indices:
        instances = dataset.get_data_info(int(i)).get('instances') or []
        with_polygons += bool(instances) and all(polygon_parts(inst.get('mask')) is not None for inst in instances)
    name = f'{type(dataset).__name__} ({len(dataset)} images)'
    if with_polygons:
        print_log(f'{name}: copy_paste={ratios[0]}: {with_polygons} of {len(indices)} images checked have a '
                  'polygon for every instance (CopyPaste pastes from those)', logger='current')
    else:
        print_log(f'{name}: copy_paste={ratios[0]}, but none of {len(indices)} images checked has a polygon for '
                  'every instance (YOLO polygon rows, COCO polygon segmentation): CopyPaste does nothing',
                  logger='current', level=logging.WARNING)


def _concat_gt(results: dict, other: dict) -> None:
    """Append ``other``'s boxes, labels, ignore flags (and polygons when both hold them) to ``results``."""
    boxes = [r['gt_bboxes'].tensor if r.get('gt_bboxes') is not None else torch.zeros((0, 4)) for r in (results, other)]
    results['gt_bboxes'] = HorizontalBoxes(torch.cat([b.to(torch.float32) for b in boxes]))
    for key, dtype in (('gt_bboxes_labels', np.int64), ('gt_ignore_flags', bool)):
        parts = [np.asarray(r.get(key, np.zeros(0)), dtype=dtype) for r in (results, other)]
        results[key] = np.concatenate(parts)
    masks = [r.get('gt_masks') for r in (results, other)]
    if all(isinstance(m, PolygonMasks) for m in masks):
        results['gt_masks'] = PolygonMasks(masks[0].masks + masks[1].masks, masks[0].height, masks[0].width)
    elif any(m is not None for m in masks):
        results.pop('gt_masks', None)  # polygons of one image only: none (the boxes stay right)


@TRANSFORMS.register_module()
class YOLOMixUp(BaseTransform):
    """The reference's MixUp, with its partner made by the same transforms.

    The reference (``ultralytics/data/augment.py`` ``v8_transforms``) composes
    ``[pre_transform, MixUp(dataset, pre_transform=pre_transform, p=mixup), ...]`` with
    ``pre_transform = Compose([Mosaic, (CopyPaste), RandomPerspective])``: with probability
    ``mixup`` (``BaseMixTransform.__call__``: ``random.uniform(0, 1) > p`` skips) a random dataset
    image (``random.randint(0, len - 1)``) is loaded and passed through the SAME transform objects
    (so it also enters the mosaic's buffer), and ``MixUp.apply_image`` blends
    ``img = (img * r + img2 * (1 - r)).astype(uint8)`` with ``r ~ Beta(32, 32)``
    (``np.random.beta``); ``apply_instances`` concatenates the labels (this image's first).

    Hence this transform wraps those transforms: ``transforms`` (the mosaic, copy-paste and
    affine configs) run on the current sample, then with probability ``prob`` the partner,
    ``dataset.get_data_info(random index)`` through ``pre_transform`` (image and annotation
    loading) and the same ``transforms`` objects, is blended in. mmyolo's ``YOLOv5MixUp`` gets the
    dataset the same way (``results['dataset']``) but builds its own copies of the pre-transforms
    (a second mosaic buffer); mmdet's ``MixUp``/``CachedMixUp`` mix raw or cached images instead.
    The dataset (``CheckedCocoDataset``, ``YOLODataset``) puts itself in ``results['dataset']``
    when its pipeline holds a transform with ``needs_dataset``; the key is removed here.
    A partner image that fails to load (missing, undecodable) goes through the dataset's
    ``load_or_skip`` (:class:`~..bad_images.SkipBadImagesMixin`): skipped with a warning and
    counted, and the sample is not mixed (``strict=True``: the error).

    ``prob`` 0 draws no random number (the reference draws one), so a pipeline with
    ``YOLOMixUp(prob=0)`` gives the same samples as its ``transforms`` alone.

    Required keys: ``img``, ``dataset`` (when ``prob`` > 0); those of ``transforms``.
    Modified keys: ``img`` (same shape and dtype), ``gt_bboxes``, ``gt_bboxes_labels``,
    ``gt_ignore_flags``, ``gt_masks`` (concatenated when both samples hold polygons, else
    dropped).

    Args:
        transforms (list[dict]): The transforms applied to both images (mosaic, copy-paste,
            affine), whose outputs must have the same size.
        prob (float): Probability of mixing (the reference's ``mixup``). Defaults to 0.0.
        pre_transform (list[dict], optional): Loading of the partner from its data info
            (``LoadImageFromFile``, ``LoadAnnotations``).
        beta (float): Parameter of the symmetric Beta distribution of r. Defaults to 32.0.
    """

    needs_dataset = True

    def __init__(self, transforms: List[dict], prob: float = 0.0, pre_transform: Optional[List[dict]] = None,
                 beta: float = 32.0) -> None:
        if not 0 <= prob <= 1:
            raise ValueError(f'YOLOMixUp: prob must be in [0, 1], got {prob}')
        # built in mmdet's registry (mmcv's Compose alone would look in mmengine's root one)
        self.transforms = Compose([TRANSFORMS.build(t) if isinstance(t, dict) else t for t in transforms])
        self.pre_transform = Compose([TRANSFORMS.build(t) if isinstance(t, dict) else t
                                      for t in pre_transform or []])
        self.prob = float(prob)
        self.beta = float(beta)

    @staticmethod
    def mix_images(img1: np.ndarray, img2: np.ndarray, r: float) -> np.ndarray:
        """``(img1 * r + img2 * (1 - r)).astype(img1.dtype)`` (float64, truncated as the reference)."""
        if img1.shape != img2.shape:
            raise ValueError(f'YOLOMixUp: the two images differ in shape ({img1.shape} vs {img2.shape}): '
                             'the wrapped transforms must give a fixed output size')
        return (img1 * r + img2 * (1 - r)).astype(img1.dtype)

    def mix(self, results: dict, partner: dict, r: float) -> dict:
        """Blend ``partner`` into ``results`` with ratio ``r`` and concatenate the labels."""
        results['img'] = self.mix_images(results['img'], partner['img'], r)
        _concat_gt(results, partner)
        return results

    def transform(self, results: dict) -> Optional[dict]:
        dataset = results.pop('dataset', None)
        results = self.transforms(results)
        if results is None or self.prob == 0 or random.uniform(0, 1) > self.prob:
            return results
        if dataset is None:
            raise KeyError("YOLOMixUp: results lack 'dataset' (use CheckedCocoDataset or YOLODataset, which "
                           'provide it to pipelines holding YOLOMixUp)')
        index = random.randint(0, len(dataset) - 1)
        info = dataset.get_data_info(index)
        load_or_skip = getattr(dataset, 'load_or_skip', None)  # a partner image that fails to load: not mixed
        if load_or_skip is None:
            loaded = self.pre_transform(info)
        else:
            loaded = load_or_skip(lambda: self.pre_transform(info), info.get('img_path'), role='MixUp partner')
        partner = None if loaded is None else self.transforms(loaded)
        if partner is None:
            return results
        return self.mix(results, partner, np.random.beta(self.beta, self.beta))

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(prob={self.prob}, beta={self.beta}, transforms={self.transforms}, '
                f'pre_transform={self.pre_transform})')


@TRANSFORMS.register_module()
class YOLOCopyPaste(BaseTransform):
    """The reference's CopyPaste in its 'flip' mode (``ultralytics/data/augment.py`` ``CopyPaste``).

    Placed between the mosaic and the affine (``v8_transforms``: ``pre_transform.insert(1,
    CopyPaste(...))``). Needs instance polygons (``gt_masks`` as ``PolygonMasks``, in pixels):
    without them, or with ``ratio`` 0, the sample is returned unchanged (the reference: ``if
    len(labels["instances"].segments) == 0 or self.p == 0: return labels``), drawing no random
    number. Otherwise every instance is mirrored left-right (box ``x1' = w - x2``, ``x2' = w - x1``;
    polygon ``x' = w - x``); a mirrored instance is eligible when its intersection with EVERY
    original box is under 0.30 of that box's area (``bbox_ioa(flipped, boxes) < 0.30``); the
    eligible ones sorted by their largest such ratio (``np.argsort``), the first ``round(ratio * n)``
    (Python's round) are pasted: their filled polygons (``cv2.drawContours``) are a mask through
    which the mirrored image is copied onto the image, and their mirrored boxes, polygons, labels
    and ignore flags are appended. In 'flip' mode the reference applies it to every sample: its
    ``p`` (``copy_paste``) is the fraction of the eligible objects pasted, not a probability.

    The 'mixup' mode (objects from another mosaic-augmented sample) is not implemented.

    Required keys: ``img``, ``gt_bboxes``, ``gt_bboxes_labels``, ``gt_ignore_flags``, optional
    ``gt_masks``. Modified keys: ``img``, the gt keys.

    Args:
        ratio (float): Fraction of the eligible objects pasted (the reference's ``copy_paste``).
            Defaults to 0.5.
        mode (str): 'flip' only. Defaults to 'flip'.
        max_ioa (float): Eligibility threshold. Defaults to 0.30.
    """

    def __init__(self, ratio: float = 0.5, mode: str = 'flip', max_ioa: float = 0.30) -> None:
        if mode != 'flip':
            raise ValueError(f"YOLOCopyPaste: only mode='flip' is implemented, got {mode!r}")
        if not 0 <= ratio <= 1:
            raise ValueError(f'YOLOCopyPaste: ratio must be in [0, 1], got {ratio}')
        self.ratio = float(ratio)
        self.mode = mode
        self.max_ioa = float(max_ioa)

    def select(self, boxes: np.ndarray, flipped: np.ndarray) -> np.ndarray:
        """Indices of the mirrored instances pasted (the reference's ``CopyPaste.get_params``)."""
        ioa = bbox_ioa(flipped, boxes)
        indexes = np.nonzero((ioa < self.max_ioa).all(1))[0]
        indexes = indexes[np.argsort(ioa.max(1)[indexes])]
        return indexes[:round(self.ratio * len(indexes))]

    @autocast_box_type()
    def transform(self, results: dict) -> dict:
        masks = results.get('gt_masks')
        if self.ratio == 0 or masks is None or len(masks) == 0:
            return results
        if not isinstance(masks, PolygonMasks):
            raise TypeError(f'YOLOCopyPaste needs polygon masks (LoadAnnotations with_mask=True, '
                            f'poly2mask=False), got {type(masks).__name__}')
        img = results['img']
        h, w = img.shape[:2]
        boxes = results['gt_bboxes'].tensor.numpy().astype(np.float64)
        if len(boxes) != len(masks):
            raise ValueError(f'YOLOCopyPaste: {len(boxes)} boxes but {len(masks)} polygons')
        flipped = boxes.copy()
        flipped[:, 0], flipped[:, 2] = w - boxes[:, 2], w - boxes[:, 0]
        selected = self.select(boxes, flipped)
        if not len(selected):
            return results
        pasted = PolygonMasks(masks.masks, h, w)[selected].flip('horizontal')
        mask = np.zeros((h, w), np.uint8)
        for polys in pasted.masks:
            cv2.drawContours(mask, [p.reshape(-1, 2).astype(np.int32) for p in polys], -1, 1, cv2.FILLED)
        source = cv2.flip(img, 1)
        if source.ndim == 2 and img.ndim == 3:
            source = source[..., None]
        results['img'] = cv2.copyTo(source, mask, img.copy())
        if img.ndim == 3 and results['img'].ndim == 2:
            results['img'] = results['img'][..., None]
        other = dict(gt_bboxes=HorizontalBoxes(torch.from_numpy(flipped[selected]).to(torch.float32)),
                     gt_bboxes_labels=np.asarray(results['gt_bboxes_labels'])[selected],
                     gt_ignore_flags=np.asarray(results['gt_ignore_flags'])[selected], gt_masks=pasted)
        results['gt_masks'] = PolygonMasks(masks.masks, h, w)
        _concat_gt(results, other)
        return results

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(ratio={self.ratio}, mode={self.mode!r}, max_ioa={self.max_ioa})'
