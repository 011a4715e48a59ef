"""The YOLO convolution unit: Conv2d (no bias) -> BatchNorm2d -> SiLU."""
import math
from typing import Optional

import torch
import torch.nn as nn

# Ultralytics' BatchNorm settings (torch momentum 0.03 == 1 - 0.97 decay).
BN_EPS = 1e-3
BN_MOMENTUM = 0.03


def autopad(k: int, p: Optional[int] = None, d: int = 1) -> int:
    """'Same' padding for an odd kernel ``k`` with dilation ``d``."""
    if p is not None:
        return p
    k = d * (k - 1) + 1 if d > 1 else k
    return k // 2


class Conv(nn.Module):
    """Conv2d(bias=False) + BatchNorm2d(eps=1e-3, momentum=0.03) + SiLU.

    Sub-module names (``conv``, ``bn``) follow the reference so that its
    checkpoints map one to one.

    Args:
        c1 (int): Input channels.
        c2 (int): Output channels.
        k (int): Kernel size. Defaults to 1.
        s (int): Stride. Defaults to 1.
        p (int, optional): Padding; 'same' padding when None.
        g (int): Groups. Defaults to 1.
        d (int): Dilation. Defaults to 1.
        act (bool): Apply SiLU. Defaults to True.
    """

    def __init__(self, c1: int, c2: int, k: int = 1, s: int = 1,
                 p: Optional[int] = None, g: int = 1, d: int = 1,
                 act: bool = True) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c1, c2, k, s, autopad(k, p, d), groups=g,
                              dilation=d, bias=False)
        self.bn = nn.BatchNorm2d(c2, eps=BN_EPS, momentum=BN_MOMENTUM)
        self.act = nn.SiLU() if act else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))


class DWConv(Conv):
    """Depthwise-style Conv with ``groups = gcd(c1, c2)``."""

    def __init__(self, c1: int, c2: int, k: int = 1, s: int = 1, d: int = 1,
                 act: bool = True) -> None:
        super().__init__(c1, c2, k, s, g=math.gcd(c1, c2), d=d, act=act)
