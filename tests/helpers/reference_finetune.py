"""Run by the REFERENCE's Python (Ultralytics installed), never imported by the test suite.

    REF_PYTHON tests/helpers/reference_finetune.py OUT_DIR NAMES80_JSON

Uses the reference as a black box: a random YOLO11-n built from ``yolo11n.yaml`` with the 80
names given, saved as ``coco80.pt``; a generated 5-class dataset (``Car, bus, plate, TRUCK, sign``)
in ``data/``; the reference's model right after its trainer loads ``coco80.pt`` for that dataset
(``ref_loaded_state.pt``, before any step); 1 epoch of the reference's fine-tuning at 64 px on the
CPU (``ft/weights/last.pt``) and that model's raw head outputs on a fixed input (``ref_out.pt``).
"""
import json
import os
import sys

import cv2
import numpy as np
import torch
from ultralytics import YOLO
from ultralytics.models.yolo.detect import DetectionTrainer
from ultralytics.nn.tasks import load_checkpoint

FINETUNE_NAMES = ['Car', 'bus', 'plate', 'TRUCK', 'sign']


def make_dataset(root):
    rng = np.random.default_rng(0)
    for split, n in (('train', 8), ('val', 4)):
        for sub in ('images', 'labels'):
            os.makedirs(f'{root}/{sub}/{split}', exist_ok=True)
        for i in range(n):
            img = rng.integers(0, 255, (96, 96, 3), dtype=np.uint8)
            rows = []
            for _ in range(3):
                c = int(rng.integers(0, 5))
                x, y = rng.uniform(0.3, 0.7, 2)
                w, h = rng.uniform(0.1, 0.3, 2)
                cv2.rectangle(img, (int((x - w / 2) * 96), int((y - h / 2) * 96)),
                              (int((x + w / 2) * 96), int((y + h / 2) * 96)), (40 * c, 255 - 40 * c, 128), -1)
                rows.append(f'{c} {x:.4f} {y:.4f} {w:.4f} {h:.4f}')
            cv2.imwrite(f'{root}/images/{split}/{i}.jpg', img)
            with open(f'{root}/labels/{split}/{i}.txt', 'w') as f:
                f.write('\n'.join(rows) + '\n')
    with open(f'{root}/data.yaml', 'w') as f:
        f.write(f'path: {root}\ntrain: images/train\nval: images/val\nnames: {FINETUNE_NAMES}\n')
    return f'{root}/data.yaml'


def head_outputs(model, x):
    """Raw per-level outputs cat(box logits, class logits) of the Detect layer (before decoding)."""
    outs = []
    for m in model.model:
        if m.f != -1:
            x = outs[m.f] if isinstance(m.f, int) else [x if j == -1 else outs[j] for j in m.f]
        if m is model.model[-1]:
            return [torch.cat((m.cv2[i](x[i]), m.cv3[i](x[i])), 1) for i in range(m.nl)]
        x = m(x)
        outs.append(x)


def main(out, names80):
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(0)
    coco = YOLO('yolo11n.yaml')
    coco.model.names = dict(enumerate(names80))
    coco.save(f'{out}/coco80.pt')
    data = make_dataset(f'{out}/data')

    trainer = DetectionTrainer(overrides=dict(model=f'{out}/coco80.pt', data=data, imgsz=64, device='cpu',
                                              workers=0, plots=False, project=out, name='load', exist_ok=True))
    weights, _ = load_checkpoint(f'{out}/coco80.pt')
    loaded = trainer.get_model(cfg=weights.yaml, weights=weights)
    torch.save({k: v.clone() for k, v in loaded.state_dict().items()}, f'{out}/ref_loaded_state.pt')

    YOLO(f'{out}/coco80.pt').train(data=data, epochs=1, imgsz=64, batch=4, workers=0, device='cpu', plots=False,
                                   amp=False, val=False, project=out, name='ft', exist_ok=True)
    model = YOLO(f'{out}/ft/weights/last.pt').model.float().eval()
    x = torch.randn(1, 3, 64, 96, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        raw = head_outputs(model, x)
    torch.save(dict(input=x, raw=raw), f'{out}/ref_out.pt')


if __name__ == '__main__':
    main(sys.argv[1], json.loads(sys.argv[2]))
