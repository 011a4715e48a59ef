"""YOLOHead: structure, init, DFL coding, losses (vs scalar formulas),
no-GT / degenerate handling, prediction format, NMS and rescaling."""
import math

import pytest
import torch
import torch.nn.functional as F

pytest.importorskip('mmcv.ops')

from mmengine.logging import MessageHub  # noqa: E402

from convnextv2_yolo.dense_heads import YOLOHead  # noqa: E402
from convnextv2_yolo.dense_heads.yolo_head import clip_to_shape  # noqa: E402
from convnextv2_yolo.task_modules import DFLBBoxCoder  # noqa: E402
from tests.helpers.heads import TEST_CFG, crafted_outputs, make_head  # noqa: E402
from tests.helpers.loss_formulas import anchor_points, assign_packed, bce_sum, flatten_levels, positives  # noqa: E402


def feats(in_channels=(8, 16, 32), size=64, batch=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    return tuple(torch.randn(batch, c, size // s, size // s, generator=g) for c, s in zip(in_channels, (8, 16, 32)))


def conv_bn(c_in, c_out, k, groups=1):
    return c_in // groups * c_out * k * k + 2 * c_out


def test_structure_and_param_count_of_yolo11n_head():
    head = YOLOHead(num_classes=80, in_channels=[64, 128, 256])
    c2, c3 = 64, 80  # max(16, 64 // 4, 64), max(64, min(80, 100))
    want = 16  # frozen DFL bins
    for c in (64, 128, 256):
        want += conv_bn(c, c2, 3) + conv_bn(c2, c2, 3) + c2 * 64 + 64
        want += conv_bn(c, c, 3, groups=c) + conv_bn(c, c3, 1) + conv_bn(c3, c3, 3, groups=c3) + conv_bn(c3, c3, 1)
        want += c3 * 80 + 80
    assert sum(p.numel() for p in head.parameters()) == want
    assert head.dfl.conv.weight.requires_grad is False
    assert head.reg_convs[0][2].out_channels == 64 and head.cls_convs[2][2].out_channels == 80
    assert head.cls_convs[1][0][0].conv.groups == 128  # depthwise
    v8 = YOLOHead(num_classes=80, in_channels=[64, 128, 256], cls_branch='yolov8')
    assert v8.cls_convs[0][0].conv.kernel_size == (3, 3) and v8.cls_convs[0][0].conv.out_channels == 80
    with pytest.raises(ValueError, match='cls_branch'):
        YOLOHead(num_classes=80, in_channels=[64, 128, 256], cls_branch='v5')


def test_bce_loss_matches_mmdet_sigmoid_cross_entropy():
    from mmdet.models.losses import CrossEntropyLoss

    from convnextv2_yolo.losses import YOLOBCELoss
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 50, 4, generator=g) * 3
    target = torch.rand(2, 50, 4, generator=g) * (torch.rand(2, 50, 4, generator=g) > 0.7)
    ours = YOLOBCELoss(reduction='sum', loss_weight=0.5)(logits, target)
    ref = CrossEntropyLoss(use_sigmoid=True, reduction='sum', loss_weight=0.5)(logits, target)
    torch.testing.assert_close(ours, ref)
    p = logits.sigmoid()
    manual = -(target * p.log() + (1 - target) * (1 - p).log()).sum() * 0.5
    torch.testing.assert_close(ours, manual, rtol=1e-4, atol=1e-3)
    # transposed views (the head's layout) give the same value
    ours_t = YOLOBCELoss(reduction='sum')(logits.transpose(1, 2).contiguous().transpose(1, 2), target)
    torch.testing.assert_close(ours_t * 0.5, ours)
    with pytest.raises(ValueError, match='use_sigmoid'):
        YOLOBCELoss(use_sigmoid=False)


def test_bias_init_and_dfl_bins():
    head = make_head(num_classes=80)
    for level, stride in enumerate((8, 16, 32)):
        assert torch.all(head.reg_convs[level][-1].bias == 1.0)
        want = math.log(5 / 80 / (640 / stride)**2)
        torch.testing.assert_close(head.cls_convs[level][-1].bias, torch.full((80,), want))
    torch.testing.assert_close(head.dfl.conv.weight.flatten(), torch.arange(16.))


def test_dfl_coder_round_trip_and_integral():
    coder = DFLBBoxCoder(reg_max=16)
    points = torch.tensor([[10., 10.], [40., 24.]])
    boxes = torch.tensor([[2., 3., 30., 12.], [30., 20., 50., 60.]])
    dist = coder.encode(points, boxes, strides=torch.tensor([[2.], [4.]]))
    torch.testing.assert_close(dist, torch.tensor([[4., 3.5, 10., 1.], [2.5, 1., 2.5, 9.]]))
    torch.testing.assert_close(coder.decode(points / torch.tensor([[2.], [4.]]), dist,
                                            torch.tensor([[2.], [4.]])), boxes)
    # clamped to [0, reg_max - 1 - 0.01]
    far = coder.encode(points[:1], torch.tensor([[-100., 11., 300., 12.]]))
    torch.testing.assert_close(far, torch.tensor([[14.99, 0., 14.99, 2.]]))
    # DFL integral of a two-bin distribution is the interpolated distance
    head = make_head()
    d = torch.tensor([3.3, 0.0, 14.99, 7.5])
    logits = torch.full((4, 16), -1e4)
    lo = d.floor().long()
    logits[torch.arange(4), lo] = torch.log(lo + 1 - d).clamp(min=-1e4)
    logits[torch.arange(4), (lo + 1).clamp(max=15)] = torch.log(d - lo).clamp(min=-1e4)
    torch.testing.assert_close(head.dfl(logits.reshape(1, 64)), d[None], atol=1e-5, rtol=0)


def expected_losses(head, cls_scores, bbox_dists, packed):
    """Losses written out per positive with scalars (the assignment is
    taken from the assigner, which test_assigner checks on its own)."""
    B = cls_scores[0].shape[0]
    points, strides = anchor_points(cls_scores)
    logits, dist = flatten_levels(cls_scores), flatten_levels(bbox_dists)
    probs = dist.reshape(B, -1, 4, 16).softmax(-1)
    ltrb = (probs * torch.arange(16, dtype=torch.float64)).sum(-1)
    pred = torch.cat([points - ltrb[..., :2], points + ltrb[..., 2:]], -1)  # stride units
    res = assign_packed(head.assigner, logits, pred, points, strides, packed)
    t = res['assigned_scores']
    tss = max(t.sum().item(), 1.0)
    bce = bce_sum(logits, t)
    box, dfl = 0.0, 0.0
    for b, a, w, s, box_loss, sides in positives(res, t, pred, points, strides):
        box += box_loss * w
        side_losses = []
        for k, d in enumerate(sides):
            d = min(max(d, 0.0), 14.99)
            lo = int(math.floor(d))
            logp = F.log_softmax(dist[b, a, k * 16:(k + 1) * 16], -1)
            side_losses.append(-logp[lo].item() * (lo + 1 - d) - logp[lo + 1].item() * (d - lo))
        dfl += sum(side_losses) / 4 * w
    return dict(loss_cls=0.5 * bce / tss * B, loss_bbox=7.5 * box / tss * B, loss_dfl=1.5 * dfl / tss * B), res


def test_losses_match_scalar_formulas():
    head = make_head()
    cls_scores, bbox_dists = head(feats())
    packed = torch.tensor([[0, 1, 4., 6., 40., 50.], [0, 2, 30., 20., 62., 60.], [1, 0, 10., 10., 60., 44.]])
    losses = head.loss_by_feat(cls_scores, bbox_dists, packed, [{}, {}])
    want, res = expected_losses(head, cls_scores, bbox_dists, packed)
    assert res['fg_mask'].sum() >= 5
    for key in ('loss_cls', 'loss_bbox', 'loss_dfl'):
        assert abs(losses[key].item() - want[key]) < 1e-4 * max(1.0, abs(want[key])), key
    # the per-image-instances input gives the same losses
    from mmengine.structures import InstanceData
    insts = [InstanceData(bboxes=packed[packed[:, 0] == b, 2:], labels=packed[packed[:, 0] == b, 1].long())
             for b in range(2)]
    again = head.loss_by_feat(cls_scores, bbox_dists, insts, [{}, {}])
    for key in losses:
        torch.testing.assert_close(again[key], losses[key])


def test_sparse_class_loss_equals_dense_mmdet_cross_entropy():
    """YOLOBCELoss skips the dense target map; mmdet's loss gets the map."""
    head = make_head()
    dense = make_head(loss_cls=dict(type='mmdet.CrossEntropyLoss', use_sigmoid=True, reduction='sum',
                                    loss_weight=0.5))
    dense.load_state_dict(head.state_dict())
    packed = torch.tensor([[0, 1, 4., 6., 40., 50.], [0, 2, 30., 20., 62., 60.], [1, 0, 10., 10., 60., 44.]])
    x = feats()
    a = head.loss_by_feat(*head(x), packed, [{}, {}])
    b = dense.loss_by_feat(*dense(x), packed, [{}, {}])
    for key in a:
        torch.testing.assert_close(a[key], b[key])
    # gradients agree too
    la, lb = sum(a.values()), sum(b.values())
    la.backward()
    lb.backward()
    torch.testing.assert_close(head.cls_convs[0][2].weight.grad, dense.cls_convs[0][2].weight.grad)


def test_images_without_boxes_give_finite_losses_and_gradients():
    head = make_head()
    cls_scores, bbox_dists = head(feats())
    for packed in (torch.zeros(0, 6), torch.tensor([[1, 0, 10., 10., 60., 44.]])):
        losses = head.loss_by_feat(cls_scores, bbox_dists, packed, [{}, {}])
        total = sum(losses.values())
        assert torch.isfinite(total)
        head.zero_grad()
        total.backward(retain_graph=True)
        assert all(torch.isfinite(p.grad).all() for p in head.parameters() if p.grad is not None)
    losses = head.loss_by_feat(cls_scores, bbox_dists, torch.zeros(0, 6), [{}, {}])
    assert losses['loss_bbox'].item() == 0 and losses['loss_dfl'].item() == 0 and losses['loss_cls'] > 0


def test_degenerate_boxes_are_dropped_and_counted():
    head = make_head(degenerate_log_interval=1)
    cls_scores, bbox_dists = head(feats())
    good = torch.tensor([[0, 1, 4., 6., 40., 50.], [1, 0, 10., 10., 60., 44.]])
    bad = torch.tensor([[0, 2, 20., 20., 20., 40.], [1, 1, 5., 30., 30., 30.]])
    clean = head.loss_by_feat(cls_scores, bbox_dists, good, [{}, {}])
    mixed = head.loss_by_feat(cls_scores, bbox_dists, torch.cat([bad[:1], good, bad[1:]]), [{}, {}])
    for key in clean:
        torch.testing.assert_close(mixed[key], clean[key])
    assert head._total_degenerate == 2
    assert MessageHub.get_current_instance().get_info('yolo_head/degenerate_gt_boxes') == 2


def test_bad_labels_raise_clear_error():
    head = make_head(num_classes=3)
    outs = head(feats())
    with pytest.raises(ValueError, match=r'labels must be in \[0, 3\)'):
        head.loss_by_feat(*outs, torch.tensor([[0, 3, 4., 6., 40., 50.]]), [{}, {}])
    with pytest.raises(ValueError, match='shape'):
        head.loss_by_feat(*outs, torch.zeros(2, 5), [{}, {}])


def test_predict_nms_multilabel_and_format():
    head = make_head()
    outs = crafted_outputs(head)
    res = head.predict_by_feat(*outs, batch_img_metas=[{}], rescale=False)
    assert len(res) == 1
    r = res[0]
    assert set(r.keys()) == {'bboxes', 'scores', 'labels'}
    assert r.bboxes.shape == (3, 4) and r.scores.shape == (3,) and r.labels.dtype == torch.long
    sig = torch.sigmoid
    torch.testing.assert_close(r.scores, sig(torch.tensor([3.0, 2.0, 1.0])))  # 0.5 suppressed
    assert r.labels.tolist() == [1, 1, 2]
    torch.testing.assert_close(r.bboxes[0], torch.tensor([12., 8., 44., 32.]), atol=1e-3, rtol=0)
    torch.testing.assert_close(r.bboxes[2], r.bboxes[0])
    torch.testing.assert_close(r.bboxes[1], torch.tensor([20., 8., 52., 32.]), atol=1e-3, rtol=0)
    # single label per box, score threshold and max_per_img
    cfg = dict(TEST_CFG, multi_label=False, score_thr=0.7)
    r = head.predict_by_feat(*outs, batch_img_metas=[{}], cfg=cfg)[0]
    assert r.labels.tolist() == [1, 1]
    r = head.predict_by_feat(*outs, batch_img_metas=[{}], cfg=dict(TEST_CFG, max_per_img=1))[0]
    assert len(r) == 1 and r.scores.item() == pytest.approx(sig(torch.tensor(3.0)).item())
    # batch decoding matches per image
    two = [torch.cat([m, m.flip(-1)]) for m in outs[0]], [torch.cat([m, m]) for m in outs[1]]
    res2 = head.predict_by_feat(*two, batch_img_metas=[{}, {}])
    torch.testing.assert_close(res2[0].bboxes, head.predict_by_feat(*outs, batch_img_metas=[{}])[0].bboxes)


def test_end2end_on_a_one_to_many_head_is_ignored_with_one_warning():
    from mmengine.logging import MMLogger

    from tests.helpers.logs import WarningRecords
    head = make_head()
    outs = crafted_outputs(head)
    records = WarningRecords()
    logger = MMLogger.get_current_instance()
    logger.addHandler(records)
    try:
        plain = head.predict_by_feat(*outs, batch_img_metas=[{}])[0]
        for _ in range(2):
            e2e = head.predict_by_feat(*outs, batch_img_metas=[{}], cfg=dict(TEST_CFG, end2end=True))[0]
            torch.testing.assert_close(e2e.bboxes, plain.bboxes)
    finally:
        logger.removeHandler(records)
    assert [m for m in records.messages if 'end2end=True is ignored' in m] == [
        'YOLOHead: test_cfg.end2end=True is ignored: this head has no one-to-one branch (an end-to-end head is '
        'YOLOE2EHead, YOLO26); its detections take NMS']


def per_class_nms(boxes, scores, labels, iou):
    """Ground truth: NMS of each class on its own, merged by score."""
    import torchvision
    keep = torch.cat([torch.nonzero(labels == c).flatten()[torchvision.ops.nms(
        boxes[labels == c], scores[labels == c], iou)] for c in labels.unique()])
    return keep[scores[keep].argsort(descending=True)]


@pytest.mark.parametrize('num', [400, 3000])  # one shifted NMS / per-class loop
def test_multiclass_nms_is_per_class_nms(num):
    """More in test_nms.py (every option at every count vs plain-Python loops)."""
    from mmcv.ops import batched_nms

    from convnextv2_yolo.layers.bbox_nms import multiclass_nms
    g = torch.Generator().manual_seed(0)
    xy = torch.rand(num, 2, generator=g) * 100 - 60  # partly below 0, as raw predictions
    boxes = torch.cat([xy, xy + torch.rand(num, 2, generator=g) * 40 + 2], 1)
    scores = torch.rand(num, generator=g)
    labels = torch.randint(0, 3, (num,), generator=g)
    cfg = dict(type='nms', iou_threshold=0.5)
    keep, out = multiclass_nms(boxes, scores, labels, cfg)
    assert torch.equal(keep, per_class_nms(boxes, scores, labels, 0.5)) and torch.equal(out, scores[keep])
    assert (scores[keep].diff() <= 0).all() and 50 < len(keep) < num
    # with boxes >= 0 (and fewer than its split_thr), mmcv's batched_nms agrees
    shifted = boxes + 60
    assert torch.equal(multiclass_nms(shifted, scores, labels, cfg)[0], batched_nms(shifted, scores, labels, cfg)[1])
    # soft-NMS goes through mmcv and returns its decayed scores
    dets, ref = batched_nms(shifted, scores, labels, dict(type='soft_nms', iou_threshold=0.5))
    keep, out = multiclass_nms(boxes, scores, labels, dict(type='soft_nms', iou_threshold=0.5))
    assert torch.equal(keep, ref) and (out < scores[keep]).any()
    torch.testing.assert_close(out, dets[:, 4], atol=1e-5, rtol=0)  # mmcv's float32 class shift moves IoUs


def test_predict_rescale_undoes_letterbox():
    head = make_head()
    outs = crafted_outputs(head)
    # original 100 x 50 (w x h) letterboxed into 64 x 64: r = 0.64, pad top 16
    meta = dict(scale_factor=(0.64, 0.64), pad_param=[16., 16., 0., 0.], ori_shape=(50, 100),
                img_shape=(64, 64))
    r = head.predict_by_feat(*outs, batch_img_metas=[meta], rescale=True)[0]
    torch.testing.assert_close(r.bboxes[0], torch.tensor([12 / .64, 0., 44 / .64, 16 / .64]), atol=1e-3, rtol=0)
    # clipped to the original image
    meta = dict(scale_factor=(2., 2.), ori_shape=(10, 20))
    r = head.predict_by_feat(*outs, batch_img_metas=[meta], rescale=True)[0]
    torch.testing.assert_close(r.bboxes[0], torch.tensor([6., 4., 20., 10.]), atol=1e-3, rtol=0)
    # the same boxes unclipped, for the reference's validation matching (YOLODetMetric match_boxes)
    assert r.unclipped_bboxes.shape == r.bboxes.shape and r.unclipped_bboxes[0, 2] > 20
    torch.testing.assert_close(r.bboxes, clip_to_shape(r.unclipped_bboxes, (10, 20)), atol=0, rtol=0)
    assert 'unclipped_bboxes' not in head.predict_by_feat(*outs, batch_img_metas=[meta], rescale=False)[0]
    with pytest.raises(KeyError, match='scale_factor'):
        head.predict_by_feat(*outs, batch_img_metas=[dict(ori_shape=(10, 20))], rescale=True)
