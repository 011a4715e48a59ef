"""The training batch size of a runner, over all processes."""


def train_batch_size(runner) -> int:
    """Images per training iteration over all processes (loader batch x world size).

    Raises:
        ValueError: the training data loader has no batch size.
    """
    from mmengine.dist import get_world_size
    loader = runner.train_dataloader
    batch = getattr(loader, 'batch_size', None)
    if batch is None:  # a batch sampler holds it
        batch = getattr(getattr(loader, 'batch_sampler', None), 'batch_size', None)
    if batch is None:
        raise ValueError('cannot tell the training batch size: train_dataloader has neither batch_size '
                         'nor a batch_sampler with one')
    return int(batch) * get_world_size()
