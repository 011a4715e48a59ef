"""Export a detector checkpoint to ONNX (raw decoded outputs, decoding + NMS inside the graph, or the
end-to-end detections of YOLO26 without NMS).

    python tools/deployment/export_onnx.py CONFIG CHECKPOINT OUT.onnx [--imgsz 640] [--batch 1 | --dynamic [batch]]
        [--postprocess {auto,none,nms,e2e}] [--opset 18] [--simplify] [--half --device cuda:0]
        [--data DATA_YAML] [--cfg-options k=v ...]

--postprocess none: outputs boxes (B, A, 4) x1,y1,x2,y2 in network-input pixels and scores (B, A, C);
--postprocess nms: num_dets (B, 1) int32, boxes (B, K, 4), scores (B, K), labels (B, K) int32 (K =
max_per_img of the test config; padding after num_dets: boxes 0, scores 0, labels -1);
--postprocess e2e (YOLO26, test_cfg.end2end=True): dets (B, K, 6) float32 = x1, y1, x2, y2, score, class
(one-to-one branch, two-stage top-k, no NMS, no threshold; K = min(max_per_img, priors)).
--postprocess auto (default): e2e for an end-to-end head (YOLOE2EHead with test_cfg.end2end=True), else nms.
YOLO26 with NMS: --cfg-options model.test_cfg.end2end=False (the one-to-many branch; nms or none).
The input is the normalised, letterboxed image (B, 3, H, W); the file's metadata (key 'convnextv2_yolo')
holds the classes, input size, mean/std, letterbox pad value and the source config, which
`tools/infer.py --backend onnxruntime` reads. Options follow tools/test.py (--data, --imgsz,
--cfg-options); the number of classes follows the checkpoint's meta.
"""
import argparse
import os.path as osp

from mmengine.config import Config

from convnextv2_yolo.utils.launch import parse_common_args, prepare_test_cfg


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('config', help='model config')
    p.add_argument('checkpoint', help='checkpoint file (must fit the config)')
    p.add_argument('out', help='the .onnx file to write')
    p.add_argument('--batch', type=int, default=1, help='static batch size (default 1)')
    p.add_argument('--dynamic', nargs='?', const='all', choices=['all', 'batch'], default=False,
                   help='dynamic batch, height and width (--dynamic / --dynamic all) or batch only '
                        '(--dynamic batch); --imgsz is then the letterbox size')
    p.add_argument('--opset', type=int, default=18, help='ONNX opset (>= 18, default 18)')
    p.add_argument('--postprocess', choices=['auto', 'none', 'nms', 'e2e'], default='auto',
                   help='nms: decoding, score threshold, class-aware NMS and top-k in the graph; '
                        'none: raw decoded boxes and per-class scores; e2e: an end-to-end head\'s (B, K, 6) '
                        'top-k detections without NMS; auto (default): e2e for an end-to-end head with '
                        'test_cfg.end2end=True, else nms')
    p.add_argument('--simplify', action='store_true', help='simplify the graph with onnxslim')
    p.add_argument('--half', action='store_true', help='float16 (needs CUDA and onnxruntime-gpu)')
    p.add_argument('--device', default='cpu', help='device the model is traced on (cuda:0 for --half)')
    args = parse_common_args(p)
    args.show, args.show_dir = False, None
    return args


def main() -> None:
    args = parse_args()
    from convnextv2_yolo.deployment.onnx_export import ExportError, _letterbox_of, export_onnx
    if not osp.isfile(args.config):
        raise SystemExit(f'config not found: {args.config}')
    if not args.out.endswith('.onnx'):
        raise SystemExit(f'OUT must end with .onnx, got {args.out}')
    try:
        cfg = prepare_test_cfg(Config.fromfile(args.config), args)
        w, h = _letterbox_of(cfg)['scale']
        meta = export_onnx(cfg, args.checkpoint, args.out, imgsz=(h, w), batch=args.batch, dynamic=args.dynamic,
                           opset=args.opset, half=args.half, simplify=args.simplify, postprocess=args.postprocess,
                           device=args.device)
    except (ExportError, FileNotFoundError) as e:
        raise SystemExit(f'export_onnx: {e}') from None
    print(f'wrote {args.out}: input images ({"B" if args.dynamic else args.batch}, 3, '
          f'{"H" if args.dynamic else h}, {"W" if args.dynamic else w}), postprocess {meta["postprocess"]}')
    for name, desc in meta['outputs'].items():
        print(f'  {name}: {desc}')


if __name__ == '__main__':
    main()
