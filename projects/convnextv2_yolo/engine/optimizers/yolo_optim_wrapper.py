"""Gradient accumulation of the reference trainer on mmengine's optimizer wrappers."""
from typing import Optional

import torch
import torch.nn as nn
from mmengine.model import is_model_wrapper
from mmengine.optim import AmpOptimWrapper, OptimWrapper
from mmdet.registry import OPTIM_WRAPPERS

from .musgd import MuSGD, musgd_param_groups


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

    A :class:`MuSGD` given explicitly (``optimizer=dict(type='MuSGD')`` with
    ``YOLOOptimWrapperConstructor``, whose groups have no ``use_muon``) is
    regrouped as the reference's by :meth:`group_musgd` before the run
    (``YOLOParamSchedulerHook.before_run``); stepping before that raises.

    Args:
        accumulative_counts (int, optional): Fixed accumulation; ``None``
            (default) derives it from the batch as above.
        nominal_batch_size (int): The reference's ``nbs``. Defaults to 64.
        sum_accumulated_grads (bool): Sum (reference) or average (mmengine)
            the gradients of accumulated batches. Defaults to True.
        auto_optimizer (bool): The optimizer is a placeholder to be replaced
            by :meth:`resolve_auto_optimizer`. Defaults to False.
        auto_large_optimizer (str): The automatic choice above 10,000
            iterations: ``'MuSGD'`` (ultralytics 8.4, default) or ``'SGD'``
            (8.3: SGD lr 0.01, momentum 0.9, Nesterov).
        **kwargs: Arguments of the wrapped mmengine optimizer wrapper
            (``optimizer``, ``clip_grad``, AMP settings).

    Raises:
        RuntimeError: ``update_params`` before the batch size was set, or
            before an explicit MuSGD was regrouped.
        ValueError: an unknown ``auto_large_optimizer``.
    """

    # the reference's optimizer=auto: MuSGD (8.3: SGD) above this many iterations, else AdamW
    AUTO_SGD_MIN_ITERATIONS = 10000
    AUTO_LARGE_OPTIMIZERS = ('MuSGD', 'SGD')
    # parameters whose LR MuSGD multiplies by 3: the head's class branch (the reference's Detect.cv3)
    MUSGD_BOOSTED_PREFIX = 'bbox_head.cls_convs.'

    def __init__(self, *args, accumulative_counts: Optional[int] = None, nominal_batch_size: int = 64,
                 sum_accumulated_grads: bool = True, auto_optimizer: bool = False,
                 auto_large_optimizer: str = 'MuSGD', **kwargs) -> None:
        if accumulative_counts is not None and (not isinstance(accumulative_counts, int)
                                                or accumulative_counts < 1):
            raise ValueError(f'{type(self).__name__}: accumulative_counts must be a positive int or None '
                             f'(derived from the batch size), got {accumulative_counts!r}')
        if nominal_batch_size < 1:
            raise ValueError(f'{type(self).__name__}: nominal_batch_size must be >= 1, got {nominal_batch_size}')
        if auto_large_optimizer not in self.AUTO_LARGE_OPTIMIZERS:
            raise ValueError(f'{type(self).__name__}: optim_wrapper.auto_large_optimizer must be one of '
                             f'{self.AUTO_LARGE_OPTIMIZERS}, got {auto_large_optimizer!r}')
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
        self.auto_large_optimizer = auto_large_optimizer
        groups = self.optimizer.param_groups
        # an explicit MuSGD from YOLOOptimWrapperConstructor (tagged groups, none for Muon) awaits group_musgd
        self.musgd_groups_pending = (isinstance(self.optimizer, MuSGD) and not any(g['use_muon'] for g in groups)
                                     and any(k.startswith('yolo_') for g in groups for k in g))

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

    def _plain_groups(self) -> list:
        """The groups' parameters, weight decay and ``yolo_*`` tags (the rest is the new optimizer's default)."""
        return [{k: v for k, v in g.items() if k in ('params', 'weight_decay') or k.startswith('yolo_')}
                for g in self.optimizer.param_groups]

    def _musgd(self, model: Optional[nn.Module], **defaults) -> MuSGD:
        """A MuSGD over the current parameters with the reference's groups (see :func:`musgd_param_groups`)."""
        if model is None:
            raise TypeError(f'{type(self).__name__}: MuSGD needs the model to find its class branch '
                            f'({self.MUSGD_BOOSTED_PREFIX}*, LR x 3)')
        if is_model_wrapper(model):
            model = model.module
        boosted = {id(p) for n, p in model.named_parameters() if n.startswith(self.MUSGD_BOOSTED_PREFIX)}
        lr = defaults.get('lr', 0.01)
        return MuSGD(musgd_param_groups(self._plain_groups(), boosted, lr), **defaults)

    def group_musgd(self, model: nn.Module) -> str:
        """Rebuild an explicit :class:`MuSGD` with the reference's groups (Muon for 2-D/4-D parameters,
        the class branch at LR x 3), keeping its settings (lr, momentum, nesterov, muon, sgd).

        Args:
            model (nn.Module): The trained model (its ``bbox_head.cls_convs`` parameters get LR x 3).

        Returns:
            str: A one-line description (for the log).

        Raises:
            RuntimeError: the optimizer already stepped.
        """
        if self.num_updates:
            raise RuntimeError(f'{type(self).__name__}: cannot regroup MuSGD after it stepped')
        defaults = {k: v for k, v in self.optimizer.defaults.items() if k not in ('use_muon', 'weight_decay')}
        self.optimizer = self._musgd(model, **defaults)
        self._reset_base_settings()
        self.musgd_groups_pending = False
        return f'MuSGD({defaults}) with the reference groups ({self._group_sizes()})'

    def _group_sizes(self) -> str:
        return ', '.join(f"{len(g['params'])} {'muon' if g.get('use_muon') else 'sgd'}"
                         f"(lr x{g.get('yolo_lr_scale', 1)}, decay {g['weight_decay']:g})"
                         for g in self.optimizer.param_groups)

    def _reset_base_settings(self) -> None:
        if self.base_param_settings is not None:  # mmengine's record of the base LR (logged as base_lr)
            self.base_param_settings = {'params': torch.tensor([0.0]), **self.optimizer.defaults}

    def resolve_auto_optimizer(self, iterations: int, num_classes: int, model: Optional[nn.Module] = None) -> str:
        """Replace the placeholder optimizer by the reference's automatic choice.

        ``iterations = ceil(dataset size / max(total batch, nominal batch)) x
        epochs``; above 10,000 it is (``auto_large_optimizer``) :class:`MuSGD`
        (ultralytics 8.4: lr 0.01, momentum 0.9, Nesterov, muon 0.2, sgd 1.0;
        2-D/4-D parameters in a Muon group with the weights' decay, the class
        branch ``bbox_head.cls_convs`` at LR x 3 in every group) or SGD (8.3:
        lr 0.01, momentum 0.9, Nesterov), otherwise AdamW with lr
        ``round(0.002 * 5 / (4 + num_classes), 6)`` and betas (0.9, 0.999). The
        parameter groups' weight decay tags are kept. The reference also sets
        the warmup bias LR to 0 for either choice (``YOLOParamSchedulerHook`` does).

        Args:
            iterations (int): Optimizer iterations as the reference counts them.
            num_classes (int): Classes of the dataset.
            model (nn.Module, optional): The trained model; needed for MuSGD.

        Returns:
            str: A one-line description of the choice (for the log).

        Raises:
            RuntimeError: the wrapper was not built with ``auto_optimizer``, or
                the optimizer already stepped.
            TypeError: MuSGD is chosen and ``model`` is None.
        """
        if not self.auto_optimizer:
            raise RuntimeError(f"{type(self).__name__}: the optimizer is not 'auto'")
        if self.num_updates:
            raise RuntimeError(f'{type(self).__name__}: cannot replace the optimizer after it stepped')
        groups = self._plain_groups()
        large = f'{iterations} iterations > {self.AUTO_SGD_MIN_ITERATIONS}'
        if iterations > self.AUTO_SGD_MIN_ITERATIONS and self.auto_large_optimizer == 'MuSGD':
            self.optimizer = self._musgd(model, lr=0.01, momentum=0.9, nesterov=True, muon=0.2, sgd=1.0)
            choice = (f'MuSGD(lr=0.01, momentum=0.9, muon=0.2, sgd=1.0) for {large} (ultralytics 8.4; '
                      f"auto_large_optimizer='SGD' for 8.3's SGD): {self._group_sizes()}")
        elif iterations > self.AUTO_SGD_MIN_ITERATIONS:
            self.optimizer = torch.optim.SGD(groups, lr=0.01, momentum=0.9, nesterov=True)
            choice = f"SGD(lr=0.01, momentum=0.9) for {large} (auto_large_optimizer='SGD', ultralytics 8.3)"
        else:
            lr = round(0.002 * 5 / (4 + num_classes), 6)
            self.optimizer = torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.999), weight_decay=0.0)
            choice = (f'AdamW(lr={lr}, momentum=0.9) for {iterations} iterations <= '
                      f'{self.AUTO_SGD_MIN_ITERATIONS} ({num_classes} classes)')
        self._reset_base_settings()
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
        if self.musgd_groups_pending:
            raise RuntimeError(
                f"{type(self).__name__}: optim_wrapper.optimizer type='MuSGD' still has the constructor's groups "
                '(no Muon group); YOLOParamSchedulerHook regroups it before the run (keep it in '
                'default_hooks.param_scheduler) or call group_musgd(model)')
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
