"""Generate the synthetic shape-detection dataset (COCO + YOLO layouts).

Example::

    python tools/misc/make_synthetic_dataset.py --out data/synthetic \\
        --num-train 1000 --num-val 200 --img-size 160 --preview preview.png

Re-running with the same arguments reuses the existing dataset.
See docs/synthetic_dataset.md.
"""
import argparse
import time
from typing import List, Optional

from convnextv2_yolo.datasets import synthetic


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    defaults = synthetic.SyntheticConfig()
    p = argparse.ArgumentParser(
        description='Generate a synthetic shape-detection dataset in COCO '
        'and Ultralytics/YOLO layouts.')
    p.add_argument('--out', required=True, help='dataset folder')
    p.add_argument('--num-train', type=int, default=512)
    p.add_argument('--num-val', type=int, default=128)
    p.add_argument('--img-size', type=int, nargs='+', default=[160],
                   metavar='N', help='square size, or width height')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--classes', default='4',
                   help='number of classes (1-6) or comma-separated names '
                   f'from {",".join(synthetic.SHAPES)}')
    p.add_argument('--min-objects', type=int, default=defaults.min_objects)
    p.add_argument('--max-objects', type=int, default=defaults.max_objects)
    p.add_argument('--min-size', type=float, default=defaults.min_size,
                   help='smallest object long side in pixels')
    p.add_argument('--max-size', type=float, default=None,
                   help='largest object long side (default: 0.45 x the '
                   'shorter image side)')
    p.add_argument('--max-aspect', type=float, default=defaults.max_aspect)
    p.add_argument('--max-rotation', type=float,
                   default=defaults.max_rotation)
    p.add_argument('--min-visible', type=float, default=defaults.min_visible,
                   help='smallest visible fraction of an occluded object')
    p.add_argument('--min-box', type=int, default=defaults.min_box,
                   help='smallest visible box side in pixels')
    p.add_argument('--min-contrast', type=float,
                   default=defaults.min_contrast)
    p.add_argument('--max-distractors', type=int,
                   default=defaults.max_distractors)
    p.add_argument('--noise-std', type=float, default=defaults.noise_std)
    p.add_argument('--format', dest='img_format', default='jpg',
                   choices=['jpg', 'png'])
    p.add_argument('--jpeg-quality', type=int, default=95)
    p.add_argument('--preview', default=None, metavar='PNG',
                   help='also save the first train images with their boxes')
    args = p.parse_args(argv)
    if len(args.img_size) > 2:
        p.error('--img-size: give N or W H')
    return args


def save_preview(path: str, cfg: synthetic.SyntheticConfig, seed: int,
                 num: int = 4, scale: int = 2) -> None:
    """Save the first ``num`` train images side by side with their boxes."""
    import cv2
    import numpy as np
    tiles = []
    for index in range(num):
        s = synthetic.render_sample(cfg, seed, 'train', index)
        tiles.append(synthetic.draw_boxes(s.image, s.bboxes, s.labels,
                                          cfg.classes, scale))
    if not cv2.imwrite(path, np.concatenate(tiles, 1)):
        raise OSError(f'--preview: could not write {path}')


def main(argv: Optional[List[str]] = None) -> synthetic.SyntheticDataset:
    args = parse_args(argv)
    classes = int(args.classes) if args.classes.isdigit() else args.classes
    img_size = args.img_size[0] if len(args.img_size) == 1 \
        else tuple(args.img_size)
    cfg_kwargs = dict(
        img_size=img_size, classes=classes, min_objects=args.min_objects,
        max_objects=args.max_objects, min_size=args.min_size,
        max_size=args.max_size, max_aspect=args.max_aspect,
        max_rotation=args.max_rotation, min_visible=args.min_visible,
        min_box=args.min_box, min_contrast=args.min_contrast,
        max_distractors=args.max_distractors, noise_std=args.noise_std)
    start = time.perf_counter()
    ds = synthetic.make_synthetic_dataset(
        args.out, num_train=args.num_train, num_val=args.num_val,
        seed=args.seed, img_format=args.img_format,
        jpeg_quality=args.jpeg_quality, **cfg_kwargs)
    seconds = time.perf_counter() - start
    counts = ds.meta['counts']
    print(f'{"Reused" if ds.reused else "Wrote"} {ds.root} '
          f'({seconds:.1f} s), classes: {", ".join(ds.classes)}')
    for split in synthetic.SPLITS:
        print(f'  {split}: {counts[split]["images"]} images, '
              f'{counts[split]["instances"]} instances')
        print(f'    images:      {ds.img_dirs[split]}')
        print(f'    COCO:        {ds.ann_files[split]}')
        print(f'    YOLO labels: {ds.label_dirs[split]}')
    print(f'  YOLO data.yaml: {ds.data_yaml}')
    if args.preview:
        save_preview(args.preview, synthetic.SyntheticConfig(**cfg_kwargs),
                     args.seed)
        print(f'  preview: {args.preview}')
    return ds


if __name__ == '__main__':
    main()
