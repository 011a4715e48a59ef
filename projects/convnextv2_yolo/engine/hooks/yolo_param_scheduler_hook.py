"""The reference's warmup + linear LR schedule as one hook."""
import logging
from typing import Optional

import numpy as np
from mmdet.registry import HOOKS
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.runner import IterBasedTrainLoop

from ..optimizers import OptimizerDecision, TrainingRun, YOLOGradAccumulation, decide_optimizer


@HOOKS.register_module()
class YOLOParamSchedulerHook(Hook):
    """Warmup then linear decay of the reference trainer.

    mmengine's schedulers scale every param group alike; the reference warms
    the bias group from ``warmup_bias_lr`` *down* to the LR while the others
    rise from 0, and ramps momentum ``warmup_momentum -> momentum``, so this is
    one hook (it replaces ``ParamSchedulerHook``).

    Per iteration ``i`` (global) of epoch ``e`` with ``W = max(round(
    min(warmup_epochs, max_epochs - 1) * iters_per_epoch), warmup_min_iters)``
    (ultralytics 8.4 ``BaseTrainer._get_warmup_iterations``: the warmup
    leaves the last epoch to regular training and has no minimum; 8.3 used
    ``max(round(warmup_epochs * iters_per_epoch), 100)``, which is
    ``warmup_min_iters=100, warmup_leave_last_epoch=False``):
    ``lf(e) = (1 - e / max_epochs) * (1 - lr_factor) + lr_factor``; while
    ``i <= W`` the LR of a group is ``interp(i, [0, W], [start, lr0 * lf(e)])``
    (``start`` = ``warmup_bias_lr`` for the group tagged ``yolo_bias`` by
    ``YOLOOptimWrapperConstructor``, else 0) and momentum
    ``interp(i, [0, W], [warmup_momentum, momentum0])``; afterwards LR is
    ``lr0 * lf(e)``. In an iteration-based loop ``e / max_epochs`` is replaced
    by ``i / max_iters``. The logged ``lr`` is the weights' LR of the current
    iteration (during warmup the bias group's starts higher). Everything is derived from (iter, epoch), so resuming
    continues the same curve.

    Before the run it makes the optimizer decision
    (:func:`~convnextv2_yolo.engine.optimizers.decide_optimizer` for the run's
    batch, dataset and schedule: ``optimizer=dict(type='auto')`` by the
    reference's rule, AdamW up to 10,000 iterations, MuSGD above, the warmup
    bias LR then 0; an explicit ``type='MuSGD'`` regrouped as the reference's;
    the gradient accumulation ``A = max(round(nominal_batch / batch), 1)``
    with ``batch`` = ``train_dataloader`` batch size x world size) and hands
    it to the :class:`YOLOOptimWrapper`
    (``YOLOGradAccumulation.apply_decision``), which builds the optimizer and
    derives the weight-decay scale. Each group's LR, including MuSGD's
    class-branch LR x 3, is its own ``yolo_initial_lr``. From then on the hook
    reads the wrapper's ``decision`` (a resumed run's is the checkpoint's
    choice). With ``warmup_accumulate`` the accumulation ramps like the
    reference's: ``max(1, round(interp(i, [0, W], [1, A])))`` during warmup,
    then ``A`` (8.4 ramps to the integer ``A``; 8.3 to ``nominal_batch /
    batch``); an accumulation fixed by ``optim_wrapper.accumulative_counts``
    does not ramp.

    Args:
        lr_factor (float): Final LR as a fraction of the initial LR. Defaults to 0.01.
        warmup_epochs (float): Warmup length in epochs. Defaults to 3.
        warmup_min_iters (int): Minimum warmup length in iterations. Defaults to 0.
        warmup_leave_last_epoch (bool): Cap the warmup at ``max_epochs - 1``
            epochs (epoch-based loops). Defaults to True.
        warmup_bias_lr (float): Starting LR of the bias group. Defaults to 0.1.
        warmup_momentum (float): Starting momentum. Defaults to 0.8.
        warmup_accumulate (bool): Ramp the gradient accumulation from 1 to
            nominal during warmup, as the reference does (needs a
            ``YOLOOptimWrapper``). Defaults to False (our configs set True).
    """

    priority = 'LOW'  # like ParamSchedulerHook

    def __init__(self, lr_factor: float = 0.01, warmup_epochs: float = 3,
                 warmup_min_iters: int = 0, warmup_bias_lr: float = 0.1,
                 warmup_momentum: float = 0.8, warmup_accumulate: bool = False,
                 warmup_leave_last_epoch: bool = True) -> None:
        self.lr_factor = lr_factor
        self.warmup_epochs = warmup_epochs
        self.warmup_min_iters = warmup_min_iters
        self.warmup_bias_lr = warmup_bias_lr
        self.warmup_momentum = warmup_momentum
        self.warmup_accumulate = warmup_accumulate
        self.warmup_leave_last_epoch = warmup_leave_last_epoch
        self.warmup_iters: Optional[int] = None
        self._decision: Optional[OptimizerDecision] = None  # the optimizer wrapper's, read in before_train
        self._bias_lr = warmup_bias_lr  # the warmup's bias LR in effect (the decision may set it)

    def before_run(self, runner) -> None:
        """Make the optimizer decision and hand it to the optimizer wrapper (before a resume loads the
        optimizer state). Other wrappers (mmengine's) are left as they are."""
        wrapper = runner.optim_wrapper
        if not isinstance(wrapper, YOLOGradAccumulation) or wrapper.decision is not None:
            return
        run = TrainingRun.from_runner(runner, wrapper.policy.nominal_batch_size)
        decision = decide_optimizer(wrapper.policy, wrapper.optimizer, run)
        print_log(f'YOLOParamSchedulerHook: {wrapper.apply_decision(decision, runner.model)}', logger='current')
        if wrapper.policy.auto and (runner.auto_scale_lr or {}).get('enable'):
            # mmengine scaled the placeholder's LR, now replaced
            print_log("YOLOParamSchedulerHook: auto_scale_lr (--auto-scale-lr) does not apply to optimizer 'auto': "
                      'its LR is the reference\'s choice for the dataset (set an explicit optimizer to scale it)',
                      logger='current', level=logging.WARNING)

    def lr_lambda(self, progress: float) -> float:
        """LR factor after ``progress`` (0..1) of training: linear from 1 to ``lr_factor``."""
        return max(1 - progress, 0) * (1.0 - self.lr_factor) + self.lr_factor

    @staticmethod
    def progress(runner) -> float:
        """Fraction of training done: by epoch (the reference's, per epoch) or, for
        iteration-based loops, by iteration."""
        if isinstance(runner.train_loop, IterBasedTrainLoop):
            return runner.iter / max(runner.max_iters, 1)
        return runner.epoch / runner.max_epochs

    def before_train(self, runner) -> None:
        for group in runner.optim_wrapper.param_groups:
            group.setdefault('yolo_initial_lr', group['lr'])
            if 'momentum' in group:
                group.setdefault('yolo_initial_momentum', group['momentum'])
        iters_per_epoch = len(runner.train_dataloader)
        epochs = self.warmup_epochs
        if self.warmup_leave_last_epoch and not isinstance(runner.train_loop, IterBasedTrainLoop):
            epochs = min(epochs, max(runner.max_epochs - 1, 0))
        warmup = max(round(epochs * iters_per_epoch), self.warmup_min_iters) if self.warmup_epochs > 0 else 0
        self.warmup_iters = warmup if warmup > 0 else -1  # -1: no warmup
        wrapper = runner.optim_wrapper
        if isinstance(wrapper, YOLOGradAccumulation):
            if wrapper.decision is None:
                raise RuntimeError('YOLOParamSchedulerHook: the optimizer wrapper has no decision (made in before_run)')
            self._decision = wrapper.decision
            if self._decision.choice.warmup_bias_lr is not None:
                self._bias_lr = self._decision.choice.warmup_bias_lr
        elif self.warmup_accumulate:
            raise TypeError(f'YOLOParamSchedulerHook: warmup_accumulate needs a YOLOOptimWrapper, '
                            f'got {type(wrapper).__name__}')

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        it, lf = runner.iter, self.lr_lambda(self.progress(runner))
        warm = it <= self.warmup_iters
        if self.warmup_accumulate:
            nominal = self._decision.accumulate
            if warm and self._decision.ramp_accumulation:
                nominal = max(1, round(float(np.interp(it, [0, self.warmup_iters], [1, nominal]))))
            runner.optim_wrapper.set_accumulation(nominal)
        for group in runner.optim_wrapper.param_groups:
            target = group['yolo_initial_lr'] * lf
            if warm:
                start = self._bias_lr if group.get('yolo_bias') else 0.0
                group['lr'] = float(np.interp(it, [0, self.warmup_iters], [start, target]))
                if 'yolo_initial_momentum' in group:
                    group['momentum'] = float(np.interp(it, [0, self.warmup_iters],
                                                        [self.warmup_momentum,
                                                         group['yolo_initial_momentum']]))
            else:
                group['lr'] = target
                if 'yolo_initial_momentum' in group:
                    group['momentum'] = group['yolo_initial_momentum']
        # mmengine's RuntimeInfoHook logged the LRs before this hook set them: log this
        # iteration's, and as `lr` the weights' LR (the first group is the biases', higher in warmup)
        groups = runner.optim_wrapper.param_groups
        main = next((g for g in groups if 'yolo_base_weight_decay' in g), groups[0])
        runner.message_hub.update_scalar('train/lr', main['lr'])
