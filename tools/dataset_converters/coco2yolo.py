"""Convert a COCO detection JSON to the Ultralytics (YOLO) layout, one split per run.

Example (two runs into the same folder give one ``data.yaml`` with both splits)::

    python tools/dataset_converters/coco2yolo.py annotations/instances_train.json images/train out --split train
    python tools/dataset_converters/coco2yolo.py annotations/instances_val.json images/val out --split val

writes ``OUT_DIR/images/<split>/<file_name>`` (symbolic links to the images,
or copies with ``--copy``), ``OUT_DIR/labels/<split>/<file_name stem>.txt``
(``class cx cy w h``, normalised, one row per box; an empty file for an image
without boxes) and ``OUT_DIR/data.yaml`` (``path: .``, the split folders,
``nc``, ``names``). A ``data.yaml`` already there is merged: its ``names``
must equal this file's classes (else an error), the split is added.

The conventions (class order, box normalisation, what is taken out before
reading) are those of :mod:`convnextv2_yolo.dataset_tools.coco_to_yolo`
(docs/dataset_tools.md).

Not converted, and reported at the end: crowd annotations (``iscrowd`` 1:
YOLO labels have no ignore regions), zero-area boxes, boxes entirely outside
the image, missing or unreadable images, a second image entry with the same
file name. Converted with a note: boxes partly outside the image (clipped).
Exit status 0 on success, 1 with ``error: ...`` on stderr for a malformed
JSON, unknown ``--classes``, a ``data.yaml`` with other names, or an output
split folder that is not empty (``--overwrite`` replaces it).
"""
import argparse
import os.path as osp
import sys
from typing import List, Optional

from convnextv2_yolo.dataset_tools.coco_to_yolo import ConversionError, convert
from convnextv2_yolo.datasets import yolo_format as yf
from convnextv2_yolo.datasets.coco_api import COCOFormatError


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Convert a COCO detection JSON to the Ultralytics/YOLO layout (images/<split>/, '
        'labels/<split>/*.txt, data.yaml). Run once per split into the same OUT_DIR to build one data.yaml. '
        'See docs/dataset_tools.md.')
    parser.add_argument('ann_file', metavar='ANN_JSON', help='COCO detection JSON')
    parser.add_argument('img_dir', metavar='IMG_DIR', help="folder the JSON's file_name entries are relative to")
    parser.add_argument('out_dir', metavar='OUT_DIR', help='output dataset folder')
    parser.add_argument('--split', default='train', choices=yf.SPLITS, help='split to write (default: train)')
    parser.add_argument('--classes', nargs='+', default=None, metavar='NAME',
                        help='class order by category name (default: the categories sorted by id); '
                        'other categories are left out')
    parser.add_argument('--copy', action='store_true',
                        help='copy the images (default: absolute symbolic links to them)')
    parser.add_argument('--overwrite', action='store_true',
                        help="replace the split's images/ and labels/ folders when they are not empty")
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> int:
    """Command line; exit code 0 on success, 1 with ``error: ...`` on stderr for bad input."""
    args = parse_args(argv)
    try:
        counts, report = convert(args.ann_file, args.img_dir, args.out_dir, args.split, args.classes,
                                 args.copy, args.overwrite)
    except (FileNotFoundError, COCOFormatError, ConversionError, OSError) as e:
        print(f'error: {e}', file=sys.stderr)
        return 1
    print(f"{args.split}: {counts['images']} images ({counts['backgrounds']} without boxes), {counts['boxes']} "
          f"boxes -> {osp.join(args.out_dir, 'labels', args.split)}; classes {counts['names']}; "
          f"{counts['data_yaml']}")
    print(report.format())
    return 0


if __name__ == '__main__':
    sys.exit(main())
