"""BatchTaskAlignedAssigner and the reference CIoU: hand-made cases and an
independent per-GT / per-anchor re-implementation written with scalars."""
import pytest
import torch

pytest.importorskip('mmcv.ops')

from convnextv2_yolo.losses import YOLOCIoULoss, bbox_ciou  # noqa: E402
from convnextv2_yolo.task_modules import BatchTaskAlignedAssigner  # noqa: E402
from tests.helpers.box_formulas import ciou_scalar  # noqa: E402


def grid_priors(size=64, stride=8):
    n = size // stride
    ys, xs = torch.meshgrid(torch.arange(n) + 0.5, torch.arange(n) + 0.5, indexing='ij')
    return torch.stack([xs, ys], -1).reshape(-1, 2).double() * stride


def naive_assign(scores, preds, priors, labels, boxes, mask, topk, alpha, beta, eps, min_gt_size=0., topk2=None):
    """Per image, per GT, per anchor loops (float64); sides < min_gt_size enlarged for the inside test;
    with topk2 (!= topk), each GT then keeps its topk2 remaining positives of highest metric."""
    B, A, C = scores.shape
    out_scores = torch.zeros(B, A, C, dtype=torch.float64)
    out_fg = torch.zeros(B, A, dtype=torch.bool)
    out_gt = torch.full((B, A), -1, dtype=torch.long)
    for b in range(B):
        M = boxes.shape[1]
        iou = [[0.0] * A for _ in range(M)]
        metric = [[0.0] * A for _ in range(M)]
        pos = [[False] * A for _ in range(M)]
        for m in range(M):
            if not mask[b, m]:
                continue
            g = boxes[b, m].tolist()
            cx, cy, w, h = (g[0] + g[2]) / 2, (g[1] + g[3]) / 2, g[2] - g[0], g[3] - g[1]
            w, h = max(w, min_gt_size), max(h, min_gt_size)
            c = [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]
            for a in range(A):
                x, y = priors[a].tolist()
                if min(x - c[0], y - c[1], c[2] - x, c[3] - y) > eps:
                    iou[m][a] = max(ciou_scalar(g, preds[b, a].tolist()), 0.0)
                    metric[m][a] = scores[b, a, labels[b, m]].item()**alpha * iou[m][a]**beta
            cand = sorted((a for a in range(A) if metric[m][a] > 0), key=lambda a: -metric[m][a])
            for a in cand[:topk]:
                pos[m][a] = True
        for a in range(A):
            owners = [m for m in range(M) if pos[m][a]]
            if len(owners) > 1:
                best = max(range(M), key=lambda m: iou[m][a])
                for m in range(M):
                    pos[m][a] = m == best
        if topk2 is not None and topk2 != topk:
            for m in range(M):
                sel = sorted((a for a in range(A) if pos[m][a]), key=lambda a: -metric[m][a])
                for a in sel[topk2:]:
                    pos[m][a] = False
        for m in range(M):
            sel = [a for a in range(A) if pos[m][a]]
            if not sel:
                continue
            max_metric = max(metric[m][a] for a in sel)
            max_iou = max(iou[m][a] for a in sel)
            for a in sel:
                out_fg[b, a] = True
                out_gt[b, a] = m
                out_scores[b, a, labels[b, m]] = metric[m][a] * max_iou / (max_metric + eps)
    return out_scores, out_fg, out_gt


def assign(scores, preds, priors, labels, boxes, mask, topk=10, min_gt_size=0., topk2=None):
    assigner = BatchTaskAlignedAssigner(topk=topk, alpha=0.5, beta=6.0, eps=1e-9, min_gt_size=min_gt_size,
                                        topk2=topk2)
    return assigner.assign(scores.double(), preds.double(), priors, labels, boxes.double(), mask)


def test_ciou_matches_scalar_formula_and_is_symmetric():
    g = torch.Generator().manual_seed(0)
    xy = torch.rand(50, 2, generator=g, dtype=torch.float64) * 50
    wh = torch.rand(50, 2, generator=g, dtype=torch.float64) * 30 + 0.5
    a = torch.cat([xy, xy + wh], 1)
    b = torch.cat([xy + 3, xy + wh.flip(1)], 1)
    got = bbox_ciou(a, b)
    want = torch.tensor([ciou_scalar(p.tolist(), q.tolist()) for p, q in zip(a, b)], dtype=torch.float64)
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(bbox_ciou(b, a), got)
    # identical boxes: CIoU 1; loss: sum((1 - ciou) * w) * loss_weight
    assert bbox_ciou(a, a).sub(1).abs().max() < 1e-6
    w = torch.rand(50, dtype=torch.float64, generator=g)
    loss = YOLOCIoULoss(reduction='sum', loss_weight=7.5)(a, b, weight=w)
    torch.testing.assert_close(loss, 7.5 * ((1 - want) * w).sum())


def test_ciou_differs_from_mmdet_ciou_loss():
    """Why we have our own CIoU: mmdet's drops alpha when IoU <= 0.5."""
    from mmdet.models.losses.iou_loss import ciou_loss
    a = torch.tensor([[0., 0., 10., 10.]])
    b = torch.tensor([[2., 0., 8., 20.]])  # IoU 0.3, very different aspect
    assert abs(ciou_loss(a, b).item() - (1 - bbox_ciou(a, b)).item()) > 1e-3


def test_one_gt_topk_and_normalised_scores():
    priors = grid_priors()  # 8x8 anchors at 4, 12, ..., 60
    A = priors.shape[0]
    gt = torch.tensor([[[0., 0., 32., 32.]]])
    # anchors with centre inside: x, y in {4, 12, 20, 28} -> 16 candidates
    preds = gt[0, 0].expand(1, A, 4).clone()
    preds[0, :, 2] += torch.arange(A).double() * 0.05  # distinct, decreasing IoU by anchor index
    scores = torch.full((1, A, 3), 0.4, dtype=torch.float64)
    res = assign(scores, preds, priors, torch.tensor([[2]]), gt, torch.tensor([[True]]), topk=4)
    inside = [a for a in range(A) if priors[a, 0] < 32 and priors[a, 1] < 32]
    assert len(inside) == 16
    expect_pos = inside[:4]  # smallest perturbation = highest metric
    assert res['fg_mask'][0].nonzero().flatten().tolist() == expect_pos
    assert (res['assigned_labels'][0, expect_pos] == 2).all()
    assert (res['assigned_labels'][0][~res['fg_mask'][0]] == 3).all()  # background = num_classes
    assert (res['assigned_gt_inds'][0, expect_pos] == 0).all()
    torch.testing.assert_close(res['assigned_bboxes'][0, expect_pos], gt[0].expand(4, 4).double())
    # the best anchor gets exactly maxIoU (metric / maxMetric == 1)
    ious = [ciou_scalar(gt[0, 0].tolist(), preds[0, a].tolist()) for a in expect_pos]
    s = res['assigned_scores'][0, expect_pos]
    assert s[:, :2].abs().max() == 0
    assert abs(s[0, 2].item() - max(ious)) < 1e-7
    metric = [0.4**0.5 * i**6 for i in ious]
    want = [m * max(ious) / max(metric) for m in metric]
    torch.testing.assert_close(s[:, 2], torch.tensor(want, dtype=torch.float64), rtol=1e-7, atol=1e-9)


def test_anchor_claimed_by_two_gts_goes_to_higher_iou():
    priors = torch.tensor([[10., 10.], [100., 100.]], dtype=torch.float64)
    gts = torch.tensor([[[0., 0., 20., 20.], [5., 5., 17., 17.]]])
    preds = torch.tensor([[[5., 5., 16., 16.], [90., 90., 110., 110.]]], dtype=torch.float64)
    scores = torch.full((1, 2, 2), 0.5, dtype=torch.float64)
    res = assign(scores, preds, priors, torch.tensor([[0, 1]]), gts, torch.ones(1, 2, dtype=torch.bool))
    iou0 = ciou_scalar(gts[0, 0].tolist(), preds[0, 0].tolist())
    iou1 = ciou_scalar(gts[0, 1].tolist(), preds[0, 0].tolist())
    assert iou1 > iou0 > 0
    assert res['fg_mask'][0].tolist() == [True, False]
    assert res['assigned_gt_inds'][0, 0].item() == 1
    assert res['assigned_labels'][0, 0].item() == 1
    torch.testing.assert_close(res['assigned_bboxes'][0, 0], gts[0, 1].double())
    # the anchor is GT 1's only positive: score = metric * iou / metric = iou
    assert abs(res['assigned_scores'][0, 0, 1].item() - iou1) < 1e-6
    assert res['assigned_scores'][0, 0, 0].item() == 0


def test_gt_without_anchor_inside_gets_nothing():
    priors = grid_priors()
    gts = torch.tensor([[[1., 1., 3., 3.], [0., 0., 16., 16.]]])  # first: between anchor centres
    A = priors.shape[0]
    preds = torch.tensor([0., 0., 16., 16.]).double().expand(1, A, 4).clone()
    scores = torch.full((1, A, 1), 0.5, dtype=torch.float64)
    res = assign(scores, preds, priors, torch.zeros(1, 2, dtype=torch.long), gts, torch.ones(1, 2, dtype=torch.bool))
    assert res['fg_mask'].sum() == 4
    assert (res['assigned_gt_inds'][res['fg_mask']] == 1).all()


def test_no_gt_and_padded_rows():
    priors = grid_priors()
    A = priors.shape[0]
    scores = torch.rand(2, A, 3, dtype=torch.float64)
    preds = torch.tensor([0., 0., 30., 30.]).double().expand(2, A, 4).clone()
    # M == 0: everything background
    res = assign(scores, preds, priors, torch.zeros(2, 0, dtype=torch.long), torch.zeros(2, 0, 4),
                 torch.zeros(2, 0, dtype=torch.bool))
    assert not res['fg_mask'].any() and res['assigned_scores'].abs().sum() == 0
    assert (res['assigned_labels'] == 3).all() and (res['assigned_gt_inds'] == -1).all()
    # a padded row holding a real-looking box is ignored; image 1 has only padding
    boxes = torch.tensor([[[0., 0., 32., 32.], [0., 0., 64., 64.]], [[0., 0., 64., 64.], [0., 0., 0., 0.]]])
    labels = torch.tensor([[1, 2], [0, 0]])
    mask = torch.tensor([[True, False], [False, False]])
    res = assign(scores, preds, priors, labels, boxes, mask)
    assert not res['fg_mask'][1].any()
    assert (res['assigned_gt_inds'][0][res['fg_mask'][0]] == 0).all()
    assert res['fg_mask'][0].sum() == 10
    assert (res['assigned_scores'][0, :, [0, 2]] == 0).all()


@pytest.mark.parametrize('seed', [0, 1, 2])
def test_matches_naive_loops_on_random_batches(seed):
    g = torch.Generator().manual_seed(seed)
    priors = torch.cat([grid_priors(64, 8), grid_priors(64, 16), grid_priors(64, 32)])
    A, B, M, C = priors.shape[0], 3, 4, 5
    xy = torch.rand(B, M, 2, generator=g) * 40
    wh = torch.rand(B, M, 2, generator=g) * 30 + 6
    boxes = torch.cat([xy, (xy + wh).clamp(max=64)], -1).double()
    labels = torch.randint(0, C, (B, M), generator=g)
    mask = torch.tensor([[True] * 4, [True, True, False, False], [True, False, True, False]])
    # predictions: boxes around each anchor, so every candidate has a positive CIoU
    half = torch.rand(B, A, 2, generator=g, dtype=torch.float64) * 15 + 8
    preds = torch.cat([priors - half, priors + half], -1)
    scores = torch.rand(B, A, C, generator=g, dtype=torch.float64) * 0.9 + 0.05
    res = assign(scores, preds, priors, labels, boxes, mask, topk=6)
    want_scores, want_fg, want_gt = naive_assign(scores, preds, priors, labels, boxes, mask, 6, 0.5, 6.0, 1e-9)
    assert want_fg.sum() > 10
    assert torch.equal(res['fg_mask'], want_fg)
    assert torch.equal(res['assigned_gt_inds'], want_gt)
    torch.testing.assert_close(res['assigned_scores'], want_scores, rtol=1e-7, atol=1e-12)
    torch.testing.assert_close(res['fg_scores'], want_scores[want_fg].sum(-1), rtol=1e-7, atol=1e-12)
    # without the dense map: same sparse results
    assigner = BatchTaskAlignedAssigner(topk=6)
    lean = assigner.assign(scores, preds, priors, labels, boxes.double(), mask, dense_scores=False)
    assert 'assigned_scores' not in lean
    for key in ('fg_scores', 'fg_mask', 'assigned_labels', 'assigned_gt_inds', 'assigned_bboxes'):
        assert torch.equal(lean[key], res[key]), key


def test_small_gts_get_candidates_with_min_gt_size():
    """ultralytics 8.4: a GT side < 16 px is enlarged to 16 about its centre for the candidate test only."""
    priors = grid_priors()
    gts = torch.tensor([[[1., 1., 3., 3.]]])  # between anchor centres: no candidate in the plain test
    A = priors.shape[0]
    preds = torch.tensor([0., 0., 4., 4.]).double().expand(1, A, 4).clone()
    scores = torch.full((1, A, 1), 0.5, dtype=torch.float64)
    args = (scores, preds, priors, torch.zeros(1, 1, dtype=torch.long), gts, torch.ones(1, 1, dtype=torch.bool))
    assert not assign(*args)['fg_mask'].any()
    res = assign(*args, min_gt_size=16)
    assert res['fg_mask'].sum() == 1  # [-6, -6, 10, 10] holds the anchor centre (4, 4) only
    torch.testing.assert_close(res['assigned_bboxes'][res['fg_mask']], gts[0].double())  # the real box
    with pytest.raises(ValueError, match='min_gt_size'):
        BatchTaskAlignedAssigner(min_gt_size=-1)


@pytest.mark.parametrize('seed', [3, 4])
def test_min_gt_size_matches_naive_loops(seed):
    g = torch.Generator().manual_seed(seed)
    priors = torch.cat([grid_priors(64, 8), grid_priors(64, 16), grid_priors(64, 32)])
    A, B, M, C = priors.shape[0], 2, 5, 3
    xy = torch.rand(B, M, 2, generator=g) * 50 + 2
    wh = torch.rand(B, M, 2, generator=g) * 20 + 1  # many sides under 16 px
    boxes = torch.cat([xy, (xy + wh).clamp(max=64)], -1).double()
    labels = torch.randint(0, C, (B, M), generator=g)
    mask = torch.tensor([[True] * 5, [True, True, True, False, False]])
    half = torch.rand(B, A, 2, generator=g, dtype=torch.float64) * 10 + 4
    preds = torch.cat([priors - half, priors + half], -1)
    scores = torch.rand(B, A, C, generator=g, dtype=torch.float64) * 0.9 + 0.05
    res = assign(scores, preds, priors, labels, boxes, mask, topk=6, min_gt_size=16)
    want_scores, want_fg, want_gt = naive_assign(scores, preds, priors, labels, boxes, mask, 6, 0.5, 6.0, 1e-9,
                                                 min_gt_size=16)
    plain = naive_assign(scores, preds, priors, labels, boxes, mask, 6, 0.5, 6.0, 1e-9)[1]
    assert want_fg.sum() > plain.sum()  # the enlargement matters on this batch
    assert torch.equal(res['fg_mask'], want_fg)
    assert torch.equal(res['assigned_gt_inds'], want_gt)
    torch.testing.assert_close(res['assigned_scores'], want_scores, rtol=1e-7, atol=1e-12)


def random_batch(seed, B=3, M=5, C=4, min_gt_size=16.):
    """Boxes of 1-40 px (some under 16) on a 64 px image with 3 levels; predictions around every anchor."""
    g = torch.Generator().manual_seed(seed)
    priors = torch.cat([grid_priors(64, 8), grid_priors(64, 16), grid_priors(64, 32)])
    A = priors.shape[0]
    xy = torch.rand(B, M, 2, generator=g) * 45 + 2
    wh = torch.rand(B, M, 2, generator=g) * 40 + 1
    boxes = torch.cat([xy, (xy + wh).clamp(max=64)], -1).double()
    labels = torch.randint(0, C, (B, M), generator=g)
    mask = torch.ones(B, M, dtype=torch.bool)
    mask[1, 3:] = False
    mask[2, ::2] = False
    half = torch.rand(B, A, 2, generator=g, dtype=torch.float64) * 15 + 4
    preds = torch.cat([priors - half, priors + half], -1)
    scores = torch.rand(B, A, C, generator=g, dtype=torch.float64) * 0.9 + 0.05
    return scores, preds, priors, labels, boxes, mask


@pytest.mark.parametrize('seed,topk,topk2', [(5, 7, 1), (6, 7, 1), (7, 10, 3), (8, 6, 2)])
def test_topk2_matches_naive_loops(seed, topk, topk2):
    """The one-to-one assignment of YOLO26 (topk 7, topk2 1) and others, vs the scalar loops."""
    args = random_batch(seed)
    res = assign(*args, topk=topk, min_gt_size=16, topk2=topk2)
    want_scores, want_fg, want_gt = naive_assign(*args, topk, 0.5, 6.0, 1e-9, min_gt_size=16, topk2=topk2)
    before = naive_assign(*args, topk, 0.5, 6.0, 1e-9, min_gt_size=16)[1]
    assert before.sum() > want_fg.sum() > 0  # topk2 removed positives
    assert torch.equal(res['fg_mask'], want_fg)
    assert torch.equal(res['assigned_gt_inds'], want_gt)
    torch.testing.assert_close(res['assigned_scores'], want_scores, rtol=1e-7, atol=1e-12)
    torch.testing.assert_close(res['fg_scores'], want_scores[want_fg].sum(-1), rtol=1e-7, atol=1e-12)
    # at most topk2 positives per GT; background rows are clean
    gt_key = res['assigned_gt_inds'] + torch.arange(3)[:, None] * 5
    counts = torch.bincount(gt_key[res['fg_mask']], minlength=15)
    assert counts.max() <= topk2
    assert (res['assigned_labels'][~res['fg_mask']] == 4).all()
    assert res['assigned_bboxes'][~res['fg_mask']].abs().sum() == 0


def test_topk2_none_or_equal_to_topk_is_off():
    """None is the plain assigner; topk2 == topk skips the step too, as the reference's ``topk2 != topk``
    test does (the step is not a no-op then: a GT can end with more than topk positives after the
    conflict resolution)."""
    args = random_batch(9)
    plain = assign(*args, topk=6, min_gt_size=16)
    for topk2 in (None, 6):
        res = assign(*args, topk=6, min_gt_size=16, topk2=topk2)
        for key in plain:
            assert torch.equal(res[key], plain[key]), key
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match='topk2'):
            BatchTaskAlignedAssigner(topk=7, topk2=bad)


def test_topk2_keeps_the_best_positive_left_after_conflicts():
    """topk=7, topk2=1 is not topk=1: GT A's best anchor goes to GT B (higher IoU there), so with
    topk=1 A has no positive, while topk=7, topk2=1 gives A its next anchor."""
    priors = torch.tensor([[10., 10.], [30., 10.], [100., 100.]], dtype=torch.float64)
    gts = torch.tensor([[[0., 0., 40., 20.], [5., 5., 17., 17.]]])  # A holds anchors 0, 1; B anchor 0
    preds = torch.tensor([[[2., 2., 18., 18.], [24., 4., 36., 16.], [90., 90., 110., 110.]]], dtype=torch.float64)
    scores = torch.full((1, 3, 2), 0.5, dtype=torch.float64)
    args = (scores, preds, priors, torch.tensor([[0, 1]]), gts, torch.ones(1, 2, dtype=torch.bool))
    ciou = [[max(ciou_scalar(g.tolist(), p.tolist()), 0) for p in preds[0]] for g in gts[0]]
    assert ciou[0][0] > ciou[0][1] > 0 and ciou[1][0] > ciou[0][0]
    top1 = assign(*args, topk=1)
    assert top1['assigned_gt_inds'][0].tolist() == [1, -1, -1]
    o2o = assign(*args, topk=7, topk2=1)
    assert o2o['assigned_gt_inds'][0].tolist() == [1, 0, -1]
    # each GT's single positive gets target score = its IoU x metric / (metric + eps)
    for a, m in ((1, 0), (0, 1)):
        metric = 0.5**0.5 * ciou[m][a]**6
        want = ciou[m][a] * metric / (metric + 1e-9)
        assert abs(o2o['assigned_scores'][0, a, m].item() - want) < 1e-12
