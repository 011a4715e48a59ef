"""Convert an Ultralytics (YOLO) dataset to COCO detection JSON, one file per split.

Example::

    python tools/dataset_converters/yolo2coco.py data/license_plates/data.yaml \\
        data/license_plates_coco [--splits train val] [--copy-images]

writes ``OUT_DIR/annotations/instances_<split>.json``. The dataset is read as
the reference reads it (:mod:`convnextv2_yolo.datasets.yolo_format`): the
yaml's ``path`` and splits, images sorted by path, the label of
``.../images/x.jpg`` at ``.../labels/x.txt``.

The conventions (category and image ids, boxes, image roots) are those of
:mod:`convnextv2_yolo.dataset_tools.yolo_to_coco` (docs/dataset_tools.md).

Not converted, and reported at the end with the file (and row): unreadable,
truncated or too small images; images whose label file has error rows (the
reference skips such images too) or is not text. Converted with a note:
coordinates slightly outside [0, 1] (clipped), duplicate rows (dropped).
Exit status 0 on success (the report may list skipped images), 1 with
``error: ...`` on stderr for a bad yaml, a missing split or an unwritable
output.
"""
import argparse
import sys
from typing import List, Optional

from convnextv2_yolo.dataset_tools.yolo_to_coco import convert, summary
from convnextv2_yolo.datasets import yolo_format as yf


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Convert an Ultralytics/YOLO dataset (data.yaml + labels/*.txt) to COCO detection JSON '
        '(OUT_DIR/annotations/instances_<split>.json). See docs/dataset_tools.md.')
    parser.add_argument('data_yaml', metavar='DATA_YAML', help="the dataset's data.yaml")
    parser.add_argument('out_dir', metavar='OUT_DIR', help='output folder')
    parser.add_argument('--splits', nargs='+', choices=yf.SPLITS, default=None,
                        help='splits to convert (default: every split of the yaml)')
    parser.add_argument('--copy-images', action='store_true',
                        help='copy the images to OUT_DIR/images/<split>/ (default: file_name refers to them '
                        'in place, relative to the root printed and recorded in info.image_root)')
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> int:
    """Command line; exit code 0 on success, 1 with ``error: ...`` on stderr for bad input."""
    args = parse_args(argv)
    try:
        paths, cocos, report = convert(args.data_yaml, args.out_dir, args.splits, args.copy_images)
    except (FileNotFoundError, yf.DataYamlError, OSError) as e:
        print(f'error: {e}', file=sys.stderr)
        return 1
    print(summary(paths, cocos, report))
    return 0


if __name__ == '__main__':
    sys.exit(main())
