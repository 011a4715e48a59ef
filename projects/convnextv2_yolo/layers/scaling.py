"""Compound scaling of the YOLO families: the reference's scale tables and the rules that apply them."""
import math
from typing import Dict, NamedTuple, Optional


def make_divisible(x: float, divisor: int = 8) -> int:
    """Smallest multiple of ``divisor`` that is >= ``x``."""
    return int(math.ceil(x / divisor) * divisor)


def scale_channels(channels: int, widen_factor: float, max_channels: int = 1024,
                   divisor: int = 8) -> int:
    """Channels of a layer at a model scale: ``ceil(min(c, max) * w / 8) * 8``.

    Args:
        channels (int): Channels at widen_factor 1.0.
        widen_factor (float): Width multiplier.
        max_channels (int): Cap applied before widening. Defaults to 1024.
        divisor (int): Result is a multiple of it. Defaults to 8.
    """
    return make_divisible(min(channels, max_channels) * widen_factor, divisor)


def scale_depth(num_blocks: int, deepen_factor: float) -> int:
    """Blocks of a layer at a model scale: ``max(round(n * d), 1)`` if n > 1."""
    return max(round(num_blocks * deepen_factor), 1) if num_blocks > 1 else num_blocks


class YOLOScale(NamedTuple):
    """One row of a ``scales:`` table: how a model size derives from the width-1.0 layout.

    Attributes:
        deepen_factor (float): Depth multiplier (the row's ``depth``).
        widen_factor (float): Width multiplier (the row's ``width``).
        max_channels (int): Channel cap applied before widening.
        c3k_all (bool): Every C3k2 uses C3k blocks (the reference does so at
            scales m, l and x of YOLO11).
    """
    deepen_factor: float
    widen_factor: float
    max_channels: int
    c3k_all: bool = False


# The reference's ``scales:`` rows [depth, width, max_channels]
# (ultralytics/cfg/models/11/yolo11.yaml, 26/yolo26.yaml, v8/yolov8.yaml) and its
# C3k choice (nn/tasks.py ``parse_model``: C3k2 gets c3k=True at scales m, l, x).
# A family is added with its rows here and its layer plan in the backbone and neck.
_YOLO11_ROWS = {
    'n': YOLOScale(0.50, 0.25, 1024),
    's': YOLOScale(0.50, 0.50, 1024),
    'm': YOLOScale(0.50, 1.00, 512, c3k_all=True),
    'l': YOLOScale(1.00, 1.00, 512, c3k_all=True),
    'x': YOLOScale(1.00, 1.50, 512, c3k_all=True),
}
YOLO_SCALES: Dict[str, Dict[str, YOLOScale]] = {
    'yolo11': dict(_YOLO11_ROWS),
    'yolov8': {
        'n': YOLOScale(0.33, 0.25, 1024),
        's': YOLOScale(0.33, 0.50, 1024),
        'm': YOLOScale(0.67, 0.75, 768),
        'l': YOLOScale(1.00, 1.00, 512),
        'x': YOLOScale(1.00, 1.25, 512),
    },
    # YOLO26's scales: table is YOLO11's (yolo26.yaml lines 13-17), and so is its C3k choice
    'yolo26': dict(_YOLO11_ROWS),
}
# The scale used when neither a scale nor a factor is given: the width-1.0 layout.
UNSCALED = YOLOScale(1.0, 1.0, 1024, False)


def resolve_scale(version: str,
                  scale: Optional[str] = None,
                  deepen_factor: Optional[float] = None,
                  widen_factor: Optional[float] = None,
                  max_channels: Optional[int] = None,
                  c3k_all: Optional[bool] = None,
                  owner: str = 'YOLO') -> YOLOScale:
    """The factors of a model: a row of :data:`YOLO_SCALES` or explicit values.

    Args:
        version (str): Model family, a key of :data:`YOLO_SCALES`.
        scale (str, optional): Row name ('n', 's', 'm', 'l', 'x').
        deepen_factor (float, optional): Explicit depth multiplier.
        widen_factor (float, optional): Explicit width multiplier.
        max_channels (int, optional): Explicit channel cap.
        c3k_all (bool, optional): Explicit C3k choice.
        owner (str): Class name used in error messages.

    Returns:
        YOLOScale: The row, or the explicit factors with the missing ones
        taken from :data:`UNSCALED` (1.0, 1.0, 1024, False).

    Raises:
        ValueError: Unknown version or scale, or a scale given together with
            explicit factors.
    """
    if version not in YOLO_SCALES:
        raise ValueError(f'{owner}: version must be one of {tuple(YOLO_SCALES)}, got {version!r}')
    explicit = dict(deepen_factor=deepen_factor, widen_factor=widen_factor, max_channels=max_channels,
                    c3k_all=c3k_all)
    explicit = {k: v for k, v in explicit.items() if v is not None}
    if scale is None:
        return UNSCALED._replace(**explicit)
    if explicit:
        raise ValueError(f'{owner}: give either scale or explicit factors, not both: got scale={scale!r} and '
                         + ', '.join(f'{k}={v!r}' for k, v in explicit.items()))
    if scale not in YOLO_SCALES[version]:
        raise ValueError(f'{owner}: {version} has scales {tuple(YOLO_SCALES[version])}, got scale={scale!r}')
    return YOLO_SCALES[version][scale]


def deprecated_family(arch: Optional[str], version: Optional[str], owner: str) -> str:
    """The family of a deprecated ``YOLO11*`` alias: ``arch`` (its old name) or ``version``.

    Effective-config dumps of old configs write both (``arch`` given, ``version`` its default).

    Raises:
        ValueError: both are given and differ.
    """
    if arch is not None and version is not None and arch != version:
        raise ValueError(f'{owner}: arch={arch!r} (the old name of version) and version={version!r} differ')
    return arch or version or 'yolo11'


def reject_auto(owner: str, **args) -> None:
    """Refuse ``'auto'`` in a module built alone: :class:`~convnextv2_yolo.detectors.YOLODetector` resolves it
    from the module before (neck ``in_channels`` / ``sppf_c2psa`` from the backbone, head ``in_channels`` from
    the neck) and only then builds the module.

    Raises:
        ValueError: an argument is ``'auto'``; the message names it.
    """
    auto = [name for name, value in args.items() if isinstance(value, str) and value == 'auto']
    if auto:
        raise ValueError(f"{owner}: {', '.join(auto)}='auto' is resolved by YOLODetector from the module before; "
                         f'built alone, {owner} needs real values')
