"""Convert an Ultralytics (YOLO) dataset to COCO detection JSON, one file per split.

The dataset is read as the reference reads it (:mod:`convnextv2_yolo.datasets.yolo_format`): the
yaml's ``path`` and splits, images sorted by path, the label of ``.../images/x.jpg`` at
``.../labels/x.txt``. The command line is ``tools/dataset_converters/yolo2coco.py``.

Conventions (docs/dataset_tools.md):

- categories: ids ``1..nc`` in the yaml's ``names`` order, with its names;
- images: ``id`` = the image's position in the split's sorted image list
  (``YOLODataset``'s ``img_id``; a skipped image leaves its id unused),
  ``width`` / ``height`` as decoded (EXIF orientation applied),
  ``file_name`` relative to the split's image root: the folder common to the
  split's sources (in place, the default; recorded in the JSON's
  ``info.image_root``) or ``OUT_DIR/images/<split>/`` with ``--copy-images``;
- annotations: ids from 1; ``bbox`` = ``[x1, y1, x2 - x1, y2 - y1]`` in pixels
  with ``x1 = (cx - w / 2) * width`` etc. (the corners ``YOLODataset`` and
  mmdet's ``CocoMetric`` use), ``area`` = bbox width x height, ``iscrowd`` 0;
  a polygon row becomes its bounding box (no ``segmentation`` is written: the
  files are for detection);
- images without objects (no label file, or an empty one) are kept, without
  annotations.

Not converted, and reported at the end with the file (and row): unreadable,
truncated or too small images; images whose label file has error rows (the
reference skips such images too) or is not text. Converted with a note:
coordinates slightly outside [0, 1] (clipped), duplicate rows (dropped).
"""
import json
import os
import os.path as osp
import re
import shutil
from typing import Dict, List, Optional, Sequence, Tuple

from ..datasets import yolo_format as yf
from .conversion_report import ConversionReport

SKIPPED_UNREADABLE = 'unreadable image (not converted)'
SKIPPED_LABEL_ERRORS = 'label file with error rows (image not converted)'
SKIPPED_NOT_TEXT = 'label file is not text (image not converted)'
SKIPPED_MISSING = 'image named by a list but not found (not converted)'
NOTE_NO_AREA = 'rows whose box has no area, dropped (converted without them)'
NOTE_CLIPPED = 'coordinates slightly outside [0, 1], clipped (converted)'
NOTE_DUPLICATE = 'duplicate rows, dropped (converted without them)'
_ROW = re.compile(r'^row (\d+): (.*)$')


def row_messages(path: str, messages: Sequence[str]) -> List[str]:
    """``path:row: reason`` for yolo_format's ``row k: reason`` messages (others: ``path: message``)."""
    lines = []
    for msg in messages:
        m = _ROW.match(msg)
        lines.append(f'{path}:{m.group(1)}: {m.group(2)}' if m else f'{path}: {msg}')
    return lines


def image_root(sources: Sequence[str], images: Sequence[str]) -> str:
    """The folder that ``file_name`` is relative to: common to the split's folders and images.

    Args:
        sources (Sequence[str]): The split's sources (folders or ``.txt`` lists).
        images (Sequence[str]): The split's images (absolute).

    Returns:
        str: An absolute folder.
    """
    folders = [s for s in sources if osp.isdir(s)] + [osp.dirname(p) for p in images]
    if not folders:  # lists without a single image
        folders = [osp.dirname(s) for s in sources]
    return osp.commonpath(folders)


def pixel_box(box: Sequence[float], width: int, height: int) -> Tuple[List[float], float]:
    """COCO ``[x, y, w, h]`` and area of a normalised ``cx, cy, w, h`` box on a ``width x height`` image.

    The corners are computed first (``x1 = (cx - w / 2) * width``...), as
    ``YOLODataset`` does, so that the box and area are those mmdet's
    ``CocoMetric`` derives from that dataset's ``[x1, y1, x2, y2]``.
    """
    cx, cy, w, h = (float(v) for v in box)
    x1, y1 = (cx - w / 2) * width, (cy - h / 2) * height
    x2, y2 = (cx + w / 2) * width, (cy + h / 2) * height
    bbox = [x1, y1, x2 - x1, y2 - y1]
    return bbox, bbox[2] * bbox[3]


def convert_split(data: yf.DataYaml, split: str, out_dir: str, copy_images: bool,
                  report: ConversionReport) -> dict:
    """Convert one split to a COCO dict (and copy its images with ``copy_images``).

    Args:
        data (DataYaml): The parsed yaml.
        split (str): ``train``, ``val`` or ``test``.
        out_dir (str): Output folder (images go to ``out_dir/images/<split>``).
        copy_images (bool): Copy the images instead of referencing them in place.
        report (ConversionReport): Collects what was skipped or changed.

    Returns:
        dict: The COCO detection dict (``info.image_root`` names the folder
        the ``file_name`` entries are relative to).

    Raises:
        DataYamlError: the yaml has no such split.
        FileNotFoundError: a split source, or an image a list names, is missing.
    """
    missing: List[str] = []
    images = data.images(split, missing)
    for entry in missing:
        report.add(SKIPPED_MISSING, entry)
    src_root = image_root(data.sources(split), images)
    dst_root = osp.join(osp.abspath(out_dir), 'images', split) if copy_images else src_root
    coco = dict(info=dict(description=f'{data.file} split {split!r}, converted by yolo2coco.py',
                          data_yaml=data.file, split=split, image_root=dst_root),
                licenses=[], images=[], annotations=[],
                categories=[dict(id=i + 1, name=n, supercategory='none') for i, n in enumerate(data.names)])
    num_polygons = 0
    for img_id, path in enumerate(images):
        entry, anns, polygons = convert_image(path, img_id, data.names, report)
        if entry is None:
            continue
        num_polygons += polygons
        entry['file_name'] = osp.relpath(path, src_root)
        coco['images'].append(entry)
        for ann in anns:
            coco['annotations'].append(dict(id=len(coco['annotations']) + 1, **ann))
        if copy_images:
            dst = osp.join(dst_root, entry['file_name'])
            os.makedirs(osp.dirname(dst), exist_ok=True)
            shutil.copy2(path, dst)
    coco['info']['polygon_rows_as_boxes'] = num_polygons
    return coco


def convert_image(path: str, img_id: int, names: Sequence[str],
                  report: ConversionReport) -> Tuple[Optional[dict], List[dict], int]:
    """The COCO image entry and annotations of one image, or ``(None, [], 0)`` when it cannot be converted.

    Returns:
        tuple: image entry (without ``file_name``), annotations (without
        ``id``), number of polygon rows.
    """
    size, reason = yf.verify_image(path)
    if size is None:
        report.add(SKIPPED_UNREADABLE, f'{path}: {reason}')
        return None, [], 0
    label_path = yf.img2label_path(path)
    try:
        rows = yf.read_label_file(label_path, len(names))
    except ValueError as e:
        report.add(SKIPPED_NOT_TEXT, str(e))
        return None, [], 0
    if rows is not None and rows.errors:
        for line in row_messages(label_path, rows.errors):
            report.add(SKIPPED_LABEL_ERRORS, line)
        return None, [], 0
    width, height = size
    entry = dict(id=img_id, width=width, height=height)
    if rows is None:  # no label file: a background image
        return entry, [], 0
    for line in row_messages(label_path, rows.warnings):
        kind = NOTE_DUPLICATE if 'duplicate' in line else NOTE_NO_AREA if 'no area' in line else NOTE_CLIPPED
        report.add(kind, line)
    anns = []
    for cls, box in zip(rows.classes.tolist(), rows.boxes):
        bbox, area = pixel_box(box, width, height)
        anns.append(dict(image_id=img_id, category_id=cls + 1, bbox=bbox, area=area, iscrowd=0))
    return entry, anns, rows.num_polygons


def write_json(obj: dict, path: str) -> None:
    """Write ``obj`` as JSON (floats at full precision), creating the folder."""
    os.makedirs(osp.dirname(path), exist_ok=True)
    tmp = path + '.tmp'
    with open(tmp, 'w', encoding='utf-8') as f:
        json.dump(obj, f)
    os.replace(tmp, path)


def convert(data_yaml: str, out_dir: str, splits: Optional[Sequence[str]] = None,
            copy_images: bool = False) -> Tuple[Dict[str, str], Dict[str, dict], ConversionReport]:
    """Convert the splits of a ``data.yaml`` to ``out_dir/annotations/instances_<split>.json``.

    Args:
        data_yaml (str): The dataset's yaml.
        out_dir (str): Output folder.
        splits (Sequence[str], optional): Splits to convert (default: all the
            yaml has).
        copy_images (bool): Copy images to ``out_dir/images/<split>/``.

    Returns:
        tuple: ``{split: json path}``, ``{split: COCO dict}`` and the report.

    Raises:
        FileNotFoundError: the yaml, a split folder or a listed image is missing.
        DataYamlError: the yaml is malformed or lacks a requested split.
    """
    data = yf.load_data_yaml(data_yaml)
    splits = list(splits) if splits else data.declared
    for split in splits:  # a missing split (or split path) is reported before anything is written
        data.sources(split)
    report = ConversionReport()
    paths, cocos = {}, {}
    for split in splits:
        cocos[split] = convert_split(data, split, out_dir, copy_images, report)
        paths[split] = osp.join(osp.abspath(out_dir), 'annotations', f'instances_{split}.json')
        write_json(cocos[split], paths[split])
    return paths, cocos, report


def summary(paths: Dict[str, str], cocos: Dict[str, dict], report: ConversionReport) -> str:
    """Per split: images, backgrounds, boxes, output file and image root; then a dataset config hint."""
    lines = []
    for split, coco in cocos.items():
        with_boxes = {a['image_id'] for a in coco['annotations']}
        backgrounds = sum(img['id'] not in with_boxes for img in coco['images'])
        polygons = coco['info']['polygon_rows_as_boxes']
        lines.append(f"{split}: {len(coco['images'])} images ({backgrounds} without objects), "
                     f"{len(coco['annotations'])} boxes"
                     + (f' ({polygons} from polygon rows)' if polygons else '') + f' -> {paths[split]}')
        lines.append(f"  file_name relative to {coco['info']['image_root']}")
    names = tuple(c['name'] for c in next(iter(cocos.values()))['categories'])
    split, coco = next(iter(cocos.items()))
    lines.append(f"dataset config, e.g. for {split}: dict(type='CheckedCocoDataset', metainfo=dict(classes={names}), "
                 f"ann_file='{paths[split]}', data_prefix=dict(img='{coco['info']['image_root']}/'))")
    lines.append(report.format())
    return '\n'.join(lines)
