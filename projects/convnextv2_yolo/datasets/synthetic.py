"""A synthetic shape-detection dataset in COCO and Ultralytics layouts.

Every image shows a few opaque shapes (the classes: rectangle, ellipse,
triangle, star, and optionally cross and hexagon) of random size, aspect,
rotation, colour and position on a textured, noisy background with
distractors that belong to no class (thin lines, scribbles, translucent
blobs, speckles, stripes). Only the outline says which class an object is;
colours are random.

Rules (see ``docs/synthetic_dataset.md``):

* Boxes are the exact extent of each object's *visible* rasterised mask, in
  pixel-edge coordinates: a box ``[x0, y0, x1, y1]`` covers the columns
  ``x0 .. x1 - 1`` and rows ``y0 .. y1 - 1``, so each box border holds at
  least one pixel of its object.
* Objects are painted in order and later ones may overlap earlier ones. A
  placement is rejected (and re-drawn elsewhere, or the object skipped) if it
  would leave an earlier object with less than ``min_visible`` of its area
  visible or a visible box narrower or lower than ``min_box`` pixels. So every
  painted object is annotated and there are no ambiguous remnants.
* Object colours keep at least ``min_contrast`` (Euclidean distance in BGR)
  from the background under them and from the objects they overlap or
  touch.

Images are generated from ``(seed, split, index)`` alone, so a seed gives
byte-identical files, and a dataset with more images starts with the images of
a smaller one.
"""
import json
import math
import os
import os.path as osp
import shutil
import time
import uuid
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Dict, Iterator, List, Optional, Sequence, Tuple, Union

import cv2
import numpy as np

SHAPES: Tuple[str, ...] = ('rectangle', 'ellipse', 'triangle', 'star',
                           'cross', 'hexagon')
DEFAULT_CLASSES: Tuple[str, ...] = SHAPES[:4]
# Shapes whose outline needs more pixels to be told apart get a larger
# minimum size (multiple of ``min_size``).
_MIN_SIZE_SCALE = dict(rectangle=1.0, ellipse=1.0, triangle=1.0, star=1.5,
                       cross=1.5, hexagon=1.5)
# Shapes that rotate freely; the others turn by at most ``max_rotation``.
_FREE_ROTATION = ('ellipse', 'triangle', 'star', 'hexagon')
_PALETTE = [(220, 20, 60), (0, 130, 255), (0, 180, 80), (255, 180, 0),
            (160, 60, 220), (0, 200, 200)]
SPLITS: Tuple[str, ...] = ('train', 'val')
GENERATOR_NAME = 'convnextv2_yolo.synthetic'
GENERATOR_VERSION = 1
META_FILE = 'meta.json'
_SHIFT = 4  # sub-pixel bits for cv2.fillPoly
_NEAR_KERNEL = np.ones((5, 5), np.uint8)  # objects within 2 px "touch"


def _resolve_classes(classes: Union[int, Sequence[str]]) -> Tuple[str, ...]:
    if isinstance(classes, (int, np.integer)):
        if not 1 <= classes <= len(SHAPES):
            raise ValueError(f'classes: expected 1..{len(SHAPES)} classes, '
                             f'got {classes}')
        return SHAPES[:int(classes)]
    if isinstance(classes, str):
        classes = [c.strip() for c in classes.split(',') if c.strip()]
    names = tuple(classes)
    unknown = [n for n in names if n not in SHAPES]
    if unknown or not names or len(set(names)) != len(names):
        raise ValueError(f'classes: expected distinct names from {SHAPES}, '
                         f'got {names}')
    return names


def synthetic_metainfo(classes: Union[int, Sequence[str]] = 4) -> dict:
    """Dataset metainfo for ``metainfo=`` of an mmdet ``CocoDataset``.

    Args:
        classes (int | Sequence[str]): Number of classes (first ``n`` of
            :data:`SHAPES`) or class names. Defaults to 4.

    Returns:
        dict: ``classes`` (tuple of names) and ``palette`` (RGB tuples).
    """
    names = _resolve_classes(classes)
    return dict(classes=names,
                palette=[_PALETTE[SHAPES.index(n)] for n in names])


METAINFO = synthetic_metainfo(DEFAULT_CLASSES)


@dataclass(frozen=True)
class SyntheticConfig:
    """What to draw. All sizes are in pixels.

    Args:
        img_size (int | tuple[int, int]): Image size, square or ``(w, h)``.
            Defaults to 160.
        classes (int | Sequence[str]): Number of classes or class names from
            :data:`SHAPES`. Defaults to 4 (rectangle, ellipse, triangle,
            star).
        min_objects (int): Objects attempted per image, at least. Defaults
            to 1.
        max_objects (int): Objects attempted per image, at most. Defaults
            to 6.
        min_size (float): Smallest long side of an object (stars, crosses
            and hexagons use 1.5x). Defaults to 6.
        max_size (float, optional): Largest long side; None means 0.45 of
            the shorter image side. Long sides are log-uniform in between,
            so small objects are common.
        max_aspect (float): Largest long/short side ratio of rectangles and
            ellipses (other shapes use its square root). Defaults to 2.
        max_rotation (float): Largest rotation in degrees of rectangles and
            crosses; other shapes turn freely. Defaults to 20.
        min_visible (float): Smallest visible fraction of an object's area
            that later objects may leave. Defaults to 0.5.
        min_box (int): Smallest width/height of a visible box. Defaults
            to 4.
        min_contrast (float): Smallest BGR distance of an object's colour to
            what lies under it. Defaults to 60.
        max_distractors (int): Most distractors per image. Defaults to 6.
        noise_std (float): Largest standard deviation of the per-pixel
            (uniform) noise added last (drawn per image from
            ``[noise_std / 4, noise_std]``). Defaults to 8.
    """

    img_size: Union[int, Tuple[int, int]] = 160
    classes: Union[int, Sequence[str]] = 4
    min_objects: int = 1
    max_objects: int = 6
    min_size: float = 6.0
    max_size: Optional[float] = None
    max_aspect: float = 2.0
    max_rotation: float = 20.0
    min_visible: float = 0.5
    min_box: int = 4
    min_contrast: float = 60.0
    max_distractors: int = 6
    noise_std: float = 8.0

    def __post_init__(self) -> None:
        size = self.img_size
        if isinstance(size, (int, np.integer)):
            size = (int(size), int(size))
        size = tuple(int(s) for s in size)
        if len(size) != 2 or min(size) < 16:
            raise ValueError('img_size: expected an int or (w, h) of at '
                             f'least 16 px, got {self.img_size}')
        object.__setattr__(self, 'img_size', size)
        object.__setattr__(self, 'classes', _resolve_classes(self.classes))
        if self.max_size is None:
            object.__setattr__(self, 'max_size', 0.45 * min(size))
        checks = [
            ('max_objects', self.max_objects >= 1),
            ('min_objects', 0 <= self.min_objects <= self.max_objects),
            ('min_box', self.min_box >= 1),
            ('min_size', self.min_size >= self.min_box),
            ('max_size', self.min_size <= self.max_size <= min(size) - 2),
            ('max_aspect', self.max_aspect >= 1),
            ('max_rotation', 0 <= self.max_rotation <= 180),
            ('min_visible', 0 < self.min_visible <= 1),
            ('min_contrast', 0 <= self.min_contrast <= 255),
            ('max_distractors', self.max_distractors >= 0),
            ('noise_std', self.noise_std >= 0),
        ]
        for key, ok in checks:
            if not ok:
                raise ValueError(f'{key}: invalid value {getattr(self, key)} '
                                 f'in {self}')

    @property
    def width(self) -> int:
        return self.img_size[0]

    @property
    def height(self) -> int:
        return self.img_size[1]


@dataclass
class SyntheticImage:
    """One rendered image with its ground truth.

    Attributes:
        image (np.ndarray): ``(H, W, 3)`` uint8 BGR image.
        bboxes (np.ndarray): ``(N, 4)`` float32 boxes ``x0, y0, x1, y1`` in
            pixel-edge coordinates (tight around the visible mask).
        labels (np.ndarray): ``(N,)`` int64 0-based class indices.
        masks (np.ndarray): ``(N, H, W)`` bool visible masks.
        visible (np.ndarray): ``(N,)`` float32 visible fraction of each
            object's full area.
    """

    image: np.ndarray
    bboxes: np.ndarray
    labels: np.ndarray
    masks: np.ndarray
    visible: np.ndarray


def image_rng(seed: int, split: str, index: int) -> np.random.Generator:
    """The random generator of image ``index`` of ``split``."""
    return np.random.default_rng([int(seed), SPLITS.index(split), int(index)])


# ---------------------------------------------------------------- shapes ---
def _rotate(points: np.ndarray, degrees: float) -> np.ndarray:
    a = math.radians(degrees)
    rot = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    return points @ rot.T


def shape_polygon(shape: str, w: float, h: float,
                  rng: np.random.Generator) -> np.ndarray:
    """Outline of an unrotated ``shape`` of nominal size ``w x h``.

    Args:
        shape (str): One of :data:`SHAPES`.
        w (float): Width.
        h (float): Height.
        rng (np.random.Generator): Draws the shape's own details (triangle
            apex, star and cross proportions).

    Returns:
        np.ndarray: ``(K, 2)`` float64 ``x, y`` points centred on 0.
    """
    rx, ry = w / 2, h / 2
    if shape == 'rectangle':
        pts = [(-rx, -ry), (rx, -ry), (rx, ry), (-rx, ry)]
    elif shape == 'ellipse':
        n = int(np.clip(math.pi * (rx + ry) / 1.5, 16, 96))
        t = np.linspace(0, 2 * math.pi, n, endpoint=False)
        return np.stack([rx * np.cos(t), ry * np.sin(t)], 1)
    elif shape == 'triangle':
        apex = rng.uniform(-0.35, 0.35) * w
        pts = [(apex, -ry), (rx, ry), (-rx, ry)]
    elif shape == 'star':
        inner = rng.uniform(0.38, 0.5)
        t = -math.pi / 2 + np.arange(10) * math.pi / 5
        r = np.where(np.arange(10) % 2 == 0, 1.0, inner)
        return np.stack([rx * r * np.cos(t), ry * r * np.sin(t)], 1)
    elif shape == 'cross':
        tx, ty = rx * rng.uniform(0.3, 0.42), ry * rng.uniform(0.3, 0.42)
        pts = [(-tx, -ry), (tx, -ry), (tx, -ty), (rx, -ty), (rx, ty),
               (tx, ty), (tx, ry), (-tx, ry), (-tx, ty), (-rx, ty),
               (-rx, -ty), (-tx, -ty)]
    elif shape == 'hexagon':
        t = np.arange(6) * math.pi / 3
        return np.stack([rx * np.cos(t), ry * np.sin(t)], 1)
    else:
        raise ValueError(f'shape: unknown shape {shape!r}, expected one of '
                         f'{SHAPES}')
    return np.asarray(pts, dtype=np.float64)


def _fill_mask(points: np.ndarray, height: int, width: int) -> np.ndarray:
    """Rasterise a polygon (pixel-centre coordinates) to a bool mask."""
    mask = np.zeros((height, width), np.uint8)
    pts = np.round(points * (1 << _SHIFT)).astype(np.int32)
    cv2.fillPoly(mask, [pts], 1, lineType=cv2.LINE_8, shift=_SHIFT)
    return mask.view(bool)


def mask_to_box(mask: np.ndarray) -> Optional[Tuple[int, int, int, int]]:
    """Tight pixel-edge box ``(x0, y0, x1, y1)`` of a mask; None if empty."""
    cols = np.flatnonzero(mask.any(0))
    if cols.size == 0:
        return None
    rows = np.flatnonzero(mask.any(1))
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


# ------------------------------------------------------------ background ---
def _smooth_noise(rng: np.random.Generator, height: int, width: int,
                  channels: int, cells: int) -> np.ndarray:
    """Noise in [0, 1] that is smooth on the scale ``size / cells``."""
    small = rng.random((cells, cells, channels), dtype=np.float32)
    out = cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC)
    return out.reshape(height, width, channels)


def _background(rng: np.random.Generator, height: int,
                width: int) -> np.ndarray:
    """Gradient + smooth colour noise + optional stripes, float32 BGR."""
    c0, c1 = rng.uniform(0, 255, (2, 3)).astype(np.float32)
    a = rng.uniform(0, 2 * math.pi)
    yy = np.arange(height, dtype=np.float32)[:, None]
    xx = np.arange(width, dtype=np.float32)[None]
    t = xx * math.cos(a) + yy * math.sin(a)
    t = (t - t.min()) / max(float(t.max() - t.min()), 1.0)
    img = c0 + (c1 - c0) * t[..., None]
    amp = rng.uniform(10, 60)
    cells = int(rng.integers(3, 9))
    img += amp * (_smooth_noise(rng, height, width, 3, cells) - 0.5)
    if rng.random() < 0.4:
        period = rng.uniform(4, 16)
        b = rng.uniform(0, math.pi)
        phase = (xx * math.cos(b) + yy * math.sin(b)) * (2 * math.pi / period)
        img += (rng.uniform(8, 30) * np.sin(phase))[..., None]
    return img


def _draw_distractors(img: np.ndarray, rng: np.random.Generator,
                      count: int) -> None:
    """Paint things that belong to no class: lines, scribbles, blobs, dots."""
    height, width = img.shape[:2]
    for _ in range(count):
        kind = rng.integers(4)
        color = tuple(float(c) for c in rng.uniform(0, 255, 3))
        if kind == 0:  # thin straight line
            p = rng.uniform(0, 1, 4) * (width, height, width, height)
            p = np.round(p).astype(int)
            cv2.line(img, (int(p[0]), int(p[1])), (int(p[2]), int(p[3])),
                     color, int(rng.integers(1, 3)), cv2.LINE_AA)
        elif kind == 1:  # scribble: a random-walk polyline
            n = int(rng.integers(4, 9))
            start = rng.uniform(0, 1, 2) * (width, height)
            steps = rng.normal(0, min(width, height) / 10, (n, 2))
            pts = np.round(start + np.cumsum(steps, 0)).astype(np.int32)
            cv2.polylines(img, [pts], False, color, 1, cv2.LINE_AA)
        elif kind == 2:  # translucent amorphous blob
            s = int(rng.integers(10, max(11, min(width, height) // 3)))
            x = int(rng.integers(0, width - s))
            y = int(rng.integers(0, height - s))
            r = np.linspace(-1, 1, s, dtype=np.float32) ** 2
            # round fall-off: no straight edges from the window border
            falloff = np.clip(1 - r[:, None] - r[None], 0, 1)
            blob = _smooth_noise(rng, s, s, 1, 5)[..., 0] * falloff > 0.3
            alpha = rng.uniform(0.25, 0.55)
            patch = img[y:y + s, x:x + s]
            patch[blob] = (1 - alpha) * patch[blob] + alpha * np.float32(color)
        else:  # speckles smaller than any object
            n = int(rng.integers(5, 30))
            xs = rng.integers(0, width - 1, n)
            ys = rng.integers(0, height - 1, n)
            d = rng.integers(1, 3, n)
            for x, y, s in zip(xs, ys, d):
                img[y:y + s, x:x + s] = color


# --------------------------------------------------------------- objects ---
def _object_size(cfg: SyntheticConfig, shape: str,
                 rng: np.random.Generator) -> Tuple[float, float]:
    lo = min(cfg.min_size * _MIN_SIZE_SCALE[shape], cfg.max_size)
    long_side = math.exp(rng.uniform(math.log(lo), math.log(cfg.max_size)))
    max_aspect = cfg.max_aspect if shape in ('rectangle', 'ellipse') \
        else math.sqrt(cfg.max_aspect)
    aspect = math.exp(rng.uniform(0, math.log(max_aspect)))
    short_side = max(long_side / aspect, min(long_side, lo))
    return (long_side, short_side) if rng.random() < 0.5 \
        else (short_side, long_side)


def _place(cfg: SyntheticConfig, poly: np.ndarray,
           rng: np.random.Generator) -> np.ndarray:
    """Move a centred polygon to a random position inside the image."""
    w, h = cfg.img_size
    lo, hi = poly.min(0), poly.max(0)
    extent = hi - lo
    limit = np.array([w - 1, h - 1], np.float64)
    if (extent > limit).any():
        poly = poly * float((limit / np.maximum(extent, 1e-6)).min())
        lo, hi = poly.min(0), poly.max(0)
    cx = rng.uniform(-lo[0], w - 1 - hi[0])
    cy = rng.uniform(-lo[1], h - 1 - hi[1])
    return poly + (cx, cy)


def _box_ok(mask: np.ndarray, min_box: int) -> bool:
    box = mask_to_box(mask)
    return box is not None and min(box[2] - box[0], box[3] - box[1]) >= min_box


def _pick_color(rng: np.random.Generator, under: np.ndarray,
                min_contrast: float, tries: int = 16) -> np.ndarray:
    """A random colour at least ``min_contrast`` away from every row of
    ``under`` (colours it must stand out from); the best of ``tries``
    otherwise."""
    best, best_d = None, -1.0
    for _ in range(tries):
        color = rng.uniform(0, 255, 3).astype(np.float32)
        d = float(np.linalg.norm(under - color, axis=1).min())
        if d >= min_contrast:
            return color
        if d > best_d:
            best, best_d = color, d
    return best


def _paint(img: np.ndarray, mask: np.ndarray, color: np.ndarray,
           rng: np.random.Generator) -> None:
    """Fill ``mask`` with ``color`` and a gentle linear shading."""
    ys, xs = np.nonzero(mask)
    a = rng.uniform(0, 2 * math.pi)
    t = xs * math.cos(a) + ys * math.sin(a)
    t = (t - t.mean()) / max(float(np.ptp(t)), 1.0)
    shade = rng.uniform(0, 30) * t
    img[ys, xs] = color + shade[:, None].astype(np.float32)


def render_image(cfg: SyntheticConfig,
                 rng: np.random.Generator) -> SyntheticImage:
    """Draw one image and its ground truth.

    Args:
        cfg (SyntheticConfig): What to draw.
        rng (np.random.Generator): The image's random generator (see
            :func:`image_rng`).

    Returns:
        SyntheticImage: The image, boxes, labels and visible masks.
    """
    w, h = cfg.img_size
    img = _background(rng, h, w)
    _draw_distractors(img, rng, int(rng.integers(0, cfg.max_distractors + 1)))
    labels: List[int] = []
    masks: List[np.ndarray] = []  # visible masks, updated as objects land
    areas: List[int] = []
    colors: List[np.ndarray] = []
    for _ in range(int(rng.integers(cfg.min_objects, cfg.max_objects + 1))):
        label = int(rng.integers(len(cfg.classes)))
        shape = cfg.classes[label]
        ow, oh = _object_size(cfg, shape, rng)
        angle = rng.uniform(0, 360) if shape in _FREE_ROTATION \
            else rng.uniform(-cfg.max_rotation, cfg.max_rotation)
        poly = _rotate(shape_polygon(shape, ow, oh, rng), angle)
        for _attempt in range(20):
            mask = _fill_mask(_place(cfg, poly, rng), h, w)
            if not _box_ok(mask, cfg.min_box):
                continue
            hits = [i for i, m in enumerate(masks) if (m & mask).any()]
            if all(_still_visible(masks[i] & ~mask, areas[i], cfg)
                   for i in hits):
                break
        else:
            continue  # no placement keeps the earlier objects visible
        # stand out from what lies under the object and from objects it
        # overlaps or touches
        grown = cv2.dilate(mask.view(np.uint8), _NEAR_KERNEL).view(bool)
        near = [i for i, m in enumerate(masks) if (m & grown).any()]
        under = np.concatenate([img[mask].mean(0, keepdims=True)] +
                               [colors[i][None] for i in near])
        color = _pick_color(rng, under, cfg.min_contrast)
        _paint(img, mask, color, rng)
        for i in hits:
            masks[i] = masks[i] & ~mask
        labels.append(label)
        masks.append(mask)
        areas.append(int(mask.sum()))
        colors.append(color)
    sigma = rng.uniform(cfg.noise_std / 4, cfg.noise_std)
    # uniform noise of standard deviation sigma (4x faster than Gaussian)
    noise = rng.random(img.shape, np.float32) - np.float32(0.5)
    img += np.float32(sigma * math.sqrt(12)) * noise
    image = np.clip(img + 0.5, 0, 255).astype(np.uint8)
    boxes = [mask_to_box(m) for m in masks]
    return SyntheticImage(
        image=image,
        bboxes=np.asarray(boxes, np.float32).reshape(-1, 4),
        labels=np.asarray(labels, np.int64),
        masks=np.asarray(masks, bool).reshape(-1, h, w),
        visible=np.asarray([m.sum() / a for m, a in zip(masks, areas)],
                           np.float32))


def _still_visible(visible: np.ndarray, area: int,
                   cfg: SyntheticConfig) -> bool:
    return visible.sum() >= cfg.min_visible * area and \
        _box_ok(visible, cfg.min_box)


def render_sample(cfg: SyntheticConfig, seed: int, split: str,
                  index: int) -> SyntheticImage:
    """Image ``index`` (0-based) of ``split`` as :func:`make_synthetic_dataset`
    writes it (before image compression)."""
    return render_image(cfg, image_rng(seed, split, index))


def draw_boxes(image: np.ndarray, bboxes: np.ndarray, labels: np.ndarray,
               classes: Sequence[str], scale: int = 1) -> np.ndarray:
    """A copy of ``image`` (BGR), upscaled ``scale`` times, with its boxes
    drawn as one-pixel outlines just outside each box and class initials.

    Args:
        image (np.ndarray): ``(H, W, 3)`` uint8 BGR image.
        bboxes (np.ndarray): ``(N, 4)`` pixel-edge ``x0, y0, x1, y1`` boxes.
        labels (np.ndarray): ``(N,)`` 0-based class indices.
        classes (Sequence[str]): Class names.
        scale (int): Nearest-neighbour upscaling factor. Defaults to 1.

    Returns:
        np.ndarray: The annotated BGR image.
    """
    out = cv2.resize(image, None, fx=scale, fy=scale,
                     interpolation=cv2.INTER_NEAREST)
    palette = synthetic_metainfo(classes)['palette']
    for box, label in zip(np.asarray(bboxes), np.asarray(labels)):
        x0, y0, x1, y1 = (int(round(v * scale)) for v in box)
        color = tuple(int(c) for c in palette[int(label)][::-1])
        # pixel-edge box -> outline on the pixels bordering it
        cv2.rectangle(out, (x0 - 1, y0 - 1), (x1, y1), color, 1)
        if scale > 1:
            cv2.putText(out, classes[int(label)][:3], (x0, max(y0 - 3, 8)),
                        cv2.FONT_HERSHEY_SIMPLEX, 0.3, color, 1,
                        cv2.LINE_AA)
    return out


# --------------------------------------------------------------- writing ---
@dataclass
class SyntheticDataset:
    """Where a generated dataset lives.

    Attributes:
        root (str): Dataset folder (the mmdet ``data_root``).
        classes (tuple[str]): Class names, in label order.
        ann_files (dict): Split -> COCO annotation file.
        img_dirs (dict): Split -> image folder (shared by both layouts).
        label_dirs (dict): Split -> YOLO label folder.
        data_yaml (str): Ultralytics dataset file.
        meta (dict): Contents of ``meta.json``.
        reused (bool): Whether an existing dataset was reused.
    """

    root: str
    classes: Tuple[str, ...]
    ann_files: Dict[str, str]
    img_dirs: Dict[str, str]
    label_dirs: Dict[str, str]
    data_yaml: str
    meta: dict = field(repr=False)
    reused: bool = False

    @property
    def metainfo(self) -> dict:
        return synthetic_metainfo(self.classes)

    def coco_dataset_cfg(self, split: str, pipeline: Sequence[dict] = (),
                         **kwargs) -> dict:
        """An mmdet ``CocoDataset`` config for ``split``."""
        if split not in SPLITS:
            raise ValueError(f'split: expected one of {SPLITS}, got {split!r}')
        return dict(type='CocoDataset', data_root=self.root,
                    ann_file=f'annotations/instances_{split}.json',
                    data_prefix=dict(img=f'images/{split}/'),
                    metainfo=dict(classes=self.classes),
                    pipeline=list(pipeline), **kwargs)


def _entries(splits: Sequence[str] = SPLITS) -> List[str]:
    """Paths (relative to the root) that the generator owns."""
    out = ['data.yaml', 'classes.txt']
    for s in splits:
        out += [f'images/{s}', f'labels/{s}',
                f'annotations/instances_{s}.json']
    return out


def _file_name(index: int, img_format: str) -> str:
    return f'{index + 1:06d}.{img_format}'


def _encode(image: np.ndarray, img_format: str, jpeg_quality: int) -> bytes:
    params = [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality] \
        if img_format == 'jpg' else [cv2.IMWRITE_PNG_COMPRESSION, 3]
    ok, buf = cv2.imencode('.' + img_format, image, params)
    if not ok:
        raise RuntimeError(f'img_format: OpenCV failed to encode {img_format}')
    return buf.tobytes()


def _write_split(tmp: str, split: str, num: int, cfg: SyntheticConfig,
                 seed: int, img_format: str, jpeg_quality: int) -> int:
    """Write images, YOLO labels and the COCO file of a split; returns the
    number of instances."""
    w, h = cfg.img_size
    img_dir = osp.join(tmp, 'images', split)
    lbl_dir = osp.join(tmp, 'labels', split)
    os.makedirs(img_dir)
    os.makedirs(lbl_dir)
    images, anns = [], []
    for index in range(num):
        sample = render_sample(cfg, seed, split, index)
        name = _file_name(index, img_format)
        with open(osp.join(img_dir, name), 'wb') as f:
            f.write(_encode(sample.image, img_format, jpeg_quality))
        image_id = index + 1
        images.append(dict(id=image_id, file_name=name, width=w, height=h))
        lines = []
        for box, label, mask in zip(sample.bboxes, sample.labels,
                                    sample.masks):
            x0, y0, x1, y1 = (int(v) for v in box)
            anns.append(dict(id=len(anns) + 1, image_id=image_id,
                             category_id=int(label) + 1,
                             bbox=[x0, y0, x1 - x0, y1 - y0],
                             area=int(mask.sum()), iscrowd=0))
            lines.append(f'{int(label)} {(x0 + x1) / 2 / w:.6f} '
                         f'{(y0 + y1) / 2 / h:.6f} {(x1 - x0) / w:.6f} '
                         f'{(y1 - y0) / h:.6f}\n')
        txt = osp.join(lbl_dir, osp.splitext(name)[0] + '.txt')
        with open(txt, 'w', encoding='utf-8', newline='\n') as f:
            f.writelines(lines)
    coco = dict(
        info=dict(description='convnextv2_yolo synthetic shapes',
                  version=str(GENERATOR_VERSION)),
        licenses=[],
        images=images,
        annotations=anns,
        categories=[dict(id=i + 1, name=n, supercategory='shape')
                    for i, n in enumerate(cfg.classes)])
    os.makedirs(osp.join(tmp, 'annotations'), exist_ok=True)
    with open(osp.join(tmp, 'annotations', f'instances_{split}.json'), 'w',
              encoding='utf-8', newline='\n') as f:
        json.dump(coco, f, separators=(',', ':'))
    return len(anns)


def _write_yolo_files(tmp: str, root: str, classes: Sequence[str]) -> None:
    with open(osp.join(tmp, 'classes.txt'), 'w', encoding='utf-8',
              newline='\n') as f:
        f.writelines(n + '\n' for n in classes)
    names = ''.join(f'  {i}: {n}\n' for i, n in enumerate(classes))
    with open(osp.join(tmp, 'data.yaml'), 'w', encoding='utf-8',
              newline='\n') as f:
        f.write('# Ultralytics dataset file written by '
                f'{GENERATOR_NAME}\n'
                f'path: {json.dumps(root)}\n'
                'train: images/train\nval: images/val\n'
                f'nc: {len(classes)}\nnames:\n{names}')


def _read_meta(root: str) -> Optional[dict]:
    path = osp.join(root, META_FILE)
    if not osp.isfile(path):
        return None
    try:
        with open(path, encoding='utf-8') as f:
            meta = json.load(f)
    except (OSError, ValueError) as e:
        raise ValueError(f'{path}: unreadable dataset meta file ({e}); '
                         'delete it to regenerate the dataset') from e
    if not isinstance(meta, dict) or meta.get('generator') != GENERATOR_NAME:
        raise FileExistsError(f'{path}: not written by {GENERATOR_NAME}; '
                              'refusing to overwrite the folder')
    return meta


def _is_complete(root: str, meta: dict) -> bool:
    """Whether every file the meta promises exists."""
    params = meta['params']
    for split in SPLITS:
        num = params[f'num_{split}']
        if not osp.isfile(osp.join(root, 'annotations',
                                   f'instances_{split}.json')):
            return False
        for index in range(num):
            name = _file_name(index, params['img_format'])
            if not osp.isfile(osp.join(root, 'images', split, name)) or \
                    not osp.isfile(osp.join(root, 'labels', split,
                                            osp.splitext(name)[0] + '.txt')):
                return False
    return all(osp.isfile(osp.join(root, f)) for f in ('data.yaml', 'classes.txt'))


@contextmanager
def _locked(root: str) -> Iterator[None]:
    """Serialise generators working on the same folder (e.g. several
    training processes calling this on first use)."""
    try:
        import fcntl
    except ImportError:  # not POSIX: no locking
        yield
        return
    with open(osp.join(root, '.synthetic.lock'), 'w') as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _install(tmp: str, root: str) -> None:
    """Replace the generator's entries in ``root`` with those in ``tmp``."""
    # if this is interrupted, the folder stays ours but matches no parameters
    with open(osp.join(root, META_FILE), 'w', encoding='utf-8') as f:
        json.dump(dict(generator=GENERATOR_NAME, version=GENERATOR_VERSION,
                       params=None), f)
    for rel in _entries():
        dst = osp.join(root, rel)
        if osp.isdir(dst) and not osp.islink(dst):
            shutil.rmtree(dst)
        elif osp.lexists(dst):
            os.remove(dst)
        os.makedirs(osp.dirname(dst), exist_ok=True)
        os.replace(osp.join(tmp, rel), dst)
    # meta.json last: its presence marks a complete dataset
    os.replace(osp.join(tmp, META_FILE), osp.join(root, META_FILE))


def make_synthetic_dataset(out_dir: str,
                           num_train: int = 512,
                           num_val: int = 128,
                           seed: int = 0,
                           img_format: str = 'jpg',
                           jpeg_quality: int = 95,
                           **cfg_kwargs) -> SyntheticDataset:
    """Generate (or reuse) a synthetic dataset in COCO and YOLO layouts.

    Layout of ``out_dir``::

        images/{train,val}/000001.jpg     shared by both layouts
        annotations/instances_{train,val}.json   COCO
        labels/{train,val}/000001.txt     YOLO: cls cx cy w h (normalised)
        classes.txt, data.yaml            YOLO
        meta.json                         parameters and counts

    If ``out_dir`` already holds a complete dataset written with the same
    parameters it is reused untouched. Otherwise the dataset is generated in
    a temporary sibling folder and then replaces the generator's own entries
    in ``out_dir``; other files there are kept. A folder holding some of
    those entries but no ``meta.json`` of this generator is refused.

    Args:
        out_dir (str): Dataset folder.
        num_train (int): Training images. Defaults to 512.
        num_val (int): Validation images. Defaults to 128.
        seed (int): Random seed; the same seed gives identical files.
            Defaults to 0.
        img_format (str): ``'jpg'`` or ``'png'``. Defaults to ``'jpg'``.
        jpeg_quality (int): JPEG quality. Defaults to 95.
        **cfg_kwargs: Fields of :class:`SyntheticConfig` (``img_size``,
            ``classes``, ``max_objects``, ``min_size``, ...).

    Returns:
        SyntheticDataset: Paths, classes and whether it was reused.
    """
    cfg = SyntheticConfig(**cfg_kwargs)
    img_format = img_format.lower().lstrip('.').replace('jpeg', 'jpg')
    if img_format not in ('jpg', 'png'):
        raise ValueError(f"img_format: expected 'jpg' or 'png', got "
                         f'{img_format!r}')
    for key, value in (('num_train', num_train), ('num_val', num_val)):
        if not isinstance(value, (int, np.integer)) or value < 0:
            raise ValueError(f'{key}: expected an int >= 0, got {value!r}')
    if not 1 <= jpeg_quality <= 100:
        raise ValueError(f'jpeg_quality: expected 1..100, got {jpeg_quality}')
    params = dict(asdict(cfg), num_train=int(num_train), num_val=int(num_val),
                  seed=int(seed), img_format=img_format,
                  jpeg_quality=int(jpeg_quality))
    params = json.loads(json.dumps(params))  # tuples -> lists, as stored
    root = osp.abspath(out_dir)
    os.makedirs(root, exist_ok=True)
    with _locked(root):
        meta = _read_meta(root)
        if meta is not None and meta.get('version') == GENERATOR_VERSION \
                and meta.get('params') == params and _is_complete(root, meta):
            return _result(root, cfg, meta, reused=True)
        if meta is None:
            taken = [r for r in _entries() + [META_FILE]
                     if osp.lexists(osp.join(root, r))]
            if taken:
                raise FileExistsError(
                    f'{root}: holds {taken} but no {META_FILE} of '
                    f'{GENERATOR_NAME}; refusing to overwrite them')
        tmp = f'{root}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}'
        try:
            start = time.perf_counter()
            os.makedirs(tmp)
            counts = {}
            for split, num in (('train', num_train), ('val', num_val)):
                n_inst = _write_split(tmp, split, int(num), cfg, int(seed),
                                      img_format, int(jpeg_quality))
                counts[split] = dict(images=int(num), instances=n_inst)
            _write_yolo_files(tmp, root, cfg.classes)
            meta = dict(generator=GENERATOR_NAME, version=GENERATOR_VERSION,
                        params=params, classes=list(cfg.classes),
                        counts=counts)
            with open(osp.join(tmp, META_FILE), 'w', encoding='utf-8',
                      newline='\n') as f:
                json.dump(meta, f, indent=2)
                f.write('\n')
            _install(tmp, root)
            meta = dict(meta, seconds=round(time.perf_counter() - start, 3))
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return _result(root, cfg, meta, reused=False)


def _result(root: str, cfg: SyntheticConfig, meta: dict,
            reused: bool) -> SyntheticDataset:
    return SyntheticDataset(
        root=root,
        classes=cfg.classes,
        ann_files={s: osp.join(root, 'annotations', f'instances_{s}.json')
                   for s in SPLITS},
        img_dirs={s: osp.join(root, 'images', s) for s in SPLITS},
        label_dirs={s: osp.join(root, 'labels', s) for s in SPLITS},
        data_yaml=osp.join(root, 'data.yaml'),
        meta=meta,
        reused=reused)
