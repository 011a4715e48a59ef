"""multiclass_nms (YOLOHead's NMS): every option means the same at every
candidate count and for any coordinates, checked against plain-Python
greedy NMS / soft-NMS loops (mmcv 2.1.0's ``batched_nms`` does not: see
multiclass_nms's docstring)."""
import itertools

import pytest
import torch

pytest.importorskip('mmcv.ops')

from convnextv2_yolo.layers.bbox_nms import multiclass_nms  # noqa: E402
from tests.helpers.heads import TEST_CFG, crafted_outputs, make_head  # noqa: E402


# ------------------------------------------------------------ references
def iou_row(box, boxes):
    """IoU (float64) of one (4,) box with (M, 4) boxes."""
    lt = torch.maximum(box[:2], boxes[:, :2])
    rb = torch.minimum(box[2:], boxes[:, 2:])
    inter = (rb - lt).clamp(min=0).prod(1)
    area = (box[2] - box[0]) * (box[3] - box[1])
    return inter / (area + (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]) - inter)


def ref_nms(boxes, scores, cfg):
    """Greedy NMS: by descending score, keep a box unless its IoU with a kept one is > thr."""
    b = boxes.double() + torch.tensor([0., 0., 1., 1.], dtype=torch.float64) * cfg.get('offset', 0)
    order = scores.argsort(descending=True)
    b = b[order]
    alive = (scores[order] > cfg.get('score_threshold', 0)).tolist()
    kept = []
    for r in range(len(order)):
        if alive[r]:
            kept.append(order[r].item())
            suppressed = (iou_row(b[r], b[r + 1:]) > cfg['iou_threshold']).tolist()
            alive[r + 1:] = [a and not x for a, x in zip(alive[r + 1:], suppressed)]
    return [(i, scores[i].item()) for i in kept]


def ref_soft_nms(boxes, scores, cfg):
    """Soft-NMS: pick the best remaining box, decay the others, drop those below min_score."""
    thr, sigma = cfg.get('iou_threshold', 0.3), cfg.get('sigma', 0.5)
    min_score, method = cfg.get('min_score', 1e-3), cfg.get('method', 'linear')
    b = boxes.double() + torch.tensor([0., 0., 1., 1.], dtype=torch.float64) * cfg.get('offset', 0)
    s = scores.double().clone()
    remaining = (s >= min_score).nonzero()[:, 0]
    out = []
    while len(remaining):
        j = s[remaining].argmax()
        i = remaining[j]
        out.append((i.item(), s[i].item()))
        remaining = torch.cat([remaining[:j], remaining[j + 1:]])
        ov = iou_row(b[i], b[remaining])
        if method == 'linear':
            w = torch.where(ov >= thr, 1 - ov, torch.ones_like(ov))
        elif method == 'naive':
            w = (ov < thr).double()
        else:
            w = torch.exp(-ov ** 2 / sigma)
        s[remaining] *= w
        remaining = remaining[s[remaining] >= min_score]
    return out


def reference(boxes, scores, labels, cfg):
    """(keep, scores) of a per-class (or agnostic) loop over the references."""
    one = ref_soft_nms if cfg.get('type', 'nms') == 'soft_nms' else ref_nms
    if cfg.get('class_agnostic', False):
        groups = [torch.arange(len(boxes))]
    else:
        groups = [(labels == c).nonzero()[:, 0] for c in labels.unique()]
    res = [(g[i].item(), s) for g in groups for i, s in one(boxes[g], scores[g], cfg)]
    res.sort(key=lambda t: -t[1])
    if cfg.get('max_num', -1) > 0:
        res = res[:cfg['max_num']]
    return torch.tensor([i for i, _ in res], dtype=torch.long), torch.tensor([s for _, s in res])


def random_dets(n, num_classes=4, seed=0, spread=200., size=(20., 40.)):
    """Clustered boxes, partly below 0 (as raw predictions), distinct scores."""
    g = torch.Generator().manual_seed(seed)
    centres = (torch.rand(max(n // 15, 1), 2, generator=g, dtype=torch.float64) - 0.6) * spread
    c = centres[torch.randint(len(centres), (n,), generator=g)]
    c = c + torch.randn(n, 2, generator=g, dtype=torch.float64) * size[1] / 8
    wh = torch.rand(n, 2, generator=g, dtype=torch.float64) * (size[1] - size[0]) + size[0]
    boxes = torch.cat([c - wh / 2, c + wh / 2], 1).float()
    scores = (torch.randperm(n, generator=g).float() + 0.5) / n  # not on round thresholds
    labels = torch.randint(num_classes, (n,), generator=g)
    return boxes, scores, labels


def check_against_reference(boxes, scores, labels, cfg, atol=1e-5):
    keep, out = multiclass_nms(boxes, scores, labels, cfg)
    ref_keep, ref_out = reference(boxes, scores, labels, cfg)
    assert keep.dtype == torch.long and out.dtype == torch.float32 and keep.shape == out.shape
    assert keep.tolist() == ref_keep.tolist()
    torch.testing.assert_close(out, ref_out.float(), atol=atol, rtol=0)
    assert (out.diff() <= 0).all()
    return keep, out


# ------------------------------------------------------------------ tests
NMS = dict(type='nms', iou_threshold=0.5)
SOFT = dict(type='soft_nms', iou_threshold=0.5, method='linear', min_score=0.01)


@pytest.mark.parametrize('base', [NMS, SOFT], ids=['nms', 'soft_nms'])
def test_identical_boxes_keep_the_same_at_every_count(base):
    """The filed bug: 10,000 identical boxes of two alternating classes kept 2
    with class_agnostic=True (mmcv's per-class loop from split_thr on)."""
    for n, split_thr in itertools.product((2, 3, 9998, 10000, 10002), (None, 3, 64, 20000)):
        boxes = torch.tensor([[-5., 10., 30., 50.]]).repeat(n, 1)
        scores = torch.linspace(0.9, 0.1, n)
        labels = torch.arange(n) % 2
        if n == 10000 and split_thr is None:  # what mmcv 2.1.0 does
            from mmcv.ops import batched_nms
            assert len(batched_nms(boxes, scores, labels, dict(base, class_agnostic=True))[1]) == 2
        cfg = dict(base) if split_thr is None else dict(base, split_thr=split_thr)
        keep, out = multiclass_nms(boxes, scores, labels, dict(cfg, class_agnostic=True))
        assert keep.tolist() == [0] and out.tolist() == [scores[0].item()], (n, split_thr)
        keep, out = multiclass_nms(boxes, scores, labels, cfg)
        assert keep.tolist() == [0, 1] and torch.equal(out, scores[:2]), (n, split_thr)


@pytest.mark.parametrize('base', [NMS, SOFT, dict(SOFT, method='gaussian', sigma=0.1)],
                         ids=['nms', 'soft_nms', 'soft_nms_gaussian'])
@pytest.mark.parametrize('split_thr', [None, 1, 10 ** 6])
def test_negative_coordinates_never_suppress_across_classes(base, split_thr):
    # mmcv shifts class k by k * (max + 1) = k here: class 1's box lands on class 0's
    boxes = torch.tensor([[-10., -10., 0., 0.], [-11., -11., -1., -1.]])
    scores, labels = torch.tensor([0.9, 0.8]), torch.tensor([0, 1])
    cfg = dict(base) if split_thr is None else dict(base, split_thr=split_thr)
    keep, out = multiclass_nms(boxes, scores, labels, cfg)
    assert keep.tolist() == [0, 1] and torch.equal(out, scores)  # IoU 0.68 but other class
    from mmcv.ops import batched_nms  # what mmcv 2.1.0 does
    mmcv_cfg = {k: v for k, v in cfg.items() if k != 'split_thr'}
    assert len(batched_nms(boxes, scores, labels, mmcv_cfg)[1]) == 1
    # and on random boxes mostly below 0, with many classes
    boxes, scores, labels = random_dets(400, num_classes=7, seed=1, spread=400.)
    check_against_reference(boxes - 500, scores, labels, cfg)


@pytest.mark.parametrize('n,split_thr', [(500, None), (500, 50), (3000, None)])  # shifted / loop / loop
@pytest.mark.parametrize('agnostic', [False, True])
def test_nms_matches_plain_python_greedy_nms(n, split_thr, agnostic):
    boxes, scores, labels = random_dets(n, seed=n)
    for cfg in (dict(NMS, class_agnostic=agnostic), dict(type='nms', iou_threshold=0.7, class_agnostic=agnostic)):
        if split_thr is not None:
            cfg['split_thr'] = split_thr
        keep, _ = check_against_reference(boxes, scores, labels, cfg, atol=0)
        assert 0.05 * n < len(keep) < 0.95 * n  # a real test: many suppressed, many kept
        if not agnostic:  # class-aware agrees at every split
            for s in (1, n, n + 1):
                assert torch.equal(multiclass_nms(boxes, scores, labels, dict(cfg, split_thr=s))[0], keep)


@pytest.mark.parametrize('method', ['linear', 'gaussian', 'naive'])
@pytest.mark.parametrize('n,split_thr', [(300, None), (300, 30), (1200, None)])
@pytest.mark.parametrize('agnostic', [False, True])
def test_soft_nms_matches_plain_python_soft_nms(method, n, split_thr, agnostic):
    boxes, scores, labels = random_dets(n, seed=n + 1)
    cfg = dict(type='soft_nms', iou_threshold=0.4, sigma=0.5, min_score=0.05, method=method,
               class_agnostic=agnostic)
    if split_thr is not None:
        cfg['split_thr'] = split_thr
    keep, out = check_against_reference(boxes, scores, labels, cfg)
    assert (out >= 0.05).all()
    assert (out < scores[keep]).any() == (method != 'naive')  # the decayed scores are the output


def test_large_coordinates_keep_per_class_iou_exact():
    """A float32 class shift of ~1e5 rounds coordinates by ~0.01 px: IoUs of
    small boxes near the threshold would flip between the shifted single NMS
    and the per-class loop."""
    boxes, scores, labels = random_dets(1500, num_classes=3, seed=3, spread=2e5, size=(1., 4.))
    boxes = boxes + torch.tensor([60000., -60000., 60000., -60000.])
    for split_thr in (10 ** 6, 1):  # one shifted NMS / per-class loop
        check_against_reference(boxes, scores, labels, dict(type='nms', iou_threshold=0.3, split_thr=split_thr),
                                atol=0)


@pytest.mark.parametrize('agnostic', [False, True])
def test_max_num_score_threshold_min_score_offset_at_every_count(agnostic):
    boxes, scores, labels = random_dets(600, seed=5)
    for split_thr in (1, 10 ** 6):
        common = dict(class_agnostic=agnostic, split_thr=split_thr)
        for cfg in (dict(NMS, max_num=25), dict(NMS, score_threshold=0.4), dict(NMS, offset=1),
                    dict(SOFT, max_num=25), dict(SOFT, offset=1), dict(SOFT, min_score=0.3, method='gaussian')):
            check_against_reference(boxes, scores, labels, dict(cfg, **common))
        # mmcv's soft-NMS kernel never checks the first box it picks against
        # min_score: one box per call survived below it
        keep, out = multiclass_nms(boxes, scores * 0.01, labels, dict(SOFT, min_score=0.05, **common))
        assert keep.numel() == 0 and out.numel() == 0
        # offset=1 is mmcv's nms with offset=1 (single class: no shifting)
        from mmcv.ops import nms
        one = torch.zeros_like(labels)
        assert torch.equal(multiclass_nms(boxes, scores, one, dict(NMS, offset=1, **common))[0],
                           nms(boxes, scores, 0.5, offset=1)[1])


def test_empty_input_and_config_errors():
    e = torch.zeros(0, 4), torch.zeros(0), torch.zeros(0, dtype=torch.long)
    for cfg in (NMS, SOFT, dict(NMS, class_agnostic=True)):
        keep, out = multiclass_nms(*e, cfg)
        assert keep.shape == out.shape == (0,) and keep.dtype == torch.long
    with pytest.raises(KeyError, match="'iou_thr'"):
        multiclass_nms(*e, dict(type='nms', iou_thr=0.5))
    with pytest.raises(KeyError, match="'score_threshold'.*min_score"):
        multiclass_nms(*e, dict(SOFT, score_threshold=0.1))
    with pytest.raises(KeyError, match="'iou_threshold'"):
        multiclass_nms(*e, dict(type='nms'))
    with pytest.raises(ValueError, match="'nms_match'"):
        multiclass_nms(*e, dict(type='nms_match', iou_threshold=0.5))
    with pytest.raises(ValueError, match="'method'"):
        multiclass_nms(*e, dict(SOFT, method='hard'))
    with pytest.raises(ValueError, match="'offset'"):
        multiclass_nms(*e, dict(NMS, offset=2))
    # through the head, also for an image without candidates
    head = make_head()
    outs = crafted_outputs(head)
    for score_thr in (0.001, 1.0):
        with pytest.raises(KeyError, match="'clas_agnostic'"):
            head.predict_by_feat(*outs, batch_img_metas=[{}],
                                 cfg=dict(TEST_CFG, score_thr=score_thr, nms=dict(NMS, clas_agnostic=True)))


def test_soft_nms_scores_reach_the_head_predictions():
    head = make_head()
    outs = crafted_outputs(head)
    cfg = dict(TEST_CFG, nms=dict(type='soft_nms', iou_threshold=0.5, method='linear'))
    r = head.predict_by_feat(*outs, batch_img_metas=[{}], cfg=cfg)[0]
    # class 1: A (12, 8, 44, 32) 0.953; B (20, 8, 52, 32) 0.881, IoU(A, B) = 0.6;
    # C (12, 8.8, 44, 32.8) 0.622: IoU(A, C) = 742.4/793.6, IoU(B, C) = 556.8/979.2; class 2: A, 0.731
    s = torch.sigmoid(torch.tensor([3., 2., 1., .5], dtype=torch.float64)).tolist()
    b = s[1] * (1 - 0.6)
    c = s[3] * (1 - 742.4 / 793.6) * (1 - 556.8 / 979.2)
    torch.testing.assert_close(r.scores, torch.tensor([s[0], s[2], b, c]).float(), atol=1e-4, rtol=0)
    assert r.labels.tolist() == [1, 2, 1, 1]
    torch.testing.assert_close(r.bboxes[2], torch.tensor([20., 8., 52., 32.]), atol=1e-3, rtol=0)
    # soft-NMS + class_agnostic: class 2's A is decayed to 0 by class 1's A
    r = head.predict_by_feat(*outs, batch_img_metas=[{}], cfg=dict(cfg, nms=dict(cfg['nms'], class_agnostic=True)))[0]
    assert r.labels.tolist() == [1, 1, 1]


@pytest.mark.parametrize('nms_type', ['nms', 'soft_nms'])
def test_non_finite_boxes_are_dropped_and_do_not_disable_nms(nms_type):
    """One NaN box must not stop suppression in the other classes (it made the class shift NaN)."""
    from convnextv2_yolo.layers.bbox_nms import multiclass_nms
    boxes = torch.tensor([[0, 0, 10, 10], [0, 0, 10, 10.5], [20, 20, 30, 30], [20, 20, 30, 30.5],
                          [5, 5, float('nan'), 9], [40, 40, 50, 50], [0, 0, float('inf'), 5]])
    scores = torch.tensor([0.9, 0.8, 0.7, 0.6, 0.95, float('nan'), 0.5])
    labels = torch.tensor([0, 0, 1, 1, 2, 2, 0])
    cfg = dict(type=nms_type, iou_threshold=0.5)
    if nms_type == 'soft_nms':
        cfg.update(method='naive')
    for split_thr in (1, 100):
        keep, out = multiclass_nms(boxes, scores, labels, dict(cfg, split_thr=split_thr))
        assert keep.tolist() == [0, 2], (split_thr, keep)
        assert torch.isfinite(out).all()
