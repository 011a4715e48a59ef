"""Skipping optimizer steps with a non-finite loss or gradient (issue 22, crash-safe training)."""
import logging
from contextlib import contextmanager
from typing import Dict, List, Optional

import torch
import torch.distributed as torch_dist
import torch.nn as nn
from mmdet.registry import OPTIM_WRAPPERS
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper
from mmengine.optim import AmpOptimWrapper, OptimWrapper

DEFAULT_MAX_CONSECUTIVE = 10


class NonFiniteStepSkip:
    """Mixin of mmengine optimizer wrappers: an optimizer step with a non-finite loss or gradient is skipped.

    In :meth:`update_params`:

    - a non-finite total loss is detected **before** backward, which is then not run;
    - non-finite gradients are detected after backward, when the optimizer would step (before
      clipping), on the accumulated gradients; under AMP (a wrapper with a ``loss_scaler``) the
      gradient check is the ``GradScaler``'s own (it skips ``optimizer.step`` and lowers the scale,
      as in the reference trainer), which is logged and not counted as a skip here.

    A skipped step does not call ``optimizer.step``: the weights and the optimizer state (momentum
    buffers, step counts) are untouched; the gradients are zeroed; the BatchNorm running statistics
    updated by the faulty forward are restored (they are saved when :meth:`optim_context` opens, i.e.
    before the forward); :attr:`skipped` is set for the iteration so that ``YOLOEMAHook`` leaves the
    EMA untouched; step counters (``num_updates`` of ``YOLOGradAccumulation``) do not advance.

    Under gradient accumulation a non-finite micro-batch drops the **whole** accumulated step: a
    non-finite gradient is only seen on the accumulated sum, where the faulty micro-batch cannot be
    told apart, so both faults follow one rule; the accumulation window closes at its usual
    iteration (the next step again sums ``accumulate`` fresh micro-batches, aligned with the
    iterations as a resumed run is). Under DDP the loss check is reduced over the ranks (all skip
    together; gradients are already synchronised when the step is decided).

    Each skipped step is logged (WARNING) with the iteration, the fault (the loss, or the number of
    parameters with non-finite gradients, the first one's name and parameter group) and the loss
    components of that iteration (``loss_components`` of the model, recorded by our models'
    ``parse_losses``); ``train/nonfinite_skips`` (skipped steps so far) is a message-hub scalar
    (in the training log). ``max_consecutive`` skipped steps in a row raise a ``RuntimeError``
    naming the iterations, the last loss components and the last checkpoint (``last_ckpt`` of the
    message hub, written by ``CheckpointHook``); as skipped steps never change the weights, that
    checkpoint and the weights in memory are the last good ones.

    Args:
        nonfinite_skip (dict, optional): ``max_consecutive`` (int | None): skipped steps in a row that
            stop the run (None: never). Defaults to ``dict(max_consecutive=10)``.
        **kwargs: Arguments of the wrapped mmengine optimizer wrapper.
    """

    def __init__(self, *args, nonfinite_skip: Optional[dict] = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        settings = dict(max_consecutive=DEFAULT_MAX_CONSECUTIVE) if nonfinite_skip is None else dict(nonfinite_skip)
        unknown = set(settings) - {'max_consecutive'}
        if unknown:
            raise KeyError(f'{type(self).__name__}: unknown nonfinite_skip keys {sorted(unknown)} '
                           "(only 'max_consecutive')")
        limit = settings.get('max_consecutive', DEFAULT_MAX_CONSECUTIVE)
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
            raise ValueError(f'{type(self).__name__}: nonfinite_skip.max_consecutive must be an int >= 1 or None, '
                             f'got {limit!r}')
        self.max_consecutive_skips: Optional[int] = limit
        self.num_skipped_steps = 0  # skipped optimizer steps in this run
        self.consecutive_skips = 0
        self.num_scaler_skips = 0  # AMP: steps the GradScaler skipped (not counted above)
        self.skipped = False  # the last update_params call skipped a backward or a step
        self._first_skip_iter: Optional[int] = None
        self._window_fault: Optional[str] = None  # why the current accumulation window is dropped
        self._model: Optional[nn.Module] = None
        self._norm_buffers: List[torch.Tensor] = []
        self._norm_backup: List[torch.Tensor] = []
        self._norm_model_id: Optional[int] = None

    # ------------------------------------------------------------ the forward
    @contextmanager
    def optim_context(self, model: nn.Module):
        """The wrapped context; remembers the model and saves its BatchNorm statistics (before the forward)."""
        self._model = model.module if is_model_wrapper(model) else model
        self._save_norm_buffers(self._model)
        with super().optim_context(model):
            yield

    def _save_norm_buffers(self, model: nn.Module) -> None:
        if self._norm_model_id != id(model):
            self._norm_buffers = [b for m in model.modules() if isinstance(m, nn.modules.batchnorm._NormBase)
                                  for b in m.buffers(recurse=False) if b is not None]
            self._norm_backup = [torch.empty_like(b) for b in self._norm_buffers]
            self._norm_model_id = id(model)
        if self._norm_buffers:
            torch._foreach_copy_(self._norm_backup, self._norm_buffers)

    def _restore_norm_buffers(self) -> None:
        if self._norm_buffers:
            torch._foreach_copy_(self._norm_buffers, self._norm_backup)

    # ------------------------------------------------------------ stepping
    def update_params(self, loss: torch.Tensor, step_kwargs: Optional[dict] = None,
                      zero_kwargs: Optional[dict] = None) -> None:
        """mmengine's ``update_params`` (scale, backward, step and zero the gradients when the
        accumulation says so) with the non-finite checks; see the class."""
        step_kwargs = step_kwargs or {}
        zero_kwargs = zero_kwargs or {}
        self.skipped = False
        if not self._loss_finite(loss):
            self._inner_count += 1  # the micro-batch is consumed (backward is not run)
            self._restore_norm_buffers()
            self.skipped = True
            if self._window_fault is None:
                self._window_fault = f'{self._where()}: non-finite loss ({self._float(loss.detach())}); ' \
                                     f'loss components: {self._components()}'
        else:
            self.backward(self.scale_loss(loss))
        if not self.should_update():
            return
        if self._window_fault is None and not self._scaler_checks_gradients():
            self._window_fault = self._gradient_fault()
        if self._window_fault is not None:
            self._skip_step()
        else:
            self._step_and_watch_scaler(**step_kwargs)
            self.consecutive_skips = 0
            self._first_skip_iter = None
        self.zero_grad(**zero_kwargs)
        self.message_hub.update_scalar('train/nonfinite_skips', self.num_skipped_steps)

    def _skip_step(self) -> None:
        fault, self._window_fault = self._window_fault, None
        self.skipped = True
        self.num_skipped_steps += 1
        self.consecutive_skips += 1
        if self._first_skip_iter is None:
            self._first_skip_iter = self._iteration()
        self._close_window()
        limit = self.max_consecutive_skips
        print_log(f'{type(self).__name__}: {fault}. The optimizer step is skipped (weights, optimizer state and '
                  f'EMA unchanged; {self.consecutive_skips} skipped in a row'
                  f'{f" of at most {limit}" if limit else ""}, {self.num_skipped_steps} in this run)',
                  logger='current', level=logging.WARNING)
        if limit is not None and self.consecutive_skips >= limit:
            first, last = self._first_skip_iter, self._iteration()
            span = f'iterations {first + 1}-{last + 1}' if first is not None and last is not None else 'iterations ?'
            ckpt = self.message_hub.get_info('last_ckpt')
            where = (f'the last good checkpoint is {ckpt}' if ckpt else
                     'no checkpoint was written in this run yet (load_from/resume, if any, is the last good one)')
            message = (f'{type(self).__name__}: {self.consecutive_skips} optimizer steps in a row skipped for '
                       f'non-finite losses or gradients ({span}; nonfinite_skip.max_consecutive={limit}); the last: '
                       f'{fault}. Training stops; the weights were not changed by the skipped steps, {where}')
            print_log(message, logger='current', level=logging.ERROR)
            raise RuntimeError(message)

    def _close_window(self) -> None:
        """End the accumulation window without a step (mmengine's windows follow the count: nothing to do)."""

    def _step_and_watch_scaler(self, **kwargs) -> None:
        scaler = getattr(self, 'loss_scaler', None)
        before = scaler.get_scale() if scaler is not None and scaler.is_enabled() else None
        self.step(**kwargs)
        if before is None:
            return
        after = scaler.get_scale()
        if after < before:  # the dynamic scaler found inf/NaN gradients: it skipped optimizer.step
            self.num_scaler_skips += 1
            print_log(f'{type(self).__name__}: {self._where()}: the AMP grad scaler found non-finite gradients and '
                      f'skipped the optimizer step (loss scale {before:g} -> {after:g}; {self.num_scaler_skips} '
                      'scaler skips in this run, not counted in nonfinite_skip)', logger='current',
                      level=logging.WARNING)
        self.message_hub.update_scalar('train/amp_scaler_skips', self.num_scaler_skips)

    # ------------------------------------------------------------ checks
    def _scaler_checks_gradients(self) -> bool:
        scaler = getattr(self, 'loss_scaler', None)
        return scaler is not None and scaler.is_enabled()

    def _loss_finite(self, loss: torch.Tensor) -> bool:
        finite = torch.isfinite(loss.detach()).all()
        if torch_dist.is_available() and torch_dist.is_initialized() and torch_dist.get_world_size() > 1:
            flag = finite.to(torch.int32)
            torch_dist.all_reduce(flag, op=torch_dist.ReduceOp.MIN)  # one rank's fault skips all of them
            if not bool(flag):
                return False
        return bool(finite)

    def _params(self) -> List[torch.Tensor]:
        return [p for group in self.optimizer.param_groups for p in group['params'] if p.grad is not None]

    def _gradient_fault(self) -> Optional[str]:
        params = self._params()
        if not params:
            return None
        maxima = torch._foreach_norm([p.grad.detach() for p in params], float('inf'))
        if bool(torch.isfinite(torch.stack([m.float() for m in maxima])).all()):
            return None
        bad = {id(p) for p, m in zip(params, maxima) if not torch.isfinite(m)}
        names: Dict[int, str] = {}
        if self._model is not None:
            names = {id(p): n for n, p in self._model.named_parameters()}
        first = next(p for p in params if id(p) in bad)
        group = next(i for i, g in enumerate(self.optimizer.param_groups) if any(p is first for p in g['params']))
        return (f'{self._where()}: non-finite gradients in {len(bad)} parameter(s), the first '
                f'{names.get(id(first), "<unnamed>")} (group {group}); loss components: {self._components()}')

    # ------------------------------------------------------------ reporting
    def _iteration(self) -> Optional[int]:
        it = self.message_hub.get_info('iter')
        return None if it is None else int(it)

    def _where(self) -> str:
        it, epoch = self._iteration(), self.message_hub.get_info('epoch')
        text = 'iteration ?' if it is None else f'iteration {it + 1}'
        return text + (f' (epoch {int(epoch) + 1})' if epoch is not None else '')

    @staticmethod
    def _float(value) -> str:
        try:
            return f'{float(value):.6g}'
        except (TypeError, ValueError, RuntimeError):
            return repr(value)

    def _components(self) -> str:
        components = getattr(self._model, 'loss_components', None)
        if not components:
            return f'not recorded by {type(self._model).__name__}'
        return ', '.join(f'{k}={self._float(v)}' for k, v in components.items())


@OPTIM_WRAPPERS.register_module()
class SkipNonFiniteOptimWrapper(NonFiniteStepSkip, OptimWrapper):
    """mmengine's ``OptimWrapper`` that skips steps with a non-finite loss or gradient
    (see :class:`NonFiniteStepSkip`)."""


@OPTIM_WRAPPERS.register_module()
class SkipNonFiniteAmpOptimWrapper(NonFiniteStepSkip, AmpOptimWrapper):
    """mmengine's ``AmpOptimWrapper`` (``--amp``) that skips steps with a non-finite loss; non-finite
    gradients are the grad scaler's (logged), see :class:`NonFiniteStepSkip`."""
