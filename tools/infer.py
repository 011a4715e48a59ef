"""Detect objects in an image, a folder of images or a video.

    python tools/infer.py INPUT CONFIG CHECKPOINT [--out-dir outputs] [--device cpu]
                          [--score-thr 0.3] [--data DATA_YAML] [--imgsz N] [--cfg-options k=v ...]
    python tools/infer.py INPUT MODEL.onnx --backend onnxruntime [--out-dir outputs] [--device cpu]

With ``--backend onnxruntime`` a file written by tools/deployment/export_onnx.py
runs under ONNX Runtime with the same letterbox (``LetterResize``), normalisation
and rescaling as the PyTorch path, read from the file's metadata (classes, input
size, mean/std, pad value); a file without that metadata is refused. The
pictures and JSON are written as for a checkpoint, so both can be compared. Any of the
exported kinds runs: raw outputs (the head's NMS follows), NMS in the graph, or a YOLO26
end-to-end file (``dets`` (B, K, 6), no NMS: only the metadata's ``score_thr`` is applied,
then the boxes are mapped back to the original image).

YOLO26 (an end-to-end head): the default draws the one-to-one branch's top-k detections
without NMS; ``--cfg-options model.test_cfg.end2end=False`` draws the one-to-many branch
with NMS. ``--score-thr`` only chooses the boxes drawn (the JSON keeps every detection).

A model trained with ``tools/train.py CONFIG --data data.yaml`` is run with
the same ``--data`` (or with the config its work dir holds).

Labels are named after the classes in the checkpoint's ``meta.dataset_meta``
(what the model was trained with), else the config's, else COCO's (80-class
models) or class0, class1, ...; the names used are printed.

Images (a file or every image in a folder) are written as pictures with boxes
and class names to OUT_DIR/vis/ (and the raw predictions to OUT_DIR/preds/ as
JSON, through mmdet's DetInferencer); a video is written to
OUT_DIR/<name>.mp4 with the boxes drawn on every frame.
"""
import argparse
import os
import os.path as osp

from mmengine.config import DictAction

import convnextv2_yolo  # noqa: F401

VIDEO_EXTS = ('.mp4', '.avi', '.mov', '.mkv', '.webm')
IMAGE_EXTS = ('.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff', '.webp')


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('input', help='an image, a folder of images or a video file')
    p.add_argument('config', help='model config (with --backend onnxruntime: the exported .onnx file)')
    p.add_argument('checkpoint', nargs='?', help='checkpoint file (not with --backend onnxruntime)')
    p.add_argument('--backend', choices=['pytorch', 'onnxruntime'], default='pytorch',
                   help='pytorch (config + checkpoint) or onnxruntime (a file from tools/deployment/export_onnx.py)')
    p.add_argument('--threads', type=int, help='onnxruntime: intra-op threads (default: its own choice)')
    p.add_argument('--out-dir', default='outputs', help='where pictures / the video go')
    p.add_argument('--device', default='cuda:0' if _cuda() else 'cpu')
    p.add_argument('--score-thr', type=float, default=0.3, help='draw boxes above this score')
    p.add_argument('--data', metavar='DATA_YAML', help='the data.yaml the model was trained with --data on '
                   '(sets its classes and num_classes on the config)')
    p.add_argument('--imgsz', type=int, help='inference image size (multiple of 32)')
    p.add_argument('--cfg-options', nargs='+', action=DictAction,
                   help='override config keys (pytorch), e.g. model.test_cfg.end2end=False for YOLO26 with NMS')
    return p.parse_args()


def load_config(args: argparse.Namespace):
    """The config with --data / --imgsz applied, as tools/train.py and tools/test.py do."""
    from mmengine.config import Config

    from convnextv2_yolo.datasets.data_overrides import apply_data_args
    cfg = apply_data_args(Config.fromfile(args.config), args.data, args.imgsz)
    if getattr(args, 'cfg_options', None):  # after --data/--imgsz, as tools/test.py
        cfg.merge_from_dict(args.cfg_options)
    return cfg


def _cuda() -> bool:
    import torch
    return torch.cuda.is_available()


def _check_input(path: str) -> str:
    if not osp.exists(path):
        raise FileNotFoundError(f'input not found: {path}')
    if osp.isdir(path):
        if not any(f.lower().endswith(IMAGE_EXTS) for f in os.listdir(path)):
            raise FileNotFoundError(f'no images ({", ".join(IMAGE_EXTS)}) in folder {path}')
        return 'images'
    ext = osp.splitext(path)[1].lower()
    if ext in VIDEO_EXTS:
        return 'video'
    if ext in IMAGE_EXTS:
        return 'images'
    raise ValueError(f'unsupported input {path}: expected an image ({", ".join(IMAGE_EXTS)}), '
                     f'a folder of images or a video ({", ".join(VIDEO_EXTS)})')


def set_class_names(model, cfg, checkpoint: str) -> tuple:
    """Name the model's labels after the classes it was trained with (see resolve_class_names)."""
    from convnextv2_yolo.utils import resolve_class_names
    from convnextv2_yolo.utils.checkpoint_io import read_checkpoint_meta
    meta = read_checkpoint_meta(checkpoint)
    dataset = cfg.get('test_dataloader', {}).get('dataset', {})
    config_classes = (dataset.get('metainfo') or {}).get('classes')
    names, source = resolve_class_names(meta, config_classes, model.bbox_head.num_classes)
    palette = (model.dataset_meta or {}).get('palette')  # mmdet's choice: config, then checkpoint
    if not isinstance(palette, str) and (palette is None or len(palette) < len(names)):
        palette = 'random'
    model.dataset_meta = dict(classes=names, palette=palette)
    print(f'classes ({source}): {", ".join(names)}')
    return names


def onnx_inferencer(args: argparse.Namespace):
    """mmdet's DetInferencer running the .onnx file under ONNX Runtime (convnextv2_yolo.deployment)."""
    from convnextv2_yolo.deployment.onnx_runtime import make_inferencer
    try:
        inferencer = make_inferencer(args.config, device=args.device, threads=args.threads)
    except ValueError as e:  # not our export (no metadata), not ONNX, no GPU provider
        raise SystemExit(f'infer.py: {e}') from None
    print(f'classes (onnx metadata): {", ".join(inferencer.model.dataset_meta["classes"])}')
    return inferencer


def infer_images(args: argparse.Namespace) -> None:
    from mmdet.apis import DetInferencer
    if args.backend == 'onnxruntime':
        inferencer = onnx_inferencer(args)
        inferencer(args.input, out_dir=args.out_dir, pred_score_thr=args.score_thr, no_save_pred=False)
        print(f'pictures: {osp.join(args.out_dir, "vis")}\npredictions: {osp.join(args.out_dir, "preds")}')
        return
    cfg = load_config(args)
    # mmdet's inferencer batches (input, data) pairs and looks collate_fn up by
    # name: use mmengine's generic collate (the data preprocessor pads/stacks)
    cfg.test_dataloader.collate_fn = 'pseudo_collate'
    inferencer = DetInferencer(model=cfg, weights=args.checkpoint, device=args.device,
                               show_progress=False)
    set_class_names(inferencer.model, cfg, args.checkpoint)
    inferencer.visualizer.dataset_meta = inferencer.model.dataset_meta
    inferencer(args.input, out_dir=args.out_dir, pred_score_thr=args.score_thr, no_save_pred=False)
    print(f'pictures: {osp.join(args.out_dir, "vis")}\npredictions: {osp.join(args.out_dir, "preds")}')


def infer_video(args: argparse.Namespace) -> None:
    import cv2
    import mmcv
    from mmdet.apis import inference_detector, init_detector
    from mmdet.visualization import DetLocalVisualizer

    if args.backend == 'onnxruntime':
        inferencer = onnx_inferencer(args)
        meta = inferencer.model.dataset_meta

        def predict(frame):
            return inferencer(frame, return_datasamples=True, no_save_vis=True)['predictions'][0]
    else:
        cfg = load_config(args)
        model = init_detector(cfg, args.checkpoint, device=args.device)
        set_class_names(model, cfg, args.checkpoint)
        meta = model.dataset_meta

        def predict(frame):
            return inference_detector(model, frame)
    vis = DetLocalVisualizer(name='infer_video')
    vis.dataset_meta = meta
    reader = mmcv.VideoReader(args.input)
    os.makedirs(args.out_dir, exist_ok=True)
    out_path = osp.join(args.out_dir, osp.splitext(osp.basename(args.input))[0] + '.mp4')
    writer = cv2.VideoWriter(out_path, cv2.VideoWriter_fourcc(*'mp4v'), reader.fps or 25,
                             (reader.width, reader.height))
    for frame in reader:
        result = predict(frame)
        vis.add_datasample('frame', mmcv.bgr2rgb(frame), data_sample=result, draw_gt=False,
                           pred_score_thr=args.score_thr, show=False)
        writer.write(mmcv.rgb2bgr(vis.get_image()))
    writer.release()
    print(f'video: {out_path} ({len(reader)} frames)')


def main() -> None:
    args = parse_args()
    if args.backend == 'onnxruntime':
        if not osp.isfile(args.config):
            raise FileNotFoundError(f'ONNX file not found: {args.config}')
        extra = [name for name, given in (('CHECKPOINT', args.checkpoint), ('--data', args.data),
                                          ('--imgsz', args.imgsz), ('--cfg-options', args.cfg_options))
                 if given]
        if extra:
            raise SystemExit(f'--backend onnxruntime takes INPUT MODEL.onnx only, not {", ".join(extra)} (the classes, '
                             'input size and normalisation come from the file\'s metadata)')
    else:
        if not osp.isfile(args.config):
            raise FileNotFoundError(f'config not found: {args.config}')
        if args.config.endswith('.onnx'):
            raise SystemExit(f'{args.config} is an ONNX file: run it with --backend onnxruntime')
        if args.checkpoint is None:
            raise SystemExit('CHECKPOINT is required with --backend pytorch')
        if not osp.isfile(args.checkpoint):
            raise FileNotFoundError(f'checkpoint not found: {args.checkpoint}')
    kind = _check_input(args.input)
    (infer_video if kind == 'video' else infer_images)(args)


if __name__ == '__main__':
    main()
