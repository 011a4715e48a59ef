"""The YOLO26 training loss equals the reference's ``E2ELoss`` (ultralytics 8.4, utils/loss.py) on the same
raw predictions of both branches and the same GTs, at the first, a middle and the last epoch's weighting,
and so do the gradients with respect to those predictions.

The reference runs in its own Python (tests/helpers/reference_e2e_loss.py, a few seconds): it builds the
criterion of ``DetectionModel('yolo26n.yaml')`` with the trainer's default arguments, so the assigners
(topk 10; topk 7 then 1), the gains (box 7.5, cls 0.5, l1 = dfl 1.5), the 16 px candidate enlargement and
the schedule are the reference's own. Skipped without the reference's Python.
"""
import os
import os.path as osp

import pytest
import torch

pytest.importorskip('mmcv.ops')

from convnextv2_yolo.engine.hooks import E2ELossScheduleHook  # noqa: E402
from tests.helpers.heads import E2E_O2M_ASSIGNER, E2E_O2O_ASSIGNER, E2ETestHead  # noqa: E402
from tests.helpers.paths import ROOT  # noqa: E402
from tests.helpers.processes import run_tool  # noqa: E402

# the reference's Python (Ultralytics installed), beside the clone by default
REF_PYTHON = os.environ.get('CONVNEXTV2_YOLO_REFERENCE_PYTHON',
                            osp.join(osp.dirname(ROOT), 'refvenv', 'bin', 'python'))
EPOCHS = 100
AT_EPOCHS = (0, 37, EPOCHS - 1)
NC, B, H, W = 5, 3, 128, 160
STRIDES = (8, 16, 32)


def make_inputs(seed=0):
    """Raw outputs of both branches (B, 4 | NC, A) and GTs as the reference's batch (normalised cxcywh)."""
    g = torch.Generator().manual_seed(seed)
    A = sum((H // s) * (W // s) for s in STRIDES)
    data = dict(nc=NC, epochs=EPOCHS, at_epochs=list(AT_EPOCHS), imgsz=(H, W))
    for branch in ('o2m', 'o2o'):
        data[f'{branch}_boxes'] = torch.randn(B, 4, A, generator=g) * 1.2 + 2.0  # stride units, some < 0
        data[f'{branch}_scores'] = torch.randn(B, NC, A, generator=g) * 2 - 2
    counts = (8, 4, 6)
    xy = torch.rand(sum(counts), 2, generator=g) * torch.tensor([W - 20., H - 20.]) + 4
    wh = torch.rand(sum(counts), 2, generator=g) * 60 + 3  # sides of 3-63 px: many under 16
    # every other GT overlaps the one before (shifted by a few px), so anchors are claimed by two GTs
    xy[1::2] = xy[0::2] + torch.rand(sum(counts) // 2, 2, generator=g) * 8
    wh[1::2] = wh[0::2] * (0.6 + torch.rand(sum(counts) // 2, 2, generator=g) * 0.6)
    x2y2 = torch.minimum(xy + wh, torch.tensor([W - 1., H - 1.]))
    cxcywh = torch.cat([(xy + x2y2) / 2, x2y2 - xy], 1) / torch.tensor([W, H, W, H], dtype=torch.float32)
    data.update(batch_idx=torch.cat([torch.full((n,), float(i)) for i, n in enumerate(counts)]),
                cls=torch.randint(0, NC, (sum(counts),), generator=g).float(), bboxes=cxcywh)
    return data


def our_losses(data, o2m_weight, o2o_assigner=E2E_O2O_ASSIGNER, leaves=None):
    """Our E2E loss dict on ``data`` (the raw outputs taken from ``leaves`` when given, for gradients)."""
    leaves = leaves or data
    head = E2ETestHead(num_classes=NC, in_channels=[8, 16, 32], o2m_weight=o2m_weight,
                       train_cfg=dict(assigner=E2E_O2M_ASSIGNER, o2o_assigner=o2o_assigner))

    def levels(flat):  # (B, K, A) -> per-level (B, K, h, w), level-major then row-major as the reference
        sizes = [(H // s, W // s) for s in STRIDES]
        parts = flat.split([h * w for h, w in sizes], dim=2)
        return [p.reshape(B, -1, h, w) for p, (h, w) in zip(parts, sizes)]

    # pixel xyxy exactly as the reference's preprocess makes them (float32: scale, then cxcywh -> xyxy)
    scaled = data['bboxes'] * torch.tensor([W, H, W, H], dtype=torch.float32)
    xyxy = torch.cat([scaled[:, :2] - scaled[:, 2:] / 2, scaled[:, :2] + scaled[:, 2:] / 2], 1)
    packed = torch.cat([data['batch_idx'][:, None], data['cls'][:, None], xyxy], 1)
    return head.loss_by_feat(levels(leaves['o2m_scores']), levels(leaves['o2m_boxes']),
                             levels(leaves['o2o_scores']), levels(leaves['o2o_boxes']), packed, [{}] * B)


@pytest.mark.skipif(not osp.isfile(REF_PYTHON), reason=f'no reference Python at {REF_PYTHON} '
                    '(CONVNEXTV2_YOLO_REFERENCE_PYTHON)')
def test_e2e_loss_equals_the_reference(tmp_path):
    data = make_inputs()
    torch.save(data, tmp_path / 'in.pt')
    run_tool([REF_PYTHON, 'tests/helpers/reference_e2e_loss.py', str(tmp_path / 'in.pt'), str(tmp_path / 'out.pt')],
             timeout=300)
    ref = torch.load(tmp_path / 'out.pt', weights_only=False)
    assert ref['criterion'] == 'E2ELoss' and ref['stride'] == list(STRIDES)
    hook = E2ELossScheduleHook()
    worst = worst_grad = 0.0
    for epoch in AT_EPOCHS:
        want = ref[epoch]
        assert want['names'] == ['box_loss', 'cls_loss', 'l1_loss']
        weight = hook.weight(epoch, EPOCHS)
        assert weight == want['o2m']
        leaves = {k: data[k].clone().requires_grad_() for k in want['grads']}
        ours = our_losses(data, weight, leaves=leaves)
        for i, key in enumerate(('bbox', 'cls', 'l1')):
            # the weighted total (the reference: loss * batch size) and the logged o2o items (x batch size)
            for got, exp in ((ours[f'loss_{key}'], want['total'][i]), (ours[f'o2o_{key}'], want['items'][i] * B)):
                rel = abs(got.item() - exp.item()) / abs(exp.item())
                worst = max(worst, rel)
                assert rel < 1e-5, (epoch, key, got.item(), exp.item())
        # the same gradients w.r.t. the raw outputs of both branches (what training sees)
        total = sum(v for k, v in ours.items() if 'loss' in k)
        grads = torch.autograd.grad(total, list(leaves.values()))
        for name, got in zip(leaves, grads):
            exp = want['grads'][name]
            err = ((got - exp).abs().max() / exp.abs().max()).item()
            worst_grad = max(worst_grad, err)
            assert err < 1e-5, (epoch, name, err)
    print(f'max relative difference vs the reference E2ELoss: losses {worst:.2e}, '
          f'gradients (max abs diff / max abs) {worst_grad:.2e}')
    # first and last epoch weight the branches differently: the totals move
    assert not torch.allclose(ref[0]['total'], ref[EPOCHS - 1]['total'])
    # the batch tells the o2o assignment apart from its look-alikes (overlapping GTs: conflicts matter)
    for wrong in (dict(E2E_O2O_ASSIGNER, topk2=None), dict(E2E_O2O_ASSIGNER, topk=1, topk2=None)):
        items = our_losses(data, 0.8, wrong)
        assert max(abs(items[f'o2o_{k}'].item() / (ref[0]['items'][i].item() * B) - 1)
                   for i, k in enumerate(('bbox', 'cls', 'l1'))) > 1e-2, wrong


GRAD_PREFIXES = ('model.0.', 'model.22.', 'model.23.')  # stem, last neck block (attention), the whole head


@pytest.mark.skipif(not osp.isfile(REF_PYTHON), reason=f'no reference Python at {REF_PYTHON} '
                    '(CONVNEXTV2_YOLO_REFERENCE_PYTHON)')
def test_real_head_loss_equals_the_reference(tmp_path):
    """The whole YOLO26-n of configs/yolo26/yolo26_n_8xb16-500e_coco.py (its YOLOE2EHead, assigners and
    losses as the config states them), loaded with a random reference model through the converter: its
    training loss on a batch (``YOLODetector.loss``: forward in training mode, both branches, the o2o one
    on detached features) equals the reference's ``E2ELoss`` on the reference model's own forward of the
    same batch, at the first and the last epoch's weighting (E = 100), and so do the gradients of the
    stem, the last neck block and the head's parameters.

    Both networks and both losses run in float64 (so that both see the same raw outputs: see
    test_yolo26.py; the reference keeps its three loss terms in a float32 vector, so they and its
    gradients carry float32 rounding): within 1e-5. The reference's loss computed in float32 (the raw
    outputs cast, the precision of a training step) is compared too, within 1e-4 (float32 sums over
    B x A x 80 class terms)."""
    from mmengine.registry import init_default_scope

    from convnextv2_yolo import converters as conv
    from convnextv2_yolo.converters import reference_key
    from tests.helpers.modules import build, load_cfg

    at_epochs = (0, EPOCHS - 1)
    data = make_inputs(seed=1)
    g = torch.Generator().manual_seed(2)
    img = torch.rand(B, 3, H, W, generator=g, dtype=torch.float64)
    src = dict(img=img, batch_idx=data['batch_idx'], cls=data['cls'], bboxes=data['bboxes'], epochs=EPOCHS,
               at_epochs=list(at_epochs), seed=7, grad_prefixes=list(GRAD_PREFIXES))
    torch.save(src, tmp_path / 'in.pt')
    run_tool([REF_PYTHON, 'tests/helpers/reference_yolo26_loss.py', str(tmp_path / 'in.pt'), str(tmp_path / 'ref')],
             timeout=300, OMP_NUM_THREADS='1')
    ref = torch.load(tmp_path / 'ref' / 'out.pt', weights_only=False)
    assert ref['criterion'] == 'E2ELoss'

    cfg = load_cfg('n')
    init_default_scope('mmdet')
    converted = conv.convert(str(tmp_path / 'ref' / 'yolo26n_last.pt'))
    model = build(cfg)
    model.load_state_dict(converted['state_dict'], strict=True)
    model = model.double().train()
    head = model.bbox_head
    ours_of = {reference_key(k, 'yolo26'): k for k in model.state_dict()}
    params = dict(model.named_parameters())

    # the reference's batch -> our packed GTs (pixel xyxy exactly as the reference's preprocess makes them)
    scaled = data['bboxes'] * torch.tensor([W, H, W, H], dtype=torch.float32)
    xyxy = torch.cat([scaled[:, :2] - scaled[:, 2:] / 2, scaled[:, :2] + scaled[:, 2:] / 2], 1)
    packed = torch.cat([data['batch_idx'][:, None], data['cls'][:, None], xyxy], 1)
    hook = E2ELossScheduleHook(**{k: v for k, v in cfg.custom_hooks[-1].items() if k != 'type'})
    worst = dict(loss=0.0, loss64=0.0, grad=0.0)
    for epoch in at_epochs:
        want = ref[epoch]
        assert want['names'] == ['box_loss', 'cls_loss', 'l1_loss']
        head.o2m_weight = hook.weight(epoch, EPOCHS)
        assert head.o2m_weight == want['o2m']
        model.zero_grad()
        ours = model.loss(img, dict(bboxes_labels=packed, img_metas=[{}] * B))
        for i, key in enumerate(('bbox', 'cls', 'l1')):
            # the weighted total (the reference: loss x batch size) and the logged o2o items (x batch size)
            for got, exp, tag in ((ours[f'loss_{key}'], want['total'][i], 'loss'),
                                  (ours[f'o2o_{key}'], want['items'][i] * B, 'loss'),
                                  (ours[f'loss_{key}'], want['total64'][i], 'loss64'),
                                  (ours[f'o2o_{key}'], want['items64'][i] * B, 'loss64')):
                rel = abs(got.item() - exp.item()) / abs(exp.item())
                worst[tag] = max(worst[tag], rel)
                assert rel < (1e-5 if tag == 'loss64' else 1e-4), (epoch, key, tag, got.item(), exp.item())
        sum(v for k, v in ours.items() if 'loss' in k).backward()
        largest = max(g.abs().max().item() for g in want['grads'].values())
        for ref_name, exp in want['grads'].items():
            got = params[ours_of[ref_name]].grad
            got = torch.zeros_like(exp) if got is None else got
            # relative to the parameter's own largest gradient; gradients that are zero but for rounding
            # (a BN bias whose constant shift the next training-mode BNs remove: about 1e-21 here)
            # relative to the largest of all
            scale = max(exp.abs().max().item(), 1e-9 * largest)
            err = (got - exp).abs().max().item() / scale
            worst['grad'] = max(worst['grad'], err)
            assert err < 1e-5, (epoch, ref_name, err)
    print(f"YOLO26-n (converted) vs the reference's E2ELoss, epochs {at_epochs} of {EPOCHS}: max relative "
          f"difference of the loss terms {worst['loss64']:.2e} (float64), {worst['loss']:.2e} (vs its "
          f"float32 loss); gradients (max abs diff / max abs, {len(want['grads'])} parameters) {worst['grad']:.2e}")
    assert not torch.allclose(ref[0]['total'], ref[EPOCHS - 1]['total'])
