"""Gradient accumulation of the reference trainer on mmengine's optimizer wrappers."""
import dataclasses
import logging
from typing import FrozenSet, Optional

import torch
import torch.nn as nn
from mmdet.registry import OPTIM_WRAPPERS, OPTIMIZERS
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper
from mmengine.optim import AmpOptimWrapper, OptimWrapper

from .musgd import musgd_param_groups
from .nonfinite_skip import NonFiniteStepSkip
from .optimizer_decision import (MUSGD_BOOSTED_PREFIXES, MUSGD_LR_BOOST, OptimizerChoice, OptimizerDecision,
                                 OptimizerPolicy)

# key of the decision's choice in the wrapper's state dict (so in checkpoints' `optimizer`)
CHOICE_KEY = 'yolo_optimizer_choice'


class YOLOGradAccumulation(NonFiniteStepSkip):
    """Mixin: the reference's gradient accumulation and optimizer choice, applied from a decision.

    Follows ``ultralytics/engine/trainer.py`` (``_setup_train``, ``_do_train``, ``optimizer_step``).
    The wrapper's arguments are the config's :class:`OptimizerPolicy`; the decision
    (:func:`~.optimizer_decision.decide_optimizer`, made once the run is known by
    ``YOLOParamSchedulerHook.before_run``) is handed over by :meth:`apply_decision`, which

    - replaces the optimizer when the decision says so (``optimizer=dict(type='auto')``, for which
      ``YOLOOptimWrapperConstructor`` built a placeholder, or an explicit ``type='MuSGD'`` regrouped
      as the reference's) over the constructor's parameter groups;
    - sets the accumulation ``accumulate = max(round(nominal_batch_size / total_batch), 1)``
      (``total_batch``: the training loader's batch size x world size), so changing
      ``train_dataloader.batch_size`` alone keeps the nominal batch of 64;
    - scales the decay group's weight decay to ``base * total_batch * accumulate /
      nominal_batch_size`` (groups tagged ``yolo_base_weight_decay`` by the constructor).

    Stepping before a decision raises. The optimizer steps once ``accumulate`` backward passes have
    happened since the last step; the accumulation may change during training
    (:meth:`set_accumulation`, e.g. the reference's warmup ramp 1 -> nominal). Gradients of the
    accumulated batches are **summed** as in the reference (``sum_accumulated_grads=True``), whereas
    mmengine divides each loss by the accumulation count (``False`` restores mmengine's average).
    :attr:`num_updates` counts optimizer steps (``YOLOEMAHook`` reads it).

    The decision's :class:`OptimizerChoice` is saved with the optimizer state (key
    ``yolo_optimizer_choice``); a resumed run restores it (:meth:`load_state_dict`).

    A step with a non-finite loss or gradient is skipped (:class:`~.nonfinite_skip.NonFiniteStepSkip`,
    argument ``nonfinite_skip``): :attr:`num_updates` does not advance, the accumulation window closes
    at its usual iteration.

    Args:
        accumulative_counts (int, optional): Fixed accumulation; ``None`` (default) derives it from
            the batch as above.
        nominal_batch_size (int): The reference's ``nbs``. Defaults to 64.
        sum_accumulated_grads (bool): Sum (reference) or average (mmengine) the gradients of
            accumulated batches. Defaults to True.
        auto_optimizer (bool): The optimizer is a placeholder for ``optimizer=dict(type='auto')``
            (set by ``YOLOOptimWrapperConstructor``). Defaults to False.
        auto_large_optimizer (str): The automatic choice above 10,000 iterations: ``'MuSGD'``
            (ultralytics 8.4, default) or ``'SGD'`` (8.3: SGD lr 0.01, momentum 0.9, Nesterov).
        nonfinite_skip (dict, optional): ``max_consecutive`` skipped steps in a row that stop the run
            (see :class:`~.nonfinite_skip.NonFiniteStepSkip`). Defaults to ``dict(max_consecutive=10)``.
        **kwargs: Arguments of the wrapped mmengine optimizer wrapper (``optimizer``, ``clip_grad``,
            AMP settings).

    Raises:
        ValueError: an invalid policy (see :class:`OptimizerPolicy`).
        RuntimeError: ``update_params`` before a decision.
    """

    def __init__(self, *args, accumulative_counts: Optional[int] = None, nominal_batch_size: int = 64,
                 sum_accumulated_grads: bool = True, auto_optimizer: bool = False,
                 auto_large_optimizer: str = 'MuSGD', **kwargs) -> None:
        self.policy = OptimizerPolicy(auto_optimizer, accumulative_counts, nominal_batch_size, auto_large_optimizer)
        super().__init__(*args, accumulative_counts=accumulative_counts or 1, **kwargs)
        self.sum_accumulated_grads = sum_accumulated_grads
        self.decision: Optional[OptimizerDecision] = None
        self.num_updates = 0
        self._last_update_count = 0
        # the constructor's groups (parameters, weight decay, yolo_* tags): what a chosen optimizer is built over
        self._source_groups = [{k: v for k, v in g.items() if k in ('params', 'weight_decay') or k.startswith('yolo_')}
                               for g in self.optimizer.param_groups]
        self._boosted: Optional[FrozenSet[int]] = None  # ids of the class branches' parameters (MuSGD LR x 3)

    # ------------------------------------------------------------ the decision
    def apply_decision(self, decision: OptimizerDecision, model: Optional[nn.Module] = None) -> str:
        """Build the decided optimizer, set the accumulation and scale the weight decay.

        Args:
            decision (OptimizerDecision): The run's decision.
            model (nn.Module, optional): The trained model; needed when the choice has the reference's
                MuSGD groups (its ``bbox_head.cls_convs`` and ``bbox_head.one2one_cls_convs`` parameters
                get LR x 3).

        Returns:
            str: A one-line description (for the log).

        Raises:
            RuntimeError: the optimizer already stepped.
            TypeError: MuSGD groups are chosen and no model was given.
        """
        if self.num_updates:
            raise RuntimeError(f'{type(self).__name__}: cannot change the optimizer decision after a step')
        if model is not None:
            model = model.module if is_model_wrapper(model) else model
            self._boosted = frozenset(id(p) for n, p in model.named_parameters()
                                      if n.startswith(MUSGD_BOOSTED_PREFIXES))
        if decision.choice.settings:
            self._build_optimizer(decision.choice)
        self.decision = decision
        self.set_accumulation(decision.accumulate)
        self._scale_weight_decay()
        groups = ', '.join(f"{len(g['params'])} {'muon' if g.get('use_muon') else 'sgd'}"
                           f"(lr x{g.get('yolo_lr_scale', 1)}, decay {g['weight_decay']:g})"
                           for g in self.optimizer.param_groups) if decision.choice.reference_groups else ''
        return decision.describe() + (f'; groups {groups}' if groups else '')

    def _build_optimizer(self, choice: OptimizerChoice) -> None:
        settings = dict(choice.settings)
        groups = [dict(g) for g in self._source_groups]
        if choice.reference_groups:
            if self._boosted is None:
                raise TypeError(f'{type(self).__name__}: MuSGD needs the model to find its class branches '
                                f"({', '.join(p + '*' for p in MUSGD_BOOSTED_PREFIXES)}, LR x {MUSGD_LR_BOOST:g})")
            groups = musgd_param_groups(groups, self._boosted, settings.get('lr', 0.01), boost=MUSGD_LR_BOOST)
        self.optimizer = OPTIMIZERS.get(choice.name)(groups, **settings)
        if self.base_param_settings is not None:  # mmengine's record of the base LR (logged as base_lr)
            self.base_param_settings = {'params': torch.tensor([0.0]), **self.optimizer.defaults}

    def _scale_weight_decay(self) -> None:
        scale = self.decision.weight_decay_scale
        for group in self.optimizer.param_groups:
            if 'yolo_base_weight_decay' in group:
                group['weight_decay'] = group['yolo_base_weight_decay'] * scale

    def state_dict(self) -> dict:
        """mmengine's state dict with the decision's choice (``yolo_optimizer_choice``)."""
        state = super().state_dict()
        if self.decision is not None:
            state[CHOICE_KEY] = self.decision.choice.to_dict()
        return state

    def load_state_dict(self, state_dict: dict) -> None:
        """Load a state (mmengine's resume); the saved choice is restored.

        When the rule decided another optimizer for this run than the checkpoint was trained with
        (e.g. ``max_epochs`` raised past 10,000 iterations under ``optimizer=auto``), the checkpoint's
        choice is re-applied, with a warning, so that its state loads into the optimizer it came from;
        the accumulation and weight decay follow this run's batch, as the reference's ``_setup_train``.
        """
        state_dict = dict(state_dict)
        saved = state_dict.pop(CHOICE_KEY, None)
        if saved is not None and self.decision is not None:
            choice = OptimizerChoice.from_dict(saved)
            if choice != self.decision.choice and not choice.settings:
                raise RuntimeError(f'{type(self).__name__}: the checkpoint was trained with {choice.reason}, this run '
                                   f'decides {self.decision.choice.reason}: resume with the checkpoint\'s optimizer')
            if choice != self.decision.choice:
                print_log(f'{type(self).__name__}: resuming with the checkpoint\'s optimizer ({choice.reason}) '
                          f'instead of this run\'s decision ({self.decision.choice.reason})',
                          logger='current', level=logging.WARNING)
                self.apply_decision(dataclasses.replace(self.decision, choice=choice))
        super().load_state_dict(state_dict)
        if self.decision is not None:  # this run's batch (the loaded groups hold the checkpoint's)
            self._scale_weight_decay()

    def set_accumulation(self, accumulate: int) -> None:
        """Number of backward passes per optimizer step from now on."""
        self._accumulative_counts = max(int(accumulate), 1)
        if self._max_counts > 0:
            self._remainder_counts = self._max_counts % self._accumulative_counts

    def initialize_count_status(self, model: nn.Module, init_counts: int, max_counts: int) -> None:
        """mmengine's count set-up; accumulation restarts at ``init_counts``.

        mmengine's warnings (a resumed count not divisible by the accumulation, BatchNorm under
        accumulation) concern its fixed-period accumulation, not the reference's, and are left out.
        """
        self._inner_count = init_counts
        self._max_counts = max_counts
        self._remainder_counts = max_counts % self._accumulative_counts
        self._last_update_count = init_counts

    # ------------------------------------------------------------ stepping
    def update_params(self, loss: torch.Tensor, step_kwargs: Optional[dict] = None,
                      zero_kwargs: Optional[dict] = None) -> None:
        if self.decision is None:
            raise RuntimeError(
                f'{type(self).__name__}: no optimizer decision yet (the training batch size is unknown, so the '
                'optimizer, gradient accumulation and weight decay are not settled); YOLOParamSchedulerHook makes '
                'it before the run (keep it in default_hooks.param_scheduler) or call apply_decision(decide_optimizer'
                '(wrapper.policy, wrapper.optimizer, TrainingRun(batch x world size)))')
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

    def _close_window(self) -> None:  # a skipped step (NonFiniteStepSkip): the window ends, no update
        self._last_update_count = self._inner_count


@OPTIM_WRAPPERS.register_module()
class YOLOOptimWrapper(YOLOGradAccumulation, OptimWrapper):
    """mmengine's ``OptimWrapper`` with the reference's gradient accumulation
    (see :class:`YOLOGradAccumulation` for the arguments)."""


@OPTIM_WRAPPERS.register_module()
class YOLOAmpOptimWrapper(YOLOGradAccumulation, AmpOptimWrapper):
    """mmengine's ``AmpOptimWrapper`` (``--amp``) with the reference's
    gradient accumulation (see :class:`YOLOGradAccumulation`)."""
