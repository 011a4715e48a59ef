"""The box-distance L1 loss of heads without DFL (reg_max=1) and the end-to-end (o2m + o2o) loss of
YOLO26 (YOLOE2EHeadLossMixin), on a small test-only end-to-end head: scalar formulas, the branch
weighting, the loss keys mmdet sums, gradients. The comparison with the reference is in
test_e2e_loss_parity.py."""

import pytest
import torch

pytest.importorskip('mmcv.ops')

from convnextv2_yolo.dense_heads import YOLOHead  # noqa: E402
from convnextv2_yolo.losses import YOLODistanceL1Loss  # noqa: E402
from tests.helpers.heads import E2E_O2M_ASSIGNER as O2M  # noqa: E402
from tests.helpers.heads import E2E_O2O_ASSIGNER as O2O  # noqa: E402
from tests.helpers.heads import E2ETestHead  # noqa: E402
from tests.helpers.loss_formulas import anchor_points, assign_packed, bce_sum, flatten_levels, positives  # noqa: E402

SIZE = (64, 96)  # (H, W): not square, so that a swapped width / height shows
PACKED = torch.tensor([[0, 1, 4., 6., 40., 50.], [0, 2, 30., 20., 90., 60.], [0, 0, 50., 30., 58., 36.],
                       [1, 0, 10., 10., 60., 44.], [1, 2, 70., 3., 80., 13.]])  # two boxes under 16 px


def make_e2e_head(num_classes=3, o2m_weight=0.8, in_channels=(8, 16, 32)):
    head = E2ETestHead(num_classes=num_classes, in_channels=list(in_channels), o2m_weight=o2m_weight,
                       train_cfg=dict(assigner=O2M, o2o_assigner=O2O))
    head.init_weights()
    with torch.no_grad():  # reference-like start: box bias 2 strides per side
        for reg in list(head.reg_convs) + list(head.o2o_reg_convs):
            reg[-1].bias.fill_(2.0)
    return head


def make_branch_head(assigner, num_classes=3, in_channels=(8, 16, 32)):
    """A one-branch YOLOHead with reg_max=1: the single-branch loss (keys loss_cls, loss_bbox, loss_l1)."""
    head = YOLOHead(num_classes=num_classes, in_channels=list(in_channels), reg_max=1,
                    bbox_coder=dict(type='DFLBBoxCoder', reg_max=16), train_cfg=dict(assigner=assigner))
    head.init_weights()
    return head


def feats(in_channels=(8, 16, 32), batch=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    return tuple(torch.randn(batch, c, SIZE[0] // s, SIZE[1] // s, generator=g)
                 for c, s in zip(in_channels, (8, 16, 32)))


def test_distance_l1_loss_matches_scalar_formula():
    g = torch.Generator().manual_seed(0)
    pred = torch.randn(7, 4, generator=g, dtype=torch.float64) * 30
    target = torch.randn(7, 4, generator=g, dtype=torch.float64) * 30
    weight = torch.rand(7, generator=g, dtype=torch.float64)
    h, w = 48, 80
    want = [sum(abs(p - t) / s for p, t, s in zip(pr.tolist(), tg.tolist(), (w, h, w, h))) / 4
            for pr, tg in zip(pred, target)]
    loss = YOLODistanceL1Loss(reduction='none', loss_weight=1.5)
    torch.testing.assert_close(loss(pred, target, (h, w)), 1.5 * torch.tensor(want, dtype=torch.float64))
    summed = sum(x * wt for x, wt in zip(want, weight.tolist()))
    assert abs(loss(pred, target, (h, w), weight=weight, reduction_override='sum').item() - 1.5 * summed) < 1e-12
    assert abs(loss(pred, target, torch.tensor([h, w]), weight=weight, avg_factor=2.5,
                    reduction_override='mean').item() - 1.5 * summed / 2.5) < 1e-12
    assert abs(YOLODistanceL1Loss()(pred, target, (h, w)).item() - sum(want) / 7) < 1e-12
    with pytest.raises(ValueError, match='reduction'):
        YOLODistanceL1Loss(reduction='max')
    with pytest.raises(ValueError, match=r'\(N, 4\)'):
        loss(pred[:, :3], target[:, :3], (h, w))


def expected_l1_branch(head, cls_scores, bbox_preds, packed, assigner):
    """One branch's (cls, bbox, l1) losses per positive with scalars, the assignment taken from
    ``assigner`` (test_assigner checks it on its own); multiplied by the batch size."""
    B = cls_scores[0].shape[0]
    points, strides = anchor_points(cls_scores)
    logits, dist = flatten_levels(cls_scores), flatten_levels(bbox_preds)
    pred = torch.cat([points - dist[..., :2], points + dist[..., 2:]], -1)  # stride units, no bins
    res = assign_packed(assigner, logits, pred, points, strides, packed)
    t = res['assigned_scores']
    tss = max(t.sum().item(), 1.0)
    bce = bce_sum(logits, t)
    box, l1 = 0.0, 0.0
    H, W = SIZE
    for b, a, wt, s, box_loss, sides in positives(res, t, pred, points, strides):  # sides may be < 0
        box += box_loss * wt
        l1 += sum(abs(dist[b, a, k].item() - d) * s / n for k, (d, n) in enumerate(zip(sides, (W, H, W, H)))) / 4 * wt
    return dict(cls=0.5 * bce / tss * B, bbox=7.5 * box / tss * B, l1=1.5 * l1 / tss * B), res


@pytest.mark.parametrize('assigner', [O2M, O2O], ids=['o2m', 'o2o'])
def test_reg_max1_branch_loss_matches_scalar_formulas(assigner):
    head = make_branch_head(assigner)
    with torch.no_grad():
        for reg in head.reg_convs:
            reg[-1].bias.fill_(2.0)
    cls_scores, bbox_preds = head(feats())
    losses = head.loss_by_feat(cls_scores, bbox_preds, PACKED, [{}, {}])
    assert set(losses) == {'loss_cls', 'loss_bbox', 'loss_l1'}
    want, res = expected_l1_branch(head, cls_scores, bbox_preds, PACKED, head.assigner)
    assert res['fg_mask'].sum() >= (5 if assigner is O2O else 20)
    if assigner is O2O:
        assert res['fg_mask'].sum() == 5  # one positive per GT
    for key in ('cls', 'bbox', 'l1'):
        got = losses[f'loss_{key}'].item()
        assert abs(got - want[key]) < 1e-5 * max(1.0, abs(want[key])), key


def test_e2e_loss_is_the_weighted_sum_of_the_branches():
    x = feats()
    for w in (0.8, 0.1, 0.45):
        head = make_e2e_head(o2m_weight=w)
        outs = head(x)
        losses = head.loss_by_feat(*outs, PACKED, [{}, {}])
        assert set(losses) == {'loss_cls', 'loss_bbox', 'loss_l1', 'o2o_cls', 'o2o_bbox', 'o2o_l1',
                               'o2m_cls', 'o2m_bbox', 'o2m_l1', 'o2m_weight'}
        o2m, o2o = make_branch_head(O2M), make_branch_head(O2O)
        want_o2m = o2m.loss_by_feat(outs[0], outs[1], PACKED, [{}, {}])
        want_o2o = o2o.loss_by_feat(outs[2], outs[3], PACKED, [{}, {}])
        for k in ('cls', 'bbox', 'l1'):
            torch.testing.assert_close(losses[f'o2m_{k}'], want_o2m[f'loss_{k}'].detach())
            torch.testing.assert_close(losses[f'o2o_{k}'], want_o2o[f'loss_{k}'].detach())
            torch.testing.assert_close(losses[f'loss_{k}'],
                                       w * want_o2m[f'loss_{k}'] + (1 - w) * want_o2o[f'loss_{k}'])
            assert not losses[f'o2o_{k}'].requires_grad and losses[f'loss_{k}'].requires_grad
        assert losses['o2m_weight'].item() == pytest.approx(w)
        # the two branches start equal (copies) but are assigned on their own: at topk 10 vs 7/1 they differ
        assert losses['o2m_l1'] != losses['o2o_l1']


def test_mmdet_sums_only_the_weighted_terms():
    """mmengine's parse_losses sums every key with 'loss' in it: the total is the weighted sum, the
    o2o / o2m items and the weight are only logged."""
    from mmengine.model import BaseModel
    head = make_e2e_head(o2m_weight=0.3)
    losses = head.loss_by_feat(*head(feats()), PACKED, [{}, {}])
    total, log_vars = BaseModel.parse_losses(None, losses)  # uses no state
    torch.testing.assert_close(total, losses['loss_cls'] + losses['loss_bbox'] + losses['loss_l1'])
    assert {'o2o_cls', 'o2o_bbox', 'o2o_l1', 'o2m_weight'} <= set(log_vars)
    assert log_vars['o2m_weight'].item() == pytest.approx(0.3)


@pytest.mark.parametrize('w', [0.0, 1.0])
def test_each_branch_trains_its_own_convs(w):
    """Weight 1: only the o2m convs (and the features) get gradients; weight 0: only the o2o convs,
    which run on detached features."""
    head = make_e2e_head(o2m_weight=w)
    x = tuple(f.requires_grad_() for f in feats())
    losses = head.loss_by_feat(*head(x), PACKED, [{}, {}])
    sum(v for k, v in losses.items() if 'loss' in k).backward()

    def grad_norm(modules):
        return sum(p.grad.abs().sum().item() for p in modules.parameters() if p.grad is not None)

    o2m_grad = grad_norm(head.cls_convs) + grad_norm(head.reg_convs)
    o2o_grad = grad_norm(head.o2o_cls_convs) + grad_norm(head.o2o_reg_convs)
    feat_grad = sum(f.grad.abs().sum().item() for f in x if f.grad is not None)
    if w == 1.0:
        assert o2m_grad > 0 and o2o_grad == 0 and feat_grad > 0
    else:
        assert o2m_grad == 0 and o2o_grad > 0 and feat_grad == 0


def test_images_without_boxes_and_missing_o2o_assigner():
    head = make_e2e_head()
    outs = head(feats())
    for packed in (torch.zeros(0, 6), PACKED[PACKED[:, 0] == 1]):
        losses = head.loss_by_feat(*outs, packed, [{}, {}])
        total = sum(v for k, v in losses.items() if 'loss' in k)
        assert torch.isfinite(total)
        head.zero_grad()
        total.backward(retain_graph=True)
        assert all(torch.isfinite(p.grad).all() for p in head.parameters() if p.grad is not None)
    losses = head.loss_by_feat(*outs, torch.zeros(0, 6), [{}, {}])
    assert losses['loss_bbox'].item() == 0 and losses['loss_l1'].item() == 0 and losses['loss_cls'] > 0
    head.o2o_assigner = None
    with pytest.raises(RuntimeError, match='o2o_assigner'):
        head.loss_by_feat(*outs, PACKED, [{}, {}])


def test_loss_through_head_loss_and_instances():
    """``YOLOHead.loss`` passes the four output lists on; per-image instances give the packed result."""
    from mmengine.structures import InstanceData
    head = make_e2e_head()
    x = feats()
    packed = head.loss(x, dict(bboxes_labels=PACKED, img_metas=[{}, {}]))
    insts = [InstanceData(bboxes=PACKED[PACKED[:, 0] == b, 2:], labels=PACKED[PACKED[:, 0] == b, 1].long())
             for b in range(2)]
    again = head.loss_by_feat(*head(x), insts, [{}, {}])
    for key in packed:
        torch.testing.assert_close(again[key], packed[key])
