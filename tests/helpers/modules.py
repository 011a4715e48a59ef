"""Random weights for module tests (the block, layout and end-to-end head tests)."""
import torch
import torch.nn as nn


def randomize(module: nn.Module, seed: int = 0) -> nn.Module:
    """He-scaled random kernels, random BN affine and statistics; eval mode."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in module.state_dict().items():
            if name.endswith('num_batches_tracked'):
                continue
            if name.endswith('running_var') or name.endswith('bn.weight'):
                t.copy_(torch.rand(t.shape, generator=g) + 0.5)
            elif t.dim() == 4:
                t.copy_(torch.randn(t.shape, generator=g) * (2 / t[0].numel())**0.5)
            else:
                t.copy_(torch.randn(t.shape, generator=g) * 0.1)
    return module.eval()
