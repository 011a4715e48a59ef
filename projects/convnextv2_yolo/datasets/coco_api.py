"""COCO annotation files read with checks: every malformed field named, ``area``/``iscrowd`` filled in."""
import json
import logging
import math
from typing import Any, Dict, List, Optional

from mmdet.datasets.api_wrappers import COCO

# At most this many problems are spelled out in one error (the rest are counted).
MAX_LISTED_PROBLEMS = 10


class COCOFormatError(ValueError):
    """An annotation file is not valid COCO detection JSON (names the file, ids and fields)."""


def _is_number(value: Any) -> bool:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an integer beyond the float range (JSON allows 10**400)
        return False


def _is_id(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _where(kind: str, index: int, entry: Any) -> str:
    if isinstance(entry, dict) and 'id' in entry:
        return f'{kind} id {entry["id"]!r}'
    return f'{kind} #{index} (no id)'


def _check_unique_text(where: str, entry: dict, key: str, kind: str, seen: Dict[str, Any],
                       problems: List[str]) -> None:
    """Check that ``entry[key]`` is a non-empty string no earlier ``kind`` entry used (e.g. a category name)."""
    value = entry.get(key)
    if not isinstance(value, str) or not value:
        problems.append(f"{where}: field '{key}' must be a non-empty string, got {value!r}")
    elif value in seen:
        problems.append(f"{where}: field '{key}' {value!r} is also {kind} id {seen[value]!r}")
    else:
        seen[value] = entry.get('id')


def _check_entry(kind: str, index: int, entry: Any, seen_ids: set, problems: List[str]) -> Optional[str]:
    """Check that an image/annotation/category is an object with a new integer id.

    Returns how to name it in messages, or None when it is not an object.
    """
    where = _where(kind, index, entry)
    if not isinstance(entry, dict):
        problems.append(f'{where}: not an object')
        return None
    if not _is_id(entry.get('id')):
        problems.append(f"{where}: field 'id' must be an integer, got {entry.get('id')!r}")
    elif entry['id'] in seen_ids:
        problems.append(f"{where}: field 'id' is repeated")
    else:
        seen_ids.add(entry['id'])
    return where


def check_coco_dict(dataset: Any, path: str) -> Dict[str, Any]:
    """Validate and normalise a loaded COCO detection JSON in place.

    Missing ``area`` becomes the box's ``w * h`` (exports of labelling tools
    often omit it; mmdet's parser and pycocotools' evaluation need it) and a
    missing ``iscrowd`` becomes 0. Everything else that mmdet or pycocotools
    would trip over later is reported now, all problems in one error:

    - top level: a dict with ``images``, ``annotations``, ``categories`` lists;
    - categories: int ``id`` and str ``name``, both unique (a repeated name
      would make the class -> id mapping ambiguous);
    - images: unique int ``id``, unique str ``file_name``, positive ``width``
      and ``height``;
    - annotations: unique int ``id``; int ``image_id`` / ``category_id`` that
      exist in the file; ``bbox`` = 4 finite numbers ``[x, y, w, h]`` with
      ``w, h >= 0`` and finite ``x + w``, ``y + h`` and ``w * h``; ``area`` a
      finite number >= 0 (0 with a non-empty box is recomputed from the box,
      with a warning: mmdet's parser drops boxes of area 0); ``iscrowd`` 0 or 1.

    Args:
        dataset (Any): The parsed JSON.
        path (str): The file it came from (for messages).

    Returns:
        dict: ``dataset`` (normalised in place).

    Raises:
        COCOFormatError: naming ``path`` and, per problem, the image /
            annotation / category id and the field.
    """
    if not isinstance(dataset, dict):
        raise COCOFormatError(f'{path} is not a COCO annotation file: its top level is a '
                              f'{type(dataset).__name__}, not an object')
    missing = [k for k in ('images', 'annotations', 'categories') if k not in dataset]
    if missing:
        raise COCOFormatError(f'{path} is not a COCO detection annotation file: missing key(s) {missing}')
    for key in ('images', 'annotations', 'categories'):
        if not isinstance(dataset[key], list):
            raise COCOFormatError(f"{path}: '{key}' must be a list, got {type(dataset[key]).__name__}")

    problems: List[str] = []
    cat_ids = set()
    cat_names: Dict[str, Any] = {}
    for i, cat in enumerate(dataset['categories']):
        where = _check_entry('category', i, cat, cat_ids, problems)
        if where is not None:
            _check_unique_text(where, cat, 'name', 'category', cat_names, problems)

    img_ids = set()
    file_names: Dict[str, Any] = {}
    for i, img in enumerate(dataset['images']):
        where = _check_entry('image', i, img, img_ids, problems)
        if where is None:
            continue
        _check_unique_text(where, img, 'file_name', 'image', file_names, problems)
        for key in ('width', 'height'):
            if not _is_number(img.get(key)) or img[key] <= 0:
                problems.append(f"{where}: field '{key}' must be a positive number, got {img.get(key)!r}")

    ann_ids = set()
    zero_areas: List[Any] = []
    for i, ann in enumerate(dataset['annotations']):
        where = _check_entry('annotation', i, ann, ann_ids, problems)
        if where is None:
            continue
        for key, known, kind in (('image_id', img_ids, 'an image'), ('category_id', cat_ids, 'a category')):
            if not _is_id(ann.get(key)):
                problems.append(f"{where}: field '{key}' must be an integer, got {ann.get(key)!r}")
            elif ann[key] not in known:
                problems.append(f"{where}: field '{key}' {ann[key]!r} is not {kind} id of the file")
        bbox = ann.get('bbox')
        if not (isinstance(bbox, (list, tuple)) and len(bbox) == 4 and all(_is_number(v) for v in bbox)):
            problems.append(f"{where}: field 'bbox' must be 4 finite numbers [x, y, w, h], got {bbox!r}")
            bbox = None
        elif bbox[2] < 0 or bbox[3] < 0:
            problems.append(f"{where}: field 'bbox' has a negative width or height: {bbox!r}")
            bbox = None
        elif not all(map(math.isfinite, (float(bbox[0]) + float(bbox[2]), float(bbox[1]) + float(bbox[3]),
                                         float(bbox[2]) * float(bbox[3])))):
            problems.append(f"{where}: field 'bbox' is too large (its corners or area overflow): {bbox!r}")
            bbox = None
        if 'area' not in ann:
            if bbox is not None:
                ann['area'] = float(bbox[2]) * float(bbox[3])
        elif not _is_number(ann['area']) or ann['area'] < 0:
            problems.append(f"{where}: field 'area' must be a number >= 0, got {ann['area']!r}")
        elif ann['area'] == 0 and bbox is not None and bbox[2] * bbox[3] > 0:
            # some exporters write 0; mmdet's parser would drop the box silently
            ann['area'] = float(bbox[2]) * float(bbox[3])
            zero_areas.append(ann['id'])
        if 'iscrowd' not in ann:
            ann['iscrowd'] = 0
        elif ann['iscrowd'] not in (0, 1):
            problems.append(f"{where}: field 'iscrowd' must be 0 or 1, got {ann['iscrowd']!r}")

    if problems:
        listed = '\n  '.join(problems[:MAX_LISTED_PROBLEMS])
        more = len(problems) - MAX_LISTED_PROBLEMS
        tail = f'\n  ... and {more} more' if more > 0 else ''
        raise COCOFormatError(f'{path}: {len(problems)} malformed COCO entr{"y" if len(problems) == 1 else "ies"}:'
                              f'\n  {listed}{tail}')
    if zero_areas:
        from mmengine.logging import print_log
        print_log(f'{path}: {len(zero_areas)} annotations have area 0 but a box with an area (e.g. ids '
                  f'{zero_areas[:5]}): area computed from the box', logger='current', level=logging.WARNING)
    return dataset


def load_coco_json(path: str) -> Dict[str, Any]:
    """Read and check a COCO detection JSON file (see :func:`check_coco_dict`).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        COCOFormatError: not JSON (or nested too deeply), or not valid COCO
            detection JSON.
    """
    try:
        with open(path, encoding='utf-8-sig') as f:  # a byte-order mark is fine
            dataset = json.load(f)
    except FileNotFoundError:
        raise FileNotFoundError(f'annotation file not found: {path}') from None
    except (ValueError, UnicodeDecodeError) as e:  # JSONDecodeError, or an integer of over 4300 digits
        raise COCOFormatError(f'{path} is not a COCO annotation file: {type(e).__name__}: {e}') from None
    except RecursionError:
        raise COCOFormatError(f'{path} is not a COCO annotation file: its JSON is nested too deeply') from None
    return check_coco_dict(dataset, path)


class CheckedCOCO(COCO):
    """mmdet's COCO API on a file checked and normalised by :func:`load_coco_json`.

    Args:
        annotation_file (str, optional): COCO detection JSON; ``None`` makes
            an empty API object (as pycocotools does).
    """

    def __init__(self, annotation_file: Optional[str] = None) -> None:
        super().__init__(None)
        if annotation_file is not None:
            self.dataset = load_coco_json(annotation_file)
            self.createIndex()
            self.img_ann_map = self.imgToAnns
            self.cat_img_map = self.catToImgs
