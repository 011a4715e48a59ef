"""Freeze the backbone for the first epochs (or iterations) of training."""
import logging
from typing import Dict, Optional

import torch.nn as nn
from mmdet.registry import HOOKS
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper


@HOOKS.register_module()
class BackboneFreezeHook(Hook):
    """Keep a sub-module (the backbone) frozen early in training.

    While frozen, its parameters have ``requires_grad=False`` (no gradient,
    so optimizers skip them: no update, no weight decay) and it stays in eval
    mode (norm statistics and stochastic depth fixed). The state is derived
    from the current epoch (or iteration), so a run resumed before the limit
    is frozen and one resumed after it is not.

    The freeze is applied in ``before_train``, after the optimizer was built,
    because mmengine's optimizer constructors skip parameters that do not
    require grad; the frozen parameters are therefore in the optimizer and
    start training when released. Parameters frozen by the module itself
    (e.g. ``frozen_stages``) stay frozen. In distributed training set
    ``model_wrapper_cfg=dict(type='MMDistributedDataParallel',
    find_unused_parameters=True)``: DDP otherwise waits for gradients of the
    frozen parameters.

    Args:
        freeze_epochs (int): Epochs ``[0, freeze_epochs)`` are frozen.
            Defaults to 0.
        freeze_iters (int, optional): Count iterations instead (for
            iteration-based loops): ``[0, freeze_iters)`` are frozen.
        module (str): Dotted name of the sub-module of the model to freeze.
            Defaults to 'backbone'.
    """

    priority = 'NORMAL'

    def __init__(self,
                 freeze_epochs: int = 0,
                 freeze_iters: Optional[int] = None,
                 module: str = 'backbone') -> None:
        if freeze_epochs < 0 or (freeze_iters is not None
                                 and freeze_iters < 0):
            raise ValueError('freeze_epochs/freeze_iters must be >= 0.')
        if freeze_iters is not None and freeze_epochs:
            raise ValueError('Give either freeze_epochs or freeze_iters.')
        self.freeze_epochs = freeze_epochs
        self.freeze_iters = freeze_iters
        self.module_name = module
        self._trainable: Dict[str, bool] = {}
        self._frozen: Optional[bool] = None

    def _target(self, runner) -> nn.Module:
        model = runner.model.module if is_model_wrapper(
            runner.model) else runner.model
        try:
            return model.get_submodule(self.module_name)
        except AttributeError:
            raise AttributeError(
                f'BackboneFreezeHook: the model {type(model).__name__} has '
                f'no sub-module "{self.module_name}".') from None

    def should_freeze(self, runner) -> bool:
        """Whether the module must be frozen at the runner's position."""
        if self.freeze_iters is not None:
            return runner.iter < self.freeze_iters
        return runner.epoch < self.freeze_epochs

    def _apply(self, runner) -> None:
        frozen = self.should_freeze(runner)
        if frozen == self._frozen:
            return
        target = self._target(runner)
        for name, param in target.named_parameters():
            param.requires_grad = self._trainable[name] and not frozen
        # ``train()`` re-applies the module's own frozen stages.
        target.train(not frozen)
        self._frozen = frozen
        unit, pos = (('iter', runner.iter) if self.freeze_iters is not None
                     else ('epoch', runner.epoch))
        print_log(
            f'BackboneFreezeHook: "{self.module_name}" '
            f'{"frozen" if frozen else "unfrozen"} at {unit} {pos}.',
            logger='current')

    def before_train(self, runner) -> None:
        """Record the trainable flags, then freeze or not from the epoch."""
        target = self._target(runner)
        self._trainable = {
            name: p.requires_grad
            for name, p in target.named_parameters()
        }
        self._frozen = None
        if is_model_wrapper(runner.model) and not getattr(
                runner.model, 'find_unused_parameters', True) and (
                    self.should_freeze(runner)):
            print_log(
                'BackboneFreezeHook: distributed training without '
                'find_unused_parameters=True will fail while the backbone '
                'is frozen; set it in model_wrapper_cfg.',
                logger='current', level=logging.WARNING)
        self._apply(runner)

    def before_train_epoch(self, runner) -> None:
        self._apply(runner)

    def before_train_iter(self, runner, batch_idx: int,
                          data_batch=None) -> None:
        """Switch at iteration limits; keep eval mode (the loop calls
        ``model.train()`` at every epoch start)."""
        self._apply(runner)
        if self._frozen:
            target = self._target(runner)
            if target.training:
                target.eval()
