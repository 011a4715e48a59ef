"""Convert a COCO detection JSON to the Ultralytics (YOLO) layout, one split per call.

The command line is ``tools/dataset_converters/coco2yolo.py``.

Conventions (docs/dataset_tools.md):

- classes: the categories in the order of their ids (class index = rank, any
  ids, contiguous or not), or the ``--classes`` order, by name; boxes of
  other categories are reported and left out;
- boxes are normalised by the image's recorded ``width`` / ``height`` (the
  frame the boxes were drawn in); a recorded size that differs from the
  decoded image (EXIF orientation) is reported;
- the JSON is read with ``check_coco_dict`` (a missing ``area`` / ``iscrowd``
  is fine; a malformed field is an error naming the id and field), after
  taking out, with a report, what a conversion can skip: annotations of
  unknown image or category ids, and annotations without ``bbox`` (the
  bounding box of their ``segmentation``, polygon or RLE, is used when there
  is one).

Not converted, and reported at the end: crowd annotations (``iscrowd`` 1:
YOLO labels have no ignore regions), zero-area boxes, boxes entirely outside
the image, missing or unreadable images, a second image entry with the same
file name. Converted with a note: boxes partly outside the image (clipped).
"""
import json
import os
import os.path as osp
import shutil
from collections import defaultdict
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import yaml

from ..datasets import yolo_format as yf
from ..datasets.coco_api import COCOFormatError, check_coco_dict
from ..datasets.image_size import describe_size_mismatch, read_image_size
from .conversion_report import ConversionReport

SKIP_UNKNOWN_IMAGE = 'annotations of an unknown image id (not converted)'
SKIP_UNKNOWN_CATEGORY = 'annotations of an unknown category id (not converted)'
NOTE_BBOX_FROM_SEGMENTATION = 'annotations without bbox: the bounding box of their segmentation is used'
SKIP_NO_BOX = 'annotations without bbox nor usable segmentation (not converted)'
SKIP_CROWD = 'crowd annotations, iscrowd=1 (YOLO labels have no crowd regions; not converted)'
SKIP_OTHER_CLASS = 'annotations of a category not in --classes (not converted)'
SKIP_ZERO_AREA = 'zero-area boxes (not converted)'
SKIP_OUTSIDE = 'boxes entirely outside the image (not converted)'
NOTE_CLIPPED = 'boxes partly outside the image, clipped to it (converted)'
SKIP_IMAGE = 'images missing, unreadable or not of an image type (not converted)'
SKIP_SAME_NAME = 'images with a file name already converted (not converted)'
NOTE_SIZE = 'recorded image size differs from the decoded image (labels normalised by the recorded size)'
# significant digits of the normalised coordinates written (1e-10 relative)
DIGITS = 10
# boxes outside the image by at most this (px) are float rounding: clipped without a note
ROUNDING_PX = 1e-6


class ConversionError(ValueError):
    """Input that cannot be converted at all (names the file and what is wrong)."""


def read_json(path: str) -> Any:
    """The parsed JSON file.

    Raises:
        FileNotFoundError: no such file.
        COCOFormatError: not JSON.
    """
    try:
        with open(path, encoding='utf-8') as f:
            return json.load(f)
    except FileNotFoundError:
        raise FileNotFoundError(f'annotation file not found: {path}') from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise COCOFormatError(f'{path} is not a COCO annotation file: {type(e).__name__}: {e}') from None


def segmentation_bbox(segmentation: Any) -> Optional[List[float]]:
    """``[x, y, w, h]`` of a COCO ``segmentation`` (polygons or RLE), or ``None`` when it has none.

    Polygons: the extent of their points. RLE (compressed or not): the
    extent of its pixels, by ``pycocotools.mask.toBbox``.
    """
    if isinstance(segmentation, list) and segmentation:
        try:
            points = np.concatenate([np.asarray(p, dtype=np.float64).reshape(-1, 2) for p in segmentation])
        except (TypeError, ValueError):
            return None
        if not len(points) or not np.isfinite(points).all():
            return None
        (x1, y1), (x2, y2) = points.min(0), points.max(0)
        return [float(x1), float(y1), float(x2 - x1), float(y2 - y1)]
    if isinstance(segmentation, dict) and 'counts' in segmentation and 'size' in segmentation:
        from pycocotools import mask as mask_utils
        try:
            rle = segmentation
            if isinstance(rle['counts'], list):
                rle = mask_utils.frPyObjects(rle, *rle['size'])
            return [float(v) for v in mask_utils.toBbox(rle)]
        except (TypeError, ValueError, KeyError):
            return None
    return None


def load_annotations(path: str, report: ConversionReport) -> Dict[str, Any]:
    """Read a COCO JSON, take out (with a report) what a conversion can skip, check the rest.

    Annotations of unknown image / category ids are dropped; an annotation
    without ``bbox`` gets its segmentation's bounding box, or is dropped
    when it has none. Everything else goes through ``check_coco_dict``.

    Raises:
        FileNotFoundError: no such file.
        COCOFormatError: not JSON, or malformed COCO (naming ids and fields).
    """
    dataset = read_json(path)
    if not (isinstance(dataset, dict) and all(isinstance(dataset.get(k), list)
                                              for k in ('images', 'annotations', 'categories'))):
        check_coco_dict(dataset, path)  # raises, naming the problem
    check_coco_dict(dict(dataset, annotations=[]), path)  # images and categories first
    img_ids = {img['id'] for img in dataset['images']}
    cat_ids = {cat['id'] for cat in dataset['categories']}
    kept = []
    for ann in dataset['annotations']:
        if not isinstance(ann, dict):  # check_coco_dict names it below
            kept.append(ann)
            continue
        where = f"{path}: annotation id {ann.get('id')!r}"
        if ann.get('image_id') not in img_ids:
            report.add(SKIP_UNKNOWN_IMAGE, f"{where}: image_id {ann.get('image_id')!r}")
            continue
        if ann.get('category_id') not in cat_ids:
            report.add(SKIP_UNKNOWN_CATEGORY, f"{where}: category_id {ann.get('category_id')!r}")
            continue
        if ann.get('bbox') is None:
            bbox = segmentation_bbox(ann.get('segmentation'))
            if bbox is None:
                report.add(SKIP_NO_BOX, where)
                continue
            report.add(NOTE_BBOX_FROM_SEGMENTATION, f'{where}: bbox {[round(v, 2) for v in bbox]}')
            ann['bbox'] = bbox
        kept.append(ann)
    dataset['annotations'] = kept
    return check_coco_dict(dataset, path)


def class_mapping(categories: List[dict], classes: Optional[Sequence[str]],
                  path: str) -> Tuple[List[str], Dict[int, int]]:
    """Class names and ``category id -> class index``.

    Args:
        categories (list[dict]): The file's categories (checked).
        classes (Sequence[str], optional): Class names in the wanted order;
            default: the categories sorted by id.
        path (str): The file (for messages).

    Raises:
        ConversionError: ``classes`` repeats a name or names a category the
            file does not have.
    """
    by_name = {c['name']: c['id'] for c in categories}
    if not classes:
        ordered = sorted(categories, key=lambda c: c['id'])
        return [c['name'] for c in ordered], {c['id']: i for i, c in enumerate(ordered)}
    classes = list(classes)
    repeated = sorted({c for c in classes if classes.count(c) > 1})
    if repeated:
        raise ConversionError(f'--classes repeats {repeated}')
    unknown = [c for c in classes if c not in by_name]
    if unknown:
        raise ConversionError(f'--classes {unknown} are not categories of {path}; its categories are '
                              f'{list(by_name)}')
    return classes, {by_name[name]: i for i, name in enumerate(classes)}


def yaml_names(names: Any) -> Optional[List[str]]:
    """A ``names`` entry (list or index -> name mapping) as a list, ``None`` if it is neither."""
    if isinstance(names, dict):
        try:
            return [str(names[k]) for k in sorted(names, key=int)]
        except (TypeError, ValueError):
            return None
    return [str(n) for n in names] if isinstance(names, (list, tuple)) else None


def merged_data_yaml(path: str, names: List[str], split: str) -> Dict[str, Any]:
    """The ``data.yaml`` content with ``split`` added (an existing file is kept and extended).

    Raises:
        ConversionError: the existing yaml is unreadable or has other names.
    """
    data: Dict[str, Any] = {}
    if osp.isfile(path):
        try:
            with open(path, encoding='utf-8') as f:
                data = yaml.safe_load(f) or {}
        except yaml.YAMLError as e:
            raise ConversionError(f'{path} is not a readable yaml file: {e}') from None
        if not isinstance(data, dict):
            raise ConversionError(f'{path}: expected a mapping, got {type(data).__name__}')
        if 'names' in data and yaml_names(data['names']) != names:
            raise ConversionError(f"{path}: its 'names' {yaml_names(data['names']) or data['names']!r} differ "
                                  f'from the classes of this file {names}; pass --classes in its order, or '
                                  'convert into another OUT_DIR')
    data.update({'path': '.', split: f'images/{split}', 'nc': len(names), 'names': names})
    order = ['path', *yf.SPLITS, 'nc', 'names']
    return {**{k: data[k] for k in order if k in data}, **{k: v for k, v in data.items() if k not in order}}


def output_name(file_name: str) -> str:
    """The image's path under ``images/<split>/``: ``file_name`` normalised; its base name if it leaves the folder.

    A folder named ``images`` inside ``file_name`` (``valid/images/v0.jpg``, as ``yolo2coco.py`` writes for a
    split of several folders) becomes ``images_``: the reference finds a label by replacing the *last*
    ``/images/`` of the path, which must stay the ``images/<split>/`` one so that labels land in
    ``labels/<split>/``.
    """
    rel = osp.normpath(file_name)
    if osp.isabs(rel) or rel == '..' or rel.startswith('..' + os.sep):
        rel = osp.basename(rel)
    parts = rel.split(os.sep)
    return os.sep.join([p + '_' if p == 'images' else p for p in parts[:-1]] + parts[-1:])


def label_row(ann: dict, width: float, height: float, cls: Optional[int], where: str,
              report: ConversionReport) -> Optional[str]:
    """``class cx cy w h`` of one annotation (clipped to the image), or ``None`` (reported) if it is skipped."""
    if ann['iscrowd']:
        report.add(SKIP_CROWD, where)
        return None
    if cls is None:
        report.add(SKIP_OTHER_CLASS, f"{where}: category_id {ann['category_id']}")
        return None
    x, y, w, h = (float(v) for v in ann['bbox'])
    if w <= 0 or h <= 0:
        report.add(SKIP_ZERO_AREA, f'{where}: bbox {ann["bbox"]}')
        return None
    x1, y1, x2, y2 = max(x, 0.0), max(y, 0.0), min(x + w, width), min(y + h, height)
    if x2 <= x1 or y2 <= y1:
        report.add(SKIP_OUTSIDE, f'{where}: bbox {ann["bbox"]} on a {width}x{height} image')
        return None
    if max(x1 - x, y1 - y, x + w - x2, y + h - y2) > ROUNDING_PX:
        report.add(NOTE_CLIPPED, f'{where}: bbox {ann["bbox"]} on a {width}x{height} image')
    values = ((x1 + x2) / 2 / width, (y1 + y2) / 2 / height, (x2 - x1) / width, (y2 - y1) / height)
    return ' '.join([str(cls)] + [f'{v:.{DIGITS}g}' for v in values])


def check_image(src: str, img: dict, ann_file: str, report: ConversionReport) -> bool:
    """Whether the image can be converted (reports why not, and size mismatches)."""
    if not src.lower().endswith(yf.IMG_EXTENSIONS):
        report.add(SKIP_IMAGE, f'{src}: not an image type the reference lists ({", ".join(yf.IMG_EXTENSIONS)})')
        return False
    size, reason = yf.verify_image(src)
    if size is None:
        report.add(SKIP_IMAGE, f"{src} (image id {img['id']}): {reason}")
        return False
    if tuple(size) != (img['width'], img['height']):
        orientation = read_image_size(src)[2]
        report.add(NOTE_SIZE, f"{ann_file}: image id {img['id']}: " + describe_size_mismatch(
            src, (img['width'], img['height']), size, orientation))
    return True


def place_image(src: str, dst: str, copy: bool) -> None:
    """Link (absolute symbolic link) or copy ``src`` to ``dst``, replacing what is there."""
    os.makedirs(osp.dirname(dst), exist_ok=True)
    if osp.lexists(dst):
        os.remove(dst)
    if copy:
        shutil.copy2(src, dst)
    else:
        os.symlink(osp.abspath(src), dst)


def prepare_split_folders(out_dir: str, split: str, overwrite: bool) -> Tuple[str, str]:
    """``(images, labels)`` folders of the split, empty; existing content is an error unless ``overwrite``.

    Raises:
        ConversionError: a folder exists and is not empty (without ``overwrite``).
    """
    folders = osp.join(out_dir, 'images', split), osp.join(out_dir, 'labels', split)
    for folder in folders:
        if osp.isdir(folder) and os.listdir(folder):
            if not overwrite:
                raise ConversionError(f'{folder} is not empty: pass --overwrite to replace the {split!r} split, '
                                      'or choose another OUT_DIR')
            shutil.rmtree(folder)
        os.makedirs(folder, exist_ok=True)
    return folders


def convert(ann_file: str, img_dir: str, out_dir: str, split: str = 'train',
            classes: Optional[Sequence[str]] = None, copy: bool = False,
            overwrite: bool = False) -> Tuple[Dict[str, Any], ConversionReport]:
    """Convert one COCO JSON to ``out_dir/{images,labels}/<split>`` and (merge) ``out_dir/data.yaml``.

    Args:
        ann_file (str): COCO detection JSON.
        img_dir (str): Folder the ``file_name`` entries are relative to.
        out_dir (str): Output dataset folder.
        split (str): ``train``, ``val`` or ``test``.
        classes (Sequence[str], optional): Class order by name (default:
            categories by id).
        copy (bool): Copy images instead of linking them.
        overwrite (bool): Replace the split's existing output folders.

    Returns:
        tuple: Counts (``images``, ``backgrounds``, ``boxes``, ``data_yaml``,
        ``names``) and the report of what was skipped or changed.

    Raises:
        FileNotFoundError: ``ann_file`` or ``img_dir`` is missing.
        COCOFormatError: malformed JSON.
        ConversionError: bad ``classes``, a ``data.yaml`` with other names, a
            non-empty output split.
    """
    if split not in yf.SPLITS:
        raise ConversionError(f'split must be one of {yf.SPLITS}, got {split!r}')
    if not osp.isdir(img_dir):
        raise FileNotFoundError(f'image folder not found: {img_dir}')
    report = ConversionReport()
    dataset = load_annotations(ann_file, report)
    names, cls_of = class_mapping(dataset['categories'], classes, ann_file)
    yaml_path = osp.join(out_dir, 'data.yaml')
    data_yaml = merged_data_yaml(yaml_path, names, split)
    img_out, _ = prepare_split_folders(out_dir, split, overwrite)
    anns_of: Dict[int, List[dict]] = defaultdict(list)
    for ann in dataset['annotations']:
        anns_of[ann['image_id']].append(ann)
    done: Dict[str, int] = {}
    counts = dict(images=0, backgrounds=0, boxes=0)
    for img in dataset['images']:
        rel, src = output_name(img['file_name']), osp.join(img_dir, img['file_name'])
        if rel in done:
            report.add(SKIP_SAME_NAME, f"{ann_file}: image id {img['id']}: {rel} (already image id {done[rel]})")
            continue
        if not check_image(src, img, ann_file, report):
            continue
        rows = [label_row(ann, img['width'], img['height'], cls_of.get(ann['category_id']),
                          f"{ann_file}: annotation id {ann['id']} (image {img['file_name']})", report)
                for ann in anns_of[img['id']]]
        rows = [r for r in rows if r is not None]
        dst = osp.join(img_out, rel)
        place_image(src, dst, copy)
        label_file = yf.img2label_path(dst)
        os.makedirs(osp.dirname(label_file), exist_ok=True)
        with open(label_file, 'w', encoding='utf-8') as f:
            f.write(''.join(r + '\n' for r in rows))
        done[rel] = img['id']
        counts['images'] += 1
        counts['backgrounds'] += not rows
        counts['boxes'] += len(rows)
    with open(yaml_path, 'w', encoding='utf-8') as f:
        yaml.safe_dump(data_yaml, f, sort_keys=False, allow_unicode=True)
    return dict(counts, data_yaml=osp.abspath(yaml_path), names=names), report
