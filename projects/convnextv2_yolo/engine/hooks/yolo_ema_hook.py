"""EMA updated per optimizer step (the reference) or per iteration (mmengine)."""
from typing import Optional

from mmdet.registry import HOOKS
from mmengine.hooks import EMAHook

from ..optimizers import YOLOGradAccumulation


@HOOKS.register_module()
class YOLOEMAHook(EMAHook):
    """mmengine's ``EMAHook`` that can update the average only when the
    optimizer stepped.

    Under gradient accumulation the reference updates its EMA inside
    ``optimizer_step`` (``ultralytics/engine/trainer.py``), so its update
    counter, and the decay warm-up ``d = decay * (1 - exp(-updates / tau))``
    that depends on it, advance once per optimizer step; mmengine's
    ``EMAHook`` updates after every iteration, i.e. ``accumulate`` times
    faster. ``update_on='optimizer_step'`` follows the reference (with
    ``ema_type='YOLOModelEMA'`` the updates are then exactly the
    reference's); ``'iteration'`` is mmengine's behaviour.

    A step is read from the step counter ``num_updates`` of a
    ``YOLOOptimWrapper`` (whose accumulation follows the optimizer decision and
    may ramp), else from ``should_update()`` (mmengine's wrappers, whose step
    decision is a function of the iteration count); which one is settled in
    ``before_train``.

    The average is (re)initialised from the model in ``before_train`` when
    it has no update yet, i.e. after weight initialisation and
    ``load_from`` (``before_run``, where mmengine copies the model, comes
    before both); a resumed run keeps the average and its counter from the
    checkpoint.

    An iteration whose optimizer wrapper skipped its backward or step for a
    non-finite loss or gradient (``skipped`` of a ``NonFiniteStepSkip``
    wrapper: ``YOLOOptimWrapper``, ``SkipNonFiniteOptimWrapper``) leaves the
    average and its counter untouched, with either ``update_on``.

    Args:
        update_on (str): 'optimizer_step' or 'iteration'. Defaults to
            'iteration'.
        **kwargs: ``EMAHook`` arguments (``ema_type``, ``begin_iter``, ...)
            and those of the averaged model (``momentum``, ``decay``, ...).
    """

    def __init__(self, update_on: str = 'iteration', **kwargs) -> None:
        if update_on not in ('iteration', 'optimizer_step'):
            raise ValueError(f"YOLOEMAHook: update_on must be 'iteration' or 'optimizer_step', got {update_on!r}")
        super().__init__(**kwargs)
        self.update_on = update_on
        self._updates_before: Optional[int] = None
        self._counter: Optional[YOLOGradAccumulation] = None  # the wrapper whose steps are counted

    def before_train(self, runner) -> None:
        super().before_train(runner)
        wrapper = runner.optim_wrapper
        self._counter = wrapper if isinstance(wrapper, YOLOGradAccumulation) else None
        if int(self.ema_model.steps) == 0:  # not resumed: start from the initialised model
            self.ema_model.module.load_state_dict(self.src_model.state_dict())

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        self._updates_before = self._counter.num_updates if self._counter is not None else None

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs: Optional[dict] = None) -> None:
        if getattr(runner.optim_wrapper, 'skipped', False):  # a non-finite loss or gradient: nothing changed
            return
        if self.update_on == 'optimizer_step' and not self._stepped(runner):
            return
        super().after_train_iter(runner, batch_idx, data_batch, outputs)

    def _stepped(self, runner) -> bool:
        if self._counter is not None:
            return self._counter.num_updates != self._updates_before
        return bool(runner.optim_wrapper.should_update())
