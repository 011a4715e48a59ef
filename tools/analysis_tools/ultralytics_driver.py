"""Drive the reference implementation (Ultralytics) as a black box, from its own venv.

This script is run by ``train_parity.py`` and ``benchmark_yolo_speed.py`` with the python of a separate
virtual environment that has the ``ultralytics`` package (``--ref-python PATH``); it is never imported by
``convnextv2_yolo`` or by our tools (they only start it as a subprocess and read the files it writes). It
uses the reference's public API only: ``DetectionModel``, ``YOLO(...).train(...)`` and training callbacks.

Sub-commands (each writes JSON or tensors our side reads back):

- ``init``: the reference's initial model for ``nc`` classes, as its trainer builds it (seeded like the
  trainer: ``seed + 1``), saved as ``{'model': DetectionModel}`` (float32), the layout of its checkpoints;
- ``train``: ``YOLO(init).train(...)`` with the given settings; ``--threads`` replaces the reference's CPU
  thread count (``cpu_count - 1``) and ``--workers`` restores the loader workers that its trainer forces
  to 0 on CPU; a callback writes per epoch the train-loop seconds (data loading included), the mean loss
  components and the EMA weights (float32 state dict) to ``--out``;
- ``val``: the reference's own validator on a checkpoint it saved, with rectangular batches (its default)
  or square letterboxes (``--no-rect``, as our evaluator), for comparing the two protocols;
- ``bench``: the reference's training step and assigner + loss on the batch saved by our benchmark.

Example (what the parity tool runs)::

    REF/bin/python tools/analysis_tools/ultralytics_driver.py init --nc 2 --seed 0 --out init.pt
"""
import argparse
import json
import os
import os.path as osp
import statistics
import sys
import time

os.environ.setdefault('YOLO_OFFLINE', 'True')  # nothing may be downloaded


def _seed_and_threads(threads: int) -> None:
    import torch
    import ultralytics.utils.torch_utils as tu
    tu.NUM_THREADS = threads  # select_device() sets torch's threads from it on CPU
    torch.set_num_threads(threads)


def cmd_init(args: argparse.Namespace) -> dict:
    import torch
    from ultralytics.nn.tasks import DetectionModel
    from ultralytics.utils.torch_utils import init_seeds
    init_seeds(args.seed + 1, deterministic=True)  # the trainer seeds with seed + 1 + RANK before building
    model = DetectionModel(args.model, nc=args.nc, verbose=False)
    if args.names:
        model.names = dict(enumerate(args.names))
    torch.save({'model': model.float(), 'train_args': {}}, args.out)
    return dict(out=args.out, params=sum(p.numel() for p in model.parameters()),
                tensors=len(model.state_dict()))


def cmd_train(args: argparse.Namespace) -> dict:
    import torch
    from ultralytics import YOLO
    _seed_and_threads(args.threads)
    os.makedirs(args.out, exist_ok=True)
    log_path = osp.join(args.out, 'epochs.jsonl')
    open(log_path, 'w').close()
    state = {}

    def on_pretrain_routine_start(trainer):
        trainer.args.workers = args.workers  # the trainer sets 0 on CPU just before the callbacks

    def on_train_epoch_start(trainer):
        import ultralytics.utils.torch_utils as tu
        state['t0'] = time.perf_counter()
        state['threads'] = torch.get_num_threads()
        assert tu.NUM_THREADS == args.threads

    def on_train_epoch_end(trainer):
        seconds = time.perf_counter() - state['t0']
        epoch = trainer.epoch + 1
        ema = {k: v.detach().float().clone() for k, v in trainer.ema.ema.state_dict().items()}
        ckpt = osp.join(args.out, f'epoch_{epoch}.pt')
        torch.save(ema, ckpt)
        items = trainer.label_loss_items(trainer.tloss, prefix='train')
        row = dict(epoch=epoch, seconds=seconds, time=time.time(), threads=state['threads'],
                   workers=trainer.args.workers, checkpoint=ckpt,
                   lr=[g['lr'] for g in trainer.optimizer.param_groups],
                   optimizer=type(trainer.optimizer).__name__,
                   **{k: float(v) for k, v in items.items()})
        with open(log_path, 'a') as f:
            f.write(json.dumps(row) + '\n')

    model = YOLO(args.init)
    model.add_callback('on_pretrain_routine_start', on_pretrain_routine_start)
    model.add_callback('on_train_epoch_start', on_train_epoch_start)
    model.add_callback('on_train_epoch_end', on_train_epoch_end)
    t0 = time.time()
    model.train(data=args.data, imgsz=args.imgsz, epochs=args.epochs, batch=args.batch, seed=args.seed,
                close_mosaic=args.close_mosaic, workers=args.workers, device='cpu', optimizer=args.optimizer,
                project=args.out, name='run', exist_ok=True, plots=False, val=args.val, amp=False,
                verbose=False)
    return dict(log=log_path, wall_seconds=time.time() - t0)


def cmd_val(args: argparse.Namespace) -> dict:
    from ultralytics import YOLO
    _seed_and_threads(args.threads)
    metrics = YOLO(args.weights).val(data=args.data, imgsz=args.imgsz, batch=args.batch, rect=args.rect,
                                     device='cpu', plots=False, verbose=False, workers=0)
    return {'mAP50-95': float(metrics.box.map), 'mAP50': float(metrics.box.map50), 'rect': args.rect}


def _timeit(fn, iters: int, warmup: int) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return min(times) if os.environ.get('BENCH_STAT') == 'min' else statistics.median(times)


def cmd_bench(args: argparse.Namespace) -> dict:
    """Training step and assigner + loss of the reference on our benchmark's batch.

    The batch file holds ``imgs`` (B, 3, H, W) uint8 and ``packed`` (N, 6) rows
    ``[batch_idx, label, x1, y1, x2, y2]`` in pixels, as ``benchmark_yolo_speed.py`` makes them.
    """
    import torch
    from ultralytics.nn.tasks import DetectionModel
    _seed_and_threads(args.threads)
    data = torch.load(args.batch_file)
    imgs, packed = data['imgs'], data['packed']
    packed = packed[packed[:, 0].argsort(stable=True)]  # its collate groups the targets by image
    b, _, h, w = imgs.shape
    model = DetectionModel(args.model, nc=args.nc, verbose=False)
    model.args = argparse.Namespace(box=7.5, cls=0.5, dfl=1.5)  # the default.yaml gains the loss reads
    model.train()
    xyxy = packed[:, 2:]
    xywh = torch.cat([(xyxy[:, :2] + xyxy[:, 2:]) / 2, xyxy[:, 2:] - xyxy[:, :2]], 1)
    batch = dict(batch_idx=packed[:, 0], cls=packed[:, 1:2], bboxes=xywh / torch.tensor([w, h, w, h]))
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.937, nesterov=True)

    def step():  # the trainer's step without AMP: preprocess, forward, loss, backward, optimizer step
        batch['img'] = imgs.float() / 255
        loss, _ = model.loss(batch)
        loss.sum().backward()
        opt.step()
        opt.zero_grad()

    res = dict(train_step_ms=_timeit(step, args.iters, args.warmup))
    batch['img'] = imgs.float() / 255
    preds = model(batch['img'])

    def detach(x):
        if isinstance(x, torch.Tensor):
            return x.detach().requires_grad_(x.is_floating_point())
        if isinstance(x, dict):
            return {k: detach(v) for k, v in x.items()}
        if isinstance(x, (list, tuple)):
            return type(x)(detach(v) for v in x)
        return x

    res['assigner_loss_ms'] = _timeit(lambda: model.criterion(detach(preds), batch), args.iters * 5,
                                      args.warmup + 2)
    res['assigner_loss_share_%'] = 100 * res['assigner_loss_ms'] / res['train_step_ms']
    model.eval()
    with torch.no_grad():
        x = imgs.float() / 255
        res['forward_ms'] = _timeit(lambda: model(x), args.iters, args.warmup)
        one = x[:1].contiguous()
        res['forward_b1_ms'] = _timeit(lambda: model(one), args.iters * 3, args.warmup)
    import ultralytics
    res['version'] = ultralytics.__version__
    res['threads'] = torch.get_num_threads()
    return res


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    sub = p.add_subparsers(dest='cmd', required=True)
    i = sub.add_parser('init')
    i.add_argument('--model', default='yolo11n.yaml')
    i.add_argument('--nc', type=int, required=True)
    i.add_argument('--names', nargs='*', default=None)
    i.add_argument('--seed', type=int, default=0)
    i.add_argument('--out', required=True)
    t = sub.add_parser('train')
    t.add_argument('--init', required=True)
    t.add_argument('--data', required=True)
    t.add_argument('--imgsz', type=int, default=640)
    t.add_argument('--epochs', type=int, default=60)
    t.add_argument('--batch', type=int, default=16)
    t.add_argument('--seed', type=int, default=0)
    t.add_argument('--close-mosaic', type=int, default=10)
    t.add_argument('--threads', type=int, default=1)
    t.add_argument('--workers', type=int, default=0)
    t.add_argument('--optimizer', default='auto')
    t.add_argument('--val', action='store_true', help='let the reference validate every epoch (off: only the last)')
    t.add_argument('--out', required=True)
    v = sub.add_parser('val')
    v.add_argument('--weights', required=True)
    v.add_argument('--data', required=True)
    v.add_argument('--imgsz', type=int, default=640)
    v.add_argument('--batch', type=int, default=32)
    v.add_argument('--no-rect', dest='rect', action='store_false')
    v.add_argument('--threads', type=int, default=1)
    b = sub.add_parser('bench')
    b.add_argument('--model', default='yolo11n.yaml')
    b.add_argument('--nc', type=int, default=80)
    b.add_argument('--batch-file', required=True)
    b.add_argument('--threads', type=int, default=2)
    b.add_argument('--iters', type=int, default=3)
    b.add_argument('--warmup', type=int, default=1)
    args = p.parse_args()
    res = dict(init=cmd_init, train=cmd_train, val=cmd_val, bench=cmd_bench)[args.cmd](args)
    print('RESULT ' + json.dumps(res), flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
