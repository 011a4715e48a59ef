"""The reference's validation plots and results.png: files, contents, the hook, tools/test.py --no-plots."""
import os
import os.path as osp

import numpy as np
import pytest
from mmengine.config import Config

from convnextv2_yolo.evaluation.metrics.yolo_det_metric import confusion_matrix, match_detections, yolo_ap_per_class
from convnextv2_yolo.utils.launch import apply_plots_arg
from convnextv2_yolo.visualization.validation_plots import (RESULTS_PLOT_FILE, VALIDATION_PLOT_FILES,
                                                            draw_confusion_matrix, draw_metric_confidence,
                                                            draw_pr_curve, gaussian_smooth, plot_results_csv,
                                                            read_results_csv, save_validation_plots)
from tests.helpers.processes import PY, run_tool
from tests.helpers.tiny import make_tiny_data, tiny_cfg

MIN_BYTES = 10_000  # a drawn figure, not an empty canvas


def _results(nc: int, images: int = 30, seed: int = 0):
    """YOLODetResults of noisy detections of random boxes (as YOLODetMetric.compute_yolo builds them)."""
    rng = np.random.default_rng(seed)
    gt_b, gt_l, det_b, det_l, det_s = [], [], [], [], []
    for _ in range(images):
        m = rng.integers(0, 6)
        xy = rng.uniform(0, 200, (m, 2))
        g = np.concatenate([xy, xy + rng.uniform(10, 60, (m, 2))], 1).astype(np.float32)
        gl = rng.integers(0, nc, m)
        keep = rng.random(m) < 0.8
        d = g[keep] + rng.normal(0, 4, (int(keep.sum()), 4)).astype(np.float32)
        dl = np.where(rng.random(int(keep.sum())) < 0.8, gl[keep], rng.integers(0, nc, int(keep.sum())))
        extra = rng.integers(0, 4)  # background detections
        exy = rng.uniform(0, 200, (extra, 2))
        d = np.concatenate([d, np.concatenate([exy, exy + 30], 1).astype(np.float32)])
        dl = np.concatenate([dl, rng.integers(0, nc, extra)])
        s = rng.random(len(dl)).astype(np.float32)
        order = np.argsort(-s, kind='stable')
        gt_b.append(g), gt_l.append(gl), det_b.append(d[order]), det_l.append(dl[order]), det_s.append(s[order])
    tp = match_detections(gt_b, gt_l, det_b, det_l)
    res = yolo_ap_per_class(np.concatenate(tp), np.concatenate(det_s), np.concatenate(det_l), np.concatenate(gt_l),
                            names=[f'class_{i}' for i in range(nc)])
    res.confusion_matrix = confusion_matrix(gt_b, gt_l, det_b, det_l, det_s, nc, conf=0.001, iou_thr=0.45)
    res.confusion_conf, res.confusion_iou = 0.001, 0.45
    return res


def cell_texts(fig):
    """{(row, column): text} of the confusion matrix's annotated cells."""
    ax = fig.axes[0]
    return {(int(round(t.get_position()[1])), int(round(t.get_position()[0]))): t.get_text() for t in ax.texts}


def assert_texts_are_the_matrix(matrix):
    """Counts: every non-zero cell shows its count (zeros blank); normalised: the column fractions."""
    counts = cell_texts(draw_confusion_matrix(matrix, [f'c{i}' for i in range(len(matrix) - 1)]))
    assert counts == {(i, j): str(int(matrix[i, j])) for i, j in zip(*np.nonzero(matrix))}
    frac = matrix / (matrix.sum(0, keepdims=True) + 1e-9)
    normed = cell_texts(draw_confusion_matrix(matrix, [f'c{i}' for i in range(len(matrix) - 1)], normalize=True))
    assert normed == {(i, j): f'{frac[i, j]:.2f}' for i, j in zip(*np.nonzero(frac >= 0.005))}


def _pngs(folder):
    return sorted(f for f in os.listdir(folder) if f.endswith('.png'))


# ---------------------------------------------------------------- the drawing module
def test_the_reference_files_are_written(tmp_path):
    res = _results(3)
    out = save_validation_plots(res, str(tmp_path / 'plots'))
    assert [osp.basename(p) for p in out] == list(VALIDATION_PLOT_FILES)
    assert _pngs(tmp_path / 'plots') == sorted(VALIDATION_PLOT_FILES)
    for p in out:
        assert osp.getsize(p) > MIN_BYTES, p
        with open(p, 'rb') as f:
            assert f.read(8) == b'\x89PNG\r\n\x1a\n'


def test_confusion_matrix_cells_show_the_metric_numbers():
    res = _results(3)
    assert res.confusion_matrix.sum() > 0 and res.confusion_matrix[-1].sum() > 0 and res.confusion_matrix[:, -1].sum()
    assert_texts_are_the_matrix(res.confusion_matrix)
    fig = draw_confusion_matrix(res.confusion_matrix, res.names, conf=0.001, iou=0.45)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == res.names + ['background']
    assert [t.get_text() for t in ax.get_yticklabels()] == res.names + ['background']
    assert (ax.get_xlabel(), ax.get_ylabel()) == ('True', 'Predicted')
    assert 'conf > 0.001' in ax.get_title() and 'IoU > 0.45' in ax.get_title()


def test_curve_legends_carry_ap50_and_the_operating_point():
    res = _results(3)
    labels = [t.get_text() for t in draw_pr_curve(res).axes[0].get_legend().get_texts()]
    assert labels == [f'class_{c} {ap:.3f}' for c, ap in zip(res.class_index, res.ap50)] + [
        f'all classes {res.ap50.mean():.3f} mAP@0.5']
    for metric, at_op in (('F1', res.f1), ('Precision', res.p), ('Recall', res.r)):
        ax = draw_metric_confidence(res, metric).axes[0]
        labels = [t.get_text() for t in ax.get_legend().get_texts()]
        assert labels[:3] == [f'class_{c}' for c in res.class_index]
        assert labels[3].startswith('all classes ')
        assert labels[4] == f'operating point: conf {res.conf_threshold:.3f}, {metric} {at_op.mean():.3f}'
        assert ax.get_xlabel() == 'Confidence' and ax.get_ylabel() == metric
    with pytest.raises(ValueError):
        draw_metric_confidence(res, 'mAP')


def test_many_classes_grey_lines_without_class_legend():
    """Above 20 classes: the reference's grey lines, only the mean in the legend; cells still annotated < 30."""
    res = _results(25, images=80)
    labels = [t.get_text() for t in draw_pr_curve(res).axes[0].get_legend().get_texts()]
    assert labels == [f'all classes {res.ap50.mean():.3f} mAP@0.5']
    assert_texts_are_the_matrix(res.confusion_matrix)


def test_without_ground_truth_only_the_matrices(tmp_path):
    res = _results(2)
    empty = yolo_ap_per_class(np.zeros((3, 10), bool), np.array([0.9, 0.5, 0.2]), np.zeros(3), np.zeros(0),
                              names=res.names)
    empty.confusion_matrix = np.array([[0, 0, 3], [0, 0, 0], [0, 0, 0]], float)
    out = save_validation_plots(empty, str(tmp_path))
    assert [osp.basename(p) for p in out] == ['confusion_matrix.png', 'confusion_matrix_normalized.png']


def test_results_png_from_results_csv(tmp_path):
    """Empty cells (unvalidated epochs, val losses) are skipped; a file without rows draws nothing."""
    header = ('epoch,time,train/box_loss,train/cls_loss,train/dfl_loss,metrics/precision(B),metrics/recall(B),'
              'metrics/mAP50(B),metrics/mAP50-95(B),val/box_loss,val/cls_loss,val/dfl_loss,lr/pg0,lr/pg1,lr/pg2')
    rows = []
    for e in range(1, 7):  # validated every second epoch
        metrics = ['%g' % (e / 20)] * 4 if e % 2 == 0 else [''] * 4
        rows.append(','.join(['%d' % e, '%g' % (2.0 * e), '%g' % (3 - e / 10), '%g' % (2 - e / 10),
                              '%g' % (1.5 - e / 20)] + metrics + ['', '', ''] + ['0.01'] * 3))
    csv = tmp_path / 'results.csv'
    csv.write_text('\n'.join([header] + rows) + '\n')
    data = read_results_csv(str(csv))
    assert np.isnan(data['val/box_loss']).all() and np.isfinite(data['train/box_loss']).all()
    out = plot_results_csv(str(csv))
    assert out == str(tmp_path / RESULTS_PLOT_FILE) and osp.getsize(out) > MIN_BYTES
    (tmp_path / 'empty').mkdir()
    (tmp_path / 'empty' / 'results.csv').write_text(header + '\n')
    assert plot_results_csv(str(tmp_path / 'empty' / 'results.csv')) is None
    assert not osp.exists(tmp_path / 'empty' / RESULTS_PLOT_FILE)


def test_gaussian_smooth():
    assert gaussian_smooth(np.full(7, 2.0)) == pytest.approx(np.full(7, 2.0))
    y = gaussian_smooth(np.array([0.0, np.nan, 0.0, 10.0]), sigma=1.0)
    assert np.isfinite(y).all() and 0 < y[-1] < 10 and y[0] < y[-1]


# ---------------------------------------------------------------- CLI option
def test_no_plots_disables_the_hook_and_test_adds_a_missing_one():
    cfg = Config(dict(custom_hooks=[dict(type='ResultsCSVHook'), dict(type='ValidationPlotsHook', enabled=True)]))
    apply_plots_arg(cfg, no_plots=True, add_missing=True)
    assert cfg.custom_hooks[1] == dict(type='ValidationPlotsHook', enabled=False)
    cfg = Config(dict(custom_hooks=[dict(type='ResultsCSVHook')]))
    apply_plots_arg(cfg, no_plots=False, add_missing=True)
    assert cfg.custom_hooks[-1] == dict(type='ValidationPlotsHook')
    cfg = Config(dict())
    apply_plots_arg(cfg, no_plots=True, add_missing=True)
    assert cfg.custom_hooks == []


# ---------------------------------------------------------------- tiny trainings and tools/test.py
def _runner(data, work_dir, max_epochs, enabled=True):
    from convnextv2_yolo.utils.launch import build_runner
    cfg = tiny_cfg(data, work_dir, max_epochs=max_epochs, val_interval=1, mosaic=False)
    hooks = [h for h in cfg.custom_hooks if h['type'] == 'ValidationPlotsHook']
    assert len(hooks) == 1  # the demo recipe states the hook
    hooks[0]['enabled'] = enabled
    cfg.experiment_name += f'_plots_{enabled}'
    cfg.visualizer.name = cfg.experiment_name
    return build_runner(cfg)


@pytest.fixture(scope='module')
def tiny_data(tmp_path_factory):
    return make_tiny_data(str(tmp_path_factory.mktemp('shapes')))


@pytest.fixture(scope='module')
def trained(tiny_data, tmp_path_factory):
    work_dir = str(tmp_path_factory.mktemp('work'))
    runner = _runner(tiny_data, work_dir, 2)
    runner.train()
    return runner, work_dir


def test_training_writes_the_plots_from_the_last_validation(trained):
    from convnextv2_yolo.engine.hooks import ValidationPlotsHook
    runner, work_dir = trained
    assert _pngs(work_dir) == sorted(VALIDATION_PLOT_FILES + (RESULTS_PLOT_FILE, ))
    for name in _pngs(work_dir):
        assert osp.getsize(osp.join(work_dir, name)) > MIN_BYTES, name
    hook = next(h for h in runner.hooks if isinstance(h, ValidationPlotsHook))
    metric = runner.val_evaluator.metrics[0]
    assert hook._last is metric.yolo_results  # the last (epoch 2) validation's
    matrix = metric.yolo_results.confusion_matrix
    assert matrix.sum() > 0
    assert matrix[:, :-1].sum(0) == pytest.approx(metric.yolo_results.nt_per_class)  # every ground truth once
    assert_texts_are_the_matrix(matrix)


def test_disabled_hook_writes_nothing(tiny_data, tmp_path):
    work_dir = str(tmp_path / 'work')
    _runner(tiny_data, work_dir, 1, enabled=False).train()
    assert osp.isfile(osp.join(work_dir, 'results.csv'))
    assert _pngs(work_dir) == []


def test_tools_test_writes_the_plots_unless_no_plots(trained, tmp_path):
    runner, work_dir = trained
    cfg_path = str(tmp_path / 'tiny.py')
    runner.cfg.dump(cfg_path)
    ckpt = osp.join(work_dir, 'epoch_2.pth')
    run_tool([PY, 'tools/test.py', cfg_path, ckpt, '--work-dir', str(tmp_path / 'test')])
    assert _pngs(tmp_path / 'test') == sorted(VALIDATION_PLOT_FILES)
    for name in VALIDATION_PLOT_FILES:
        assert osp.getsize(tmp_path / 'test' / name) > MIN_BYTES, name
    run_tool([PY, 'tools/test.py', cfg_path, ckpt, '--work-dir', str(tmp_path / 'off'), '--no-plots'])
    assert _pngs(tmp_path / 'off') == []
