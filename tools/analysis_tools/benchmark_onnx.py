"""CPU (or GPU) latency of PyTorch eager vs ONNX Runtime for exported detectors.

    python tools/analysis_tools/benchmark_onnx.py [--models yolo11n convnextv2-atto] [--imgsz 640]
        [--batch 1] [--threads 2] [--runs 20] [--warmup 3] [--device cpu] [--half] [--json out.json]

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
"""
import argparse
import json
import os
import os.path as osp
import statistics
import tempfile
import time

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
MODELS_CFG = {
    'yolo11n': 'configs/yolo11/yolo11_n_8xb16-500e_coco.py',
    'yolov8n': 'configs/yolov8/yolov8_n_8xb16-500e_coco.py',
    'convnextv2-atto': 'configs/convnextv2_yolo/yolo11_convnextv2-atto_fcmae_8xb16-300e_coco.py',
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


def bench_model(name: str, args: argparse.Namespace, tmp: str) -> dict:
    """One table row: PyTorch eager vs ONNX Runtime (raw and nms files) for ``name``."""
    import torch
    from mmdet.registry import MODELS
    from mmengine.config import Config
    from mmengine.logging import MMLogger
    from mmengine.registry import init_default_scope

    from convnextv2_yolo.datasets.data_overrides import apply_data_args
    from convnextv2_yolo.deployment import DenseOutputs, export_onnx, make_session, raw_to_nms
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
    raw, nms = osp.join(tmp, f'{name}_raw.onnx'), osp.join(tmp, f'{name}_nms.onnx')
    export_onnx(cfg, ckpt, raw, imgsz=(args.imgsz, args.imgsz), batch=args.batch, postprocess='none',
                half=args.half, device=args.device)
    raw_to_nms(raw, nms)
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


def main() -> None:
    args = parse_args()
    import torch
    torch.set_num_threads(args.threads)
    os.environ.setdefault('OMP_NUM_THREADS', str(args.threads))
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
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(rows, f, indent=1)


if __name__ == '__main__':
    main()
