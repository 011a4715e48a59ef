"""Compound-scaling rules of the YOLO model family (depth, width, max channels)."""
import math


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
