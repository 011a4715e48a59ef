"""Stands in for ``tools/analysis_tools/ultralytics_driver.py`` run in the reference's venv (tests only).

Same sub-commands (``init``, ``train``, ``bench``) and the same outputs, made with our own YOLO11-n (YOLO26-n for
``--model yolo26*.yaml``) renamed to the reference's keys, so that ``train_parity.py`` converts and evaluates them
for real. ``train`` records the settings it was given in ``<out>/args.json`` and "trains" nothing: every epoch's
weights are the initial ones.
"""
import argparse
import json
import os
import os.path as osp

import torch


def init(args):
    from mmdet.registry import MODELS
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    from convnextv2_yolo.converters import config_path, reference_key
    init_default_scope('mmdet')
    version = 'yolo26' if osp.basename(args.model).startswith('yolo26') else 'yolo11'
    cfg = Config.fromfile(config_path(version, 'n'))
    cfg.model.bbox_head.num_classes = args.nc
    torch.manual_seed(args.seed + 1)
    model = MODELS.build(cfg.model)
    model.init_weights()
    torch.save({reference_key(k, version): v for k, v in model.state_dict().items()}, args.out)
    return dict(out=args.out, model=args.model)


def train(args):
    os.makedirs(args.out, exist_ok=True)
    with open(osp.join(args.out, 'args.json'), 'w') as f:
        json.dump(dict(vars(args), env_FAKE_REF_ENV=os.environ.get('FAKE_REF_ENV')), f)
    weights = torch.load(args.init)
    # an end-to-end model (YOLO26: one-to-one branches) logs E2ELoss's one-to-one items: l1_loss, not dfl_loss
    third = 'l1_loss' if any('one2one' in k for k in weights) else 'dfl_loss'
    log = osp.join(args.out, 'epochs.jsonl')
    with open(log, 'w') as f:
        for epoch in range(1, args.epochs + 1):
            ckpt = osp.join(args.out, f'epoch_{epoch}.pt')
            torch.save(weights, ckpt)
            f.write(json.dumps({'epoch': epoch, 'seconds': 0.5 * epoch, 'checkpoint': ckpt, 'optimizer': 'AdamW',
                                'train/box_loss': 3.0 / epoch, 'train/cls_loss': 4.0 / epoch,
                                f'train/{third}': 2.0 / epoch}) + '\n')
    return dict(log=log)


def bench(args):
    """Checks what our benchmark hands over, records it in $FAKE_BENCH_RECORD, returns fixed timings."""
    data = torch.load(args.batch_file)
    with open(os.environ['FAKE_BENCH_RECORD'], 'w') as f:
        json.dump(dict(imgs=list(data['imgs'].shape), dtype=str(data['imgs'].dtype), packed=list(data['packed'].shape),
                       threads=args.threads, iters=args.iters, omp=os.environ.get('OMP_NUM_THREADS')), f)
    return dict(train_step_ms=1000.0, assigner_loss_ms=20.0, forward_ms=400.0, forward_b1_ms=50.0,
                version='fake', threads=args.threads)


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest='cmd', required=True)
    i = sub.add_parser('init')
    for name, kind in (('--model', str), ('--nc', int), ('--seed', int), ('--out', str)):
        i.add_argument(name, type=kind)
    i.add_argument('--names', nargs='*')
    t = sub.add_parser('train')
    for name, kind in (('--init', str), ('--data', str), ('--imgsz', int), ('--epochs', int), ('--batch', int),
                       ('--seed', int), ('--close-mosaic', int), ('--threads', int), ('--workers', int),
                       ('--out', str)):
        t.add_argument(name, type=kind)
    b = sub.add_parser('bench')
    for name, kind in (('--batch-file', str), ('--threads', int), ('--iters', int), ('--warmup', int)):
        b.add_argument(name, type=kind)
    args = p.parse_args()
    print('RESULT ' + json.dumps(dict(init=init, train=train, bench=bench)[args.cmd](args)), flush=True)


if __name__ == '__main__':
    main()
