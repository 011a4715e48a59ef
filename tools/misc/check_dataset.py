"""Check a detection dataset before training: counts, problems, plots.

Example::

    python tools/misc/check_dataset.py data/license_plates/data.yaml
    python tools/misc/check_dataset.py configs/custom/my_config.py --splits train val --out-dir work_dirs/check

The argument is the reference's ``data.yaml`` or a config whose
``train_dataloader`` / ``val_dataloader`` / ``test_dataloader`` datasets are
``YOLODataset`` (``data_yaml`` + ``split``, or an image folder / list) or
``CocoDataset`` / ``CheckedCocoDataset`` (``ann_file`` + ``data_prefix.img``),
possibly inside wrappers (``RepeatDataset``, ``ConcatDataset``...).

Per split it counts images, label files (YOLO) or annotations (COCO),
instances per class, background images and tiny boxes, and reports problems
by kind (errors, warnings, notes; kinds in
:mod:`convnextv2_yolo.dataset_tools.check_problems`), each naming the file
(and row). Exit status 1 when it finds errors.

Writes ``<split>_classes.png`` (instances per class), ``<split>_box_sizes.png``
(box width vs height in px, by class) and ``summary.json`` into ``--out-dir``
(default ``work_dirs/check_dataset/<name>/``) and prints a report: a table per
split, then the problems with file:row, at most 20 per kind (with counts).
See docs/dataset_tools.md.
"""
import argparse
import sys
from typing import List, Optional

from convnextv2_yolo.dataset_tools.check_dataset import check
from convnextv2_yolo.datasets import yolo_format as yf


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Check a detection dataset (a data.yaml, or a config with YOLODataset / COCO datasets): '
        'counts, problems by kind, class and box-size plots. Exit status 1 when it finds errors. '
        'See docs/dataset_tools.md.')
    parser.add_argument('target', metavar='CONFIG_OR_DATA_YAML', help='a data.yaml or a config file (.py)')
    parser.add_argument('--out-dir', default=None,
                        help='folder for the plots and summary.json (default: work_dirs/check_dataset/<name>/)')
    parser.add_argument('--splits', nargs='+', choices=yf.SPLITS, default=None,
                        help='splits to check (default: all present)')
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> int:
    """Command line: the report on stdout; exit status 1 on errors (or unreadable input, with ``error: ...``)."""
    args = parse_args(argv)
    try:
        summary, text = check(args.target, args.out_dir, args.splits)
    except (FileNotFoundError, yf.DataYamlError, ValueError, OSError) as e:
        print(f'error: {e}', file=sys.stderr)
        return 1
    print(text)
    return 1 if summary['errors'] else 0


if __name__ == '__main__':
    sys.exit(main())
