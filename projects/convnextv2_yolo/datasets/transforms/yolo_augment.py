"""YOLO augmentations that mmdet lacks in the reference's exact form."""
import cv2
import numpy as np
import torch
from mmcv.transforms import BaseTransform
from mmdet.datasets.transforms import RandomAffine
from mmdet.registry import TRANSFORMS


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
    """mmdet's ``RandomAffine`` plus the reference's box-candidate filter.

    mmdet only drops boxes that end up outside the image; the reference also
    drops boxes narrower/shorter than ``min_bbox_size`` px, boxes that kept less
    than ``min_area_ratio`` of their (scaled) area after clipping, and boxes
    with an aspect ratio above ``max_aspect_ratio``.

    Args:
        min_bbox_size (float): Min width and height after the warp. Defaults to 2.
        min_area_ratio (float): Min ratio of the warped, clipped box area to
            the original area times the warp's area scale. Defaults to 0.1.
        max_aspect_ratio (float): Max ``max(w/h, h/w)``. Defaults to 100.
        **kwargs: ``RandomAffine`` arguments (rotation, translation, scaling,
            shear, border, border_val).
    """

    def __init__(self, min_bbox_size: float = 2, min_area_ratio: float = 0.1,
                 max_aspect_ratio: float = 100, **kwargs) -> None:
        super().__init__(**kwargs)
        self.min_bbox_size = min_bbox_size
        self.min_area_ratio = min_area_ratio
        self.max_aspect_ratio = max_aspect_ratio

    def transform(self, results: dict) -> dict:
        img = results['img']
        height = img.shape[0] + self.border[1] * 2
        width = img.shape[1] + self.border[0] * 2
        matrix = self._get_random_homography_matrix(height, width)
        results['img'] = cv2.warpPerspective(img, matrix, dsize=(width, height),
                                             borderValue=self.border_val)
        results['img_shape'] = results['img'].shape[:2]
        boxes = results['gt_bboxes']
        if len(boxes):
            before = boxes.tensor.clone()
            boxes.project_(matrix)
            if self.bbox_clip_border:
                boxes.clip_([height, width])
            keep = boxes.is_inside([height, width]) & self._candidates(before, boxes.tensor, matrix)
            keep = keep.numpy()
            results['gt_bboxes'] = boxes[keep]
            results['gt_bboxes_labels'] = results['gt_bboxes_labels'][keep]
            results['gt_ignore_flags'] = results['gt_ignore_flags'][keep]
        return results

    def _candidates(self, before: torch.Tensor, after: torch.Tensor,
                    matrix: np.ndarray) -> torch.Tensor:
        """The reference's ``box_candidates`` rule on original vs warped boxes."""
        area_scale = float(abs(np.linalg.det(matrix[:2, :2])))
        w1, h1 = before[:, 2] - before[:, 0], before[:, 3] - before[:, 1]
        w2, h2 = after[:, 2] - after[:, 0], after[:, 3] - after[:, 1]
        eps = 1e-16
        aspect = torch.maximum(w2 / (h2 + eps), h2 / (w2 + eps))
        return ((w2 > self.min_bbox_size) & (h2 > self.min_bbox_size)
                & (w2 * h2 / (w1 * h1 * area_scale + eps) > self.min_area_ratio)
                & (aspect < self.max_aspect_ratio))
