"""Print a config as the runner will use it, optionally with every code default written out.

    python tools/misc/print_config.py CONFIG [--with-defaults] [--cfg-options k=v ...]
    python tools/misc/print_config.py --check-snapshots      # exit 1 when configs/_snapshots/ is stale
    python tools/misc/print_config.py --update-snapshots     # rewrite configs/_snapshots/ (commit with the change)

``--with-defaults`` completes every built dict (model parts, pipelines, hooks, optimizer,
schedulers, loops, evaluators) with the defaults of its class's constructor, marked ``# default``
(see ``convnextv2_yolo.utils.effective_config``): the whole recipe, not only what the files say.
"""
import argparse
import difflib
import os
import os.path as osp
import sys

from mmengine.config import Config, DictAction

import convnextv2_yolo  # noqa: F401  (registers our modules)
from convnextv2_yolo.utils.effective_config import (effective_config, format_effective_config, shipped_configs,
                                                    snapshot_file, snapshot_text)

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))  # the checkout holding configs/


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0], epilog=__doc__.split('\n', 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('config', nargs='?', help='config file')
    p.add_argument('--with-defaults', action='store_true', help='write out every code default (# default)')
    p.add_argument('--cfg-options', nargs='+', action=DictAction, help='override config keys')
    p.add_argument('--check-snapshots', action='store_true', help='compare every shipped config with its snapshot')
    p.add_argument('--update-snapshots', action='store_true', help='rewrite the snapshots of the shipped configs')
    args = p.parse_args()
    if not args.config and not (args.check_snapshots or args.update_snapshots):
        p.error('give a CONFIG, --check-snapshots or --update-snapshots')
    return args


def snapshots(update: bool) -> int:
    """Check (or rewrite) ``configs/_snapshots/``; the number of stale or missing snapshots."""
    root = ROOT
    stale = 0
    expected = set()
    for rel in shipped_configs(root):
        path = snapshot_file(root, rel)
        expected.add(osp.abspath(path))
        text = snapshot_text(root, rel)
        old = open(path, encoding='utf-8').read() if osp.isfile(path) else None
        if old == text:
            continue
        stale += 1
        if update:
            os.makedirs(osp.dirname(path), exist_ok=True)
            with open(path, 'w', encoding='utf-8') as f:
                f.write(text)
            print(f'{"updated" if old is not None else "created"} {osp.relpath(path, root)}')
        else:
            print(f'stale: {osp.relpath(path, root)}' if old is not None else f'missing: {osp.relpath(path, root)}')
            print(''.join(difflib.unified_diff((old or '').splitlines(True), text.splitlines(True),
                                               'snapshot', 'now', n=1)))
    for dirpath, _, files in os.walk(osp.join(root, 'configs', '_snapshots')):
        for name in files:
            path = osp.abspath(osp.join(dirpath, name))
            if path not in expected:
                stale += 1
                if update:
                    os.remove(path)
                print(f'{"removed" if update else "orphan"}: {osp.relpath(path, root)} (no such config)')
    return stale


def main() -> int:
    args = parse_args()
    if args.check_snapshots or args.update_snapshots:
        stale = snapshots(args.update_snapshots)
        if stale and not args.update_snapshots:
            print(f'{stale} snapshot(s) out of date: run tools/misc/print_config.py --update-snapshots and '
                  'commit them with the change that moved them', file=sys.stderr)
            return 1
        print('snapshots up to date' if not stale else f'{stale} snapshot(s) written')
        return 0
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    if args.with_defaults:
        print(format_effective_config(effective_config(cfg)), end='')
    else:
        print(cfg.pretty_text)
    return 0


if __name__ == '__main__':
    sys.exit(main())
