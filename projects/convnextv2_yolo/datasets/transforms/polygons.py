"""Instance polygons (mmdet ``PolygonMasks``, in pixels) moved exactly like their boxes.

The mosaic and the letterbox scale and shift boxes in float32 (``HorizontalBoxes``); the polygons
are moved with the same float32 operations, so a polygon whose bounding box was its box keeps
that box bit for bit (the mosaic's clipping and filtering included).
"""
from typing import List, Optional, Sequence, Tuple

import numpy as np
from mmdet.structures.mask import PolygonMasks

# all vertices of an image's polygons as one (K, 2) float32 array, and per instance the number of
# vertices of each of its parts
Packed = Tuple[np.ndarray, List[List[int]]]


def pack_polygons(masks: PolygonMasks) -> Packed:
    """``masks`` as one float32 (K, 2) vertex array and the vertex counts of each instance's parts."""
    counts = [[len(p) // 2 for p in polys] for polys in masks.masks]
    parts = [np.asarray(p, dtype=np.float32).reshape(-1) for polys in masks.masks for p in polys]
    for p in parts:
        if len(p) % 2:
            raise ValueError(f'polygon with an odd number of coordinates ({len(p)}): expected x0, y0, x1, y1, ...')
    points = np.concatenate(parts).reshape(-1, 2) if parts else np.zeros((0, 2), np.float32)
    return points, counts


def unpack_polygons(points: np.ndarray, counts: Sequence[Sequence[int]]) -> List[List[np.ndarray]]:
    """The ``PolygonMasks.masks`` lists (flat x0, y0, ... arrays, views of ``points``) of a packed array."""
    flat = points.reshape(-1)
    sizes = [2 * n for parts in counts for n in parts]
    pieces = np.split(flat, np.cumsum(sizes)[:-1]) if sizes else []
    out, i = [], 0
    for parts in counts:
        out.append(pieces[i:i + len(parts)])
        i += len(parts)
    return out


def scale_shift_points(points: np.ndarray, scale: Optional[Tuple[float, float]] = None,
                       offset: Tuple[float, float] = (0, 0)) -> np.ndarray:
    """``points * scale + offset`` in float32, the float32 operations of ``HorizontalBoxes`` (a new array)."""
    points = points.astype(np.float32)  # a copy
    if scale is not None:
        points *= np.array(scale, dtype=np.float32)
    if offset[0] or offset[1]:
        points += np.array(offset, dtype=np.float32)
    return points


def clip_points(points: np.ndarray, width: float, height: float) -> np.ndarray:
    """x clipped to [0, width] and y to [0, height] (the reference's ``Instances.clip`` on segments), in place."""
    np.clip(points[:, 0], 0, width, out=points[:, 0])
    np.clip(points[:, 1], 0, height, out=points[:, 1])
    return points


def scale_shift_polygons(masks: PolygonMasks, scale: Tuple[float, float], offset: Tuple[float, float],
                         out_hw: Tuple[int, int]) -> PolygonMasks:
    """``masks`` scaled per axis (x, y) then shifted by ``offset`` (x, y) on an ``out_hw`` canvas."""
    points, counts = pack_polygons(masks)
    points = scale_shift_points(points, scale, offset)
    return PolygonMasks(unpack_polygons(points, counts), int(out_hw[0]), int(out_hw[1]))
