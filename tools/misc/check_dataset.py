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
instances per class, background images and tiny boxes (a side under 4 and
under 8 px, in pixels of the decoded image), and reports problems by kind,
each naming the file (and row):

- errors (exit status 1): unusable images (unreadable, truncated JPEG, under
  10 px, missing), label rows the loader refuses (wrong field count, not a
  number, class id out of range, coordinates outside [0, 1] by more than
  0.01, no area; the image is then skipped), label files that are not text,
  a malformed COCO file, a config class that is not a category of the COCO
  file, a COCO image whose recorded size differs from the decoded one (EXIF
  orientation: its boxes are misplaced);
- warnings: coordinates slightly outside [0, 1] (clipped), duplicate rows
  (dropped), label files without an image (ignored), COCO boxes outside the
  image or under 1 px (dropped by ``CocoDataset``), categories not in the
  config's classes;
- notes: images without a label file (YOLO: trained as backgrounds), COCO
  images without annotations (``filter_empty_gt`` drops them from training),
  crowd annotations (ignore regions).

Writes ``<split>_classes.png`` (instances per class), ``<split>_box_sizes.png``
(box width vs height in px, by class) and ``summary.json`` into ``--out-dir``
(default ``work_dirs/check_dataset/<name>/``) and prints a report: a table per
split, then the problems with file:row, at most 20 per kind (with counts).
See docs/dataset_tools.md.
"""
import argparse
import json
import os
import os.path as osp
import re
import sys
from collections import defaultdict
from dataclasses import dataclass, field, replace
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

sys.path.insert(0, osp.join(osp.dirname(osp.abspath(__file__)), '..', '..', 'projects'))
from convnextv2_yolo.datasets import yolo_format as yf  # noqa: E402
from convnextv2_yolo.datasets.coco_api import COCOFormatError, load_coco_json  # noqa: E402
from convnextv2_yolo.datasets.image_size import describe_size_mismatch, read_image_size  # noqa: E402

ERROR, WARNING, NOTE = 'error', 'warning', 'note'
# problem kind -> severity (the report's headings)
UNREADABLE, TRUNCATED, TOO_SMALL, MISSING_IMAGE = ('unreadable image', 'truncated image', 'image too small',
                                                   'missing image')
NOT_TEXT, FIELDS, NOT_NUMBER, CLASS_RANGE, OUTSIDE, NO_AREA, BAD_ROW = (
    'label file not text', 'wrong field count', 'not a number', 'class id out of range',
    'coordinates outside [0, 1]', 'box without area, dropped', 'bad label row')
BAD_ANNOTATIONS, SIZE_MISMATCH = 'malformed annotation file', 'recorded image size differs from the image'
CLASS_NOT_IN_FILE = 'class not a category of the file'
CLIPPED, DUPLICATE, ORPHAN = ('coordinates slightly outside [0, 1], clipped', 'duplicate row, dropped',
                              'label file without image')
PAST_EDGE = 'box reaching past the image edge, clipped to the image'
BOX_OUTSIDE, BOX_UNDER_1PX, OTHER_CATEGORY = ('box outside the image', 'box under 1 px, dropped by CocoDataset',
                                              'category not in the classes')
NO_LABEL, NO_ANNOTATIONS, CROWD = ('image without label file, trains as background',
                                   'image without annotations', 'crowd annotation, an ignore region')
SEVERITY = {**dict.fromkeys((UNREADABLE, TRUNCATED, TOO_SMALL, MISSING_IMAGE, NOT_TEXT, FIELDS, NOT_NUMBER,
                             CLASS_RANGE, OUTSIDE, BAD_ROW, BAD_ANNOTATIONS, SIZE_MISMATCH, CLASS_NOT_IN_FILE),
                            ERROR),
            **dict.fromkeys((CLIPPED, PAST_EDGE, DUPLICATE, NO_AREA, ORPHAN, BOX_OUTSIDE, BOX_UNDER_1PX,
                             OTHER_CATEGORY), WARNING),
            **dict.fromkeys((NO_LABEL, NO_ANNOTATIONS, CROWD), NOTE)}
# yolo_format's row messages -> kind (first match)
ROW_KINDS = (('past the image edge', PAST_EDGE), ('clipped', CLIPPED), ('duplicate', DUPLICATE),
             ('fields; expected', FIELDS),
             ('not a number', NOT_NUMBER), ('not a finite number', NOT_NUMBER), ('not a class index', CLASS_RANGE),
             ('outside [0, 1]', OUTSIDE), ('no area', NO_AREA))
_ROW = re.compile(r'^row (\d+): (.*)$')
# tiny boxes: a side under these many px; sides within SIZE_TOLERANCE px of a threshold count as equal
TINY_SIDES = (4, 8)
SIZE_TOLERANCE = 1e-6
# COCO boxes outside the image by at most this (px) are float rounding, not reported
ROUNDING_PX = 1e-6
MAX_LISTED = 20
# items per kind kept in summary.json (the count is always complete)
MAX_JSON_ITEMS = 1000


@dataclass
class SplitSource:
    """Where one split's data is.

    Attributes:
        split (str): Name in the report (``train``, ``val``, ``test``, ``train.1``...).
        kind (str): ``'yolo'`` or ``'coco'``.
        names (tuple[str]): Class names (YOLO: the label files' index order).
        sources (list[str]): YOLO: image folders / lists.
        ann_file (str): COCO: the annotation file.
        img_dir (str): COCO: the folder ``file_name`` is relative to.
        classes (tuple[str] | None): COCO: the config's classes (None: the file's categories by id).
    """
    split: str
    kind: str
    names: Tuple[str, ...] = ()
    sources: List[str] = field(default_factory=list)
    ann_file: str = ''
    img_dir: str = ''
    classes: Optional[Tuple[str, ...]] = None

    @property
    def description(self) -> str:
        if self.kind == 'yolo':
            return ', '.join(self.sources)
        return f'{self.ann_file} (images in {self.img_dir})'


@dataclass
class SplitStats:
    """Counts and problems of one split.

    Attributes:
        source (SplitSource): The split.
        images (int): Images listed (YOLO) / in the file (COCO).
        skipped (int): Images the loader leaves out (unusable image or label file).
        label_files (int): YOLO: label files found; COCO: annotations.
        backgrounds (int): Usable images without a box.
        instances (np.ndarray): Boxes per class (usable images).
        images_with (np.ndarray): Usable images containing each class.
        sizes (list): ``(width, height, class)`` in px per counted box.
        problems (dict[str, list[str]]): Kind -> ``file[:row]: message`` lines.
        same_as (str): The earlier split whose data this split is ('' if none).
    """
    source: SplitSource
    images: int = 0
    skipped: int = 0
    label_files: int = 0
    backgrounds: int = 0
    instances: np.ndarray = None
    images_with: np.ndarray = None
    sizes: List[Tuple[float, float, int]] = field(default_factory=list)
    problems: Dict[str, List[str]] = field(default_factory=lambda: defaultdict(list))
    same_as: str = ''

    def __post_init__(self) -> None:
        n = len(self.source.names)
        if self.instances is None:
            self.instances = np.zeros(n, dtype=np.int64)
        if self.images_with is None:
            self.images_with = np.zeros(n, dtype=np.int64)

    def add(self, kind: str, line: str) -> None:
        self.problems[kind].append(line)

    def count_boxes(self, classes: Sequence[int], wh: np.ndarray) -> None:
        """Count the boxes of one usable image (classes and px sizes)."""
        classes = np.asarray(classes, dtype=np.int64)
        self.instances += np.bincount(classes, minlength=len(self.instances))
        self.images_with += np.bincount(np.unique(classes), minlength=len(self.instances))
        self.sizes += [(float(w), float(h), int(c)) for (w, h), c in zip(wh, classes)]
        self.backgrounds += not len(classes)

    def tiny(self, side: float) -> int:
        """Boxes with a side under ``side`` px (within ``SIZE_TOLERANCE``)."""
        if not self.sizes:
            return 0
        wh = np.asarray(self.sizes)[:, :2]
        return int((wh.min(1) < side - SIZE_TOLERANCE).sum())

    def severity_counts(self) -> Dict[str, int]:
        counts = dict.fromkeys((ERROR, WARNING, NOTE), 0)
        for kind, lines in self.problems.items():
            counts[SEVERITY[kind]] += len(lines)
        return counts


def where_rows(path: str, messages: Sequence[str]) -> List[Tuple[str, str]]:
    """``(kind, 'path:row: message')`` for yolo_format's ``row k: message`` lines."""
    out = []
    for msg in messages:
        kind = next((k for pattern, k in ROW_KINDS if pattern in msg), BAD_ROW)
        m = _ROW.match(msg)
        out.append((kind, f'{path}:{m.group(1)}: {m.group(2)}' if m else f'{path}: {msg}'))
    return out


def image_problem_kind(reason: str) -> str:
    """The kind of a :func:`yolo_format.verify_image` reason."""
    if 'not found' in reason:
        return MISSING_IMAGE
    if 'truncated' in reason:
        return TRUNCATED
    if 'too small' in reason:
        return TOO_SMALL
    return UNREADABLE


# ----------------------------------------------------------------------------- YOLO
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
def sources_from_yaml(path: str, splits: Optional[Sequence[str]]) -> List[SplitSource]:
    """The splits of a ``data.yaml``.

    Raises:
        FileNotFoundError, DataYamlError: see :func:`yolo_format.load_data_yaml`;
            a requested split the yaml lacks.
    """
    data = yf.load_data_yaml(path)
    wanted = list(splits) if splits else data.declared
    return [SplitSource(split=s, kind='yolo', names=data.names, sources=data.sources(s)) for s in wanted]


def _join(root: str, path: str) -> str:
    return path if not root or not path or osp.isabs(path) else osp.join(root, path)


def _leaf_datasets(cfg: Any) -> List[Any]:
    """The datasets inside wrappers (``dataset`` / ``datasets`` keys), in order."""
    if cfg is None:
        return []
    if isinstance(cfg, (list, tuple)):
        return [leaf for c in cfg for leaf in _leaf_datasets(c)]
    if 'data_yaml' in cfg or 'ann_file' in cfg or 'data_prefix' in cfg:
        return [cfg]
    if 'datasets' in cfg:
        return _leaf_datasets(cfg['datasets'])
    if 'dataset' in cfg:
        return _leaf_datasets(cfg['dataset'])
    return [cfg]


def source_from_dataset_cfg(ds: Any, split: str, config: str) -> SplitSource:
    """A :class:`SplitSource` from one dataset config.

    Raises:
        ValueError: a dataset type that is neither YOLO nor COCO.
        FileNotFoundError, DataYamlError: the yaml cannot be found or read.
    """
    root = ds.get('data_root') or ''
    prefix = ds.get('data_prefix') or {}
    img = prefix.get('img') or prefix.get('img_path') or ''
    classes = (ds.get('metainfo') or {}).get('classes')
    if ds.get('type') == 'YOLODataset':
        if ds.get('data_yaml'):
            tried = [_join(root, ds['data_yaml']), ds['data_yaml']]
            yaml_file = next((p for p in tried if osp.isfile(p)), tried[0])
            data = yf.load_data_yaml(yaml_file)
            return SplitSource(split=split, kind='yolo', names=data.names,
                               sources=data.sources(ds.get('split', 'train')))
        if not classes:
            raise ValueError(f'{config}: the {split} YOLODataset has no data_yaml and no metainfo.classes')
        ann = ds.get('ann_file')
        return SplitSource(split=split, kind='yolo', names=tuple(classes),
                           sources=[osp.abspath(_join(root, ann) if ann else _join(root, img))])
    if 'Coco' in str(ds.get('type')) or str(ds.get('ann_file', '')).endswith('.json'):
        return SplitSource(split=split, kind='coco', ann_file=_join(root, ds.get('ann_file', '')),
                           img_dir=_join(root, img) or root, classes=tuple(classes) if classes else None)
    raise ValueError(f'{config}: the {split} dataset type {ds.get("type")!r} is neither YOLODataset nor a '
                     'COCO dataset with ann_file')


def sources_from_config(path: str, splits: Optional[Sequence[str]]) -> List[SplitSource]:
    """The train / val / test datasets of a config (wrappers unwrapped; ``ConcatDataset`` parts as ``train.1``...)."""
    from mmengine.config import Config
    cfg = Config.fromfile(path)
    found = []
    for split in splits or yf.SPLITS:
        loader = cfg.get(f'{split}_dataloader')
        leaves = _leaf_datasets(loader.get('dataset') if loader else None)
        if splits and not leaves:
            raise ValueError(f'{path}: no {split}_dataloader with a dataset')
        for i, ds in enumerate(leaves):
            found.append(source_from_dataset_cfg(ds, split if len(leaves) == 1 else f'{split}.{i}', path))
    if not found:
        raise ValueError(f'{path}: no train/val/test dataloader with a dataset')
    return found


# ----------------------------------------------------------------------------- outputs
def _pyplot():
    """``matplotlib.pyplot`` on the Agg backend (files only, no display needed)."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    return plt


def plot_classes(stats: SplitStats, path: str) -> None:
    """Bar chart of instances (and images containing them) per class."""
    plt = _pyplot()
    from matplotlib.ticker import MaxNLocator
    names = stats.source.names
    n = max(len(names), 1)
    fig, ax = plt.subplots(figsize=(min(5.5 + 0.5 * n, 24), 4.5), dpi=100)
    x = np.arange(len(names))
    for offset, values, label, color in ((-0.2, stats.instances, 'instances', 'tab:blue'),
                                         (0.2, stats.images_with, 'images containing the class', 'tab:orange')):
        ax.bar_label(ax.bar(x + offset, values, 0.4, label=label, color=color), fontsize=8)
    ax.set_xticks(x, names, rotation=45 if n > 6 else 0, ha='right' if n > 6 else 'center')
    ax.set_ylabel('count')
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_title(f'{stats.source.split}: {int(stats.instances.sum())} instances in {stats.images - stats.skipped} '
                 f'usable images, {stats.backgrounds} without boxes', fontsize=10)
    ax.set_ylim(0, max(int(stats.instances.max(initial=0)), 1) * 1.25)  # room for the legend above the bars
    ax.legend(loc='upper center', ncol=2, fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_box_sizes(stats: SplitStats, path: str) -> None:
    """Scatter of box width vs height in px (log axes), one colour per class, the tiny thresholds dashed."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 6), dpi=100)
    sizes = np.asarray(stats.sizes, dtype=np.float64).reshape(-1, 3)
    cmap = plt.get_cmap('tab10' if len(stats.source.names) <= 10 else 'tab20')
    for c, name in enumerate(stats.source.names):
        sel = sizes[:, 2] == c
        if sel.any():
            ax.scatter(sizes[sel, 0], sizes[sel, 1], s=9, alpha=0.6, color=cmap(c % cmap.N),
                       label=f'{name} ({int(sel.sum())})')
    if len(sizes):
        ax.set_xscale('log', base=2)
        ax.set_yscale('log', base=2)
        ticks = 2.0 ** np.arange(np.floor(np.log2(max(sizes[:, :2].min(), 0.5))),
                                 np.ceil(np.log2(sizes[:, :2].max())) + 1)
        ax.set_xticks(ticks, [f'{t:g}' for t in ticks])
        ax.set_yticks(ticks, [f'{t:g}' for t in ticks])
        ax.minorticks_off()
        for side in TINY_SIDES:
            ax.axvline(side, color='grey', ls='--', lw=0.8)
            ax.axhline(side, color='grey', ls='--', lw=0.8)
        ax.legend(loc='upper left', fontsize=8, markerscale=2)
    else:
        ax.text(0.5, 0.5, 'no boxes', ha='center', va='center', transform=ax.transAxes)
        ax.set_xticks([])
        ax.set_yticks([])
    ax.set_xlabel('box width (px)')
    ax.set_ylabel('box height (px)')
    tiny = ', '.join(f'{stats.tiny(s)} with a side < {s} px' for s in TINY_SIDES)
    ax.set_title(f'{stats.source.split}: {len(sizes)} boxes ({tiny}; dashed: {" and ".join(map(str, TINY_SIDES))} px)',
                 fontsize=9)
    ax.grid(True, which='major', alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def split_table(stats: SplitStats) -> str:
    """The per-split table: header line, one row per class, totals."""
    src = stats.source
    files = 'label files' if src.kind == 'yolo' else 'annotations'
    same = f'; the same data as {stats.same_as}' if stats.same_as else ''
    lines = [f'== {src.split} ({src.kind}: {src.description}{same})',
             f'   images {stats.images} (skipped {stats.skipped}) | {files} {stats.label_files} | backgrounds '
             f'{stats.backgrounds} | boxes {int(stats.instances.sum())}: '
             + ', '.join(f'{stats.tiny(s)} with a side < {s} px' for s in TINY_SIDES)]
    width = max([len(n) for n in src.names] + [5])
    lines.append(f'   {"class":<{width}}  {"instances":>9}  {"images":>6}')
    for name, n, m in zip(src.names, stats.instances, stats.images_with):
        lines.append(f'   {name:<{width}}  {n:>9}  {m:>6}')
    return '\n'.join(lines)


def problems_text(all_stats: Sequence[SplitStats], max_listed: int = MAX_LISTED) -> str:
    """The problems of every split, errors first, at most ``max_listed`` lines per kind."""
    order = {ERROR: 0, WARNING: 1, NOTE: 2}
    entries = sorted(((order[SEVERITY[k]], s.source.split, k, lines) for s in all_stats
                      for k, lines in s.problems.items()), key=lambda e: e[0])
    if not entries:
        return 'No problems found.'
    out = ['Problems:']
    for sev, split, kind, lines in entries:
        out.append(f'{SEVERITY[kind]}: {split}: {kind}: {len(lines)}')
        out += [f'    {line}' for line in lines[:max_listed]]
        if len(lines) > max_listed:
            out.append(f'    ... and {len(lines) - max_listed} more')
    return '\n'.join(out)


def summary_dict(target: str, all_stats: Sequence[SplitStats], distinct: Sequence[SplitStats],
                 plots: Dict[str, List[str]]) -> Dict[str, Any]:
    """The JSON summary: per split counts, problems (capped lists, full counts) and plots; overall
    counts over the ``distinct`` splits (a split that is the same data as another is counted once)."""
    splits = {}
    for s in all_stats:
        splits[s.source.split] = dict(
            kind=s.source.kind, source=s.source.description, same_as=s.same_as or None,
            classes=list(s.source.names), images=s.images,
            skipped=s.skipped, label_files=s.label_files, backgrounds=s.backgrounds,
            instances=int(s.instances.sum()),
            instances_per_class=dict(zip(s.source.names, s.instances.tolist())),
            images_per_class=dict(zip(s.source.names, s.images_with.tolist())),
            tiny_boxes={f'side_under_{side}px': s.tiny(side) for side in TINY_SIDES},
            problems={k: dict(severity=SEVERITY[k], count=len(v), items=v[:MAX_JSON_ITEMS])
                      for k, v in s.problems.items()},
            plots=plots.get(s.source.split, []))
    totals = dict.fromkeys((ERROR, WARNING, NOTE), 0)
    for s in all_stats:
        for sev, n in s.severity_counts().items():
            totals[sev] += n
    overall = dict(images=sum(s.images for s in distinct), instances=sum(int(s.instances.sum()) for s in distinct),
                   tiny_boxes={f'side_under_{side}px': sum(s.tiny(side) for s in distinct) for side in TINY_SIDES})
    return dict(target=osp.abspath(target), splits=splits, overall=overall, errors=totals[ERROR],
                warnings=totals[WARNING], notes=totals[NOTE])


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
