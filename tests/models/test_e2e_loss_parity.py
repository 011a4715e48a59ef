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
