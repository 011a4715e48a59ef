"""YOLOv8 / YOLO11 / YOLO26 building blocks: Bottleneck, C2f, C3k, C3k2, SPPF, C2PSA.

The computation and the sub-module names (``cv1``, ``cv2``, ``cv3``, ``m``,
``qkv``, ``proj``, ``pe``, ``attn``, ``ffn``) follow the reference
implementation, so that its checkpoints map one to one onto these modules.
"""
from typing import Sequence

import torch
import torch.nn as nn

from .conv import Conv


class Bottleneck(nn.Module):
    """Two convolutions with an optional residual connection.

    Args:
        c1 (int): Input channels.
        c2 (int): Output channels.
        shortcut (bool): Add the input to the output (only when
            ``c1 == c2``). Defaults to True.
        g (int): Groups of the second convolution. Defaults to 1.
        k (Sequence[int]): Kernel sizes of the two convolutions.
            Defaults to (3, 3).
        e (float): Hidden channels as a fraction of ``c2``. Defaults to 0.5.
    """

    def __init__(self, c1: int, c2: int, shortcut: bool = True, g: int = 1,
                 k: Sequence[int] = (3, 3), e: float = 0.5) -> None:
        super().__init__()
        hidden = int(c2 * e)
        self.cv1 = Conv(c1, hidden, k[0], 1)
        self.cv2 = Conv(hidden, c2, k[1], 1, g=g)
        self.add = shortcut and c1 == c2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.cv2(self.cv1(x))
        return x + y if self.add else y


class C2f(nn.Module):
    """CSP block with two convolutions whose every block output is kept.

    ``cv1`` maps the input to ``2c`` channels, split into two halves; each
    block of ``m`` runs on the newest chunk; all chunks are concatenated and
    fused by ``cv2``.

    Args:
        c1 (int): Input channels.
        c2 (int): Output channels.
        n (int): Number of blocks. Defaults to 1.
        shortcut (bool): Residuals inside the blocks. Defaults to False.
        g (int): Groups of the blocks' second convolution. Defaults to 1.
        e (float): Hidden channels ``c`` as a fraction of ``c2``.
            Defaults to 0.5.
    """

    def __init__(self, c1: int, c2: int, n: int = 1, shortcut: bool = False,
                 g: int = 1, e: float = 0.5) -> None:
        super().__init__()
        self.c = int(c2 * e)
        self.cv1 = Conv(c1, 2 * self.c, 1, 1)
        self.cv2 = Conv((2 + n) * self.c, c2, 1)
        self.m = nn.ModuleList(self._make_block(shortcut, g) for _ in range(n))

    def _make_block(self, shortcut: bool, g: int) -> nn.Module:
        return Bottleneck(self.c, self.c, shortcut, g, k=(3, 3), e=1.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        chunks = list(self.cv1(x).chunk(2, 1))
        for block in self.m:
            chunks.append(block(chunks[-1]))
        return self.cv2(torch.cat(chunks, 1))


class C3(nn.Module):
    """CSP bottleneck with three convolutions.

    ``cv3(cat(m(cv1(x)), cv2(x)))``.

    Args:
        c1 (int): Input channels.
        c2 (int): Output channels.
        n (int): Number of Bottlenecks. Defaults to 1.
        shortcut (bool): Residuals inside the Bottlenecks. Defaults to True.
        g (int): Groups. Defaults to 1.
        e (float): Hidden channels as a fraction of ``c2``. Defaults to 0.5.
        k (Sequence[int]): Kernel sizes of the Bottlenecks' convolutions.
            Defaults to (1, 3).
    """

    def __init__(self, c1: int, c2: int, n: int = 1, shortcut: bool = True,
                 g: int = 1, e: float = 0.5,
                 k: Sequence[int] = (1, 3)) -> None:
        super().__init__()
        hidden = int(c2 * e)
        self.cv1 = Conv(c1, hidden, 1, 1)
        self.cv2 = Conv(c1, hidden, 1, 1)
        self.cv3 = Conv(2 * hidden, c2, 1)
        self.m = nn.Sequential(*(
            Bottleneck(hidden, hidden, shortcut, g, k=tuple(k), e=1.0)
            for _ in range(n)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.cv3(torch.cat((self.m(self.cv1(x)), self.cv2(x)), 1))


class C3k(C3):
    """C3 whose Bottlenecks both use a ``k x k`` kernel.

    Args:
        c1 (int): Input channels.
        c2 (int): Output channels.
        n (int): Number of Bottlenecks. Defaults to 1.
        shortcut (bool): Residuals inside the Bottlenecks. Defaults to True.
        g (int): Groups. Defaults to 1.
        e (float): Hidden channels as a fraction of ``c2``. Defaults to 0.5.
        k (int): Kernel size. Defaults to 3.
    """

    def __init__(self, c1: int, c2: int, n: int = 1, shortcut: bool = True,
                 g: int = 1, e: float = 0.5, k: int = 3) -> None:
        super().__init__(c1, c2, n, shortcut, g, e, k=(k, k))


class C3k2(C2f):
    """YOLO11's C2f variant whose blocks are C3k (``c3k=True``) or Bottleneck;
    YOLO26 adds attention blocks (``attn=True``).

    Follows ``C3k2`` of ultralytics/nn/modules/block.py (8.4), including its
    argument order ``(c1, c2, n, c3k, e, attn, g, shortcut)``. Each of the
    ``n`` blocks of ``m`` maps ``(B, c, H, W)`` to ``(B, c, H, W)`` with
    ``c = int(c2 * e)``; the first matching case applies:

    * ``attn``: ``Sequential(Bottleneck(c, c, shortcut, g),
      PSABlock(c, attn_ratio=0.5, num_heads=max(c // 64, 1)))`` (``attn``
      takes precedence over ``c3k``);
    * ``c3k``: ``C3k(c, c, 2, shortcut, g)``;
    * else ``Bottleneck(c, c, shortcut, g)`` (3x3, 3x3, e=0.5).

    Args:
        c1 (int): Input channels.
        c2 (int): Output channels.
        n (int): Number of blocks. Defaults to 1.
        c3k (bool): Use two-Bottleneck C3k blocks instead of single
            Bottlenecks. Defaults to False.
        e (float): Hidden channels as a fraction of ``c2``. Defaults to 0.5.
        attn (bool): Bottleneck + PSABlock blocks (YOLO26's last neck
            layer). Defaults to False.
        g (int): Groups. Defaults to 1.
        shortcut (bool): Residuals inside the blocks. Defaults to True.
    """

    def __init__(self, c1: int, c2: int, n: int = 1, c3k: bool = False,
                 e: float = 0.5, attn: bool = False, g: int = 1,
                 shortcut: bool = True) -> None:
        self.use_c3k = c3k
        self.use_attn = attn
        super().__init__(c1, c2, n, shortcut, g, e)

    def _make_block(self, shortcut: bool, g: int) -> nn.Module:
        if self.use_attn:
            return nn.Sequential(
                Bottleneck(self.c, self.c, shortcut, g),
                PSABlock(self.c, attn_ratio=0.5, num_heads=max(self.c // 64, 1)))
        if self.use_c3k:
            return C3k(self.c, self.c, 2, shortcut, g)
        return Bottleneck(self.c, self.c, shortcut, g)


class SPPF(nn.Module):
    """Spatial pyramid pooling (fast): ``n`` chained ``k x k`` max-pools.

    Follows ``SPPF`` of ultralytics/nn/modules/block.py (8.4):
    ``cv1`` (1x1, ``c1 -> c1 // 2``), then ``n`` max-pools (stride 1, same
    size), ``cv2`` (1x1) on the ``n + 1`` maps concatenated, plus the input
    when ``shortcut`` and ``c1 == c2``. (B, c1, H, W) -> (B, c2, H, W).

    YOLO11 / YOLOv8 use the defaults (3 poolings, no residual, SiLU after
    ``cv1``); YOLO26 uses ``n=3, shortcut=True, cv1_act=False`` (its yaml
    row ``SPPF(1024, 5, 3, True)`` keeps the reference's unactivated
    ``cv1``). The parameters and their names are the same in both.

    Args:
        c1 (int): Input channels.
        c2 (int): Output channels.
        k (int): Pooling kernel size. Defaults to 5.
        n (int): Number of chained poolings. Defaults to 3.
        shortcut (bool): Add the input to the output (only when
            ``c1 == c2``). Defaults to False.
        cv1_act (bool): SiLU after ``cv1`` (False: BatchNorm only).
            Defaults to True.
    """

    def __init__(self, c1: int, c2: int, k: int = 5, n: int = 3, shortcut: bool = False,
                 cv1_act: bool = True) -> None:
        super().__init__()
        if n < 1:
            raise ValueError(f'SPPF: n (poolings) must be >= 1, got {n}')
        hidden = c1 // 2
        self.cv1 = Conv(c1, hidden, 1, 1, act=cv1_act)
        self.cv2 = Conv(hidden * (n + 1), c2, 1, 1)
        self.m = nn.MaxPool2d(kernel_size=k, stride=1, padding=k // 2)
        self.n = n
        self.add = shortcut and c1 == c2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pyramid = [self.cv1(x)]
        for _ in range(self.n):
            pyramid.append(self.m(pyramid[-1]))
        y = self.cv2(torch.cat(pyramid, 1))
        return x + y if self.add else y


class Attention(nn.Module):
    """Multi-head self-attention over all positions with a depthwise
    positional-encoding convolution on the values.

    Queries and keys use ``key_dim = head_dim * attn_ratio`` channels per
    head; values use ``head_dim``.

    Args:
        dim (int): Channels.
        num_heads (int): Number of heads. Defaults to 8.
        attn_ratio (float): Query/key channels relative to the head
            channels. Defaults to 0.5.
    """

    def __init__(self, dim: int, num_heads: int = 8,
                 attn_ratio: float = 0.5) -> None:
        super().__init__()
        if num_heads < 1 or dim % num_heads:
            raise ValueError(
                f'Attention: dim={dim} must be a positive multiple of '
                f'num_heads={num_heads}')
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.key_dim = int(self.head_dim * attn_ratio)
        self.scale = self.key_dim**-0.5
        qkv_channels = dim + 2 * self.key_dim * num_heads
        self.qkv = Conv(dim, qkv_channels, 1, act=False)
        self.proj = Conv(dim, dim, 1, act=False)
        self.pe = Conv(dim, dim, 3, 1, g=dim, act=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        qkv = self.qkv(x).view(b, self.num_heads,
                               2 * self.key_dim + self.head_dim, h * w)
        q, k, v = qkv.split([self.key_dim, self.key_dim, self.head_dim], 2)
        # (b, heads, N, N): row i holds the weights of query position i.
        attn = ((q.transpose(-2, -1) @ k) * self.scale).softmax(dim=-1)
        out = (v @ attn.transpose(-2, -1)).view(b, c, h, w)
        out = out + self.pe(v.reshape(b, c, h, w))
        return self.proj(out)


class PSABlock(nn.Module):
    """Attention followed by a 1x1 feed-forward, both residual.

    Args:
        c (int): Channels.
        attn_ratio (float): See :class:`Attention`. Defaults to 0.5.
        num_heads (int): Attention heads. Defaults to 4.
        shortcut (bool): Use the residual connections. Defaults to True.
    """

    def __init__(self, c: int, attn_ratio: float = 0.5, num_heads: int = 4,
                 shortcut: bool = True) -> None:
        super().__init__()
        self.attn = Attention(c, num_heads=num_heads, attn_ratio=attn_ratio)
        self.ffn = nn.Sequential(Conv(c, c * 2, 1), Conv(c * 2, c, 1, act=False))
        self.add = shortcut

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(x) if self.add else self.attn(x)
        return x + self.ffn(x) if self.add else self.ffn(x)


class C2PSA(nn.Module):
    """CSP block whose second half runs through ``n`` PSABlocks.

    Args:
        c1 (int): Input channels.
        c2 (int): Output channels; must equal ``c1``.
        n (int): Number of PSABlocks. Defaults to 1.
        e (float): Hidden channels as a fraction of ``c1``. Defaults to 0.5.
    """

    def __init__(self, c1: int, c2: int, n: int = 1, e: float = 0.5) -> None:
        super().__init__()
        if c1 != c2:
            raise ValueError(f'C2PSA needs c1 == c2, got {c1} and {c2}')
        self.c = int(c1 * e)
        self.cv1 = Conv(c1, 2 * self.c, 1, 1)
        self.cv2 = Conv(2 * self.c, c1, 1)
        # One head per 64 channels as the reference; at least one head so
        # that narrow (test-sized) models stay valid.
        num_heads = max(self.c // 64, 1)
        self.m = nn.Sequential(*(
            PSABlock(self.c, attn_ratio=0.5, num_heads=num_heads)
            for _ in range(n)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = self.cv1(x).split((self.c, self.c), dim=1)
        return self.cv2(torch.cat((a, self.m(b)), 1))


YOLO_VERSIONS = ('yolo11', 'yolov8', 'yolo26')
YOLO_ARCHS = YOLO_VERSIONS  # deprecated name (the family is ``version``; ``arch`` is a size elsewhere)
# The SPPF of a family (k, n poolings, residual, SiLU after cv1). YOLO26's row
# SPPF(1024, 5, 3, True) has a residual and leaves cv1 unactivated (nn/tasks.py
# ``parse_model`` restores cv1's SiLU only for the short rows of YOLO11 / YOLOv8).
SPPF_SETTINGS = {
    'yolo11': dict(k=5, n=3, shortcut=False, cv1_act=True),
    'yolov8': dict(k=5, n=3, shortcut=False, cv1_act=True),
    'yolo26': dict(k=5, n=3, shortcut=True, cv1_act=False),
}
# Families whose P5 ends with C2PSA after the SPPF
C2PSA_VERSIONS = ('yolo11', 'yolo26')


def make_csp_layer(version: str, c1: int, c2: int, n: int, shortcut: bool = True,
                   c3k: bool = False, e: float = 0.5, attn: bool = False) -> nn.Module:
    """The CSP layer of a family: C3k2 for 'yolo11' / 'yolo26', C2f for 'yolov8'.

    Args:
        version (str): 'yolo11', 'yolo26' or 'yolov8'.
        c1 (int): Input channels.
        c2 (int): Output channels.
        n (int): Number of blocks (already depth-scaled).
        shortcut (bool): Residuals inside the blocks. Defaults to True.
        c3k (bool): C3k blocks (C3k2 only). Defaults to False.
        e (float): Hidden channel ratio. Defaults to 0.5.
        attn (bool): Bottleneck + PSABlock blocks (C3k2 only). Defaults to False.
    """
    if version in ('yolo11', 'yolo26'):
        return C3k2(c1, c2, n, c3k=c3k, e=e, attn=attn, shortcut=shortcut)
    if version == 'yolov8':
        if attn:
            raise ValueError('make_csp_layer: yolov8 (C2f) has no attention blocks')
        return C2f(c1, c2, n, shortcut=shortcut, e=e)
    raise ValueError(f'version must be one of {YOLO_VERSIONS}, got {version!r}')
