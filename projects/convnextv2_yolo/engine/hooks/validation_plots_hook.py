"""Write the reference's validation plots and ``results.png`` into the work dir (wiring only).

The drawing is :mod:`convnextv2_yolo.visualization.validation_plots`.
"""
import logging
import os.path as osp
from typing import Optional

from mmdet.registry import HOOKS
from mmengine.dist import master_only
from mmengine.hooks import Hook
from mmengine.logging import print_log

from ...visualization.validation_plots import DEFAULT_DPI, plot_results_csv, save_validation_plots


def find_yolo_results(evaluator):
    """The ``yolo_results`` of the first :class:`YOLODetMetric` of an mmengine ``Evaluator`` (None: none)."""
    for metric in getattr(evaluator, 'metrics', None) or []:
        if hasattr(metric, 'yolo_results'):
            return metric
    return None


@HOOKS.register_module()
class ValidationPlotsHook(Hook):
    """Draw the reference's plots at the end of training and of testing.

    - after training (after the last validation): from the val evaluator's
      :class:`YOLODetMetric` results of that validation, ``confusion_matrix.png``,
      ``confusion_matrix_normalized.png`` (score > the metric's ``confusion_conf``, 0.001 as the
      reference's validation; IoU > ``confusion_iou``, 0.45), ``BoxPR_curve.png``,
      ``BoxF1_curve.png``, ``BoxP_curve.png``, ``BoxR_curve.png``; and ``results.png`` from
      ``results.csv`` (:class:`ResultsCSVHook`) when the work dir has one. The reference draws the
      same set at the end of training (its final validation and ``plot_results``).
    - after testing (``tools/test.py``): the validation plots from the test evaluator.

    Files go to ``runner.work_dir`` (or ``out_dir``), replacing those of an earlier run. Rank 0 only.
    Without a :class:`YOLODetMetric` in the evaluator the validation plots are skipped with a
    warning; a plotting error is logged as a warning and does not stop the run.

    Args:
        enabled (bool): Draw anything at all (``tools/test.py --no-plots`` / ``tools/train.py
            --no-plots`` set it False). Defaults to True.
        out_dir (str, optional): Folder of the plots; default the work dir.
        results_csv (str): ``results.csv`` file name in the work dir. Defaults to ``'results.csv'``.
        dpi (int): Resolution of the PNGs. Defaults to 150.
    """

    priority = 'LOW'  # after ResultsCSVHook (BELOW_NORMAL) wrote the last row in after_train

    def __init__(self, enabled: bool = True, out_dir: Optional[str] = None, results_csv: str = 'results.csv',
                 dpi: int = DEFAULT_DPI) -> None:
        self.enabled = enabled
        self.out_dir = out_dir
        self.results_csv = results_csv
        self.dpi = dpi
        self._last = None  # the YOLODetResults of the latest validation
        self.written = []  # files written by the latest drawing

    def _dir(self, runner) -> str:
        return self.out_dir or runner.work_dir

    @master_only
    def after_val_epoch(self, runner, metrics=None) -> None:
        if not self.enabled:
            return
        metric = find_yolo_results(runner.val_evaluator)
        self._last = metric.yolo_results if metric is not None else None

    @master_only
    def after_train(self, runner) -> None:
        if not self.enabled:
            return
        self.written = []
        if self._last is not None:
            self._draw(runner, self._last, 'validation')
        elif runner.val_loop is not None:
            print_log('ValidationPlotsHook: no YOLODetMetric results from a validation: no validation plots',
                      logger='current', level=logging.WARNING)
        csv_path = osp.join(runner.work_dir, self.results_csv)
        if osp.isfile(csv_path):
            try:
                out = plot_results_csv(csv_path, osp.join(self._dir(runner), 'results.png'), dpi=self.dpi)
                if out:
                    self.written.append(out)
            except Exception as e:  # noqa: BLE001  a plot must not fail a finished training
                print_log(f'ValidationPlotsHook: results.png failed: {type(e).__name__}: {e}', logger='current',
                          level=logging.WARNING)
        self._report()

    @master_only
    def after_test_epoch(self, runner, metrics=None) -> None:
        if not self.enabled:
            return
        self.written = []
        metric = find_yolo_results(runner.test_evaluator)
        if metric is None or metric.yolo_results is None:
            print_log('ValidationPlotsHook: the test evaluator has no YOLODetMetric results: no plots',
                      logger='current', level=logging.WARNING)
            return
        self._draw(runner, metric.yolo_results, 'test')
        self._report()

    def _draw(self, runner, res, what: str) -> None:
        try:
            self.written += save_validation_plots(res, self._dir(runner), dpi=self.dpi)
        except Exception as e:  # noqa: BLE001
            print_log(f'ValidationPlotsHook: the {what} plots failed: {type(e).__name__}: {e}', logger='current',
                      level=logging.WARNING)

    def _report(self) -> None:
        if self.written:
            names = ', '.join(osp.basename(p) for p in self.written)
            print_log(f'ValidationPlotsHook: wrote {names} in {osp.dirname(self.written[0])}', logger='current')
