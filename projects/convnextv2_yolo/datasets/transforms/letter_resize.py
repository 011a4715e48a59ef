"""Letterbox: keep-ratio resize into a fixed canvas with centred padding."""
from typing import Sequence, Tuple, Union

import mmcv
import numpy as np
from mmcv.transforms import BaseTransform
from mmdet.registry import TRANSFORMS
from mmdet.structures.bbox import autocast_box_type
from mmdet.structures.mask import BitmapMasks, PolygonMasks

from .polygons import scale_shift_polygons


@TRANSFORMS.register_module()
class LetterResize(BaseTransform):
    """Resize keeping the aspect ratio to fit ``scale``, then pad centred.

    Follows the reference letterbox: ratio ``r = min(H/h, W/w)`` (capped at 1
    without ``allow_scale_up``), resized size ``round(w*r) x round(h*r)`` (at
    least 1 px), padding split ``round(d/2 - 0.1)`` / ``round(d/2 + 0.1)``
    with value 114.

    Boxes cross the letterbox with the per-axis ratios of the ROUNDED size,
    ``(new_w / w, new_h / h)``, which is what the pixels underwent: this is the
    ``scale_factor`` stored for mapping predictions back (``YOLOHead._rescale``
    divides by it per axis), so a box that fills the image comes back exactly
    (the unrounded ``r`` is off by up to 2 px on 3775x1571 images at 640).

    Required keys: ``img``. Modified keys: ``img``, ``img_shape``,
    ``gt_bboxes`` (scaled per axis and shifted). Added keys: ``scale_factor``
    (w, h) (multiplied into an existing one), ``pad_param`` float32
    [top, bottom, left, right] (an existing one is scaled per axis, top/bottom
    by the y factor and left/right by the x factor, and added),
    ``keep_ratio``. ``gt_masks`` follow the boxes: polygons (``PolygonMasks``)
    scaled per axis and shifted with the boxes' float32 operations, bitmaps
    resized (nearest) and padded; segmentation maps are not transformed.

    Args:
        scale (int | tuple[int, int]): Canvas (width, height); an int means
            a square canvas.
        allow_scale_up (bool): Allow enlarging small images. Defaults to True.
        pad_val (int | float | Sequence | dict): Padding value of every
            channel, one value per channel, or
            ``dict(img=value)`` (mmyolo style). Defaults to 114.
        interpolation (str): mmcv interpolation. Defaults to 'bilinear'.
    """

    def __init__(self, scale: Union[int, Tuple[int, int]], allow_scale_up: bool = True,
                 pad_val: Union[int, float, Sequence, dict] = 114, interpolation: str = 'bilinear') -> None:
        if isinstance(pad_val, dict):
            if 'img' not in pad_val:
                raise KeyError(f"LetterResize: pad_val dict needs an 'img' key, got {pad_val!r}")
            pad_val = pad_val['img']
        if isinstance(pad_val, (list, tuple)):
            pad_val = tuple(pad_val)
            if not pad_val or not all(isinstance(v, (int, float)) for v in pad_val):
                raise ValueError(f'LetterResize: pad_val must be a number or one number per channel, got {pad_val!r}')
        elif not isinstance(pad_val, (int, float)):
            raise ValueError(f'LetterResize: pad_val must be a number or one number per channel, got {pad_val!r}')
        if isinstance(scale, int):
            scale = (scale, scale)
        if len(scale) != 2 or min(scale) <= 0:
            raise ValueError(f'LetterResize: scale must be a positive int or (width, height), got {scale!r}')
        self.scale = (int(scale[0]), int(scale[1]))
        self.allow_scale_up = allow_scale_up
        self.pad_val = pad_val
        self.interpolation = interpolation

    @autocast_box_type()
    def transform(self, results: dict) -> dict:
        if results.get('img') is None:
            raise KeyError("LetterResize: results lack 'img' (load the image first)")
        img = results['img']
        h, w = img.shape[:2]
        dst_w, dst_h = self.scale
        ratio = min(dst_h / h, dst_w / w)
        if not self.allow_scale_up:
            ratio = min(ratio, 1.0)
        new_w, new_h = max(int(round(w * ratio)), 1), max(int(round(h * ratio)), 1)
        scale_w, scale_h = new_w / w, new_h / h  # what the pixels underwent, per axis
        if (new_w, new_h) != (w, h):
            resized = mmcv.imresize(img, (new_w, new_h), interpolation=self.interpolation, backend='cv2')
            img = resized[..., None] if img.ndim == 3 and resized.ndim == 2 else resized  # cv2 drops 1 channel
        dw, dh = (dst_w - new_w) / 2, (dst_h - new_h) / 2
        top, bottom = int(round(dh - 0.1)), int(round(dh + 0.1))
        left, right = int(round(dw - 0.1)), int(round(dw + 0.1))
        if top or bottom or left or right:
            # a scalar would pad only the first channel (cv2 semantics)
            channels = img.shape[2] if img.ndim == 3 else 1
            pad_val = self.pad_val if isinstance(self.pad_val, tuple) else (self.pad_val, ) * channels
            if len(pad_val) != channels:
                raise ValueError(f'LetterResize: pad_val {self.pad_val!r} has {len(pad_val)} values for an image '
                                 f'with {channels} channels ({results.get("img_path")})')
            pad_val = pad_val if img.ndim == 3 else pad_val[0]
            img = mmcv.impad(img, padding=(left, top, right, bottom), pad_val=pad_val)
        results['img'] = img
        results['img_shape'] = img.shape[:2]
        results['keep_ratio'] = True

        prev_scale = results.get('scale_factor', (1.0, 1.0))
        results['scale_factor'] = (float(prev_scale[0]) * scale_w, float(prev_scale[1]) * scale_h)
        pad = np.array([top, bottom, left, right], dtype=np.float32)
        if results.get('pad_param') is not None:
            prev_pad = np.asarray(results['pad_param'], dtype=np.float64)
            pad = (pad + prev_pad * np.array([scale_h, scale_h, scale_w, scale_w])).astype(np.float32)
        results['pad_param'] = pad

        if results.get('gt_bboxes') is not None:
            results['gt_bboxes'].rescale_((scale_w, scale_h))
            results['gt_bboxes'].translate_((left, top))
        masks = results.get('gt_masks')
        if isinstance(masks, PolygonMasks):
            results['gt_masks'] = scale_shift_polygons(masks, (scale_w, scale_h), (left, top), img.shape[:2])
        elif isinstance(masks, BitmapMasks):
            results['gt_masks'] = masks.resize((new_h, new_w)).expand(img.shape[0], img.shape[1], top, left)
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(scale={self.scale}, allow_scale_up={self.allow_scale_up}, '
                f'pad_val={self.pad_val}, interpolation={self.interpolation!r})')
