"""The reference's 4-image mosaic with its buffer of recently loaded images."""
import math
import random
from collections import deque
from typing import Optional, Sequence, Tuple, Union

import mmcv
import numpy as np
import torch
from mmcv.transforms import BaseTransform
from mmdet.registry import TRANSFORMS
from mmdet.structures.bbox import HorizontalBoxes, autocast_box_type
from mmdet.structures.mask import PolygonMasks

from .polygons import clip_points, pack_polygons, scale_shift_points, unpack_polygons


def fit_size(w: int, h: int, dst_w: int, dst_h: int) -> Tuple[int, int]:
    """Size of a ``w`` x ``h`` image resized to fit ``dst_w`` x ``dst_h``.

    The reference's rule (``load_image``): ratio ``r = min(dst_w / w, dst_h / h)``
    (= ``s / max(w, h)`` for a square target), new size rounded UP and capped
    at the target, so the long side is exactly the target. Returns (new_w, new_h).
    """
    r = min(dst_w / w, dst_h / h)
    if r == 1:
        return w, h
    return min(math.ceil(w * r), dst_w), min(math.ceil(h * r), dst_h)


@TRANSFORMS.register_module()
class YOLOMosaic(BaseTransform):
    """4-image mosaic following the reference (Ultralytics) exactly.

    Every call first resizes the current image to fit ``img_scale`` (long side
    = s for a square scale; size rounded up and capped as the reference's
    ``ultralytics/data/base.py`` ``load_image``; boxes scaled per axis by the
    ROUNDED size, new_w / w and new_h / h) and appends it to a FIFO buffer of
    at most ``max_cached_images`` resized images (``base.py`` ``buffer``; the
    resize also bounds its memory). Then, with probability ``prob``, the
    3 partner images are drawn WITH replacement from the buffer, which already
    holds the current image (the first call of a data-loader worker makes a
    mosaic of 4 copies of its own image), and the 4 are pasted on a
    2h x 2w canvas filled with ``pad_val``, top-left / top-right / bottom-left
    / bottom-right around a centre uniform in ``center_ratio_range`` x scale
    (``ultralytics/data/augment.py`` ``Mosaic._mosaic4``; cropped where they
    overflow); boxes are shifted, clipped to the canvas and zero-area boxes
    removed (``Mosaic._cat_labels``). Otherwise the resized image is placed
    centred on the same canvas (offset w/2 + left, h/2 + top with the
    letterbox's ``round(d/2 - 0.1)`` split): with the centring
    ``YOLORandomAffine`` (border -s/2) that follows, this equals the reference's
    letterbox to s x s + affine with border 0 (``RandomPerspective``). Either
    way the output is 2h x 2w: a sample never passes through unchanged.

    mmdet's ``CachedMosaic`` is not used: it returns the sample unchanged (raw
    size, so the following 2x-canvas affine drops all its boxes) until its cache
    holds 5 images, and draws only from other cached samples.

    Instance polygons (``gt_masks`` as ``PolygonMasks`` in pixels, one per box,
    as ``YOLOCopyPaste`` needs) follow their boxes as the reference's segments
    do: scaled by the resize factors and shifted by the tile's offset with the
    boxes' float32 operations (the buffer holds each entry's resized polygons
    as one float32 vertex array), clipped point-wise to the canvas (x to
    [0, 2w], y to [0, 2h], ``Instances.clip``; only with ``bbox_clip_border``,
    as the boxes) and filtered with the boxes' keep mask, so polygon i stays
    the polygon of box i. The output holds ``gt_masks`` only when every image
    of the mosaic (the current one and its 3 partners; the current one when
    centred) had them (an image without instances has an empty
    ``PolygonMasks``); otherwise the key is removed. No random number depends
    on them: with or without polygons the images and boxes are the same.

    Required keys: ``img``; optional ``gt_bboxes`` (``HorizontalBoxes`` or
    np.ndarray), ``gt_bboxes_labels``, ``gt_ignore_flags``, ``gt_masks``
    (``PolygonMasks``).
    Modified keys: ``img`` (2h x 2w [x C], the input's dtype and channels),
    ``img_shape``, ``gt_bboxes`` (float32), ``gt_bboxes_labels`` (int64),
    ``gt_ignore_flags`` (bool), ``gt_masks`` (``PolygonMasks`` of the canvas,
    float32 vertices, or removed). Bitmap masks and segmentation maps are not
    supported (``ValueError``).

    Args:
        img_scale (int | tuple[int, int]): Size s (w, h) of one image; the
            canvas is 2h x 2w. Defaults to (640, 640).
        center_ratio_range (tuple[float, float]): Range of the mosaic centre as
            a ratio of ``img_scale``. Defaults to (0.5, 1.5) (the reference's
            [s/2, 3s/2]).
        bbox_clip_border (bool): Clip boxes to the canvas (then drop zero-area
            boxes); without it, boxes entirely outside are dropped. Defaults to
            True.
        pad_val (float): Canvas fill value. Defaults to 114.
        prob (float): Probability of making a mosaic. Defaults to 1.0.
        max_cached_images (int): Buffer length. The reference uses
            min(dataset size, batch size x 8, 1000). Defaults to 128.
    """

    def __init__(self, img_scale: Union[int, Tuple[int, int]] = (640, 640),
                 center_ratio_range: Tuple[float, float] = (0.5, 1.5), bbox_clip_border: bool = True,
                 pad_val: float = 114.0, prob: float = 1.0, max_cached_images: int = 128) -> None:
        if isinstance(img_scale, int):
            img_scale = (img_scale, img_scale)
        if len(img_scale) != 2 or min(img_scale) <= 0:
            raise ValueError(f'YOLOMosaic: img_scale must be a positive int or (width, height), got {img_scale!r}')
        if not 0 <= prob <= 1:
            raise ValueError(f'YOLOMosaic: prob must be in [0, 1], got {prob}')
        if int(max_cached_images) < 1:
            raise ValueError(f'YOLOMosaic: max_cached_images must be >= 1, got {max_cached_images}')
        lo, hi = center_ratio_range
        if not 0 <= lo <= hi <= 2:
            raise ValueError(f'YOLOMosaic: center_ratio_range must satisfy 0 <= lo <= hi <= 2, '
                             f'got {center_ratio_range!r}')
        self.img_scale = (int(img_scale[0]), int(img_scale[1]))
        self.center_ratio_range = (float(lo), float(hi))
        self.bbox_clip_border = bbox_clip_border
        self.pad_val = pad_val
        self.prob = prob
        self.max_cached_images = int(max_cached_images)
        self.buffer: deque = deque(maxlen=self.max_cached_images)

    # ---- buffer ---------------------------------------------------------------------------------
    def _resized_entry(self, results: dict) -> dict:
        """The current sample resized to fit ``img_scale``, as stored in the buffer."""
        img = results['img']
        h, w = img.shape[:2]
        new_w, new_h = fit_size(w, h, *self.img_scale)
        if (new_w, new_h) != (w, h):
            resized = mmcv.imresize(img, (new_w, new_h), interpolation='bilinear', backend='cv2')
            if img.ndim == 3 and resized.ndim == 2:  # cv2 drops a single channel
                resized = resized[..., None]
        else:
            resized = img.copy()
        boxes = results.get('gt_bboxes')
        if boxes is None:
            boxes = torch.zeros((0, 4), dtype=torch.float32)
        else:
            boxes = boxes.tensor.to(torch.float32)
            boxes = boxes * boxes.new_tensor([new_w / w, new_h / h]).repeat(2)
        n = len(boxes)
        labels = results.get('gt_bboxes_labels')
        labels = np.zeros(0, np.int64) if labels is None else np.asarray(labels, dtype=np.int64)
        flags = results.get('gt_ignore_flags')
        flags = np.zeros(n, bool) if flags is None else np.asarray(flags, dtype=bool)
        if len(labels) != n or len(flags) != n:
            raise ValueError(f'YOLOMosaic: {n} gt_bboxes but {len(labels)} gt_bboxes_labels and '
                             f'{len(flags)} gt_ignore_flags ({results.get("img_path")})')
        polys = None
        masks = results.get('gt_masks')
        if masks is not None:
            if len(masks) != n:
                raise ValueError(f'YOLOMosaic: {n} gt_bboxes but {len(masks)} gt_masks ({results.get("img_path")})')
            points, counts = pack_polygons(masks)
            polys = (scale_shift_points(points, (new_w / w, new_h / h)), counts)
        return dict(img=resized, boxes=boxes, labels=labels, flags=flags, polys=polys,
                    img_id=results.get('img_id'), img_path=results.get('img_path'))

    # ---- placement ------------------------------------------------------------------------------
    def _canvas(self, img: np.ndarray) -> np.ndarray:
        w, h = self.img_scale
        return np.full((2 * h, 2 * w) + img.shape[2:], self.pad_val, dtype=img.dtype)

    @staticmethod
    def _fit_channels(img: np.ndarray, canvas: np.ndarray) -> np.ndarray:
        """Let a partner with other channels (grayscale vs colour) be pasted on the canvas."""
        if img.shape[2:] == canvas.shape[2:]:
            return img
        if canvas.ndim == 3 and (img.ndim == 2 or img.shape[2] == 1):
            return img.reshape(img.shape[:2] + (1,))  # broadcast gray into every channel
        if canvas.ndim == 2 and img.ndim == 3 and img.shape[2] == 1:
            return img[..., 0]
        raise ValueError(f'YOLOMosaic: cannot paste an image of shape {img.shape} on a canvas of shape '
                         f'{canvas.shape}: load all images with the same channels (LoadImageFromFile color_type)')

    def _quadrant(self, i: int, xc: int, yc: int, w: int, h: int):
        """(paste x1, y1, x2, y2) on the canvas and (crop x1, y1, x2, y2) in the image."""
        cw, ch = 2 * self.img_scale[0], 2 * self.img_scale[1]
        if i == 0:  # top left
            x1a, y1a, x2a, y2a = max(xc - w, 0), max(yc - h, 0), xc, yc
            x1b, y1b, x2b, y2b = w - (x2a - x1a), h - (y2a - y1a), w, h
        elif i == 1:  # top right
            x1a, y1a, x2a, y2a = xc, max(yc - h, 0), min(xc + w, cw), yc
            x1b, y1b, x2b, y2b = 0, h - (y2a - y1a), min(w, x2a - x1a), h
        elif i == 2:  # bottom left
            x1a, y1a, x2a, y2a = max(xc - w, 0), yc, xc, min(ch, yc + h)
            x1b, y1b, x2b, y2b = w - (x2a - x1a), 0, w, min(y2a - y1a, h)
        else:  # bottom right
            x1a, y1a, x2a, y2a = xc, yc, min(xc + w, cw), min(ch, yc + h)
            x1b, y1b, x2b, y2b = 0, 0, min(w, x2a - x1a), min(y2a - y1a, h)
        return (x1a, y1a, x2a, y2a), (x1b, y1b, x2b, y2b)

    def _mosaic(self, entries: Sequence[dict]):
        canvas = self._canvas(entries[0]['img'])
        w, h = self.img_scale
        xc = int(random.uniform(*self.center_ratio_range) * w)
        yc = int(random.uniform(*self.center_ratio_range) * h)
        with_polys = all(e['polys'] is not None for e in entries)
        boxes, points, counts = [], [], []
        for i, entry in enumerate(entries):
            img = self._fit_channels(entry['img'], canvas)
            ih, iw = img.shape[:2]
            (x1a, y1a, x2a, y2a), (x1b, y1b, x2b, y2b) = self._quadrant(i, xc, yc, iw, ih)
            if x2a > x1a and y2a > y1a:
                canvas[y1a:y2a, x1a:x2a] = img[y1b:y2b, x1b:x2b]
            boxes.append(entry['boxes'] + entry['boxes'].new_tensor([x1a - x1b, y1a - y1b]).repeat(2))
            if with_polys:
                points.append(scale_shift_points(entry['polys'][0], offset=(x1a - x1b, y1a - y1b)))
                counts += entry['polys'][1]
        boxes = torch.cat(boxes)
        labels = np.concatenate([e['labels'] for e in entries])
        flags = np.concatenate([e['flags'] for e in entries])
        points = np.concatenate(points) if with_polys else None
        if self.bbox_clip_border:
            boxes[:, 0::2] = boxes[:, 0::2].clamp(0, canvas.shape[1])
            boxes[:, 1::2] = boxes[:, 1::2].clamp(0, canvas.shape[0])
            keep = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
            if with_polys:
                clip_points(points, canvas.shape[1], canvas.shape[0])
        else:
            keep = HorizontalBoxes(boxes).is_inside(canvas.shape[:2])
        keep = keep.numpy()
        masks = None
        if with_polys:
            polys = unpack_polygons(points, counts)
            masks = PolygonMasks([polys[i] for i in np.flatnonzero(keep)], *canvas.shape[:2])
        return canvas, boxes[keep], labels[keep], flags[keep], masks

    def _centred(self, entry: dict):
        """No mosaic: the resized image centred on the canvas (letterbox padding split)."""
        canvas = self._canvas(entry['img'])
        w, h = self.img_scale
        ih, iw = entry['img'].shape[:2]
        left, top = int(round((w - iw) / 2 - 0.1)), int(round((h - ih) / 2 - 0.1))
        x0, y0 = w // 2 + left, h // 2 + top
        canvas[y0:y0 + ih, x0:x0 + iw] = entry['img']
        boxes = entry['boxes'] + entry['boxes'].new_tensor([x0, y0]).repeat(2)
        masks = None
        if entry['polys'] is not None:
            points, counts = entry['polys']
            masks = PolygonMasks(unpack_polygons(scale_shift_points(points, offset=(x0, y0)), counts),
                                 *canvas.shape[:2])
        return canvas, boxes, entry['labels'].copy(), entry['flags'].copy(), masks

    # ---- transform ------------------------------------------------------------------------------
    @autocast_box_type()
    def transform(self, results: dict) -> Optional[dict]:
        if results.get('img') is None:
            raise KeyError("YOLOMosaic: results lack 'img' (load the image first)")
        if results.get('gt_seg_map') is not None:
            raise ValueError("YOLOMosaic supports boxes and polygons only, but the results hold 'gt_seg_map': "
                             'load annotations with with_seg=False')
        masks = results.get('gt_masks')
        if masks is not None and not isinstance(masks, PolygonMasks):
            raise ValueError(f'YOLOMosaic supports polygon gt_masks only (PolygonMasks), got '
                             f'{type(masks).__name__}: load annotations with poly2mask=False or with_mask=False')
        entry = self._resized_entry(results)
        entry['sample_idx'] = results.get('sample_idx')  # to rebuild the buffer on --resume (datasets/data_state.py)
        self.buffer.append(entry)
        if random.uniform(0, 1) > self.prob:
            img, boxes, labels, flags, masks = self._centred(entry)
        else:
            partners = random.choices(self.buffer, k=3)
            img, boxes, labels, flags, masks = self._mosaic([entry] + partners)
        results['img'] = img
        results['img_shape'] = img.shape[:2]
        results['gt_bboxes'] = HorizontalBoxes(boxes)
        results['gt_bboxes_labels'] = labels
        results['gt_ignore_flags'] = flags
        if masks is None:
            results.pop('gt_masks', None)  # an image of the mosaic without polygons: none
        else:
            results['gt_masks'] = masks
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(img_scale={self.img_scale}, '
                f'center_ratio_range={self.center_ratio_range}, bbox_clip_border={self.bbox_clip_border}, '
                f'pad_val={self.pad_val}, prob={self.prob}, max_cached_images={self.max_cached_images})')
