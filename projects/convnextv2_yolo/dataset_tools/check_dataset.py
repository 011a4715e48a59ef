"""Check a detection dataset before training: counts, problems, plots (see docs/dataset_tools.md).

Per split (:mod:`.split_sources`) it counts and finds problems (:mod:`.check_splits`, kinds in
:mod:`.check_problems`); writes ``<split>_classes.png``, ``<split>_box_sizes.png`` and ``summary.json`` and
returns a text report (:mod:`.check_report`). The command line is ``tools/misc/check_dataset.py``.
"""
import json
import os
import os.path as osp
from dataclasses import replace
from typing import Any, Dict, Optional, Sequence, Tuple

from .check_problems import TINY_SIDES
from .check_report import plot_box_sizes, plot_classes, problems_text, split_table, summary_dict
from .check_splits import check_coco_split, check_yolo_split
from .split_sources import sources_from_config, sources_from_yaml


def default_name(target: str) -> str:
    """Output folder name: the config's / yaml's stem, the folder's name for a generic ``data.yaml``."""
    stem = osp.splitext(osp.basename(target))[0]
    if stem in ('data', 'dataset') and not target.endswith('.py'):
        return osp.basename(osp.dirname(osp.abspath(target))) or stem
    return stem


def check(target: str, out_dir: Optional[str] = None,
          splits: Optional[Sequence[str]] = None) -> Tuple[Dict[str, Any], str]:
    """Check a ``data.yaml`` or a config's datasets, write plots and ``summary.json``.

    Args:
        target (str): ``data.yaml`` or a config (``.py``).
        out_dir (str, optional): Output folder (default
            ``work_dirs/check_dataset/<name>``).
        splits (Sequence[str], optional): Splits (default: all present).

    Returns:
        tuple: The summary dict and the text report.

    Raises:
        FileNotFoundError, DataYamlError, ValueError: unreadable input.
    """
    if not osp.isfile(target):
        raise FileNotFoundError(f'no such file: {target}')
    sources = (sources_from_config(target, splits) if target.endswith('.py')
               else sources_from_yaml(target, splits))
    out_dir = out_dir or osp.join('work_dirs', 'check_dataset', default_name(target))
    os.makedirs(out_dir, exist_ok=True)
    all_stats, plots, checked = [], {}, {}
    for src in sources:
        key = (src.kind, tuple(src.sources), src.ann_file, src.img_dir, src.classes)
        if key in checked:  # the same data as an earlier split (val and test often are): its results
            stats = replace(checked[key], source=replace(src, names=checked[key].source.names),
                            same_as=checked[key].source.split)
        else:
            stats = checked[key] = check_yolo_split(src) if src.kind == 'yolo' else check_coco_split(src)
        all_stats.append(stats)
        plots[src.split] = [osp.join(out_dir, f'{src.split}_{kind}.png') for kind in ('classes', 'box_sizes')]
        plot_classes(stats, plots[src.split][0])
        plot_box_sizes(stats, plots[src.split][1])
    summary = summary_dict(target, all_stats, list(checked.values()), plots)
    summary_file = osp.join(out_dir, 'summary.json')
    with open(summary_file, 'w', encoding='utf-8') as f:
        json.dump(summary, f, indent=1)
    overall = summary['overall']
    text = '\n'.join([f'Dataset check of {osp.abspath(target)}']
                     + [split_table(s) for s in all_stats]
                     + [f"== all splits: {overall['images']} images, {overall['instances']} boxes: "
                        + ', '.join(f"{overall['tiny_boxes'][f'side_under_{side}px']} with a side < {side} px"
                                    for side in TINY_SIDES),
                        problems_text(all_stats),
                        f"errors: {summary['errors']}, warnings: {summary['warnings']}, notes: {summary['notes']}; "
                        f'plots and summary.json in {out_dir}'])
    return summary, text
