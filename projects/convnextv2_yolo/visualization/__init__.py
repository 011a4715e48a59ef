"""Plots of validation results and training progress (matplotlib, Agg canvas)."""
from .validation_plots import (RESULTS_PLOT_FILE, VALIDATION_PLOT_FILES, draw_confusion_matrix, draw_metric_confidence,
                               draw_pr_curve, plot_confusion_matrix, plot_metric_confidence, plot_pr_curve,
                               plot_results_csv, save_validation_plots)

__all__ = ['RESULTS_PLOT_FILE', 'VALIDATION_PLOT_FILES', 'draw_confusion_matrix', 'draw_metric_confidence',
           'draw_pr_curve', 'plot_confusion_matrix', 'plot_metric_confidence', 'plot_pr_curve', 'plot_results_csv',
           'save_validation_plots']
