"""Switch off mosaic for the last N epochs."""
from mmdet.engine.hooks import PipelineSwitchHook
from mmdet.registry import HOOKS


@HOOKS.register_module()
class CloseMosaicHook(PipelineSwitchHook):
    """mmdet's ``PipelineSwitchHook`` with the switch epoch derived from ``max_epochs``.

    ``PipelineSwitchHook`` needs an absolute epoch, so a config that only
    overrides ``max_epochs`` would silently keep the old switch point; this
    switches at ``max_epochs - close_epochs`` (resume-safe, as the parent
    switches whenever ``epoch >= switch_epoch``).

    Args:
        close_epochs (int): Number of final epochs trained with
            ``switch_pipeline``. Defaults to 10.
        switch_pipeline (list[dict]): The pipeline without mosaic.
    """

    def __init__(self, switch_pipeline: list, close_epochs: int = 10) -> None:
        super().__init__(switch_epoch=-1, switch_pipeline=switch_pipeline)
        self.close_epochs = close_epochs

    def before_train(self, runner) -> None:
        self.switch_epoch = max(runner.max_epochs - self.close_epochs, 0)

    def before_train_epoch(self, runner) -> None:
        if self.close_epochs > 0:
            super().before_train_epoch(runner)
