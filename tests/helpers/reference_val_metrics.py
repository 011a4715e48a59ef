"""The reference's validation numbers on given detections and ground truth; run with the reference's
Python (Ultralytics installed), not ours:

    REF_PYTHON tests/helpers/reference_val_metrics.py IN.npz OUT.npz

IN.npz: per image ``i`` (``n`` images): ``gt_boxes_i`` (M, 4) xyxy, ``gt_cls_i`` (M,), ``det_boxes_i``
(N, 4) xyxy in descending confidence, ``det_cls_i`` (N,), ``det_conf_i`` (N,); ``nc``. Each image goes
through the reference's ``box_iou`` and ``BaseValidator.match_predictions`` (the detection validator's
``_process_batch``) and its ``ConfusionMatrix.process_batch`` (conf 0.001, IoU 0.45); the stacked arrays
through ``ap_per_class``. OUT.npz: ``tp`` (N, 10), ``p``, ``r``, ``ap`` (K, 10), ``classes`` (K,),
``p_curve``, ``r_curve``, ``f1_curve``, ``prec_values`` (K, 1000), ``matrix`` (nc + 1, nc + 1).
"""
import sys
from types import SimpleNamespace

import numpy as np
import torch


def main(src: str, dst: str) -> None:
    from ultralytics.engine.validator import BaseValidator
    from ultralytics.utils.metrics import ConfusionMatrix, ap_per_class, box_iou

    data = np.load(src)
    nc = int(data['nc'])
    stub = SimpleNamespace(iouv=torch.linspace(0.5, 0.95, 10))
    cm = ConfusionMatrix(names={i: str(i) for i in range(nc)})
    tps, confs, pcls, tcls = [], [], [], []
    for i in range(int(data['n'])):
        gb, gc = torch.from_numpy(data[f'gt_boxes_{i}']).float(), torch.from_numpy(data[f'gt_cls_{i}']).float()
        db, dc = torch.from_numpy(data[f'det_boxes_{i}']).float(), torch.from_numpy(data[f'det_cls_{i}']).float()
        conf = torch.from_numpy(data[f'det_conf_{i}']).float()
        if len(gc) and len(dc):
            tp = BaseValidator.match_predictions(stub, dc, gc, box_iou(gb, db)).numpy()
        else:
            tp = np.zeros((len(dc), 10), dtype=bool)
        cm.process_batch(dict(bboxes=db, cls=dc, conf=conf), dict(bboxes=gb, cls=gc), conf=0.001, iou_thres=0.45)
        tps.append(tp)
        confs.append(conf.numpy())
        pcls.append(dc.numpy())
        tcls.append(gc.numpy())
    out = ap_per_class(np.concatenate(tps), np.concatenate(confs), np.concatenate(pcls), np.concatenate(tcls))
    _, _, p, r, _, ap, classes, p_curve, r_curve, f1_curve, _, prec_values = out
    np.savez(dst, tp=np.concatenate(tps), p=p, r=r, ap=ap, classes=classes, p_curve=p_curve, r_curve=r_curve,
             f1_curve=f1_curve, prec_values=prec_values, matrix=cm.matrix)


if __name__ == '__main__':
    main(*sys.argv[1:3])
