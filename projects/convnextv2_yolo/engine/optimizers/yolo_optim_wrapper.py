"""Gradient accumulation of the reference trainer on mmengine's optimizer wrappers."""
from typing import Optional

import torch
import torch.nn as nn
from mmengine.optim import AmpOptimWrapper, OptimWrapper
from mmdet.registry import OPTIM_WRAPPERS


class YOLOGradAccumulation:
    """Mixin: the reference's gradient accumulation, derived from the real batch.

    Follows ``ultralytics/engine/trainer.py`` (``_setup_train``, ``_do_train``,
    ``optimizer_step``):

    - ``accumulate = max(round(nominal_batch_size / total_batch), 1)``, where
      ``total_batch`` is the training data loader's batch size times the world
      size, told to the wrapper by :meth:`set_total_batch_size` (called by
      ``YOLOParamSchedulerHook.before_train``), so changing
      ``train_dataloader.batch_size`` alone keeps the nominal batch of 64;
    - the decay group's weight decay is ``base * total_batch * accumulate /
      nominal_batch_size`` (groups tagged ``yolo_base_weight_decay`` by
      ``YOLOOptimWrapperConstructor``);
    - the optimizer steps once ``accumulate`` backward passes have happened
      since the last step; the accumulation may change during training
      (:meth:`set_accumulation`, e.g. the reference's warmup ramp 1 ->
      nominal);
    - gradients of the accumulated batches are **summed** as in the reference
      (``sum_accumulated_grads=True``), whereas mmengine divides each loss by
      the accumulation count (``False`` restores mmengine's average).

    :attr:`num_updates` counts optimizer steps (``YOLOEMAHook`` reads it).

    With ``auto_optimizer=True`` (``optimizer=dict(type='auto')`` in
    ``YOLOOptimWrapperConstructor``) the optimizer is chosen by
    :meth:`resolve_auto_optimizer` before training, as the reference's
    ``optimizer=auto`` (``BaseTrainer.build_optimizer``).

    Args:
        accumulative_counts (int, optional): Fixed accumulation; ``None``
            (default) derives it from the batch as above.
        nominal_batch_size (int): The reference's ``nbs``. Defaults to 64.
        sum_accumulated_grads (bool): Sum (reference) or average (mmengine)
            the gradients of accumulated batches. Defaults to True.
        auto_optimizer (bool): The optimizer is a placeholder to be replaced
            by :meth:`resolve_auto_optimizer`. Defaults to False.
        **kwargs: Arguments of the wrapped mmengine optimizer wrapper
            (``optimizer``, ``clip_grad``, AMP settings).

    Raises:
        RuntimeError: ``update_params`` before the batch size was set.
    """

    # the reference's optimizer=auto: SGD above this many iterations, else AdamW
    AUTO_SGD_MIN_ITERATIONS = 10000

    def __init__(self, *args, accumulative_counts: Optional[int] = None, nominal_batch_size: int = 64,
                 sum_accumulated_grads: bool = True, auto_optimizer: bool = False, **kwargs) -> None:
        if accumulative_counts is not None and (not isinstance(accumulative_counts, int)
                                                or accumulative_counts < 1):
            raise ValueError(f'{type(self).__name__}: accumulative_counts must be a positive int or None '
                             f'(derived from the batch size), got {accumulative_counts!r}')
        if nominal_batch_size < 1:
            raise ValueError(f'{type(self).__name__}: nominal_batch_size must be >= 1, got {nominal_batch_size}')
        super().__init__(*args, accumulative_counts=accumulative_counts or 1, **kwargs)
        self.fixed_accumulation = accumulative_counts
        self.nominal_batch_size = nominal_batch_size
        self.sum_accumulated_grads = sum_accumulated_grads
        self.total_batch_size: Optional[int] = None
        self.nominal_accumulation = accumulative_counts or 1
        self.num_updates = 0
        self._last_update_count = 0
        self.auto_optimizer = auto_optimizer
        self.auto_choice: Optional[str] = None

    # ------------------------------------------------------------ set-up
    def set_total_batch_size(self, total_batch_size: int) -> None:
        """Derive the accumulation and weight decay from the real batch.

        Args:
            total_batch_size (int): Images per optimizer iteration over all
                processes (loader batch size x world size).
        """
        if total_batch_size < 1:
            raise ValueError(f'{type(self).__name__}: total batch size must be >= 1, got {total_batch_size}')
        accumulate = self.fixed_accumulation or max(round(self.nominal_batch_size / total_batch_size), 1)
        self.total_batch_size = int(total_batch_size)
        self.nominal_accumulation = accumulate
        self.set_accumulation(accumulate)
        scale = total_batch_size * accumulate / self.nominal_batch_size
        for group in self.optimizer.param_groups:
            if 'yolo_base_weight_decay' in group:
                group['weight_decay'] = group['yolo_base_weight_decay'] * scale

    def resolve_auto_optimizer(self, iterations: int, num_classes: int) -> str:
        """Replace the placeholder optimizer by the reference's automatic choice.

        ``iterations = ceil(dataset size / max(total batch, nominal batch)) x
        epochs``; above 10,000 it is SGD (lr 0.01, momentum 0.9, Nesterov),
        otherwise AdamW with lr ``round(0.002 * 5 / (4 + num_classes), 6)`` and
        betas (0.9, 0.999). The parameter groups (and their weight decay tags)
        are kept. The reference also sets the warmup bias LR to 0 for either
        choice (``YOLOParamSchedulerHook`` does).

        Args:
            iterations (int): Optimizer iterations as the reference counts them.
            num_classes (int): Classes of the dataset.

        Returns:
            str: A one-line description of the choice (for the log).

        Raises:
            RuntimeError: the wrapper was not built with ``auto_optimizer``, or
                the optimizer already stepped.
        """
        if not self.auto_optimizer:
            raise RuntimeError(f"{type(self).__name__}: the optimizer is not 'auto'")
        if self.num_updates:
            raise RuntimeError(f'{type(self).__name__}: cannot replace the optimizer after it stepped')
        # keep the parameters, their decay and our tags; the new optimizer's defaults fill the rest
        groups = [{k: v for k, v in g.items() if k in ('params', 'weight_decay') or k.startswith('yolo_')}
                  for g in self.optimizer.param_groups]
        if iterations > self.AUTO_SGD_MIN_ITERATIONS:
            self.optimizer = torch.optim.SGD(groups, lr=0.01, momentum=0.9, nesterov=True)
            choice = f'SGD(lr=0.01, momentum=0.9) for {iterations} iterations > {self.AUTO_SGD_MIN_ITERATIONS}'
        else:
            lr = round(0.002 * 5 / (4 + num_classes), 6)
            self.optimizer = torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.999), weight_decay=0.0)
            choice = (f'AdamW(lr={lr}, momentum=0.9) for {iterations} iterations <= '
                      f'{self.AUTO_SGD_MIN_ITERATIONS} ({num_classes} classes)')
        if self.base_param_settings is not None:  # mmengine's record of the base LR (logged as base_lr)
            self.base_param_settings = {'params': torch.tensor([0.0]), **self.optimizer.defaults}
        self.auto_choice = choice
        return choice

    def set_accumulation(self, accumulate: int) -> None:
        """Number of backward passes per optimizer step from now on."""
        self._accumulative_counts = max(int(accumulate), 1)
        if self._max_counts > 0:
            self._remainder_counts = self._max_counts % self._accumulative_counts

    def initialize_count_status(self, model: nn.Module, init_counts: int, max_counts: int) -> None:
        """mmengine's count set-up; accumulation restarts at ``init_counts``."""
        super().initialize_count_status(model, init_counts, max_counts)
        self._last_update_count = init_counts

    # ------------------------------------------------------------ stepping
    def update_params(self, loss: torch.Tensor, step_kwargs: Optional[dict] = None,
                      zero_kwargs: Optional[dict] = None) -> None:
        if self.total_batch_size is None:
            raise RuntimeError(
                f'{type(self).__name__}: the training batch size is unknown, so the gradient accumulation and '
                'weight decay cannot be derived; YOLOParamSchedulerHook sets it before training (keep it in '
                'default_hooks.param_scheduler) or call set_total_batch_size(batch x world size)')
        super().update_params(loss, step_kwargs=step_kwargs, zero_kwargs=zero_kwargs)

    def scale_loss(self, loss: torch.Tensor) -> torch.Tensor:
        if self.sum_accumulated_grads:
            return loss
        return loss / self._accumulative_counts

    def should_update(self) -> bool:
        return (self._inner_count - self._last_update_count >= self._accumulative_counts
                or self._inner_count == self._max_counts)

    def should_sync(self) -> bool:
        return (self._inner_count + 1 - self._last_update_count >= self._accumulative_counts
                or self._inner_count + 1 == self._max_counts)

    def step(self, **kwargs) -> None:
        super().step(**kwargs)
        self._last_update_count = self._inner_count
        self.num_updates += 1


@OPTIM_WRAPPERS.register_module()
class YOLOOptimWrapper(YOLOGradAccumulation, OptimWrapper):
    """mmengine's ``OptimWrapper`` with the reference's gradient accumulation
    (see :class:`YOLOGradAccumulation` for the arguments)."""


@OPTIM_WRAPPERS.register_module()
class YOLOAmpOptimWrapper(YOLOGradAccumulation, AmpOptimWrapper):
    """mmengine's ``AmpOptimWrapper`` (``--amp``) with the reference's
    gradient accumulation (see :class:`YOLOGradAccumulation`)."""
