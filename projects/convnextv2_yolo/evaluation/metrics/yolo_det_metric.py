"""The reference's (Ultralytics) validation numbers beside mmdet's COCO ones: per-class P, R, mAP50, mAP50-95.

The functions below re-implement, vectorised, what the reference's detection
validator computes (``DetectionValidator._process_batch`` /
``BaseValidator.match_predictions``, ``utils.metrics.ap_per_class``,
``compute_ap``, ``smooth`` and ``ConfusionMatrix.process_batch``); the
metric :class:`YOLODetMetric` runs them on the detections and ground truth
that mmdet's COCO evaluation sees, and prints the reference's table.
"""
import logging
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from mmdet.registry import METRICS
from mmengine.logging import print_log

from .checked_coco_metric import CheckedCocoMetric

IOU_THRS = np.linspace(0.5, 0.95, 10)  # the reference's iouv
CURVE_X = np.linspace(0, 1, 1000)  # the reference's confidence / recall axis of its curves
_AP_X = np.linspace(0, 1, 101)  # 101-point interpolation (COCO's recall points)
_TRAPZ = getattr(np, 'trapezoid', None) or np.trapz  # np.trapz is deprecated in numpy 2
_CHUNK = 256  # images matched together at most (padded arrays of shape chunk x gts x detections)
_CHUNK_ELEMENTS = 8_000_000  # and at most this many IoU entries (crowded images: smaller chunks)


def box_iou_padded(gt: np.ndarray, det: np.ndarray, eps: float = 1e-7) -> np.ndarray:
    """IoU of xyxy boxes, batched: ``gt`` (B, M, 4), ``det`` (B, N, 4) -> (B, M, N), as the reference's box_iou."""
    lt = np.maximum(gt[:, :, None, :2], det[:, None, :, :2])
    rb = np.minimum(gt[:, :, None, 2:], det[:, None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(-1)
    area_g = (gt[..., 2:] - gt[..., :2]).prod(-1)
    area_d = (det[..., 2:] - det[..., :2]).prod(-1)
    return inter / (area_g[:, :, None] + area_d[:, None, :] - inter + eps)


def _pad(arrays: Sequence[np.ndarray], length: int, tail: Tuple[int, ...], fill, dtype) -> np.ndarray:
    out = np.full((len(arrays), length) + tail, fill, dtype=dtype)
    for i, a in enumerate(arrays):  # one copy per image
        out[i, :len(a)] = a
    return out


def _chunks(num_gts: Sequence[int], num_dets: Sequence[int]) -> List[range]:
    """Consecutive image ranges of at most ``_CHUNK`` images and ``_CHUNK_ELEMENTS`` padded IoU entries."""
    out, start, m, n = [], 0, 0, 0
    for i, (gi, di) in enumerate(zip(num_gts, num_dets)):
        m2, n2 = max(m, gi), max(n, di)
        if i > start and (i - start >= _CHUNK or (i - start + 1) * max(m2, 1) * max(n2, 1) > _CHUNK_ELEMENTS):
            out.append(range(start, i))
            start, m2, n2 = i, gi, di
        m, n = m2, n2
    if start < len(num_gts):
        out.append(range(start, len(num_gts)))
    return out


def greedy_match(iou: np.ndarray, thrs: np.ndarray, strict: bool = False) -> Tuple[np.ndarray, np.ndarray]:
    """The reference's greedy one-to-one matching, for a batch of images at once.

    Detections (columns, in descending confidence) in turn claim, at each
    threshold, the unclaimed ground truth (rows) of highest IoU if that IoU
    reaches the threshold (``>=``; ``>`` with ``strict``, as the reference's
    confusion matrix); ties go to the first row, as ``argmax``. Images are
    vectorised; the loop runs over detection ranks only.

    Args:
        iou (np.ndarray): (B, M, N) IoU, zero where a pair may not match
            (other class, padding).
        thrs (np.ndarray): (T,) thresholds.
        strict (bool): ``>`` instead of ``>=``.

    Returns:
        tuple: ``correct`` (B, N, T) bool, whether each detection matched at
        each threshold; ``gt_match`` (B, M, T) int, the detection each ground
        truth was matched to (-1: none).
    """
    b, m, n = iou.shape
    t = len(thrs)
    correct = np.zeros((b, n, t), dtype=bool)
    gt_match = np.full((b, m, t), -1, dtype=np.int64)
    if m == 0 or n == 0:
        return correct, gt_match
    lowest = thrs.min()
    candidates = np.flatnonzero(((iou > lowest) if strict else (iou >= lowest)).any(axis=(0, 1)))
    bi = np.arange(b)[:, None]
    ti = np.arange(t)[None, :]
    claimed = np.zeros((b, m, t), dtype=bool)
    for j in candidates:  # detection ranks, all images together
        available = np.where(claimed, 0.0, iou[:, :, j, None])  # (B, M, T)
        k = available.argmax(1)  # (B, T) best unclaimed ground truth
        best = available[bi, k, ti]
        hit = best > thrs if strict else best >= thrs
        correct[:, j] = hit
        claimed[bi, k, ti] |= hit
        gt_match[bi, k, ti] = np.where(hit, j, gt_match[bi, k, ti])
    return correct, gt_match


def _compact(iou: np.ndarray, thr: float, strict: bool) -> Tuple[np.ndarray, np.ndarray]:
    """Columns of ``iou`` (B, M, N) that can match at ``thr``, moved to the front in order: (iou', index)."""
    cand = ((iou > thr) if strict else (iou >= thr)).any(1)  # (B, N)
    order = np.argsort(~cand, axis=1, kind='stable')  # candidates first, keeping confidence order
    width = max(int(cand.sum(1).max()), 0) if cand.size else 0
    order = order[:, :width]
    return np.take_along_axis(iou, order[:, None, :], axis=2), np.where(
        np.take_along_axis(cand, order, axis=1), order, -1)


def match_detections(gt_boxes: Sequence[np.ndarray], gt_labels: Sequence[np.ndarray],
                     det_boxes: Sequence[np.ndarray], det_labels: Sequence[np.ndarray],
                     iou_thrs: np.ndarray = IOU_THRS) -> List[np.ndarray]:
    """The reference's ``tp`` matrix per image: whether each detection is correct at each IoU threshold.

    As ``DetectionValidator._process_batch``: same-class pairs only, greedy
    matching in the given detection order (descending confidence: sort first),
    ``IoU >= threshold``.

    Args:
        gt_boxes / gt_labels: per image, (M, 4) xyxy boxes and (M,) labels.
        det_boxes / det_labels: per image, (N, 4) xyxy boxes and (N,) labels,
            in descending confidence.
        iou_thrs (np.ndarray): (T,) IoU thresholds. Defaults to 0.50:0.05:0.95.

    Returns:
        list[np.ndarray]: per image, (N, T) bool.
    """
    iou_thrs = np.asarray(iou_thrs, dtype=np.float64)
    out = [np.zeros((len(d), len(iou_thrs)), dtype=bool) for d in det_labels]
    for chunk in _chunks([len(x) for x in gt_labels], [len(x) for x in det_labels]):
        idx = [i for i in chunk if len(gt_labels[i]) and len(det_labels[i])]
        if not idx:
            continue
        m = max(len(gt_labels[i]) for i in idx)
        n = max(len(det_labels[i]) for i in idx)
        g = _pad([gt_boxes[i] for i in idx], m, (4, ), 0, np.float32)
        gl = _pad([gt_labels[i] for i in idx], m, (), -1, np.int64)
        d = _pad([det_boxes[i] for i in idx], n, (4, ), 0, np.float32)
        dl = _pad([det_labels[i] for i in idx], n, (), -2, np.int64)
        iou = box_iou_padded(g, d) * (gl[:, :, None] == dl[:, None, :])
        iou, cols = _compact(iou, iou_thrs.min(), strict=False)
        correct, _ = greedy_match(iou, iou_thrs)
        for row, i in enumerate(idx):
            keep = cols[row] >= 0
            out[i][cols[row][keep]] = correct[row][keep]
    return out


def confusion_matrix(gt_boxes: Sequence[np.ndarray], gt_labels: Sequence[np.ndarray],
                     det_boxes: Sequence[np.ndarray], det_labels: Sequence[np.ndarray],
                     det_scores: Sequence[np.ndarray], num_classes: int, conf: float = 0.001,
                     iou_thr: float = 0.45) -> np.ndarray:
    """The reference's detection confusion matrix (``ConfusionMatrix.process_batch``), all images at once.

    Detections with confidence ``> conf`` (in descending confidence) claim,
    class-agnostically, the unclaimed ground truth of highest IoU if it is
    ``> iou_thr``. Row = predicted class, column = true class; the last row
    and column are background (missed ground truth in the last row, unmatched
    detections in the last column). The reference's validator uses its
    ``conf`` argument (0.001 by default in validation) and 0.45.

    Returns:
        np.ndarray: (num_classes + 1, num_classes + 1) counts, float64.
    """
    nc = num_classes
    matrix = np.zeros((nc + 1, nc + 1))
    thr = np.array([iou_thr], dtype=np.float64)
    for sl in _chunks([len(x) for x in gt_labels], [len(x) for x in det_labels]):
        keep = [np.asarray(det_scores[i]) > conf for i in sl]
        d_boxes = [np.asarray(det_boxes[i])[k] for i, k in zip(sl, keep)]
        d_labels = [np.asarray(det_labels[i])[k].astype(np.int64) for i, k in zip(sl, keep)]
        g_labels = [np.asarray(gt_labels[i]).astype(np.int64) for i in sl]
        m = max([len(x) for x in g_labels] + [0])
        n = max([len(x) for x in d_labels] + [0])
        gl = _pad(g_labels, m, (), -1, np.int64)
        dl = _pad(d_labels, n, (), -1, np.int64)
        if m and n:
            g = _pad([gt_boxes[i] for i in sl], m, (4, ), 0, np.float32)
            d = _pad(d_boxes, n, (4, ), 0, np.float32)
            iou = box_iou_padded(g, d) * ((gl >= 0)[:, :, None] & (dl >= 0)[:, None, :])
            iou, cols = _compact(iou, iou_thr, strict=True)
            _, gt_match = greedy_match(iou, thr, strict=True)
            gt_match = gt_match[..., 0]  # (B, M) compacted column or -1
            det_of_gt = np.where(gt_match >= 0, np.take_along_axis(cols, np.maximum(gt_match, 0), axis=1)
                                 if cols.shape[1] else -1, -1)
        else:
            det_of_gt = np.full(gl.shape, -1, dtype=np.int64)
        valid_gt = gl >= 0
        matched = valid_gt & (det_of_gt >= 0)
        pred_of_gt = np.take_along_axis(dl, np.maximum(det_of_gt, 0), axis=1) if n else det_of_gt
        np.add.at(matrix, (pred_of_gt[matched], gl[matched]), 1)  # TP (diagonal) or confusion
        np.add.at(matrix, (np.full(int((valid_gt & ~matched).sum()), nc), gl[valid_gt & ~matched]), 1)  # FN
        det_matched = np.zeros(dl.shape, dtype=bool)
        bi = np.nonzero(matched)[0]
        det_matched[bi, det_of_gt[matched]] = True
        fp = (dl >= 0) & ~det_matched
        np.add.at(matrix, (dl[fp], np.full(int(fp.sum()), nc)), 1)  # FP (background)
    return matrix


def smooth(y: np.ndarray, f: float = 0.05) -> np.ndarray:
    """Box filter of width ``f`` of the length (odd), edges padded with the end values (the reference's)."""
    nf = round(len(y) * f * 2) // 2 + 1
    p = np.ones(nf // 2)
    yp = np.concatenate((p * y[0], y, p * y[-1]), 0)
    return np.convolve(yp, np.ones(nf) / nf, mode='valid')


def compute_ap(recall: np.ndarray, precision: np.ndarray) -> Tuple[float, np.ndarray, np.ndarray]:
    """AP of one P-R curve: precision envelope, 101-point interpolation, trapezoidal integral (the reference's)."""
    mrec = np.concatenate(([0.0], recall, [recall[-1] if len(recall) else 1.0], [1.0]))
    mpre = np.concatenate(([1.0], precision, [0.0], [0.0]))
    mpre = np.flip(np.maximum.accumulate(np.flip(mpre)))
    return float(_TRAPZ(np.interp(_AP_X, mrec, mpre), _AP_X)), mpre, mrec


@dataclass
class YOLODetResults:
    """What :func:`yolo_ap_per_class` / :class:`YOLODetMetric` computed; arrays for later plots.

    Per-class arrays have one row per class *with ground truth* (``class_index``
    gives their labels), as the reference's ``ap_per_class``.

    Attributes:
        names (list[str]): All class names (label order).
        class_index (np.ndarray): (K,) labels of the classes with ground truth.
        p, r, f1 (np.ndarray): (K,) precision, recall, F1 at ``conf_threshold``.
        ap (np.ndarray): (K, T) AP per class and IoU threshold (``iou_thrs``).
        conf_threshold (float): the operating confidence: ``curve_x[i]`` with
            ``i`` the argmax of the class-mean F1 curve smoothed over 10% of
            its length.
        curve_x (np.ndarray): (1000,) 0..1, the x axis of every curve below.
        p_curve, r_curve, f1_curve (np.ndarray): (K, 1000) precision, recall
            and F1 at confidence ``curve_x`` (IoU 0.5): the reference's
            P/R/F1-confidence plots.
        pr_precision (np.ndarray): (K, 1000) precision envelope at recall
            ``curve_x`` (IoU 0.5): the reference's PR-curve plot.
        tp (np.ndarray): (N, T) bool, every detection correct at each IoU
            threshold; ``conf`` (N,), ``pred_cls`` (N,), ``target_cls`` (G,)
            the inputs of ``ap_per_class``; ``det_image`` (N,) and
            ``target_image`` (G,) the image index of each.
        iou_thrs (np.ndarray): (T,) IoU thresholds.
        images (int): images evaluated; ``nt_per_image`` (C,) images that
            contain each class; ``nt_per_class`` (C,) instances per class.
        confusion_matrix (np.ndarray | None): (C + 1, C + 1) [predicted, true]
            counts, background last (see :func:`confusion_matrix`).
        confusion_conf, confusion_iou (float | None): its score and IoU
            thresholds (detections with score > conf; matches with IoU > iou).
    """
    names: List[str]
    class_index: np.ndarray
    p: np.ndarray
    r: np.ndarray
    f1: np.ndarray
    ap: np.ndarray
    conf_threshold: float
    curve_x: np.ndarray
    p_curve: np.ndarray
    r_curve: np.ndarray
    f1_curve: np.ndarray
    pr_precision: np.ndarray
    tp: np.ndarray
    conf: np.ndarray
    pred_cls: np.ndarray
    target_cls: np.ndarray
    iou_thrs: np.ndarray = field(default_factory=lambda: IOU_THRS.copy())
    det_image: Optional[np.ndarray] = None
    target_image: Optional[np.ndarray] = None
    images: int = 0
    nt_per_image: Optional[np.ndarray] = None
    nt_per_class: Optional[np.ndarray] = None
    confusion_matrix: Optional[np.ndarray] = None
    confusion_conf: Optional[float] = None
    confusion_iou: Optional[float] = None

    @property
    def ap50(self) -> np.ndarray:
        return self.ap[:, 0] if len(self.ap) else np.zeros(0)

    @property
    def ap50_95(self) -> np.ndarray:
        return self.ap.mean(1) if len(self.ap) else np.zeros(0)

    def mean_results(self) -> Tuple[float, float, float, float]:
        """(P, R, mAP50, mAP50-95), means over the classes with ground truth (0 without any)."""
        if not len(self.class_index):
            return 0.0, 0.0, 0.0, 0.0
        return float(self.p.mean()), float(self.r.mean()), float(self.ap[:, 0].mean()), float(self.ap.mean())


def yolo_ap_per_class(tp: np.ndarray, conf: np.ndarray, pred_cls: np.ndarray, target_cls: np.ndarray,
                      names: Optional[Sequence[str]] = None, eps: float = 1e-16) -> YOLODetResults:
    """The reference's ``ap_per_class``: per-class AP at each IoU threshold, P/R at the max-mean-F1 confidence.

    Per class with ground truth: detections sorted by confidence (stable),
    cumulative TP/FP, recall = TP / labels, precision = TP / (TP + FP); AP per
    threshold by :func:`compute_ap`; P and R curves against confidence
    (IoU 0.5, 1000 points). The operating point is the confidence of maximal
    class-mean F1 after :func:`smooth` with ``f=0.1``. Classes with
    predictions but no ground truth do not count (as the reference).

    Args:
        tp (np.ndarray): (N, T) bool. conf (N,), pred_cls (N,), target_cls (G,).
        names (Sequence[str], optional): Class names (label order).

    Returns:
        YOLODetResults: without the image counts and confusion matrix.
    """
    tp = np.asarray(tp, dtype=bool).reshape(len(conf), -1) if len(conf) else np.zeros((0, len(IOU_THRS)), bool)
    conf = np.asarray(conf).reshape(-1)  # its own dtype: float32 scores interpolate as the reference's
    pred_cls, target_cls = (np.asarray(a, dtype=np.float64).reshape(-1) for a in (pred_cls, target_cls))
    order = np.argsort(-conf, kind='stable')
    tp, conf, pred_cls = tp[order], conf[order], pred_cls[order]
    classes, nt = np.unique(target_cls, return_counts=True)
    k, t = len(classes), tp.shape[1]
    x = CURVE_X
    ap, p_curve, r_curve, pr_precision = np.zeros((k, t)), np.zeros((k, 1000)), np.zeros((k, 1000)), np.zeros((k, 1000))
    for ci, c in enumerate(classes):  # classes, not detections
        sel = pred_cls == c
        if not sel.any():
            continue
        tpc = tp[sel].cumsum(0)
        fpc = (~tp[sel]).cumsum(0)
        recall = tpc / (nt[ci] + eps)
        precision = tpc / (tpc + fpc)
        r_curve[ci] = np.interp(-x, -conf[sel], recall[:, 0], left=0)
        p_curve[ci] = np.interp(-x, -conf[sel], precision[:, 0], left=1)
        for j in range(t):
            ap[ci, j], mpre, mrec = compute_ap(recall[:, j], precision[:, j])
            if j == 0:
                pr_precision[ci] = np.interp(x, mrec, mpre)
    f1_curve = 2 * p_curve * r_curve / (p_curve + r_curve + eps)
    i = int(smooth(f1_curve.mean(0), 0.1).argmax()) if k else 0
    all_names = list(names) if names is not None else []
    return YOLODetResults(names=all_names, class_index=classes.astype(int), p=p_curve[:, i], r=r_curve[:, i],
                          f1=f1_curve[:, i], ap=ap, conf_threshold=float(x[i]), curve_x=x, p_curve=p_curve,
                          r_curve=r_curve, f1_curve=f1_curve, pr_precision=pr_precision, tp=tp, conf=conf,
                          pred_cls=pred_cls.astype(int), target_cls=target_cls.astype(int),
                          iou_thrs=IOU_THRS[:t].copy() if t <= len(IOU_THRS) else np.zeros(t))


def format_table(res: YOLODetResults, per_class: bool = True) -> str:
    """The reference's validation table: ``Class Images Instances Box(P R mAP50 mAP50-95)``, then rows."""
    head = ('%22s' + '%11s' * 6) % ('Class', 'Images', 'Instances', 'Box(P', 'R', 'mAP50', 'mAP50-95)')
    row = '%22s' + '%11i' * 2 + '%11.3g' * 4
    nt_class = res.nt_per_class if res.nt_per_class is not None else np.zeros(0, int)
    lines = [head, row % ('all', res.images, int(nt_class.sum()), *res.mean_results())]
    if per_class and len(res.names) > 1:
        for i, c in enumerate(res.class_index):
            name = res.names[c] if c < len(res.names) else str(c)
            lines.append(row % (name, res.nt_per_image[c], nt_class[c], res.p[i], res.r[i], res.ap[i, 0],
                                res.ap[i].mean()))
    return '\n'.join(lines)


@METRICS.register_module()
class YOLODetMetric(CheckedCocoMetric):
    """:class:`CheckedCocoMetric` plus the reference's (Ultralytics') validation table and numbers.

    The COCO evaluation runs unchanged (same ``coco/bbox_*`` keys and values).
    From the same detections and the same ground truth (the COCO API's
    annotations of the evaluated images, crowd ones left out as the
    reference's COCO labels leave them out) it then computes what the
    reference's ``DetectionValidator`` prints, logs the table

    .. code-block:: none

                       Class     Images  Instances      Box(P          R      mAP50  mAP50-95)
                         all        500       4210      0.612      0.487      0.534      0.371
                      person        250       1010      ...

    and adds the scalars ``yolo/precision``, ``yolo/recall``, ``yolo/mAP50``,
    ``yolo/mAP50-95`` (no ``coco/`` prefix) and, with ``per_class_scalars``,
    ``yolo/precision/<class>`` and so on, so every visualizer backend gets them.

    - matching: per image, same-class detections in descending score claim the
      unclaimed ground truth of highest IoU if IoU >= t, for t in 0.50:0.05:0.95
      (the reference's ``match_predictions``); all detections count (no
      100-per-image cap as COCO's mAP);
    - AP: per class with ground truth, precision envelope, 101-point
      interpolation, trapezoidal integral; mAP50 = AP at 0.5, mAP50-95 = the
      mean over the 10 thresholds; "all" = means over those classes;
    - P and R: per class at one confidence for all classes, the one of maximal
      class-mean F1 (F1-confidence curves on 1000 points, smoothed by a box
      filter of 10% width), as the reference.

    Agreement with COCO (``classwise=True``): our per-class mAP50-95 is not
    pycocotools' AP, which reads the precision envelope at 101 recall points
    by a step lookup (the precision at the first reached recall >= r) and
    averages the 101 values, and ignores detections on crowd regions; ours
    interpolates linearly and integrates by trapezoid (end points weighted by
    half: lower by up to P(0)/200 = 0.005; divided by 100 instead of 101:
    higher by AP/100). mmdet's classwise AP uses up to 1000 detections per
    image (``bbox_mAP`` 100), ours all of them. Measured on the tiny test data
    (4 classes, 48 images, 15-26 instances per class, 10 seeds x 3 detection
    qualities, AP 0.03-0.5): ours lower by at most 0.0103 per class and
    0.0043 for the mean (tests/evaluation/test_yolo_det_metric.py asserts
    0.02 and 0.01; with more instances per class the recall steps, and the
    difference, shrink).

    After ``evaluate`` (on the main process) ``self.yolo_results`` holds a
    :class:`YOLODetResults` with the arrays for the reference's plots (PR
    curves, F1/P/R-confidence curves, confusion matrix and its inputs).

    Args:
        per_class_table (bool): Log one row per class (the reference prints them
            only in standalone validation; here always). Defaults to True.
        per_class_scalars (bool): Return per-class scalars too. Defaults to True.
        confusion_conf (float): Score threshold of the confusion matrix
            (the reference's validation ``conf``, 0.001: 8.4's
            ``DetectionValidator`` passes ``conf=self.args.conf`` to
            ``ConfusionMatrix.process_batch``, whose own default of 0.25 only
            applies to other callers). Defaults to 0.001.
        confusion_iou (float): Its IoU threshold. Defaults to 0.45.
        match_boxes (str): Which boxes the YOLO numbers (and the confusion
            matrix) match against the ground truth. ``'unclipped'``: the head's
            ``unclipped_bboxes``, as the reference's validator (8.4 matches NMS
            output in input space, never clipped to the image; boxes crossing
            the border overlap less). ``'clipped'``: ``bboxes``, the boxes COCO
            evaluates. Predictions without ``unclipped_bboxes`` (another head)
            fall back to ``bboxes`` with a warning. Measured on license_plates
            val (YOLO26-n, 70 images): P 0.786 / 0.798, mAP50 0.574 / 0.578,
            mAP50-95 0.297 / 0.303 unclipped / clipped; the reference's own
            validator: 0.786, 0.574, 0.297. Defaults to ``'unclipped'``.
        **kwargs: As :class:`CheckedCocoMetric`.

    Raises:
        ValueError: ``match_boxes`` is neither ``'unclipped'`` nor ``'clipped'``.
    """

    def __init__(self, per_class_table: bool = True, per_class_scalars: bool = True, confusion_conf: float = 0.001,
                 confusion_iou: float = 0.45, match_boxes: str = 'unclipped', **kwargs) -> None:
        super().__init__(**kwargs)
        if match_boxes not in ('unclipped', 'clipped'):
            raise ValueError(f"YOLODetMetric: match_boxes must be 'unclipped' or 'clipped', got {match_boxes!r}")
        self.per_class_table = per_class_table
        self.per_class_scalars = per_class_scalars
        self.confusion_conf = confusion_conf
        self.confusion_iou = confusion_iou
        self.match_boxes = match_boxes
        self._warned_clipped = False
        self.yolo_results: Optional[YOLODetResults] = None

    def process(self, data_batch: dict, data_samples: Sequence[dict]) -> None:
        """As :class:`CocoMetric`, keeping ``unclipped_bboxes`` for the YOLO matching (``match_boxes``)."""
        start = len(self.results)
        super().process(data_batch, data_samples)
        if self.match_boxes != 'unclipped':
            return
        for (_, result), sample in zip(self.results[start:], data_samples):
            pred = sample['pred_instances']
            if 'unclipped_bboxes' in pred:
                result['unclipped_bboxes'] = pred['unclipped_bboxes'].cpu().numpy()
            elif not self._warned_clipped:
                self._warned_clipped = True
                print_log(f"{type(self).__name__}: the predictions have no 'unclipped_bboxes' (not a YOLOHead?): "
                          "the YOLO numbers match the clipped 'bboxes', not the reference's unclipped boxes",
                          logger='current', level=logging.WARNING)

    def _ground_truth(self, img_ids: Sequence) -> Tuple[List[np.ndarray], List[np.ndarray]]:
        """Per image (xyxy boxes, labels) from the COCO API, categories of the metric's classes, no crowds."""
        label_of = {cat_id: label for label, cat_id in enumerate(self.cat_ids)}
        boxes, labels = [], []
        for img_id in img_ids:  # images, not detections
            anns = [a for a in self._coco_api.imgToAnns.get(img_id, [])
                    if not a.get('iscrowd', 0) and a['category_id'] in label_of]
            b = np.array([a['bbox'] for a in anns], dtype=np.float32).reshape(-1, 4)
            b[:, 2:] += b[:, :2]
            boxes.append(b)
            labels.append(np.array([label_of[a['category_id']] for a in anns], dtype=np.int64))
        return boxes, labels

    def compute_yolo(self, results: list) -> YOLODetResults:
        """The reference's numbers for ``results`` (``(gt, pred)`` pairs of ``process``), after the COCO run."""
        preds = [pred for _, pred in results]
        gt_boxes, gt_labels = self._ground_truth([p['img_id'] for p in preds])
        det_boxes, det_labels, det_scores = [], [], []
        for p in preds:  # per image: descending score (stable), as the reference's NMS output
            order = np.argsort(-np.asarray(p['scores']), kind='stable')
            boxes = p.get('unclipped_bboxes', p['bboxes'])  # only present with match_boxes='unclipped'
            det_boxes.append(np.asarray(boxes, dtype=np.float32).reshape(-1, 4)[order])
            det_labels.append(np.asarray(p['labels'], dtype=np.int64)[order])
            det_scores.append(np.asarray(p['scores'], dtype=np.float32)[order])
        tps = match_detections(gt_boxes, gt_labels, det_boxes, det_labels)
        names = list(self.dataset_meta['classes'])
        nc = len(names)
        cat = (lambda xs, dt: np.concatenate(xs).astype(dt) if xs else np.zeros(0, dt))
        res = yolo_ap_per_class(np.concatenate(tps) if tps else np.zeros((0, len(IOU_THRS)), bool),
                                cat(det_scores, np.float32), cat(det_labels, np.int64), cat(gt_labels, np.int64),
                                names=names)
        res.det_image = np.repeat(np.arange(len(preds)), [len(x) for x in det_labels])
        res.target_image = np.repeat(np.arange(len(preds)), [len(x) for x in gt_labels])
        # the order of yolo_ap_per_class's sort, so that every per-detection array lines up
        res.det_image = res.det_image[np.argsort(-cat(det_scores, np.float32), kind='stable')]
        res.images = len(preds)
        res.nt_per_class = np.bincount(res.target_cls, minlength=nc)
        pairs = np.unique(np.stack([res.target_image, res.target_cls]), axis=1) if len(res.target_cls) else \
            np.zeros((2, 0), int)
        res.nt_per_image = np.bincount(pairs[1], minlength=nc)
        res.confusion_matrix = confusion_matrix(gt_boxes, gt_labels, det_boxes, det_labels, det_scores, nc,
                                                conf=self.confusion_conf, iou_thr=self.confusion_iou)
        res.confusion_conf, res.confusion_iou = float(self.confusion_conf), float(self.confusion_iou)
        return res

    def compute_metrics(self, results: list) -> Dict[str, float]:
        metrics = super().compute_metrics(results)
        if self.format_only or not results:
            return metrics
        res = self.yolo_results = self.compute_yolo(results)
        print_log('\n' + format_table(res, self.per_class_table), logger='current')
        if not int(res.nt_per_class.sum()):
            print_log(f'{type(self).__name__}: no ground truth in the {res.images} images: the YOLO metrics are 0',
                      logger='current', level=logging.WARNING)
        p, r, map50, map50_95 = res.mean_results()
        metrics.update({'yolo/precision': p, 'yolo/recall': r, 'yolo/mAP50': map50, 'yolo/mAP50-95': map50_95})
        if self.per_class_scalars:
            for i, c in enumerate(res.class_index):
                name = res.names[c]
                metrics.update({f'yolo/precision/{name}': float(res.p[i]), f'yolo/recall/{name}': float(res.r[i]),
                                f'yolo/mAP50/{name}': float(res.ap[i, 0]),
                                f'yolo/mAP50-95/{name}': float(res.ap[i].mean())})
        return metrics

    def evaluate(self, size: int) -> dict:
        """As the base class; the ``yolo/...`` keys are not prefixed with ``coco/``."""
        metrics = super().evaluate(size)
        mark = f'{self.prefix}/yolo/' if self.prefix else 'yolo/'
        return {(k[len(self.prefix) + 1:] if self.prefix and k.startswith(mark) else k): v
                for k, v in metrics.items()}
