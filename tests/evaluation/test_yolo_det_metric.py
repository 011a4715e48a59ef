"""YOLODetMetric: the reference's validation table and numbers (P, R, mAP50, mAP50-95 per class) beside
mmdet's COCO metrics, from the same detections and ground truth."""
import json
import os
import os.path as osp

import numpy as np
import pytest
import torch

from tests.helpers.logs import current_log
from tests.helpers.paths import ROOT
from tests.helpers.processes import run_tool
from tests.helpers.tiny import make_tiny_data

# the reference's Python (Ultralytics installed), beside the clone by default
REF_PYTHON = os.environ.get('CONVNEXTV2_YOLO_REFERENCE_PYTHON',
                            osp.join(osp.dirname(ROOT), 'refvenv', 'bin', 'python'))


def _crafted(seed: int = 0, n_img: int = 24, nc: int = 4):
    """Per image GT and detections: jittered copies of the GT (some of another class, some duplicates),
    random false positives, images without GT or without detections, distinct confidences; class
    ``nc - 1`` is predicted but has no GT."""
    rng = np.random.default_rng(seed)
    images = []
    confs = rng.permutation(np.linspace(0.001, 0.999, 2000)).astype(np.float32)  # distinct, as scores
    used = 0
    for i in range(n_img):
        m = 0 if i % 7 == 3 else int(rng.integers(1, 6))
        xy = rng.uniform(0, 80, (m, 2))
        gt = np.concatenate([xy, xy + rng.uniform(8, 40, (m, 2))], 1).astype(np.float32)
        gl = rng.integers(0, nc - 1, m)
        dets, labels = [], []
        if i % 5 != 2:
            for b, c in zip(gt, gl):
                for _ in range(int(rng.integers(0, 3))):  # 0-2 detections per object (duplicates are FPs)
                    jitter = rng.normal(0, rng.choice([0.5, 2, 5]), 4)
                    dets.append(b + jitter)
                    labels.append(c if rng.random() < 0.85 else rng.integers(0, nc))
            for _ in range(int(rng.integers(0, 4))):  # background FPs
                xy = rng.uniform(0, 80, 2)
                dets.append(np.concatenate([xy, xy + rng.uniform(5, 30, 2)]))
                labels.append(rng.integers(0, nc))
        db = np.array(dets, dtype=np.float32).reshape(-1, 4)
        db[:, 2:] = np.maximum(db[:, 2:], db[:, :2] + 1)
        conf = confs[used:used + len(db)]
        used += len(db)
        order = np.argsort(-conf)
        images.append(dict(gt_boxes=gt, gt_cls=gl.astype(np.int64), det_boxes=db[order],
                           det_cls=np.array(labels, dtype=np.int64)[order], det_conf=conf[order]))
    return images


def _ours(images, nc):
    from convnextv2_yolo.evaluation.metrics.yolo_det_metric import confusion_matrix, match_detections, yolo_ap_per_class
    tps = match_detections([x['gt_boxes'] for x in images], [x['gt_cls'] for x in images],
                           [x['det_boxes'] for x in images], [x['det_cls'] for x in images])
    res = yolo_ap_per_class(np.concatenate(tps), np.concatenate([x['det_conf'] for x in images]),
                            np.concatenate([x['det_cls'] for x in images]),
                            np.concatenate([x['gt_cls'] for x in images]))
    matrix = confusion_matrix([x['gt_boxes'] for x in images], [x['gt_cls'] for x in images],
                              [x['det_boxes'] for x in images], [x['det_cls'] for x in images],
                              [x['det_conf'] for x in images], nc)
    return np.concatenate(tps), res, matrix


def test_matching_by_hand():
    """Greedy in confidence order, best unclaimed GT, IoU >= t: a duplicate is an FP, a lower-IoU second
    detection takes the other GT."""
    from convnextv2_yolo.evaluation.metrics.yolo_det_metric import match_detections
    gt = np.array([[0, 0, 10, 10], [20, 0, 30, 10]], np.float32)
    det = np.array([[0, 0, 10, 10], [0, 0, 10, 10], [20, 0, 30, 8], [0, 0, 10, 10]], np.float32)
    (tp, ) = match_detections([gt], [np.array([0, 0])], [det], [np.array([0, 0, 0, 1])])
    assert tp[0].all() and not tp[1].any() and not tp[3].any()  # duplicate; other class
    assert tp[2].tolist() == [True] * 7 + [False] * 3  # IoU 0.8: correct at 0.50 .. 0.80


@pytest.mark.skipif(not osp.isfile(REF_PYTHON), reason=f'no reference Python at {REF_PYTHON} '
                    '(CONVNEXTV2_YOLO_REFERENCE_PYTHON)')
@pytest.mark.parametrize('seed', [0, 1])
def test_equals_the_reference_on_crafted_detections(tmp_path, seed):
    """Same tp matrix as the reference's match_predictions, same P, R, AP (each IoU threshold), curves and
    confusion matrix as its ap_per_class / ConfusionMatrix on the same arrays (tests/helpers/
    reference_val_metrics.py, run with the reference's Python)."""
    nc = 4
    images = _crafted(seed, nc=nc)
    arrays = dict(n=len(images), nc=nc)
    for i, x in enumerate(images):
        arrays.update({f'{k}_{i}': v for k, v in x.items()})
    np.savez(tmp_path / 'in.npz', **arrays)
    run_tool([REF_PYTHON, 'tests/helpers/reference_val_metrics.py', str(tmp_path / 'in.npz'),
              str(tmp_path / 'out.npz')], timeout=300)
    ref = np.load(tmp_path / 'out.npz')
    tp, res, matrix = _ours(images, nc)
    np.testing.assert_array_equal(tp, ref['tp'])
    np.testing.assert_array_equal(res.class_index, ref['classes'])
    assert res.tp.sum() > 0 and (~res.tp[:, 0]).sum() > 0  # both TPs and FPs
    for ours, theirs in ((res.p, 'p'), (res.r, 'r'), (res.ap, 'ap'), (res.p_curve, 'p_curve'),
                         (res.r_curve, 'r_curve'), (res.f1_curve, 'f1_curve'), (res.pr_precision, 'prec_values')):
        np.testing.assert_allclose(ours, ref[theirs], rtol=0, atol=1e-12, err_msg=theirs)
    np.testing.assert_array_equal(matrix, ref['matrix'])
    assert res.mean_results() == pytest.approx((ref['p'].mean(), ref['r'].mean(), ref['ap'][:, 0].mean(),
                                                ref['ap'].mean()), abs=1e-12)


def _samples(ann_file: str, seed: int, mode: str):
    """Predictions for the images of ``ann_file``: 'good' (1-2 copies of each GT jittered by 1-5% of its size,
    97% of the right class, 1-4 background FPs per image), 'jitter' (3-25%, 90%), 'noisy' (10-40%, 70%, 1-12
    FPs)."""
    rng = np.random.default_rng(seed)
    coco = json.load(open(ann_file))
    anns = {}
    for a in coco['annotations']:
        anns.setdefault(a['image_id'], []).append(a)
    label = {c['id']: i for i, c in enumerate(coco['categories'])}
    samples = []
    for img in coco['images']:
        boxes, labels = [], []
        noisy = mode == 'noisy'
        jitter, right = dict(good=([0.01, 0.02, 0.05], 0.97), jitter=([0.03, 0.1, 0.25], 0.9),
                             noisy=([0.1, 0.25, 0.4], 0.7))[mode]
        for a in anns.get(img['id'], []):
            x, y, w, h = a['bbox']
            for _ in range(int(rng.integers(1, 3))):
                s = rng.choice(jitter)
                boxes.append([x + rng.normal(0, s * w), y + rng.normal(0, s * h),
                              x + w + rng.normal(0, s * w), y + h + rng.normal(0, s * h)])
                labels.append(label[a['category_id']] if rng.random() < right else rng.integers(0, 4))
        for _ in range(int(rng.integers(1, 13 if noisy else 5))):
            xy = rng.uniform(0, img['width'] - 8, 2)
            boxes.append([*xy, *(xy + rng.uniform(4, 30, 2))])
            labels.append(rng.integers(0, 4))
        b = torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4)
        b[:, 2:] = torch.maximum(b[:, 2:], b[:, :2] + 1)
        samples.append(dict(img_id=img['id'], ori_shape=(img['height'], img['width']),
                            pred_instances=dict(bboxes=b, scores=torch.from_numpy(rng.uniform(0.01, 1, len(b))).float(),
                                                labels=torch.tensor(labels, dtype=torch.int64))))
    return samples, [c['name'] for c in coco['categories']]


def _evaluate(metric_type: str, ann_file: str, samples, classes, **kwargs):
    from mmdet.registry import METRICS
    metric = METRICS.build(dict(type=metric_type, ann_file=ann_file, metric='bbox', **kwargs))
    metric.dataset_meta = dict(classes=classes)
    for i in range(0, len(samples), 8):
        metric.process({}, samples[i:i + 8])
    return metric, metric.evaluate(len(samples))


@pytest.fixture(scope='module')
def tiny_val(tmp_path_factory):
    return make_tiny_data(str(tmp_path_factory.mktemp('tiny')), num_train=1, num_val=48).ann_files['val']


def test_coco_numbers_unchanged_and_table_logged(tiny_val):
    """The COCO keys and values are CheckedCocoMetric's; the reference's table is logged; the yolo/ scalars
    have no coco/ prefix; the plot arrays are kept on the metric."""
    samples, classes = _samples(tiny_val, 0, 'jitter')
    _, coco = _evaluate('CheckedCocoMetric', tiny_val, samples, classes)
    with current_log() as log:
        metric, ours = _evaluate('YOLODetMetric', tiny_val, samples, classes)
    assert {k: v for k, v in ours.items() if k.startswith('coco/')} == coco
    assert not [k for k in ours if k.startswith('coco/yolo')]
    for key in ('yolo/precision', 'yolo/recall', 'yolo/mAP50', 'yolo/mAP50-95'):
        assert 0 < ours[key] <= 1
    res = metric.yolo_results
    assert ours['yolo/mAP50-95'] == pytest.approx(res.ap.mean())
    assert ours['yolo/mAP50-95/star'] == pytest.approx(res.ap[classes.index('star')].mean())
    text = log()
    header = ('%22s' + '%11s' * 6) % ('Class', 'Images', 'Instances', 'Box(P', 'R', 'mAP50', 'mAP50-95)')
    assert header in text
    gts = json.load(open(tiny_val))['annotations']
    row = ('%22s' + '%11i' * 2 + '%11.3g' * 4) % ('all', 48, len(gts), *res.mean_results())
    assert row in text and all(f'{c:>22s}' in text for c in classes)
    k = len(res.class_index)
    assert res.p_curve.shape == res.r_curve.shape == res.f1_curve.shape == res.pr_precision.shape == (k, 1000)
    assert res.ap.shape == (k, 10) and res.confusion_matrix.shape == (5, 5)
    assert res.confusion_matrix[:4].sum() + res.confusion_matrix[4, :4].sum() >= len(gts)
    assert len(res.tp) == len(res.conf) == len(res.pred_cls) == len(res.det_image)
    assert res.nt_per_class.sum() == len(gts) == len(res.target_cls)


def test_matches_unclipped_boxes_as_the_reference(tiny_val):
    """``match_boxes='unclipped'`` (default) gives the YOLO numbers of the unclipped boxes (the reference's
    validator never clips), ``'clipped'`` those of ``bboxes``; COCO always evaluates ``bboxes``; predictions
    without ``unclipped_bboxes`` fall back to ``bboxes`` with one warning."""
    samples, classes = _samples(tiny_val, 0, 'good')
    for s in samples:  # boxes pushed 6 px past the left/top border where they start within 12 px of it
        b = s['pred_instances']['bboxes']
        unclipped = b.clone()
        unclipped[:, :2] -= 6 * (b[:, :2] < 12)
        s['pred_instances']['unclipped_bboxes'] = unclipped
    assert sum(int((s['pred_instances']['unclipped_bboxes'] < 0).any()) for s in samples) >= 5
    _, unclipped = _evaluate('YOLODetMetric', tiny_val, samples, classes)
    _, clipped = _evaluate('YOLODetMetric', tiny_val, samples, classes, match_boxes='clipped')
    as_boxes = [dict(s, pred_instances=dict(s['pred_instances'], bboxes=s['pred_instances']['unclipped_bboxes']))
                for s in samples]
    for s in as_boxes:
        del s['pred_instances']['unclipped_bboxes']
    _, direct = _evaluate('YOLODetMetric', tiny_val, as_boxes, classes)
    yolo = [k for k in unclipped if k.startswith('yolo/')]
    assert {k: unclipped[k] for k in yolo} == {k: direct[k] for k in yolo}
    assert unclipped['yolo/mAP50-95'] < clipped['yolo/mAP50-95']
    assert {k: v for k, v in unclipped.items() if k.startswith('coco/')} == \
        {k: v for k, v in clipped.items() if k.startswith('coco/')}
    with pytest.raises(ValueError, match='match_boxes'):
        _evaluate('YOLODetMetric', tiny_val, samples, classes, match_boxes='input')


# Measured (4 classes, 48 images, seeds 0-9, each mode): ours below COCO's classwise AP by at most 0.0103 per
# class and 0.0043 for the class mean (mmdet rounds the COCO class AP to 3 decimals, +-0.0005). Expected:
# the trapezoid halves the end points (-P(0)/200, up to -0.005), divides by 100 not 101 (+AP/100), and
# linear interpolation vs COCO's step lookup moves AP by part of a recall step (1/15-1/26 here).
PER_CLASS_BOUND, MEAN_BOUND = 0.02, 0.01


@pytest.mark.parametrize('mode', ['good', 'jitter', 'noisy'])
@pytest.mark.parametrize('seed', [0, 1, 2, 3])
def test_agrees_with_coco_classwise(tiny_val, mode, seed):
    """Per-class mAP50-95 vs pycocotools' classwise AP on the same detections (no crowds here, under 1000
    detections per image). The methods differ: COCO reads the precision envelope at 101 recall points by step
    lookup and averages them (ours: linear interpolation and a trapezoid), so the two agree within a small
    bound, not exactly."""
    samples, classes = _samples(tiny_val, seed, mode)
    _, ours = _evaluate('YOLODetMetric', tiny_val, samples, classes, classwise=True)
    diffs = [abs(ours[f'yolo/mAP50-95/{c}'] - ours[f'coco/{c}_precision']) for c in classes]
    assert max(diffs) < PER_CLASS_BOUND, diffs
    assert abs(ours['yolo/mAP50-95'] - np.mean([ours[f'coco/{c}_precision'] for c in classes])) < MEAN_BOUND


def test_chunks_of_images_give_the_same_result(monkeypatch):
    """Images are matched in padded chunks (at most _CHUNK images, _CHUNK_ELEMENTS IoU entries): any chunking
    gives the same tp matrix and confusion matrix."""
    import convnextv2_yolo.evaluation.metrics.yolo_det_metric as mod
    images = _crafted(2, n_img=30)
    tp, _, matrix = _ours(images, 4)
    for chunk, elements in ((1, 10**9), (7, 10**9), (256, 50)):
        monkeypatch.setattr(mod, '_CHUNK', chunk)
        monkeypatch.setattr(mod, '_CHUNK_ELEMENTS', elements)
        tp2, _, matrix2 = _ours(images, 4)
        np.testing.assert_array_equal(tp2, tp)
        np.testing.assert_array_equal(matrix2, matrix)


def test_no_detections_and_no_ground_truth():
    """Empty inputs give zeros, not errors (an untrained model; a validation set without boxes)."""
    from convnextv2_yolo.evaluation.metrics.yolo_det_metric import format_table, yolo_ap_per_class
    res = yolo_ap_per_class(np.zeros((0, 10), bool), np.zeros(0, np.float32), np.zeros(0), np.array([0, 1, 1]))
    assert res.mean_results() == (0.0, 0.0, 0.0, 0.0) and res.ap.shape == (2, 10)
    res = yolo_ap_per_class(np.ones((2, 10), bool), np.array([0.9, 0.8], np.float32), np.array([0, 1]),
                            np.zeros(0), names=['a', 'b'])
    res.nt_per_class, res.nt_per_image = np.zeros(2, int), np.zeros(2, int)
    assert res.mean_results() == (0.0, 0.0, 0.0, 0.0)
    assert 'all' in format_table(res)
