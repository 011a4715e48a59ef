"""Checking one split of a dataset: a YOLO split (images, label files) or a COCO split (a JSON and its images).

Counts images, label files (YOLO) or annotations (COCO), instances per class, background images and tiny
boxes (a side under 4 and under 8 px, in pixels of the decoded image), and records the problems of
:mod:`.check_problems`, each naming the file (and row).
"""
import os
import os.path as osp
from collections import defaultdict
from typing import Dict, List, Sequence

import numpy as np

from ..datasets import yolo_format as yf
from ..datasets.coco_api import COCOFormatError, load_coco_json
from ..datasets.image_size import describe_size_mismatch, read_image_size
from .check_problems import (BAD_ANNOTATIONS, BOX_OUTSIDE, BOX_UNDER_1PX, CLASS_NOT_IN_FILE, CROWD, MISSING_IMAGE,
                             NO_ANNOTATIONS, NO_LABEL, NOT_TEXT, ORPHAN, OTHER_CATEGORY, ROUNDING_PX, SIZE_MISMATCH,
                             SplitSource, SplitStats, image_problem_kind, where_rows)


def check_yolo_split(src: SplitSource) -> SplitStats:
    """Check one split in the reference's layout (images, label files, orphans)."""
    stats = SplitStats(src)
    missing: List[str] = []
    try:
        images = yf.list_images(src.sources, missing)
    except FileNotFoundError as e:
        stats.add(MISSING_IMAGE, str(e))
        return stats
    for entry in missing:  # named by a .txt list, skipped by the dataset
        stats.add(MISSING_IMAGE, entry)
    for path in images:
        check_yolo_image(path, stats)
    expected = {yf.img2label_path(p) for p in images}
    for orphan in orphan_labels(src.sources, expected):
        stats.add(ORPHAN, f'{orphan}: no image {osp.splitext(osp.basename(orphan))[0]}.* in the split')
    return stats


def check_yolo_image(path: str, stats: SplitStats) -> None:
    """Check one image and its label file; count it when the loader would use it."""
    stats.images += 1
    size, reason = yf.verify_image(path)
    if size is None:
        stats.add(image_problem_kind(reason), f'{path}: {reason}')
    label_path = yf.img2label_path(path)
    try:
        rows = yf.read_label_file(label_path, len(stats.source.names))
    except ValueError as e:
        stats.add(NOT_TEXT, str(e))
        stats.label_files += 1
        stats.skipped += 1
        return
    if rows is None:
        if size is not None:
            stats.add(NO_LABEL, f'{path}: no {label_path}')
    else:
        stats.label_files += 1
        for kind, line in where_rows(label_path, rows.errors + rows.warnings):
            stats.add(kind, line)
    if size is None or (rows is not None and rows.errors):
        stats.skipped += 1
        return
    if rows is None:
        stats.count_boxes([], np.zeros((0, 2)))
    else:
        stats.count_boxes(rows.classes, rows.boxes[:, 2:] * np.asarray(size, dtype=np.float64))


def orphan_labels(sources: Sequence[str], expected: set) -> List[str]:
    """Label files under the label folders of the split's image folders that no image uses.

    Only folder sources are searched (``.txt`` lists often share a label
    folder between splits).
    """
    orphans = []
    for src in sources:
        if not osp.isdir(src):
            continue
        label_dir = osp.dirname(yf.img2label_path(osp.join(src, 'x.jpg')))
        for folder, _, files in os.walk(label_dir):
            orphans += [osp.join(folder, f) for f in files
                        if f.endswith('.txt') and osp.join(folder, f) not in expected]
    return sorted(set(orphans))


# ----------------------------------------------------------------------------- COCO
def check_coco_split(src: SplitSource) -> SplitStats:
    """Check one COCO split: the file, every image (size as decoded) and box."""
    try:
        coco = load_coco_json(src.ann_file)
    except (FileNotFoundError, COCOFormatError) as e:
        stats = SplitStats(src)
        stats.add(BAD_ANNOTATIONS, str(e))
        return stats
    by_id = sorted(coco['categories'], key=lambda c: c['id'])
    src.names = tuple(src.classes or (c['name'] for c in by_id))
    cls_of = {c['id']: src.names.index(c['name']) for c in by_id if c['name'] in src.names}
    stats = SplitStats(src)
    anns_of: Dict[int, List[dict]] = defaultdict(list)
    for ann in coco['annotations']:
        anns_of[ann['image_id']].append(ann)
    stats.label_files = len(coco['annotations'])
    for name in src.names:
        if name not in {c['name'] for c in by_id}:
            stats.add(CLASS_NOT_IN_FILE, f'{src.ann_file}: class {name!r} of the config is not one of its categories '
                      f'{[c["name"] for c in by_id]} (CheckedCocoDataset stops on it)')
    for cat in by_id:
        if cat['id'] not in cls_of:
            n = sum(a['category_id'] == cat['id'] for a in coco['annotations'])
            stats.add(OTHER_CATEGORY, f"{src.ann_file}: category id {cat['id']} {cat['name']!r} ({n} boxes): "
                      f'not in the classes {list(src.names)}, its boxes are not used')
    for img in coco['images']:
        check_coco_image(img, anns_of[img['id']], cls_of, stats)
    return stats


def check_coco_image(img: dict, anns: List[dict], cls_of: Dict[int, int], stats: SplitStats) -> None:
    """Check one COCO image entry: the file, its decoded size, its boxes."""
    stats.images += 1
    path = osp.join(stats.source.img_dir, img['file_name'])
    where = f"{stats.source.ann_file}: image id {img['id']} ({img['file_name']})"
    size, reason = yf.verify_image(path)
    if size is None:
        stats.add(image_problem_kind(reason), f'{path}: {reason}')
        stats.skipped += 1
        return
    recorded = (img['width'], img['height'])
    if tuple(size) != recorded:
        stats.add(SIZE_MISMATCH, describe_size_mismatch(path, recorded, size, read_image_size(path)[2]))
    classes, wh = [], []
    for ann in anns:
        x, y, w, h = ann['bbox']
        ann_where = f"{stats.source.ann_file}: annotation id {ann['id']} (image {img['file_name']})"
        if ann['iscrowd']:
            stats.add(CROWD, ann_where)
            continue
        if ann['category_id'] not in cls_of:
            continue
        if w < 1 or h < 1:
            stats.add(BOX_UNDER_1PX, f'{ann_where}: bbox {ann["bbox"]}')
            continue
        if max(-x, -y, x + w - recorded[0], y + h - recorded[1]) > ROUNDING_PX:
            stats.add(BOX_OUTSIDE, f'{ann_where}: bbox {ann["bbox"]} on a {recorded[0]}x{recorded[1]} image')
        classes.append(cls_of[ann['category_id']])
        wh.append((w, h))
    if not classes:
        stats.add(NO_ANNOTATIONS, f'{where}: no box')
    stats.count_boxes(classes, np.asarray(wh, dtype=np.float64).reshape(-1, 2))


# ----------------------------------------------------------------------------- inputs
