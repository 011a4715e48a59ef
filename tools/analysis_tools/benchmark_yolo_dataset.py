"""Speed of ``YOLODataset``: first start (scan), cached start, and data loading vs a COCO copy.

Generates ``--num-images`` small images (64x48 and 48x64, JPEG and PNG mixed,
1-4 boxes each, every 20th image without a label file, every 20th label file
empty) in the reference's layout under ``--work-dir``, plus a COCO JSON of the
same boxes, then measures:

(a) the first build of a ``YOLODataset`` (no cache: every image header and
    label file is read), once per ``--threads`` value; ``--cold`` evicts the
    files from the page cache first (``posix_fadvise(DONTNEED)``), as after a
    reboot or on network storage;
(b) the second build (the index cache is read);
(c) the data-loading throughput (samples/s, main process) of the training
    pipeline of ``configs/_base_/datasets/yolo_coco_detection.py`` at
    ``--img-size`` px (LoadImageFromFile + LoadAnnotations + YOLOMosaic +
    YOLORandomAffine + PackDetInputs) from the ``YOLODataset`` and from the
    COCO copy read by ``CheckedCocoDataset``, in the main process with one
    torch thread (as a data-loader worker); the best of ``--repeats``
    alternating runs.

Example::

    python tools/analysis_tools/benchmark_yolo_dataset.py                      # 20,000 images under /tmp
    python tools/analysis_tools/benchmark_yolo_dataset.py --num-images 2000 --work-dir /data/bench --cold
"""
import argparse
import json
import os
import os.path as osp
import shutil
import tempfile
import time
from typing import Dict, List, Sequence

import numpy as np

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
NAMES = ('a', 'b', 'c')
GENERATOR_VERSION = 1


def parse_args(argv: Sequence[str] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--num-images', type=int, default=20000)
    p.add_argument('--work-dir', default=osp.join(tempfile.gettempdir(), 'yolo_dataset_benchmark'),
                   help='where the dataset is generated (reused when it already holds the same one); '
                        'default: %(default)s')
    p.add_argument('--threads', type=int, nargs='+', default=[1, 8],
                   help='scan_threads values of the first-build runs (default: %(default)s)')
    p.add_argument('--cold', action='store_true', help='evict the files from the page cache before each first build')
    p.add_argument('--samples', type=int, default=1000, help='samples per throughput run (default: %(default)s)')
    p.add_argument('--repeats', type=int, default=2, help='throughput runs per dataset (default: %(default)s)')
    p.add_argument('--img-size', type=int, default=160)
    p.add_argument('--json', default=None, help='also write the numbers to this file')
    p.add_argument('--clean', action='store_true', help='delete the work dir at the end')
    return p.parse_args(argv)


# ----------------------------------------------------------------------------- data
def generate(work_dir: str, num_images: int) -> Dict[str, str]:
    """Write the dataset (images, labels, data.yaml, COCO json) unless it is already there.

    Returns:
        dict: ``data_yaml``, ``coco_json``, ``img_dir`` paths.
    """
    import cv2
    paths = dict(data_yaml=osp.join(work_dir, 'data.yaml'), coco_json=osp.join(work_dir, 'coco_train.json'),
                 img_dir=osp.join(work_dir, 'images', 'train'))
    stamp = osp.join(work_dir, 'generated.json')
    want = dict(version=GENERATOR_VERSION, num_images=num_images)
    if osp.isfile(stamp):
        with open(stamp) as f:
            if json.load(f) == want:
                return paths
    shutil.rmtree(work_dir, ignore_errors=True)
    lab_dir = osp.join(work_dir, 'labels', 'train')
    os.makedirs(paths['img_dir'])
    os.makedirs(lab_dir)
    rng = np.random.default_rng(0)
    # 16 encoded variants per (format, orientation): writing bytes is what dominates, not encoding
    variants = {}
    for ext in ('.jpg', '.png'):
        for w, h in ((64, 48), (48, 64)):
            variants[ext, w, h] = [cv2.imencode(ext, rng.integers(0, 255, (h, w, 3), dtype=np.uint8))[1].tobytes()
                                   for _ in range(16)]
    images, annotations = [], []
    for i in range(num_images):
        ext = '.jpg' if i % 2 else '.png'
        w, h = (64, 48) if i % 3 else (48, 64)
        name = f'{i:06d}{ext}'
        with open(osp.join(paths['img_dir'], name), 'wb') as f:
            f.write(variants[ext, w, h][i % 16])
        images.append(dict(id=i + 1, file_name=name, width=w, height=h))
        if i % 20 == 7:  # no label file: background
            continue
        rows = []
        for _ in range(0 if i % 20 == 13 else int(rng.integers(1, 5))):
            bw, bh = rng.uniform(0.1, 0.5, 2)
            cx, cy = rng.uniform(bw / 2, 1 - bw / 2), rng.uniform(bh / 2, 1 - bh / 2)
            cx, cy, bw, bh = (round(float(v), 6) for v in (cx, cy, bw, bh))  # as written in the label file
            cls = int(rng.integers(0, len(NAMES)))
            rows.append(f'{cls} {cx:.6f} {cy:.6f} {bw:.6f} {bh:.6f}')
            annotations.append(dict(id=len(annotations) + 1, image_id=i + 1, category_id=cls + 1,
                                    bbox=[(cx - bw / 2) * w, (cy - bh / 2) * h, bw * w, bh * h],
                                    area=bw * w * bh * h, iscrowd=0))
        with open(osp.join(lab_dir, f'{i:06d}.txt'), 'w') as f:
            f.write('\n'.join(rows) + ('\n' if rows else ''))
    with open(paths['data_yaml'], 'w') as f:
        f.write(f'path: .\ntrain: images/train\nval: images/train\nnames: {list(NAMES)}\n')
    with open(paths['coco_json'], 'w') as f:
        json.dump(dict(images=images, annotations=annotations,
                       categories=[dict(id=k + 1, name=n) for k, n in enumerate(NAMES)]), f)
    with open(stamp, 'w') as f:
        json.dump(want, f)
    return paths


def evict(folder: str) -> int:
    """Drop the files under ``folder`` from the page cache (no root needed). Returns the file count."""
    n = 0
    for dirpath, _, files in os.walk(folder):
        for name in files:
            fd = os.open(osp.join(dirpath, name), os.O_RDONLY)
            try:
                os.fsync(fd)
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)
            n += 1
    return n


# ----------------------------------------------------------------------------- measurements
def train_pipeline(size: int) -> List[dict]:
    """The base config's mosaic training pipeline at ``size`` px (without HSV/flip)."""
    return [
        dict(type='LoadImageFromFile'),
        dict(type='LoadAnnotations', with_bbox=True),
        dict(type='YOLOMosaic', img_scale=(size, size), pad_val=114.0, prob=1.0, max_cached_images=128),
        dict(type='YOLORandomAffine', max_rotate_degree=0.0, max_shear_degree=0.0, max_translate_ratio=0.1,
             scaling_ratio_range=(0.5, 1.5), border=(-size // 2, -size // 2), border_val=(114, 114, 114)),
        dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
    ]


def build_yolo(data_yaml: str, threads: int, pipeline=()):
    from mmdet.registry import DATASETS
    return DATASETS.build(dict(type='YOLODataset', data_yaml=data_yaml, split='train', scan_threads=threads,
                               pipeline=list(pipeline)))


def build_coco(coco_json: str, img_dir: str, pipeline=()):
    from mmdet.registry import DATASETS
    return DATASETS.build(dict(type='CheckedCocoDataset', ann_file=coco_json, data_prefix=dict(img=img_dir + '/'),
                               metainfo=dict(classes=NAMES), filter_cfg=dict(filter_empty_gt=False, min_size=0),
                               pipeline=list(pipeline)))


def remove_caches(work_dir: str) -> None:
    from convnextv2_yolo.datasets.yolo_dataset import CACHE_SUFFIX
    for dirpath, _, files in os.walk(work_dir):
        for name in files:
            if name.endswith(CACHE_SUFFIX):
                os.unlink(osp.join(dirpath, name))


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def throughput(dataset, samples: int, seed: int = 0) -> float:
    """Samples per second through ``dataset[i]`` over a fixed random order."""
    order = np.random.default_rng(seed).permutation(len(dataset))[:samples]
    dataset[int(order[0])]  # warm-up (lazy imports)
    start = time.perf_counter()
    for i in order:
        dataset[int(i)]
    return len(order) / (time.perf_counter() - start)


def main(argv: Sequence[str] = None) -> Dict[str, float]:
    """Run the benchmark; returns the numbers (seconds and samples/s)."""
    args = parse_args(argv)
    import torch
    from mmengine.logging import MMLogger
    from mmengine.registry import init_default_scope

    import convnextv2_yolo  # noqa: F401
    init_default_scope('mmdet')
    logger, threads = MMLogger.get_current_instance(), torch.get_num_threads()
    level = logger.level
    logger.setLevel('WARNING')  # the datasets' start-up lines would interleave with the numbers
    torch.set_num_threads(1)  # as in a data-loader worker (torch sets 1 there); tiny ops otherwise wait on OpenMP
    try:
        return run(args)
    finally:
        logger.setLevel(level)
        torch.set_num_threads(threads)


def run(args: argparse.Namespace) -> Dict[str, float]:
    """The measurements of :func:`main`."""
    print(f'generating {args.num_images} images under {args.work_dir} ...', flush=True)
    paths, seconds = timed(lambda: generate(args.work_dir, args.num_images))
    print(f'  {seconds:.1f} s')
    results: Dict[str, float] = dict(num_images=args.num_images)
    for threads in args.threads:
        remove_caches(args.work_dir)
        if args.cold:
            evict(args.work_dir)
        ds, seconds = timed(lambda: build_yolo(paths['data_yaml'], threads))
        results[f'first_build_s_threads{threads}'] = seconds
        print(f'(a) first build, no cache, scan_threads={threads}{" (cold)" if args.cold else ""}: {seconds:.2f} s '
              f'({len(ds)} images, {ds.index_stats["boxes"]} boxes)', flush=True)
    ds, seconds = timed(lambda: build_yolo(paths['data_yaml'], args.threads[-1]))
    assert ds.index_stats['from_cache'], 'the second build did not use the cache'
    results['cached_build_s'] = seconds
    print(f'(b) second build, index cache: {seconds:.2f} s', flush=True)
    _, seconds = timed(lambda: build_coco(paths['coco_json'], paths['img_dir']))
    results['coco_build_s'] = seconds
    print(f'    (CheckedCocoDataset on the COCO copy: {seconds:.2f} s)', flush=True)

    pipeline = train_pipeline(args.img_size)
    datasets = dict(yolo=build_yolo(paths['data_yaml'], args.threads[-1], pipeline),
                    coco=build_coco(paths['coco_json'], paths['img_dir'], pipeline))
    best = dict(yolo=0.0, coco=0.0)
    for rep in range(args.repeats):
        for name, dataset in datasets.items():
            best[name] = max(best[name], throughput(dataset, args.samples, seed=rep))
    results['yolo_samples_per_s'], results['coco_samples_per_s'] = best['yolo'], best['coco']
    print(f'(c) training pipeline at {args.img_size} px, {args.samples} samples, best of {args.repeats}: '
          f'YOLODataset {best["yolo"]:.0f} samples/s, COCO copy (CheckedCocoDataset) {best["coco"]:.0f} samples/s '
          f'(ratio {best["yolo"] / best["coco"]:.3f})')
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(results, f, indent=1)
    if args.clean:
        shutil.rmtree(args.work_dir, ignore_errors=True)
    return results


if __name__ == '__main__':
    main()
