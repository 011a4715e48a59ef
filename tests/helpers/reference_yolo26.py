"""Run by the REFERENCE's Python (Ultralytics installed), never imported by the test suite.

    REF_PYTHON tests/helpers/reference_yolo26.py OUT_DIR SCALE [SCALE ...]

Uses the reference as a black box: per scale, YOLO26 built from ``yolo26{scale}.yaml`` (80 classes)
with random weights and BatchNorm statistics (fp16-representable, so that its fp16 save is lossless),
saved as the reference's trainer saves ``last.pt`` during training (``'model': None``, the network
under ``'ema'`` in fp16, with its training args) and as a plain state dict; then its outputs on a
fixed input (2 x 3 x 160 x 192, seed 0) in eval mode, in float32 and in float64
(``ref_out_{scale}.pt``, keys ``fp32/...``, ``fp64/...``): the raw ``one2many`` / ``one2one`` boxes
(B, 4, A) and scores (B, 80, A), the default decoded output (``end2end`` unset: one-to-many,
(B, 84, A), boxes xywh) and, with ``end2end = True``, the (B, 300, 6) detections.
"""
import copy
import datetime
import os
import sys

import torch
from ultralytics import __version__
from ultralytics.cfg import get_cfg
from ultralytics.nn.tasks import DetectionModel


def randomize(model, seed):
    """He-scaled kernels, random BN affine, BN statistics measured on a random batch (so that the
    activations stay of order 1 through the depth), the head's final convs scaled down (outputs of
    order 1), all fp16-representable; eval mode."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if name.endswith('num_batches_tracked'):
                continue
            if name.endswith('bn.weight'):
                t.copy_(torch.rand(t.shape, generator=g) + 0.5)
            elif t.dim() == 4:
                t.copy_(torch.randn(t.shape, generator=g) * (2 / t[0].numel())**0.5)
            elif not name.endswith(('running_mean', 'running_var')):
                t.copy_(torch.randn(t.shape, generator=g) * 0.1)
        bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
        for bn in bns:
            bn.reset_running_stats()
            bn.momentum = None  # cumulative average over the calibration pass
        model.train()
        model(torch.randn(2, 3, 160, 192, generator=g))
        for bn in bns:
            bn.momentum = 0.03
        head = model.model[-1]
        for branch in (head.cv2, head.cv3, head.one2one_cv2, head.one2one_cv3):
            for level in branch:  # the final convs (no BN after them): logits and distances of order 1
                level[-1].weight.mul_(0.05)
        for t in model.state_dict().values():
            if t.is_floating_point():
                t.copy_(t.half().float())
    return model.eval()


def main(out_dir, scales):
    os.makedirs(out_dir, exist_ok=True)
    torch.manual_seed(0)
    x = torch.randn(2, 3, 160, 192, generator=torch.Generator().manual_seed(0))
    for i, scale in enumerate(scales):
        model = randomize(DetectionModel(f'yolo26{scale}.yaml', nc=80, verbose=False), seed=10 + i)
        model.args = get_cfg()
        ema = copy.deepcopy(model).half()
        for p in ema.parameters():
            p.requires_grad = False
        ckpt = {'epoch': 3, 'best_fitness': None, 'model': None, 'ema': ema, 'updates': 120, 'optimizer': None,
                'scaler': None, 'train_args': vars(get_cfg()), 'train_metrics': {'metrics/mAP50-95(B)': 0.1},
                'date': datetime.datetime.now().isoformat(), 'version': __version__, 'license': 'AGPL-3.0'}
        torch.save(ckpt, os.path.join(out_dir, f'yolo26{scale}_last.pt'))
        torch.save(model.state_dict(), os.path.join(out_dir, f'yolo26{scale}_state_dict.pth'))

        out = {'x': x, 'num_params': sum(p.numel() for p in model.parameters())}
        for precision, dtype in (('fp32', torch.float32), ('fp64', torch.float64)):
            net = copy.deepcopy(model).to(dtype)
            head = net.model[-1]
            out['end2end_default'] = bool(head.end2end)  # False: set only by the predictor / validator / exporter
            with torch.no_grad():
                y, preds = net(x.to(dtype))
                head.end2end = True
                y_e2e, _ = net(x.to(dtype))
            out[f'{precision}/decoded_o2m'] = y
            out[f'{precision}/e2e'] = y_e2e
            for branch in ('one2many', 'one2one'):
                out[f'{precision}/{branch}_boxes'] = preds[branch]['boxes']
                out[f'{precision}/{branch}_scores'] = preds[branch]['scores']
        torch.save(out, os.path.join(out_dir, f'ref_out_{scale}.pt'))


if __name__ == '__main__':
    main(sys.argv[1], sys.argv[2:])
