"""Render the README's published numbers from the committed result files (docs/results/).

    python tools/misc/render_results.py            # rewrite the README's <!-- results:NAME --> blocks
    python tools/misc/render_results.py --check    # exit 1 when a block differs from its result files

``docs/results/index.json`` lists the files of each block: the demo's ``demo_result.json`` files
(``tools/demo.py``), the ``summary.json`` files of ``tools/analysis_tools/train_parity.py`` (parity and
``--throughput``). Copy a new run's file there, list it, run this, and commit them together.
"""
import argparse
import difflib
import os.path as osp
import sys

from convnextv2_yolo.utils.checkpoint_io import write_atomic
from convnextv2_yolo.utils.readme_results import blocks, readme_blocks, render_readme

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0], epilog=__doc__.split('\n', 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--check', action='store_true', help='only compare; exit 1 on a difference')
    p.add_argument('--readme', default=osp.join(ROOT, 'README.md'))
    args = p.parse_args()
    with open(args.readme, encoding='utf-8') as f:
        text = f.read()
    rendered = blocks(ROOT)
    missing = sorted(set(readme_blocks(text)) - set(rendered))
    if missing:
        print(f'README blocks without result files in docs/results/index.json: {missing}', file=sys.stderr)
        return 1
    new = render_readme(text, rendered)
    if new == text:
        print('README results blocks match docs/results/')
        return 0
    if args.check:
        print(''.join(difflib.unified_diff(text.splitlines(True), new.splitlines(True), 'README.md', 'rendered')))
        print('README numbers differ from docs/results/: run tools/misc/render_results.py', file=sys.stderr)
        return 1
    write_atomic(args.readme, new)
    print(f'rewrote {len(rendered)} block(s) of {args.readme}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
