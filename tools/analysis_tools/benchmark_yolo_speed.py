"""Speed of a YOLO detector: forward, train step, assigner+loss and NMS shares.

Measures on CPU (batch 8, 2 threads) and, when CUDA is available, on GPU
(batch 64, fp32 and AMP), at 640x640 with ~40 random GT boxes per batch:

- forward (eval, no grad) at the batch size and at batch 1;
- one training step: preprocess + forward + assigner + losses + backward +
  optimizer step (SGD, nesterov), through ``yolo_collate``'s batch format;
- assigner + losses alone (``bbox_head.loss_by_feat``) and its share of the
  train step (target <= 3 %);
- decode + NMS alone (``bbox_head.predict_by_feat``) at batch 1 with a
  controlled number of candidates above ``score_thr`` and its share of the
  inference time (target <= 10 %);
- the data path: ``pseudo_collate`` + ``DetDataPreprocessor`` + packing the
  targets (mmdet's default) vs ``yolo_collate`` + ``YOLODetDataPreprocessor``.

Example::

    python tools/analysis_tools/benchmark_yolo_speed.py --device cpu --json speed.json
    # on a busy machine, the min of the repetitions is the steadier number
    python tools/analysis_tools/benchmark_yolo_speed.py --device cpu --iters 5 --stat min
    # and the reference's training step, assigner + loss and forward on the same batch, same threads
    python tools/analysis_tools/benchmark_yolo_speed.py --device cpu --ref-python ~/ultralytics-venv/bin/python

``--ref-python`` runs ``ultralytics_driver.py bench`` in the reference's venv (a black box, see
``train_parity.py`` for how to make it) on the batch this script saves, after our timings, and prints
its numbers in a column beside ours with the ratios.
"""
import argparse
import json
import os
import os.path as osp
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Callable, Dict, List, Optional

import torch
from mmengine.config import DictAction

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DEFAULT_CONFIG = osp.join(ROOT, 'configs', 'yolo11', 'yolo11_n_8xb16-500e_coco.py')

# YOLO11-n at 80 classes, for when the config is not there.
FALLBACK_MODEL = dict(
    type='YOLODetector',
    data_preprocessor=dict(type='YOLODetDataPreprocessor', mean=[0., 0., 0.], std=[255., 255., 255.],
                           bgr_to_rgb=True),
    backbone=dict(type='YOLOCSPDarknet', version='yolo11', scale='n'),
    neck=dict(type='YOLOPAFPN', version='yolo11', scale='n'),  # channels read from the backbone
    bbox_head=dict(type='YOLOHead', num_classes=80),  # channels read from the neck
    train_cfg=dict(assigner=dict(type='BatchTaskAlignedAssigner', topk=10, alpha=0.5, beta=6.0, eps=1e-9)),
    test_cfg=dict(score_thr=0.001, nms_pre=30000, nms=dict(type='nms', iou_threshold=0.7), max_per_img=300,
                  multi_label=True))


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--config', default=None, help=f'model config (default: {DEFAULT_CONFIG} if present, '
                   'else a built-in YOLO11-n)')
    p.add_argument('--builtin-model', action='store_true',
                   help='use the built-in YOLO11-n dict even if the config exists (no mmdet:: base configs needed)')
    p.add_argument('--device', choices=['cpu', 'cuda', 'all'], default='all')
    p.add_argument('--cpu-batch', type=int, default=8)
    p.add_argument('--gpu-batch', type=int, default=64)
    p.add_argument('--img-size', type=int, default=640)
    p.add_argument('--num-gt', type=int, default=40, help='GT boxes in the whole batch')
    p.add_argument('--threads', type=int, default=2, help='torch CPU threads')
    p.add_argument('--iters', type=int, default=3, help='timed repetitions (CPU); GPU uses 5x')
    p.add_argument('--warmup', type=int, default=1, help='untimed repetitions (CPU); GPU uses 5x')
    p.add_argument('--nms-candidates', type=int, nargs='+', default=[1000, 30000],
                   help='boxes above score_thr fed to decode+NMS (batch 1)')
    p.add_argument('--stat', choices=['median', 'min'], default='median',
                   help='statistic of the timed repetitions (min resists a busy machine)')
    p.add_argument('--json', default=None, help='save the results here')
    p.add_argument('--ref-python', default=None,
                   help="python of a venv with ultralytics: time the reference's step on the same batch (CPU)")
    p.add_argument('--cfg-options', nargs='+', action=DictAction, default={},
                   help='override config keys, e.g. model.bbox_head.loss_cls.type=YOLOBCELoss')
    return p.parse_args()


def build_model(config: Optional[str], options: Optional[dict] = None,
                builtin: bool = False) -> torch.nn.Module:
    from mmdet.registry import MODELS
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    import convnextv2_yolo  # noqa: F401  (registers the modules)
    init_default_scope('mmdet')
    path = config or (DEFAULT_CONFIG if osp.isfile(DEFAULT_CONFIG) and not builtin else None)
    cfg = Config.fromfile(path) if path else Config(dict(model=FALLBACK_MODEL))
    if options:
        cfg.merge_from_dict(options)
    cfg = cfg.model
    model = MODELS.build(cfg)
    model.init_weights()
    model.source = path or 'built-in YOLO11-n dict'
    return model


def make_batch(batch: int, size: int, num_gt: int, num_classes: int, seed: int = 0) -> dict:
    """A ``yolo_collate`` batch: uint8 images, data samples, packed GTs."""
    from mmdet.structures import DetDataSample
    g = torch.Generator().manual_seed(seed)
    imgs = torch.randint(0, 256, (batch, 3, size, size), dtype=torch.uint8, generator=g)
    wh = torch.rand(num_gt, 2, generator=g) * (size * 0.5) + 8
    xy = torch.rand(num_gt, 2, generator=g) * (size - wh)
    packed = torch.cat([torch.randint(0, batch, (num_gt, 1), generator=g).float(),
                        torch.randint(0, num_classes, (num_gt, 1), generator=g).float(), xy, xy + wh], 1)
    samples = []
    for i in range(batch):
        s = DetDataSample(metainfo=dict(img_id=i, ori_shape=(size, size), img_shape=(size, size),
                                        scale_factor=(1.0, 1.0), pad_param=[0., 0., 0., 0.]))
        samples.append(s)
    return dict(inputs=imgs, data_samples=samples, bboxes_labels=packed)


STAT = statistics.median  # --stat min: robust to other processes on a shared machine


def timeit(fn: Callable[[], object], iters: int, warmup: int, cuda: bool) -> float:
    """Median (or min, ``--stat min``) wall time of ``fn`` in ms."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(iters):
        if cuda:
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        if cuda:
            torch.cuda.synchronize()
        times.append((time.perf_counter() - t0) * 1000)
    return STAT(times)


def synthetic_head_outputs(head, size: int, candidates: int, device: torch.device):
    """Head outputs whose sigmoid scores exceed ``score_thr`` about ``candidates`` times."""
    thr = head.test_cfg.get('score_thr', 0.001)
    sizes = [(size // s, size // s) for s in head.featmap_strides]
    total = sum(h * w for h, w in sizes) * head.num_classes
    frac = min(max(candidates / total, 1e-9), 1 - 1e-9)
    mu = torch.logit(torch.tensor(thr)).item() - torch.distributions.Normal(0., 1.).icdf(
        torch.tensor(1 - frac)).item()
    g = torch.Generator().manual_seed(0)
    cls = [(torch.randn(1, head.num_classes, h, w, generator=g) + mu).to(device) for h, w in sizes]
    dist = [torch.randn(1, 4 * head.reg_max, h, w, generator=g).to(device) for h, w in sizes]
    return cls, dist


def bench_device(model, device: str, batch: int, args, amp: bool = False) -> Dict[str, float]:
    from mmengine.optim import AmpOptimWrapper, OptimWrapper
    cuda = device == 'cuda'
    scale = 5 if cuda else 1
    iters, warmup = args.iters * scale, args.warmup * scale
    model = model.to(device)
    head = model.bbox_head
    data = make_batch(batch, args.img_size, args.num_gt, head.num_classes)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.937, nesterov=True)
    wrapper = AmpOptimWrapper(optimizer=optimizer) if amp else OptimWrapper(optimizer=optimizer)
    autocast = (lambda: torch.autocast('cuda', dtype=torch.float16)) if amp else torch.enable_grad
    res: Dict[str, float] = bench_data_path(model, device, batch, args)

    model.train()
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    res['train_step_ms'] = timeit(lambda: model.train_step(data, wrapper), iters, warmup, cuda)
    if cuda:
        res['train_peak_mem_GiB'] = torch.cuda.max_memory_allocated() / 2**30

    # assigner + losses alone, on the outputs of one forward
    pre = model.data_preprocessor(dict(data), True)
    with autocast():
        outs = head(model.extract_feat(pre['inputs']))
    packed = pre['data_samples']['bboxes_labels']
    metas = pre['data_samples']['img_metas']

    def loss_only():
        with autocast():
            return head.loss_by_feat(*[[o.detach().requires_grad_() for o in x] for x in outs], packed, metas)
    res['assigner_loss_ms'] = timeit(loss_only, iters * 5, warmup + 2, cuda)
    res['assigner_loss_share_%'] = 100 * res['assigner_loss_ms'] / res['train_step_ms']

    model.eval()
    infer_ctx = torch.autocast('cuda', dtype=torch.float16) if amp else torch.no_grad()
    with torch.no_grad(), infer_ctx:
        imgs = pre['inputs']
        res['forward_ms'] = timeit(lambda: model._forward(imgs), iters, warmup, cuda)
        one = imgs[:1].contiguous()
        res['forward_b1_ms'] = timeit(lambda: model._forward(one), iters * 3, warmup, cuda)
        metas1 = [data['data_samples'][0].metainfo]
        for k in args.nms_candidates:
            cls, dist = synthetic_head_outputs(head, args.img_size, k, torch.device(device))
            t = timeit(lambda: head.predict_by_feat(cls, dist, batch_img_metas=metas1, rescale=True),
                       iters * 3, warmup, cuda)
            res[f'decode_nms_b1_{k}cand_ms'] = t
            res[f'decode_nms_b1_{k}cand_share_%'] = 100 * t / (t + res['forward_b1_ms'])
    return res


def packed_items(batch: int, size: int, boxes_per_img: int, num_classes: int) -> list:
    """``PackDetInputs`` outputs, as a dataset would hand them to the collate."""
    import numpy as np
    from mmdet.datasets.transforms import PackDetInputs
    from mmdet.structures.bbox import HorizontalBoxes
    rng = np.random.default_rng(0)
    pack = PackDetInputs(meta_keys=('img_id', 'ori_shape', 'img_shape', 'scale_factor', 'pad_param'))
    items = []
    for i in range(batch):
        xy = rng.uniform(0, size / 2, (boxes_per_img, 2))
        boxes = np.concatenate([xy, xy + rng.uniform(8, size / 2, (boxes_per_img, 2))], 1).astype(np.float32)
        items.append(pack(dict(
            img=rng.integers(0, 256, (size, size, 3), dtype=np.uint8), img_id=i, ori_shape=(size, size),
            img_shape=(size, size), scale_factor=(1., 1.), pad_param=np.zeros(4, np.float32),
            gt_bboxes=HorizontalBoxes(boxes), gt_bboxes_labels=rng.integers(0, num_classes, boxes_per_img),
            gt_ignore_flags=np.zeros(boxes_per_img, bool))))
    return items


def bench_data_path(model, device: str, batch: int, args) -> Dict[str, float]:
    """Collate + preprocess + target packing: mmdet's default path vs ours."""
    from mmdet.registry import MODELS
    from mmengine.dataset import pseudo_collate

    from convnextv2_yolo.datasets import pack_gt_instances, yolo_collate
    cuda = device == 'cuda'
    iters = args.iters * (20 if cuda else 3)
    items = packed_items(batch, args.img_size, max(1, args.num_gt // batch), model.bbox_head.num_classes)
    ours = model.data_preprocessor
    default = MODELS.build(dict(type='mmdet.DetDataPreprocessor', mean=ours.mean.flatten().tolist(),
                                std=ours.std.flatten().tolist(), bgr_to_rgb=ours._channel_conversion,
                                pad_size_divisor=ours.pad_size_divisor)).to(device)

    def default_main():  # preprocessor + the head's packing of the per-image instances
        out = default(batch_default, True)
        return pack_gt_instances([s.gt_instances for s in out['data_samples']]).to(device)

    batch_default = pseudo_collate(items)
    batch_ours = yolo_collate(items)
    res = {
        'collate_default_ms': timeit(lambda: pseudo_collate(items), iters, 1, False),
        'collate_yolo_ms': timeit(lambda: yolo_collate(items), iters, 1, False),
        'preprocess_default_ms': timeit(default_main, iters, 1, cuda),
        'preprocess_yolo_ms': timeit(lambda: ours(dict(batch_ours), True), iters, 1, cuda),
    }
    return res


def bench_reference(ref_python: str, args) -> Dict[str, float]:
    """The reference's train step, assigner + loss and forward on our CPU batch, same threads and stat.

    Raises:
        RuntimeError: the driver failed (its output is included).
    """
    data = make_batch(args.cpu_batch, args.img_size, args.num_gt, 80)
    driver = osp.join(osp.dirname(osp.abspath(__file__)), 'ultralytics_driver.py')
    with tempfile.TemporaryDirectory() as tmp:
        batch_file = osp.join(tmp, 'batch.pt')
        torch.save(dict(imgs=data['inputs'], packed=data['bboxes_labels']), batch_file)
        env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), BENCH_STAT=args.stat)
        proc = subprocess.run([ref_python, driver, 'bench', '--batch-file', batch_file, '--threads', str(args.threads),
                               '--iters', str(args.iters), '--warmup', str(args.warmup)],
                              capture_output=True, text=True, env=env)
    from convnextv2_yolo.utils.reference_driver import read_result
    res = read_result(proc.stdout)
    if proc.returncode or res is None:
        raise RuntimeError(f'the reference benchmark failed (exit {proc.returncode}):\n{proc.stdout[-2000:]}'
                           f'{proc.stderr[-2000:]}')
    print(f"reference: ultralytics {res.pop('version')}, {res.pop('threads')} threads", flush=True)
    return res


def print_table(results: Dict[str, Dict[str, float]]) -> None:
    keys: List[str] = []
    for r in results.values():
        keys += [k for k in r if k not in keys]
    cols = list(results)
    width = max(len(k) for k in keys) + 2
    print('metric'.ljust(width) + ''.join(c.rjust(22) for c in cols))
    for k in keys:
        row = ''.join((f'{results[c][k]:.{3 if "/" in c else 1}f}' if k in results[c] else '-').rjust(22)
                      for c in cols)
        print(k.ljust(width) + row)


def main() -> int:
    global STAT
    args = parse_args()
    STAT = min if args.stat == 'min' else statistics.median
    torch.set_num_threads(args.threads)
    model = build_model(args.config, args.cfg_options, args.builtin_model)
    n_params = sum(p.numel() for p in model.parameters())
    print(f'model: {model.source} ({n_params:,} parameters), {args.img_size}x{args.img_size}, '
          f'{args.num_gt} GT boxes per batch, {args.threads} CPU threads, {args.stat} of the repetitions')
    results: Dict[str, Dict[str, float]] = {}
    if args.device in ('cpu', 'all'):
        results[f'cpu b{args.cpu_batch}'] = bench_device(model, 'cpu', args.cpu_batch, args)
        if args.ref_python:
            ref = results[f'reference cpu b{args.cpu_batch}'] = bench_reference(args.ref_python, args)
            ours = results[f'cpu b{args.cpu_batch}']
            results['ours / reference'] = {k: ours[k] / ref[k] for k in ref if k in ours and not k.endswith('%')}
    if args.device in ('cuda', 'all'):
        if not torch.cuda.is_available():
            if args.device == 'cuda':
                print('CUDA is not available', file=sys.stderr)
                return 1
        else:
            torch.backends.cudnn.benchmark = True
            name = torch.cuda.get_device_name()
            print(f'GPU: {name}', flush=True)
            results[f'cuda b{args.gpu_batch} fp32'] = bench_device(model, 'cuda', args.gpu_batch, args)
            print(json.dumps(results), flush=True)  # partial results, in case of a time limit
            results[f'cuda b{args.gpu_batch} amp'] = bench_device(model, 'cuda', args.gpu_batch, args, amp=True)
    print_table(results)
    if args.json:
        os.makedirs(osp.dirname(osp.abspath(args.json)), exist_ok=True)
        with open(args.json, 'w') as f:
            json.dump(dict(model=model.source, params=n_params, img_size=args.img_size, num_gt=args.num_gt,
                           threads=args.threads, stat=args.stat, results=results), f, indent=2)
        print(f'saved {args.json}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
