"""YOLOv8 / YOLO11 building blocks: Bottleneck, C2f, C3k, C3k2, SPPF, C2PSA.

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
    """YOLO11's C2f variant whose blocks are C3k (``c3k=True``) or Bottleneck.

    Args:
        c1 (int): Input channels.
        c2 (int): Output channels.
        n (int): Number of blocks. Defaults to 1.
        c3k (bool): Use two-Bottleneck C3k blocks instead of single
            Bottlenecks. Defaults to False.
        e (float): Hidden channels as a fraction of ``c2``. Defaults to 0.5.
        g (int): Groups. Defaults to 1.
        shortcut (bool): Residuals inside the blocks. Defaults to True.
    """

    def __init__(self, c1: int, c2: int, n: int = 1, c3k: bool = False,
                 e: float = 0.5, g: int = 1, shortcut: bool = True) -> None:
        self.use_c3k = c3k
        super().__init__(c1, c2, n, shortcut, g, e)

    def _make_block(self, shortcut: bool, g: int) -> nn.Module:
        if self.use_c3k:
            return C3k(self.c, self.c, 2, shortcut, g)
        return Bottleneck(self.c, self.c, shortcut, g)


class SPPF(nn.Module):
    """Spatial pyramid pooling (fast): three chained ``k x k`` max-pools.

    Args:
        c1 (int): Input channels.
        c2 (int): Output channels.
        k (int): Pooling kernel size. Defaults to 5.
    """

    def __init__(self, c1: int, c2: int, k: int = 5) -> None:
        super().__init__()
        hidden = c1 // 2
        self.cv1 = Conv(c1, hidden, 1, 1)
        self.cv2 = Conv(hidden * 4, c2, 1, 1)
        self.m = nn.MaxPool2d(kernel_size=k, stride=1, padding=k // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pyramid = [self.cv1(x)]
        for _ in range(3):
            pyramid.append(self.m(pyramid[-1]))
        return self.cv2(torch.cat(pyramid, 1))


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


YOLO_VERSIONS = ('yolo11', 'yolov8')
YOLO_ARCHS = YOLO_VERSIONS  # deprecated name (the family is ``version``; ``arch`` is a size elsewhere)


def make_csp_layer(version: str, c1: int, c2: int, n: int, shortcut: bool = True,
                   c3k: bool = False, e: float = 0.5) -> nn.Module:
    """The CSP layer of a family: C3k2 for 'yolo11', C2f for 'yolov8'.

    Args:
        version (str): 'yolo11' or 'yolov8'.
        c1 (int): Input channels.
        c2 (int): Output channels.
        n (int): Number of blocks (already depth-scaled).
        shortcut (bool): Residuals inside the blocks. Defaults to True.
        c3k (bool): C3k blocks (yolo11 only). Defaults to False.
        e (float): Hidden channel ratio. Defaults to 0.5.
    """
    if version == 'yolo11':
        return C3k2(c1, c2, n, c3k=c3k, e=e, shortcut=shortcut)
    if version == 'yolov8':
        return C2f(c1, c2, n, shortcut=shortcut, e=e)
    raise ValueError(f'version must be one of {YOLO_VERSIONS}, got {version!r}')
