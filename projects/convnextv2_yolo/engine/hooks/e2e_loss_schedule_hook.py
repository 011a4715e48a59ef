"""The per-epoch one-to-many / one-to-one loss weights of end-to-end YOLO heads (YOLO26)."""
import logging

from mmdet.registry import HOOKS
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper
from mmengine.runner import IterBasedTrainLoop


@HOOKS.register_module()
class E2ELossScheduleHook(Hook):
    """Set ``model.bbox_head.o2m_weight`` before each training epoch.

    In epoch ``e`` (0-based) of ``E = max_epochs`` the one-to-many weight is
    ``final + (start - final) * max(1 - e / max(E - 1, 1), 0)`` (the one-to-one
    branch gets ``1 - o2m``): ``start`` in the first epoch, ``final`` in the
    last, linear in between (E=100: 0.8, 0.79293, ..., 0.10707, 0.1). As the
    reference's ``E2ELoss.update`` / ``decay`` (ultralytics/utils/loss.py),
    which its trainer calls once after each epoch's iterations
    (ultralytics/engine/trainer.py ``_do_train``), and on resume with the
    resumed epoch. Here the value is computed from ``runner.epoch`` in
    ``before_train_epoch``, so a resumed run gets its epoch's weight.

    The schedule is per epoch: in an iteration-based loop (no epochs) the
    weight stays ``start``, with a warning.

    Args:
        start (float): One-to-many weight in the first epoch. Defaults to 0.8.
        final (float): One-to-many weight in the last epoch. Defaults to 0.1.
    """

    priority = 'NORMAL'

    def __init__(self, start: float = 0.8, final: float = 0.1) -> None:
        for name, value in (('start', start), ('final', final)):
            if not 0 <= value <= 1:
                raise ValueError(f'E2ELossScheduleHook: {name} must be in [0, 1], got {value}')
        self.start = float(start)
        self.final = float(final)

    def weight(self, epoch: int, max_epochs: int) -> float:
        """One-to-many weight of 0-based ``epoch`` out of ``max_epochs``."""
        return max(1 - epoch / max(max_epochs - 1, 1), 0) * (self.start - self.final) + self.final

    @staticmethod
    def _head(runner):
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        head = getattr(model, 'bbox_head', None)
        if head is None or not hasattr(head, 'o2m_weight'):
            raise AttributeError(f'E2ELossScheduleHook: the model ({type(model).__name__}) has no '
                                 'bbox_head.o2m_weight (an end-to-end head, e.g. YOLOE2EHead)')
        return head

    def before_train(self, runner) -> None:
        head = self._head(runner)
        if isinstance(runner.train_loop, IterBasedTrainLoop):
            head.o2m_weight = self.start
            print_log(f'E2ELossScheduleHook: an iteration-based loop has no epochs: the one-to-many weight '
                      f'stays {self.start}', logger='current', level=logging.WARNING)

    def before_train_epoch(self, runner) -> None:
        if isinstance(runner.train_loop, IterBasedTrainLoop):
            return
        head = self._head(runner)
        head.o2m_weight = self.weight(runner.epoch, runner.max_epochs)
        print_log(f'E2ELossScheduleHook: epoch {runner.epoch + 1}/{runner.max_epochs}: one-to-many loss weight '
                  f'{head.o2m_weight:.5f}, one-to-one {max(1 - head.o2m_weight, 0):.5f}', logger='current')
