"""The reference's YOLO26 training loss (``E2ELoss``) on given raw predictions and GTs; run with the
reference's Python (Ultralytics installed), not ours:

    REF_PYTHON tests/helpers/reference_e2e_loss.py IN.pt OUT.pt

IN.pt (``torch.save`` of a dict): ``nc``, ``epochs`` (E), ``at_epochs`` (0-based epochs to evaluate),
``imgsz`` (H, W), per branch ``o2m_boxes`` / ``o2o_boxes`` (B, 4, A) raw distances and ``o2m_scores`` /
``o2o_scores`` (B, nc, A) logits (anchors level-major, row-major: the Detect head's layout), ``batch_idx``
(N,), ``cls`` (N,), ``bboxes`` (N, 4) normalised (cx, cy, w, h). The criterion is the one
``DetectionModel('yolo26n.yaml', nc=nc).init_criterion()`` builds with the trainer's default arguments
(``epochs=E``); for epoch ``e`` it gets ``e`` calls of ``update()``, as the trainer makes after each
epoch. OUT.pt: ``{e: dict(total=(3,) loss*batch (box, cls, l1), items=(3,) o2o items, o2m=weight,
grads={input name: gradient of total.sum()})}``, plus ``criterion`` (the class name) and ``stride``.
"""
import sys

import torch


def main(src: str, dst: str) -> None:
    from ultralytics.cfg import get_cfg
    from ultralytics.nn.tasks import DetectionModel
    from ultralytics.utils import DEFAULT_CFG

    data = torch.load(src, weights_only=False)
    model = DetectionModel('yolo26n.yaml', nc=data['nc'], verbose=False)
    model.args = get_cfg(DEFAULT_CFG, dict(epochs=data['epochs']))
    stride = model.stride.tolist()
    h, w = data['imgsz']
    feats = [torch.zeros(1, 1, h // int(s), w // int(s)) for s in stride]  # make_anchors reads shapes only
    leaves = {k: data[k].clone().requires_grad_() for k in ('o2m_boxes', 'o2m_scores', 'o2o_boxes', 'o2o_scores')}
    preds = {name: dict(boxes=leaves[f'{key}_boxes'], scores=leaves[f'{key}_scores'], feats=feats)
             for name, key in (('one2many', 'o2m'), ('one2one', 'o2o'))}
    batch = dict(batch_idx=data['batch_idx'], cls=data['cls'], bboxes=data['bboxes'])
    out = dict(stride=stride)
    for epoch in data['at_epochs']:
        criterion = model.init_criterion()
        for _ in range(epoch):
            criterion.update()
        total, items = criterion(preds, batch)
        grads = torch.autograd.grad(total.sum(), list(leaves.values()))  # the trainer backpropagates the sum
        out[epoch] = dict(total=total.detach(), items=torch.stack(list(items.values())), o2m=criterion.o2m,
                          names=list(items), grads=dict(zip(leaves, grads)))
        out['criterion'] = type(criterion).__name__
    torch.save(out, dst)


if __name__ == '__main__':
    main(*sys.argv[1:3])
