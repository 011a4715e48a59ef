"""The DFL integral (expected distance of a distribution over bins) of YOLOv8/YOLO11 heads."""
import torch
import torch.nn as nn
from torch import Tensor


class DFL(nn.Module):
    """Integral of a softmax distribution over ``reg_max`` bins.

    The bin values live in a frozen 1x1 conv ``conv`` (weight ``arange``), as
    in the reference, so checkpoints and parameter counts match.

    Args:
        reg_max (int): Number of bins. Defaults to 16.
    """

    def __init__(self, reg_max: int = 16) -> None:
        super().__init__()
        self.reg_max = reg_max
        self.conv = nn.Conv2d(reg_max, 1, 1, bias=False).requires_grad_(False)
        self.reset_bins()

    def reset_bins(self) -> None:
        """Write ``arange(reg_max)`` into the bin weights."""
        with torch.no_grad():
            self.conv.weight.copy_(torch.arange(self.reg_max, dtype=torch.float).view(1, -1, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        """(..., 4 * reg_max) logits -> (..., 4) expected distances."""
        probs = x.unflatten(-1, (4, self.reg_max)).softmax(-1)
        return probs @ self.conv.weight.view(self.reg_max).to(probs.dtype)
