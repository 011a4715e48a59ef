"""CPU (or GPU) latency of PyTorch eager vs ONNX Runtime for exported detectors; or (``--e2e``) of
YOLO26-n's end-to-end file (no NMS) vs YOLO11-n's file with NMS, in the same run.

    python tools/analysis_tools/benchmark_onnx.py [--models yolo11n convnextv2-atto] [--imgsz 640]
        [--batch 1] [--threads 2] [--runs 20] [--warmup 3] [--device cpu] [--half] [--json out.json]
    python tools/analysis_tools/benchmark_onnx.py --e2e [--e2e-scales n s m l x] [--imgsz 640] [--batch 1]
        [--threads 2] [--runs 50]

For each model (random weights with the reference's head init, so that almost no score passes 0.001
and the nms column is the graph's fixed cost; ConvNeXt V2 without its FCMAE init_cfg: nothing is
downloaded):
builds the config's detector, writes a checkpoint, exports it with
convnextv2_yolo.deployment.export_onnx (raw outputs and --postprocess nms) into a temporary
folder, then times on the same random input (median and minimum over --runs after --warmup):

- PyTorch eager: backbone + neck + head + dense decoding (YOLOHead.decode_dense), the model as
  tools/test.py runs it (BatchNorm not fused), torch.set_num_threads(--threads);
- ONNX Runtime, raw file (the same computation, BatchNorm fused by the exporter);
- ONNX Runtime, nms file (decoding + NMS + top-k inside the graph).

The three are timed in turn within each run, so that the load of a shared machine hits them alike.

ONNX Runtime: intra-op threads = --threads, inter-op 1, all graph optimisations. --device cuda
uses the TensorRT and CUDA providers when installed (--half: fp16 weights and input).

--e2e: YOLO26-n and YOLO11-n (random weights, the reference's head init, as above), every ONNX Runtime
file of both timed in turn within each run (one interleaved loop, so that the load hits all alike):
YOLO26-n ``e2e`` (one-to-one branch + two-stage top-k, (B, 300, 6), no NMS: its cost does not depend on
the scores), YOLO26-n ``nms`` (one-to-many branch + NMS, ``test_cfg.end2end=False``), YOLO11-n ``nms``
and both ``none`` (raw) files, plus the end-to-end files of the YOLO26 scales named by --e2e-scales (the
README's per-scale CPU latency); then the YOLO26-n e2e / YOLO11-n nms ratio. The ``nms`` graphs' cost
grows with the candidates above score_thr (few with these weights: a lower bound for trained models).
"""
import argparse
import json
import os
import os.path as osp
import statistics
import sys
import tempfile
import time

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
MODELS_CFG = {
    'yolo11n': 'configs/yolo11/yolo11_n_8xb16-500e_coco.py',
    'yolov8n': 'configs/yolov8/yolov8_n_8xb16-500e_coco.py',
    'convnextv2-atto': 'configs/convnextv2_yolo/yolo11_convnextv2-atto_fcmae_8xb16-300e_coco.py',
    **{f'yolo26{s}': f'configs/yolo26/yolo26_{s}_8xb16-500e_coco.py' for s in 'nsmlx'},
}


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--models', nargs='+', default=['yolo11n', 'convnextv2-atto'], choices=list(MODELS_CFG))
    p.add_argument('--imgsz', type=int, default=640)
    p.add_argument('--batch', type=int, default=1)
    p.add_argument('--threads', type=int, default=2)
    p.add_argument('--runs', type=int, default=20)
    p.add_argument('--warmup', type=int, default=3)
    p.add_argument('--device', default='cpu', help='cpu or cuda[:N] (ONNX Runtime TensorRT/CUDA providers)')
    p.add_argument('--half', action='store_true', help='fp16 (CUDA only)')
    p.add_argument('--json', help='write the rows to this JSON file')
    p.add_argument('--e2e', action='store_true',
                   help='YOLO26-n end-to-end (no NMS) vs YOLO11-n with NMS, every file timed in one loop '
                        '(--models is ignored)')
    p.add_argument('--e2e-scales', nargs='+', default=['n'], choices=list('nsmlx'),
                   help='with --e2e: the YOLO26 scales whose end-to-end file joins the loop (n always does; '
                        'the nms and raw files are timed for YOLO26-n only)')
    return p.parse_args()


def _time(fns: dict, runs: int, warmup: int, sync=None) -> dict:
    """Median and minimum ms of each function, runs interleaved (a shared machine's load hits all alike)."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times = {key: [] for key in fns}
    for _ in range(runs):
        for key, fn in fns.items():
            t = time.perf_counter()
            fn()
            if sync:
                sync()
            times[key].append((time.perf_counter() - t) * 1000)
    return {key: dict(median_ms=round(statistics.median(v), 2), min_ms=round(min(v), 2)) for key, v in times.items()}


def build_model(name: str, args: argparse.Namespace, tmp: str):
    """The config (end2end=False for YOLO26: its raw/nms files are the one-to-many branch's), the model in
    eval mode with the reference's head init, and its checkpoint."""
    import torch
    from mmdet.registry import MODELS
    from mmengine.config import Config
    from mmengine.logging import MMLogger
    from mmengine.registry import init_default_scope

    from convnextv2_yolo.datasets.data_overrides import apply_data_args
    cfg = apply_data_args(Config.fromfile(osp.join(ROOT, MODELS_CFG[name])), None, args.imgsz)
    cfg.model.backbone.init_cfg = None
    cfg.model.train_cfg = None
    init_default_scope('mmdet')
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel('WARNING')  # init_weights lists every parameter
    model.init_weights()  # the reference's head init: class scores ~1e-5, few NMS candidates
    logger.setLevel(level)
    model.eval()
    ckpt = osp.join(tmp, f'{name}.pth')
    torch.save(dict(state_dict=model.state_dict()), ckpt)
    if 'end2end' in (cfg.model.get('test_cfg') or {}):
        cfg.model.test_cfg.end2end = False  # raw / nms files: the one-to-many branch
    return cfg, model, ckpt


def export_raw_and_nms(name: str, cfg, ckpt: str, args: argparse.Namespace, tmp: str):
    """Paths of ``name``'s raw (``--postprocess none``) ONNX file and the ``nms`` file made from it."""
    from convnextv2_yolo.deployment import export_onnx, raw_to_nms
    raw, nms = osp.join(tmp, f'{name}_raw.onnx'), osp.join(tmp, f'{name}_nms.onnx')
    export_onnx(cfg, ckpt, raw, imgsz=(args.imgsz, args.imgsz), batch=args.batch, postprocess='none',
                half=args.half, device=args.device)
    raw_to_nms(raw, nms)
    return raw, nms


def bench_model(name: str, args: argparse.Namespace, tmp: str) -> dict:
    """One table row: PyTorch eager vs ONNX Runtime (raw and nms files) for ``name``."""
    import torch

    from convnextv2_yolo.deployment import DenseOutputs, make_session
    cfg, model, ckpt = build_model(name, args, tmp)
    raw, nms = export_raw_and_nms(name, cfg, ckpt, args, tmp)
    device = torch.device(args.device)
    images = torch.rand(args.batch, 3, args.imgsz, args.imgsz)
    eager = DenseOutputs(model).to(device)
    x = images.to(device).half() if args.half else images.to(device)
    if args.half:
        eager = eager.half()
    sync = torch.cuda.synchronize if device.type == 'cuda' else None

    def run_eager():
        with torch.no_grad():
            eager(x)
    row = dict(model=name, imgsz=args.imgsz, batch=args.batch, threads=args.threads, device=args.device,
               half=args.half)
    feed = images.numpy().astype('float16' if args.half else 'float32')
    fns = dict(pytorch_eager=run_eager)
    for key, path in (('onnxruntime_raw', raw), ('onnxruntime_nms', nms)):
        sess = make_session(path, args.device, args.threads, half=args.half)
        row['providers'] = sess.get_providers()[0]
        fns[key] = (lambda s: lambda: s.run(None, {'images': feed}))(sess)
    row.update(_time(fns, args.runs, args.warmup, sync))
    row['speedup_raw'] = round(row['pytorch_eager']['median_ms'] / row['onnxruntime_raw']['median_ms'], 2)
    row['speedup_nms'] = round(row['pytorch_eager']['median_ms'] / row['onnxruntime_nms']['median_ms'], 2)
    return row


def bench_e2e(args: argparse.Namespace, tmp: str) -> list:
    """YOLO26-n e2e / nms / raw and YOLO11-n nms / raw files under ONNX Runtime, timed in one loop."""
    import copy

    import numpy as np

    from convnextv2_yolo.deployment import export_onnx, make_session
    files = {}
    scales = ['n'] + [s for s in 'smlx' if s in args.e2e_scales]
    for name in [f'yolo26{s}' for s in scales] + ['yolo11n']:
        cfg, _, ckpt = build_model(name, args, tmp)
        if name.startswith('yolo26'):
            e2e_cfg = copy.deepcopy(cfg)
            e2e_cfg.model.test_cfg.end2end = True
            files[(name, 'e2e')] = osp.join(tmp, f'{name}_e2e.onnx')
            export_onnx(e2e_cfg, ckpt, files[(name, 'e2e')], imgsz=(args.imgsz, args.imgsz), batch=args.batch,
                        postprocess='e2e', half=args.half, device=args.device)
        if name in ('yolo26n', 'yolo11n'):
            raw, nms = export_raw_and_nms(name, cfg, ckpt, args, tmp)
            files[(name, 'nms')], files[(name, 'none')] = nms, raw
    feed = np.random.default_rng(0).random((args.batch, 3, args.imgsz, args.imgsz)).astype(
        'float16' if args.half else 'float32')
    fns, outputs, provider = {}, {}, None
    for key, path in files.items():
        sess = make_session(path, args.device, args.threads, half=args.half)
        provider = sess.get_providers()[0]
        outputs[key] = ', '.join(f'{o.name} {o.shape}' for o in sess.get_outputs())
        fns[key] = (lambda s: lambda: s.run(None, {'images': feed}))(sess)
    times = _time(fns, args.runs, args.warmup)
    return [dict(model=name, postprocess=kind, outputs=outputs[(name, kind)], imgsz=args.imgsz, batch=args.batch,
                 threads=args.threads, device=args.device, providers=provider, half=args.half,
                 **times[(name, kind)]) for name, kind in files]


def print_e2e(rows: list, args: argparse.Namespace) -> None:
    print(f'\n| ONNX Runtime, {args.device}, batch {args.batch}, {args.imgsz} px, {args.threads} threads, median '
          f'(min) of {args.runs} runs | file | outputs | ms |')
    print('|---|---|---|---|')
    for r in rows:
        print(f"| {r['model']} | {r['postprocess']} | {r['outputs']} | {r['median_ms']} ({r['min_ms']}) |")
    by = {(r['model'], r['postprocess']): r for r in rows}
    e2e, nms = by[('yolo26n', 'e2e')], by[('yolo11n', 'nms')]
    print(f"\nYOLO26-n end-to-end (no NMS) {e2e['median_ms']} ms vs YOLO11-n with NMS {nms['median_ms']} ms: "
          f"{nms['median_ms'] / e2e['median_ms']:.2f}x")


def main() -> None:
    args = parse_args()
    import torch
    torch.set_num_threads(args.threads)
    os.environ.setdefault('OMP_NUM_THREADS', str(args.threads))
    if args.e2e:
        with tempfile.TemporaryDirectory() as tmp:
            rows = bench_e2e(args, tmp)
        print_e2e(rows, args)
        write_json(args.json, rows)
        return
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models:
            rows.append(bench_model(name, args, tmp))
    print('\n| model | imgsz | batch | threads | PyTorch eager ms | ORT raw ms | ORT nms ms | speed-up raw / nms |')
    print('|---|---|---|---|---|---|---|---|')
    for r in rows:
        print(f"| {r['model']} | {r['imgsz']} | {r['batch']} | {r['threads']} | "
              f"{r['pytorch_eager']['median_ms']} (min {r['pytorch_eager']['min_ms']}) | "
              f"{r['onnxruntime_raw']['median_ms']} (min {r['onnxruntime_raw']['min_ms']}) | "
              f"{r['onnxruntime_nms']['median_ms']} (min {r['onnxruntime_nms']['min_ms']}) | "
              f"{r['speedup_raw']}x / {r['speedup_nms']}x |")
    write_json(args.json, rows)


def write_json(path, rows: list) -> None:
    """``{'provenance': {command, git, machine, onnxruntime}, 'rows': rows}`` to ``path`` (if given)."""
    if not path:
        return
    import onnxruntime

    from convnextv2_yolo.utils.demo_setup import git_commit, machine_info
    provenance = dict(command=' '.join(['tools/analysis_tools/benchmark_onnx.py'] + sys.argv[1:]),
                      git=git_commit(ROOT), machine=machine_info(), onnxruntime=onnxruntime.__version__)
    with open(path, 'w') as f:
        json.dump(dict(provenance=provenance, rows=rows), f, indent=1)


if __name__ == '__main__':
    main()
