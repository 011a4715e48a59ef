"""Export a detector checkpoint to ONNX (raw decoded outputs, or decoding + NMS inside the graph).

    python tools/deployment/export_onnx.py CONFIG CHECKPOINT OUT.onnx [--imgsz 640] [--batch 1 | --dynamic [batch]]
        [--postprocess {none,nms}] [--opset 18] [--simplify] [--half --device cuda:0]
        [--data DATA_YAML] [--cfg-options k=v ...]

--postprocess none: outputs boxes (B, A, 4) x1,y1,x2,y2 in network-input pixels and scores (B, A, C);
--postprocess nms: num_dets (B, 1) int32, boxes (B, K, 4), scores (B, K), labels (B, K) int32 (K =
max_per_img of the test config; padding after num_dets: boxes 0, scores 0, labels -1).
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
    p.add_argument('--postprocess', choices=['none', 'nms'], default='nms',
                   help='nms (default): decoding, score threshold, class-aware NMS and top-k in the graph; '
                        'none: raw decoded boxes and per-class scores')
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
          f'{"H" if args.dynamic else h}, {"W" if args.dynamic else w}), postprocess {args.postprocess}')
    for name, desc in meta['outputs'].items():
        print(f'  {name}: {desc}')


if __name__ == '__main__':
    main()
