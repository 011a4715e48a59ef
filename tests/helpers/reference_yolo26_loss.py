"""Run by the REFERENCE's Python (Ultralytics installed), never imported by the test suite: the training
loss of a whole YOLO26-n model (``E2ELoss`` on the model's own outputs, gradients included).

    REF_PYTHON tests/helpers/reference_yolo26_loss.py IN.pt OUT_DIR

IN.pt (``torch.save`` of a dict): ``img`` (B, 3, H, W) float64 in [0, 1], ``batch_idx`` (N,), ``cls``
(N,), ``bboxes`` (N, 4) normalised (cx, cy, w, h) (the trainer's batch), ``epochs`` (E), ``at_epochs``
(0-based epochs), ``seed``, ``grad_prefixes`` (state-dict prefixes whose parameter gradients are kept).

Builds ``DetectionModel('yolo26n.yaml')`` (80 classes) with random weights
(``reference_yolo26.randomize``, fp16-representable; the final biases near ``bias_init``'s, so that the
predicted boxes overlap the GTs and the scores are low, as at the start of a training) and saves it as the
trainer's ``last.pt`` (``OUT_DIR/yolo26n_last.pt``: network under ``'ema'``, fp16). Then, in training
mode and float64, one forward pass and, per epoch ``e``, the criterion the trainer uses
(``model.init_criterion()`` with the default arguments and ``epochs=E``, ``e`` calls of ``update()``)
on the float64 outputs, and also on the outputs cast to float32 (the precision of a training step).

OUT_DIR/out.pt: ``{e: dict(total64=(3,) loss*batch (box, cls, l1), items64=(3,) o2o items, total,
items (the same in float32), o2m=weight, names, grads={reference key: d total64.sum() / d param})}``,
plus ``criterion``.
"""
import copy
import datetime
import math
import os
import sys

import torch
from reference_yolo26 import randomize  # this folder (the script's) is first on sys.path
from ultralytics import __version__
from ultralytics.cfg import get_cfg
from ultralytics.nn.tasks import DetectionModel
from ultralytics.utils import DEFAULT_CFG


def main(src: str, out_dir: str) -> None:
    data = torch.load(src, weights_only=False)
    os.makedirs(out_dir, exist_ok=True)
    model = randomize(DetectionModel('yolo26n.yaml', nc=80, verbose=False), seed=data['seed'])
    head = model.model[-1]
    g = torch.Generator().manual_seed(data['seed'])
    with torch.no_grad():  # biases near bias_init's: boxes of about 4 strides that overlap the GTs, low scores
        for branch in (head.cv2, head.one2one_cv2):
            for level in branch:
                level[-1].bias.copy_((2.0 + 0.3 * torch.randn(level[-1].bias.shape, generator=g)).half().float())
        for branch in (head.cv3, head.one2one_cv3):
            for level, s in zip(branch, head.stride.tolist()):
                prior = math.log(5 / head.nc / (640 / s) ** 2)
                level[-1].bias.copy_((prior + torch.randn(level[-1].bias.shape, generator=g)).half().float())
    model.args = get_cfg(DEFAULT_CFG, dict(epochs=data['epochs']))
    ema = copy.deepcopy(model).half()
    for p in ema.parameters():
        p.requires_grad = False
    torch.save({'epoch': 3, 'best_fitness': None, 'model': None, 'ema': ema, 'updates': 120, 'optimizer': None,
                'scaler': None, 'train_args': vars(get_cfg()), 'date': datetime.datetime.now().isoformat(),
                'version': __version__, 'license': 'AGPL-3.0'}, os.path.join(out_dir, 'yolo26n_last.pt'))

    net = model.double().train()
    preds = net(data['img'].double())
    assert set(preds) == {'one2many', 'one2one'}, list(preds)

    def cast(p, dtype):
        return {k: ([f.to(dtype) for f in v] if isinstance(v, list) else v.to(dtype)) for k, v in p.items()}

    batch = dict(batch_idx=data['batch_idx'], cls=data['cls'], bboxes=data['bboxes'])
    named = [(k, p) for k, p in net.named_parameters() if k.startswith(tuple(data['grad_prefixes']))]
    out = {}
    for epoch in data['at_epochs']:
        criterion = net.init_criterion()
        for _ in range(epoch):
            criterion.update()
        total64, items64 = criterion({k: cast(v, torch.float64) for k, v in preds.items()}, batch)
        total, items = criterion({k: cast(v, torch.float32) for k, v in preds.items()}, batch)
        grads = torch.autograd.grad(total64.sum(), [p for _, p in named], retain_graph=True, allow_unused=True)
        out[epoch] = dict(total=total.detach(), items=torch.stack(list(items.values())), names=list(items),
                          total64=total64.detach(), items64=torch.stack(list(items64.values())), o2m=criterion.o2m,
                          grads={k: (torch.zeros_like(p) if g is None else g) for (k, p), g in zip(named, grads)})
        out['criterion'] = type(criterion).__name__
    torch.save(out, os.path.join(out_dir, 'out.pt'))


if __name__ == '__main__':
    main(*sys.argv[1:3])
