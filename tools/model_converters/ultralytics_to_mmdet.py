"""Convert a YOLO11 / YOLO26 / YOLOv8 checkpoint of the reference (Ultralytics) to ours.

Reads either

1. a plain state dict with the reference's names (``model.0.conv.weight``,
   ``model.23.cv2.0.0.conv.weight``, ...), or
2. a released ``.pt`` file (``yolo11n.pt``, ``yolov8s.pt``, a training
   ``best.pt``...): a pickled ``{'model': DetectionModel, 'ema': ...}``,
   often fp16. It is read WITHOUT importing ultralytics and without running
   anything from the file: a restricted unpickler turns every
   ``ultralytics.*`` / ``torch.nn.modules.*`` class into an inert stand-in
   that only stores its attributes, allows torch's tensor-rebuild functions
   and a few plain containers, and refuses every other global (e.g.
   ``os.system``). Parameters and buffers are then collected from the
   stand-ins' ``_parameters`` / ``_buffers`` / ``_modules``. The EMA weights
   are used when the file has them (as the reference does).

and writes ``{'state_dict': ..., 'meta': {...}}`` (fp32) for mmdet's
``load_from`` / ``load_checkpoint``. The converted keys are checked against
our model built from ``configs/{version}/{version}_{scale}_8xb16-500e_coco.py``
(with the checkpoint's number of classes and class-branch width, read from
its tensors: a model the reference fine-tuned from a checkpoint keeps that
checkpoint's width, e.g. 80 for a 5-class YOLO11-n fine-tuned from COCO,
where the rule for 5 classes gives 64): a checkpoint of another scale
fails with the first mismatched key and both shapes. Without ``--scale`` the
scale is found by trying n, s, m, l, x.

Weights alone do not fix the computation: a pickled model also records its
module classes and settings, checked before any key mapping (layer sequence,
module tree, layer inputs and a whitelist of attributes; every difference is
reported in one ``architecture mismatch at ...``): see
:mod:`convnextv2_yolo.converters.ultralytics_architecture` for the rules.

A plain state dict has no classes: it is checked by keys and shapes only and
the result says so (``meta['architecture_verified']`` False, a note).

The library is :mod:`convnextv2_yolo.converters` (key mapping table in
:mod:`convnextv2_yolo.converters.ultralytics_keys`).

Example::

    python tools/model_converters/ultralytics_to_mmdet.py yolo11n.pt \
        yolo11_n_coco_ultralytics.pth --arch yolo11 --scale n
"""
import argparse
import sys

from convnextv2_yolo.converters import SCALES, VERSIONS, ConversionError, convert


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('src', help='reference checkpoint: released .pt or a state dict file')
    parser.add_argument('dst', help='converted checkpoint to write')
    parser.add_argument('--arch', dest='version', choices=VERSIONS, default=None,
                        help='the YOLO family (version); default: detected')
    parser.add_argument('--scale', choices=SCALES, default=None, help='default: inferred from shapes')
    parser.add_argument('--no-check', action='store_true',
                        help='skip the comparison with our model (module classes and settings, keys, '
                        'shapes; no model is built): the result may not reproduce the checkpoint')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    """Command line: convert, print a summary (and a note on stderr when the
    architecture could not be verified); exit code 1 with ``error: ...`` on
    stderr when the checkpoint is refused."""
    args = parse_args(argv)
    try:
        out = convert(args.src, args.dst, version=args.version, scale=args.scale, check=not args.no_check)
    except (ConversionError, FileNotFoundError) as e:
        print(f'error: {e}', file=sys.stderr)
        return 1
    meta = out['meta']
    print(f"{args.src} -> {args.dst}: {meta['version']}-{meta['scale'] or '?'}, "
          f"{len(out['state_dict'])} tensors, {meta['num_classes']} classes, class-branch width "
          f"{meta['cls_channels']}")
    if 'architecture_note' in meta:
        print(f"note: architecture not verified: {meta['architecture_note']}", file=sys.stderr)
    return 0


if __name__ == '__main__':
    sys.exit(main())
