"""The reference's (Ultralytics) validation and training plots, drawn from our metric's arrays.

Figures are drawn with matplotlib's object API on the Agg canvas (no pyplot, no
global backend switch, no display needed) and written atomically as PNG:

================================ ===============================================================
file                             content
================================ ===============================================================
``confusion_matrix.png``         counts, row = predicted class, column = true class, background
                                 last (row: missed ground truth; column: unmatched detections)
``confusion_matrix_normalized``  the same, each column divided by its sum (fraction of each true
``.png``                         class, background column: of the unmatched detections)
``BoxPR_curve.png``              precision envelope vs recall at IoU 0.5 per class (AP50 in the
                                 legend) and their mean (thick, mAP50 in the legend)
``BoxF1_curve.png``,             F1 / precision / recall vs confidence (IoU 0.5) per class and
``BoxP_curve.png``,              their mean smoothed over 10% of the axis (thick, its maximum and
``BoxR_curve.png``               where in the legend), and the operating confidence (dashed)
``results.png``                  ``results.csv`` per epoch: train losses, LR pg0, P, R, mAP50,
                                 mAP50-95 (markers) and a Gaussian-smoothed line (dotted)
================================ ===============================================================

The names and conventions are the reference's (8.4: ``ConfusionMatrix.plot``,
``plot_pr_curve``, ``plot_mc_curve``, ``plot_results``): per-class lines and
legend entries only below 21 classes (grey lines without legend above),
confusion-matrix cells annotated below 30 classes, tick labels below 99, every
k-th class shown from 100 classes on; normalised cells below 0.005 left blank.
"""
import io
import math
import os.path as osp
import warnings
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..evaluation.metrics.yolo_det_metric import YOLODetResults, smooth
from ..utils.checkpoint_io import write_atomic

#: file names of :func:`save_validation_plots`, as the reference's validator names them
CONFUSION_FILES = ('confusion_matrix.png', 'confusion_matrix_normalized.png')
CURVE_FILES = ('BoxPR_curve.png', 'BoxF1_curve.png', 'BoxP_curve.png', 'BoxR_curve.png')
VALIDATION_PLOT_FILES = CONFUSION_FILES + CURVE_FILES
RESULTS_PLOT_FILE = 'results.png'
DEFAULT_DPI = 150  # the reference uses 250 (curves, matrix) and 200 (results); 150 keeps files small
MAX_LEGEND_CLASSES = 20  # per-class legend below 21 classes (the reference's)


def _figure(figsize: Tuple[float, float]):
    """A matplotlib Figure on an Agg canvas (nothing global touched)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    fig = Figure(figsize=figsize)
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path: str, dpi: int) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format='png', dpi=dpi)
    write_atomic(path, buf.getvalue())
    return path


def plot_confusion_matrix(matrix: np.ndarray, names: Sequence[str], path: str, normalize: bool = False,
                          conf: Optional[float] = None, iou: Optional[float] = None, dpi: int = DEFAULT_DPI) -> str:
    """Write :func:`draw_confusion_matrix` to ``path`` (PNG at ``dpi``); returns ``path``."""
    return _save(draw_confusion_matrix(matrix, names, normalize, conf, iou), path, dpi)


def draw_confusion_matrix(matrix: np.ndarray, names: Sequence[str], normalize: bool = False,
                          conf: Optional[float] = None, iou: Optional[float] = None):
    """A detection confusion matrix with its background row and column (12 x 9 inches).

    Args:
        matrix (np.ndarray): (C + 1, C + 1) counts, ``[predicted, true]``, background last
            (:func:`~convnextv2_yolo.evaluation.metrics.yolo_det_metric.confusion_matrix`).
        names (Sequence[str]): the C class names (label order).
        normalize (bool): divide each column (true class) by its sum; cells < 0.005 (counts: 0)
            are left blank.
        conf, iou (float, optional): the matrix's score and IoU thresholds, shown in the title.

    Below 31 rows each non-blank cell has a text (``ax.texts``) at (column, row): the count, or
    the fraction with two decimals.

    Returns:
        matplotlib.figure.Figure: on an Agg canvas.
    """
    matrix = np.asarray(matrix, dtype=np.float64)
    nc = matrix.shape[0] - 1
    labels = list(names)[:nc] + [''] * max(0, nc - len(names)) + ['background']
    array = matrix / (matrix.sum(0, keepdims=True) + 1e-9) if normalize else matrix.copy()
    array[array < (0.005 if normalize else 0.5)] = np.nan  # blank, not "0.00" / "0"
    if nc >= 100:  # every k-th class plus background (the reference's downsampling)
        k = max(2, nc // 60)
        keep = np.r_[0:nc:k, nc]
        array, labels = array[np.ix_(keep, keep)], [labels[i] for i in keep]
    n = len(labels)
    fig = _figure((12, 9))
    ax = fig.add_subplot(1, 1, 1)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')  # all-NaN matrices
        vmax = 1.0 if normalize else (np.nanmax(array) if np.isfinite(array).any() else 1.0)
        im = ax.imshow(array, cmap='Blues', vmin=0.0, vmax=vmax, interpolation='none')
    if n < 31:  # annotate cells (classes + background < 31)
        fontsize = 14 if n <= 6 else (10 if n <= 15 else 7)
        for i in range(n):
            for j in range(n):
                val = array[i, j]
                if np.isnan(val):
                    continue
                ax.text(j, i, f'{val:.2f}' if normalize else f'{int(round(val))}', ha='center', va='center',
                        fontsize=fontsize, color='white' if val > 0.45 * vmax else 'black')
    cbar = fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    cbar.ax.set_ylabel('fraction of the column (true class)' if normalize else 'count')
    ticks = np.arange(n)
    ax.set_xticks(ticks)
    ax.set_yticks(ticks)
    if n < 100:
        size = max(6, 15 - 0.1 * n)
        ax.set_xticklabels(labels, fontsize=size, rotation=90)
        ax.set_yticklabels(labels, fontsize=size)
    ax.set_xlabel('True', fontsize=max(6, 12 - 0.1 * n), labelpad=10)
    ax.set_ylabel('Predicted', fontsize=max(6, 12 - 0.1 * n), labelpad=10)
    title = 'Confusion Matrix' + (' Normalized' if normalize else '')
    cond = ', '.join(s for s in (f'conf > {conf:g}' if conf is not None else '',
                                 f'IoU > {iou:g}' if iou is not None else '') if s)
    ax.set_title(title + (f'  ({cond})' if cond else ''), fontsize=max(6, 12 - 0.1 * n), pad=15)
    for s in ax.spines.values():
        s.set_visible(False)
    fig.tight_layout()
    return fig


def _class_names(res: YOLODetResults) -> List[str]:
    """Names of the classes with ground truth (the curves' rows)."""
    return [res.names[c] if c < len(res.names) else str(c) for c in res.class_index]


def _legend(ax) -> None:
    ax.legend(bbox_to_anchor=(1.04, 1), loc='upper left', fontsize=9)


def plot_pr_curve(res: YOLODetResults, path: str, dpi: int = DEFAULT_DPI) -> str:
    """Write :func:`draw_pr_curve` to ``path`` (PNG at ``dpi``); returns ``path``."""
    return _save(draw_pr_curve(res), path, dpi)


def draw_pr_curve(res: YOLODetResults):
    """Precision-recall curves at IoU 0.5: one thin line per class, their mean thick.

    Args:
        res (YOLODetResults): ``curve_x`` (1000,) recall axis, ``pr_precision`` (K, 1000)
            precision envelope per class with ground truth, ``ap`` (K, T) for the legend
            (AP at IoU 0.5 per class; mAP@0.5 = their mean).

    Returns:
        matplotlib.figure.Figure: 9 x 6 inches, on an Agg canvas.
    """
    x, py, names = res.curve_x, np.asarray(res.pr_precision), _class_names(res)
    fig = _figure((9, 6))
    ax = fig.add_subplot(1, 1, 1)
    if 0 < len(names) <= MAX_LEGEND_CLASSES:
        for name, y, ap in zip(names, py, res.ap50):
            ax.plot(x, y, linewidth=1, label=f'{name} {ap:.3f}')
    elif len(names):
        ax.plot(x, py.T, linewidth=1, color='grey')
    if len(names):
        ax.plot(x, py.mean(0), linewidth=3, color='blue', label=f'all classes {res.ap50.mean():.3f} mAP@0.5')
    ax.set_xlabel('Recall')
    ax.set_ylabel('Precision')
    ax.set_xlim(-0.005, 1.005)
    ax.set_ylim(-0.01, 1.01)  # lines at 0 and 1 stay visible
    ax.grid(alpha=0.3)
    _legend(ax)
    ax.set_title('Precision-Recall Curve (IoU 0.5)')
    fig.tight_layout()
    return fig


def plot_metric_confidence(res: YOLODetResults, metric: str, path: str, dpi: int = DEFAULT_DPI) -> str:
    """Write :func:`draw_metric_confidence` to ``path`` (PNG at ``dpi``); returns ``path``."""
    return _save(draw_metric_confidence(res, metric), path, dpi)


def draw_metric_confidence(res: YOLODetResults, metric: str):
    """A metric vs confidence (IoU 0.5): per class thin, the class mean smoothed thick, the operating point.

    Args:
        res (YOLODetResults): ``curve_x`` (1000,) confidence 0..1, ``f1_curve`` / ``p_curve`` /
            ``r_curve`` (K, 1000) per class with ground truth, ``conf_threshold`` the operating
            confidence (maximum of the smoothed mean F1; ``p``, ``r``, ``f1`` (K,) its values).
        metric (str): ``'F1'``, ``'Precision'`` or ``'Recall'``.

    The thick line is the class mean smoothed by a box filter of 10% of the axis; its legend
    gives its maximum and where (the reference's label; for F1 that is the operating point).
    The dashed vertical line marks the operating confidence with the class-mean value there
    (the P and R the validation table prints, and their F1).

    Returns:
        matplotlib.figure.Figure: 9 x 6 inches, on an Agg canvas.
    """
    curves = {'F1': (res.f1_curve, res.f1), 'Precision': (res.p_curve, res.p), 'Recall': (res.r_curve, res.r)}
    if metric not in curves:
        raise ValueError(f'metric must be one of {sorted(curves)}, got {metric!r}')
    py, at_op = (np.asarray(a) for a in curves[metric])
    x, names = res.curve_x, _class_names(res)
    fig = _figure((9, 6))
    ax = fig.add_subplot(1, 1, 1)
    if 0 < len(names) <= MAX_LEGEND_CLASSES:
        for name, y in zip(names, py):
            ax.plot(x, y, linewidth=1, label=name)
    elif len(names):
        ax.plot(x, py.T, linewidth=1, color='grey')
    if len(names):
        y = smooth(py.mean(0), 0.1)
        i = int(y.argmax())
        ax.plot(x, y, linewidth=3, color='blue', label=f'all classes {y[i]:.2f} at {x[i]:.3f}')
        ax.axvline(res.conf_threshold, color='black', linestyle='--', linewidth=1.5,
                   label=f'operating point: conf {res.conf_threshold:.3f}, {metric} {at_op.mean():.3f}')
    ax.set_xlabel('Confidence')
    ax.set_ylabel(metric)
    ax.set_xlim(-0.005, 1.005)
    ax.set_ylim(-0.01, 1.01)  # lines at 0 and 1 stay visible
    ax.grid(alpha=0.3)
    _legend(ax)
    ax.set_title(f'{metric}-Confidence Curve (IoU 0.5)')
    fig.tight_layout()
    return fig


def save_validation_plots(res: YOLODetResults, save_dir: str, dpi: int = DEFAULT_DPI,
                          conf: Optional[float] = None, iou: Optional[float] = None) -> List[str]:
    """Write the reference's validation plots (:data:`VALIDATION_PLOT_FILES`) into ``save_dir``.

    Args:
        res (YOLODetResults): a :class:`YOLODetMetric`'s ``yolo_results``.
        save_dir (str): folder (created).
        dpi (int): resolution.
        conf, iou (float, optional): the confusion matrix's thresholds, for its title
            (default: ``res.confusion_conf`` / ``res.confusion_iou``).

    The confusion matrices need ``res.confusion_matrix``; the curves need a class with ground
    truth (the reference draws no curves without one either).

    Returns:
        list[str]: the files written.
    """
    out = []
    conf = res.confusion_conf if conf is None else conf
    iou = res.confusion_iou if iou is None else iou
    if res.confusion_matrix is not None:
        for name, normalize in zip(CONFUSION_FILES, (False, True)):
            out.append(plot_confusion_matrix(res.confusion_matrix, res.names, osp.join(save_dir, name),
                                             normalize=normalize, conf=conf, iou=iou, dpi=dpi))
    if len(res.class_index):
        out.append(plot_pr_curve(res, osp.join(save_dir, CURVE_FILES[0]), dpi=dpi))
        for name, metric in zip(CURVE_FILES[1:], ('F1', 'Precision', 'Recall')):
            out.append(plot_metric_confidence(res, metric, osp.join(save_dir, name), dpi=dpi))
    return out


def read_results_csv(path: str) -> Dict[str, np.ndarray]:
    """Columns of a ``results.csv`` as float arrays (empty cells: NaN), in file order."""
    with open(path, encoding='utf-8') as f:
        lines = [line for line in f.read().split('\n') if line.strip()]
    if not lines:
        return {}
    header = [h.strip() for h in lines[0].split(',')]
    rows = [line.split(',') for line in lines[1:]]
    rows = [r for r in rows if len(r) == len(header)]

    def num(s: str) -> float:
        try:
            return float(s)
        except ValueError:
            return math.nan
    return {h: np.array([num(r[i]) for r in rows], dtype=np.float64) for i, h in enumerate(header)}


def gaussian_smooth(y: np.ndarray, sigma: float = 3.0) -> np.ndarray:
    """Gaussian filter (``sigma`` in samples, kernel +-4 sigma, edge values repeated), NaNs ignored."""
    y = np.asarray(y, dtype=np.float64)
    ok = np.isfinite(y)
    if not ok.any():
        return y.copy()
    r = int(4 * sigma + 0.5)
    k = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
    idx = np.clip(np.arange(len(y))[:, None] + np.arange(-r, r + 1)[None, :], 0, len(y) - 1)
    w = k[None, :] * ok[idx]
    return (np.where(ok, y, 0.0)[idx] * w).sum(1) / np.maximum(w.sum(1), 1e-12)


def plot_results_csv(csv_path: str, path: Optional[str] = None, dpi: int = DEFAULT_DPI) -> Optional[str]:
    """The per-epoch training figure from ``results.csv`` (the reference's ``results.png``).

    Top row: the ``train/*_loss`` columns (per-image means over the epoch) and ``lr/pg0``; bottom
    row: the ``metrics/*`` columns (precision, recall, mAP50, mAP50-95 of the validated epochs).
    Columns without any value (``val/*`` losses: mmdet's validation computes none) are left out.
    Each panel shows the values (markers) and a Gaussian-smoothed line (sigma 3 epochs, dotted).

    Args:
        csv_path (str): the ``results.csv`` of :class:`ResultsCSVHook`.
        path (str, optional): PNG to write; default ``results.png`` beside the CSV.
        dpi (int): resolution.

    Returns:
        str | None: ``path``, or None when the file has no rows.
    """
    data = read_results_csv(csv_path)
    if not data or not len(next(iter(data.values()))):
        return None
    path = path or osp.join(osp.dirname(csv_path), RESULTS_PLOT_FILE)
    epoch_key = next(iter(data))
    has = [k for k, v in data.items() if np.isfinite(v).any()]
    top = [k for k in has if 'loss' in k] + [k for k in has if k == 'lr/pg0']
    bottom = [k for k in has if 'metric' in k]
    ncols = max(len(top), len(bottom), 1)
    rows = [r for r in (top, bottom) if r] or [[]]
    fig = _figure((3.2 * ncols, 3.0 * len(rows)))
    x = data[epoch_key]
    first = None
    for ri, keys in enumerate(rows):
        for ci in range(ncols):
            ax = fig.add_subplot(len(rows), ncols, ri * ncols + ci + 1)
            if ci >= len(keys):
                ax.set_visible(False)
                continue
            y = data[keys[ci]]
            ok = np.isfinite(y)
            ax.plot(x[ok], y[ok], marker='.', linewidth=2, markersize=8, label='results')
            ax.plot(x[ok], gaussian_smooth(y[ok]), ':', linewidth=2, label='smooth')
            ax.set_title(keys[ci], fontsize=11)
            ax.set_xlabel('epoch', fontsize=9)
            ax.tick_params(labelsize=8)
            ax.grid(alpha=0.3)
            if len(x):  # every panel spans all epochs (the metrics may have fewer points)
                pad = max(0.5, 0.03 * (x.max() - x.min()))
                ax.set_xlim(x.min() - pad, x.max() + pad)
                ax.xaxis.get_major_locator().set_params(integer=True)
            first = first or ax
    if first is not None:
        first.legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, path, dpi)
