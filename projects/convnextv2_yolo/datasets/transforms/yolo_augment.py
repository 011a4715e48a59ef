"""YOLO augmentations that mmdet lacks in the reference's exact form."""
import math
import random
from typing import Tuple

import cv2
import numpy as np
import torch
from mmcv.transforms import BaseTransform
from mmdet.datasets.transforms import RandomAffine
from mmdet.registry import TRANSFORMS
from mmdet.structures.bbox import autocast_box_type


@TRANSFORMS.register_module()
class YOLOHSVRandomAug(BaseTransform):
    """Multiplicative HSV jitter of the reference (gains 0.015 / 0.7 / 0.4).

    mmdet's ``YOLOXHSVRandomAug`` adds integer offsets instead of scaling by
    random gains, so it is not the reference augmentation.

    Args:
        hue_gain (float): Max relative hue change. Defaults to 0.015.
        saturation_gain (float): Max relative saturation change. Defaults to 0.7.
        value_gain (float): Max relative value change. Defaults to 0.4.
    """

    def __init__(self, hue_gain: float = 0.015, saturation_gain: float = 0.7,
                 value_gain: float = 0.4) -> None:
        self.gains = np.array([hue_gain, saturation_gain, value_gain], dtype=np.float64)

    def transform(self, results: dict) -> dict:
        if not self.gains.any():
            return results
        r = np.random.uniform(-1, 1, 3) * self.gains + 1
        img = results['img']
        if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
            raise ValueError(f'YOLOHSVRandomAug needs an 8-bit BGR image (LoadImageFromFile with the default '
                             f"color_type='color'), got dtype {img.dtype} and shape {img.shape} "
                             f'({results.get("img_path")})')
        hue, sat, val = cv2.split(cv2.cvtColor(img, cv2.COLOR_BGR2HSV))
        x = np.arange(0, 256, dtype=r.dtype)
        lut_hue = ((x * r[0]) % 180).astype(np.uint8)
        lut_sat = np.clip(x * r[1], 0, 255).astype(np.uint8)
        lut_val = np.clip(x * r[2], 0, 255).astype(np.uint8)
        hsv = cv2.merge((cv2.LUT(hue, lut_hue), cv2.LUT(sat, lut_sat), cv2.LUT(val, lut_val)))
        results['img'] = cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)
        return results

    def __repr__(self) -> str:
        h, s, v = self.gains
        return f'{self.__class__.__name__}(hue_gain={h}, saturation_gain={s}, value_gain={v})'


@TRANSFORMS.register_module()
class YOLORandomAffine(RandomAffine):
    """The reference's random affine (``RandomPerspective`` without perspective).

    Follows ``ultralytics/data/augment.py`` ``RandomPerspective``: output size
    ``in + 2 * border`` (border -s/2 after the 2s mosaic canvas, 0 otherwise);
    warp ``M = T @ S @ R @ C`` where ``C`` moves the INPUT centre to the origin
    (-in_w/2, -in_h/2), ``R`` rotates by a in [-max_rotate_degree, +] and
    scales by s in ``scaling_ratio_range`` about the origin
    (``cv2.getRotationMatrix2D``), ``S`` shears (x then y degrees in
    [-max_shear_degree, +]) and ``T`` moves the origin to
    ((0.5 + u) * out_w, (0.5 + v) * out_h), u, v in [-max_translate_ratio, +].
    The image is warped with ``cv2.warpAffine`` (bilinear, fill ``border_val``)
    unless the border is 0 and M is the identity; boxes are the min/max of their
    4 warped corners, clipped to the output, then filtered by the reference's
    ``box_candidates``: width and height > ``min_bbox_size`` px, area > ``min_area_ratio``
    of the original box's area scaled by s^2, aspect ratio < ``max_aspect_ratio``.

    mmdet's ``RandomAffine`` warps about the origin (top-left) instead of the
    centre, so with the mosaic's 2s canvas it shows the canvas's top-left
    region rather than its centre; and it only drops boxes outside the image.

    Instance masks (``gt_masks``: the polygons that ``YOLOMosaic`` carries for
    ``YOLOCopyPaste``) are removed: nothing after the affine needs them. The
    boxes are warped as above whether or not polygons are present (same random
    draws, same boxes). The reference instead warps the segments (resampled to
    1000 points, ``RandomPerspective.apply_segments``) and takes the boxes from
    the warped, clipped segments: with the recipe's zero rotation and shear the
    two differ only for objects cut by the output border (the reference's box
    is that of the visible part of the polygon, ours the clipped warped box)
    and by the reference's resampling.

    Required keys: ``img``; optional ``gt_bboxes``, ``gt_bboxes_labels``,
    ``gt_ignore_flags``, ``gt_masks``. Modified keys: ``img``, ``img_shape``,
    the gt keys. Removed keys: ``gt_masks``.

    Args:
        min_bbox_size (float): Min width and height after the warp. Defaults to 2.
        min_area_ratio (float): Min ratio of the warped, clipped box area to
            the original area times s^2. Defaults to 0.1.
        max_aspect_ratio (float): Max ``max(w/h, h/w)``. Defaults to 100.
        **kwargs: ``RandomAffine`` arguments: max_rotate_degree,
            max_translate_ratio, scaling_ratio_range, max_shear_degree, border
            (x, y), border_val, bbox_clip_border.
    """

    def __init__(self, min_bbox_size: float = 2, min_area_ratio: float = 0.1,
                 max_aspect_ratio: float = 100, **kwargs) -> None:
        super().__init__(**kwargs)
        self.min_bbox_size = min_bbox_size
        self.min_area_ratio = min_area_ratio
        self.max_aspect_ratio = max_aspect_ratio

    def _random_warp(self, in_h: int, in_w: int, out_h: int, out_w: int) -> Tuple[np.ndarray, float]:
        """The reference's warp matrix (3x3, float64) and its scale s."""
        centre = np.eye(3)
        centre[0, 2], centre[1, 2] = -in_w / 2, -in_h / 2
        angle = random.uniform(-self.max_rotate_degree, self.max_rotate_degree)
        scale = random.uniform(*self.scaling_ratio_range)
        rotate = np.eye(3)
        rotate[:2] = cv2.getRotationMatrix2D(center=(0, 0), angle=angle, scale=scale)
        shear = np.eye(3)
        shear[0, 1] = math.tan(math.radians(random.uniform(-self.max_shear_degree, self.max_shear_degree)))
        shear[1, 0] = math.tan(math.radians(random.uniform(-self.max_shear_degree, self.max_shear_degree)))
        translate = np.eye(3)
        t = self.max_translate_ratio
        translate[0, 2] = random.uniform(0.5 - t, 0.5 + t) * out_w
        translate[1, 2] = random.uniform(0.5 - t, 0.5 + t) * out_h
        return translate @ shear @ rotate @ centre, scale

    @autocast_box_type()
    def transform(self, results: dict) -> dict:
        results.pop('gt_masks', None)  # polygons (for YOLOCopyPaste) are not needed after the affine
        img = results['img']
        in_h, in_w = img.shape[:2]
        out_w, out_h = in_w + 2 * int(self.border[0]), in_h + 2 * int(self.border[1])
        if out_w <= 0 or out_h <= 0:
            raise ValueError(f'YOLORandomAffine: border {self.border} leaves no output for a '
                             f'{in_w}x{in_h} image')
        matrix, scale = self._random_warp(in_h, in_w, out_h, out_w)
        if tuple(self.border) != (0, 0) or not np.array_equal(matrix, np.eye(3)):
            border_val = tuple(self.border_val) if np.ndim(self.border_val) else self.border_val
            img = cv2.warpAffine(img, matrix[:2], dsize=(out_w, out_h), flags=cv2.INTER_LINEAR,
                                 borderValue=border_val)
            if results['img'].ndim == 3 and img.ndim == 2:  # cv2 drops a single channel
                img = img[..., None]
        results['img'] = img
        results['img_shape'] = img.shape[:2]
        boxes = results.get('gt_bboxes')
        if boxes is not None and len(boxes):
            before = boxes.tensor.clone()
            boxes.project_(matrix)
            if self.bbox_clip_border:
                boxes.clip_([out_h, out_w])
            keep = boxes.is_inside([out_h, out_w]) & self._candidates(before * scale, boxes.tensor)
            keep = keep.numpy()
            results['gt_bboxes'] = boxes[keep]
            results['gt_bboxes_labels'] = results['gt_bboxes_labels'][keep]
            results['gt_ignore_flags'] = results['gt_ignore_flags'][keep]
        return results

    def _candidates(self, before: torch.Tensor, after: torch.Tensor) -> torch.Tensor:
        """The reference's ``box_candidates``: ``before`` = original boxes x s, ``after`` = warped."""
        w1, h1 = before[:, 2] - before[:, 0], before[:, 3] - before[:, 1]
        w2, h2 = after[:, 2] - after[:, 0], after[:, 3] - after[:, 1]
        eps = 1e-16
        aspect = torch.maximum(w2 / (h2 + eps), h2 / (w2 + eps))
        return ((w2 > self.min_bbox_size) & (h2 > self.min_bbox_size)
                & (w2 * h2 / (w1 * h1 + eps) > self.min_area_ratio)
                & (aspect < self.max_aspect_ratio))

    def __repr__(self) -> str:
        return (super().__repr__()[:-1] + f', min_bbox_size={self.min_bbox_size}, '
                f'min_area_ratio={self.min_area_ratio}, max_aspect_ratio={self.max_aspect_ratio})')
