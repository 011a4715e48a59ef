"""mmengine's pytorch launcher on machines without a GPU."""
import torch

from ._util import replace


def cpu_distributed_launch() -> None:
    """Let mmengine's pytorch launcher start CPU-only (gloo) processes.

    Upstream defect: ``mmengine.dist.utils._init_dist_pytorch`` (0.10.7) calls
    ``torch.cuda.set_device(local_rank)`` unconditionally, which raises on a
    machine without CUDA, and ``MMDistributedDataParallel`` is built with GPU
    ``device_ids``, which DDP refuses for a CPU module; so ``dist_train.sh``
    (``--launcher pytorch``) cannot run CPU processes with the gloo backend.
    Both steps are skipped when no GPU is available (nothing changes with one).

    Applies to: mmengine 0.10.x, CPU-only machines.
    """
    import mmengine.dist.utils as dist_utils
    from mmengine.model.wrappers import MMDistributedDataParallel

    def make_init(original):
        def _init_dist_pytorch(backend: str = 'nccl', init_backend: str = 'torch', **kwargs) -> None:
            if torch.cuda.is_available():
                return original(backend, init_backend=init_backend, **kwargs)
            set_device = torch.cuda.set_device
            torch.cuda.set_device = lambda *args, **kw: None
            try:
                return original(backend, init_backend=init_backend, **kwargs)
            finally:
                torch.cuda.set_device = set_device
        return _init_dist_pytorch

    def make_ddp_init(original):
        def __init__(self, module, *args, **kwargs) -> None:
            if not torch.cuda.is_available():  # DDP refuses GPU device ids for a CPU module
                kwargs.pop('device_ids', None)
                kwargs.pop('output_device', None)
            original(self, module, *args, **kwargs)
        return __init__

    replace(dist_utils, '_init_dist_pytorch', make_init)
    replace(MMDistributedDataParallel, '__init__', make_ddp_init)
