"""The README's published numbers, rendered from the result files the tools wrote.

Each block of the README between ``<!-- results:NAME -->`` and ``<!-- /results:NAME -->`` is the
rendering of committed result files (``docs/results/``): the demo's ``demo_result.json`` (written by
``tools/demo.py``) and the ``summary.json`` files of ``tools/analysis_tools/train_parity.py``. A
number in such a block therefore cannot drift from the run that produced it:
``tests/tools/test_readme_results.py`` fails when a block differs from its rendering, and
``tools/misc/render_results.py`` rewrites the blocks after new result files are committed.
"""
import json
import os.path as osp
import re
from typing import Dict, Sequence, Tuple

RESULTS_DIR = osp.join('docs', 'results')


def load_result(root: str, rel: str) -> dict:
    """A committed result file (``docs/results/REL`` under the repository ``root``), parsed."""
    with open(osp.join(root, RESULTS_DIR, rel), encoding='utf-8') as f:
        return json.load(f)


def _minutes(seconds: float) -> str:
    return f'{int(seconds // 60)} min {int(round(seconds % 60)):02d} s'


def _machine(machine: dict) -> str:
    return (f"{machine.get('cpu') or 'unknown CPU'}, {machine.get('cores')} cores, "
            f"{machine.get('torch_threads')} torch threads, {machine.get('cpu_capability')} kernels, "
            f"torch {machine.get('torch')}")


def _commit(git: dict) -> str:
    sha = (git or {}).get('commit')
    return f"`{sha[:7]}`{' (uncommitted changes)' if git.get('dirty') else ''}" if sha else 'an unknown commit'


def _curve(result: dict) -> str:
    return ' / '.join(f"{v['coco/bbox_mAP']:.3f}" for v in result['validations'])


def render_demo(results: Sequence[dict], names: Sequence[str] = ()) -> str:
    """The README's demo numbers: the first result is the published run, the others seeds, thread counts
    or CPU kernels of the same recipe (their finals give the spread); ``names`` are their files."""
    main = results[0]
    final = main['final']
    curve = _curve(main)
    epochs = ' / '.join(str(v['epoch']) for v in main['validations'])
    lines = [
        f"final bbox mAP@[.5:.95] **{final['coco/bbox_mAP']:.3f}** (mAP@.5 {final['coco/bbox_mAP_50']:.3f}, "
        f"mAP@.75 {final['coco/bbox_mAP_75']:.3f}, small {final['coco/bbox_mAP_s']:.3f}, "
        f"medium {final['coco/bbox_mAP_m']:.3f}); the curve was {curve} after epochs {epochs}; "
        f"**{_minutes(main['wall_seconds'])}** for `{main['command']}` ({main['iterations']} training iterations, "
        f"{_minutes(main['train_seconds'])} of them in `runner.train()`), seed {main['seed']}, "
        f"at {_commit(main['git'])} on {_machine(main['machine'])}."
    ]
    if len(results) > 1:
        rows = ['', '| result file | seed | torch threads | kernels | final mAP | mAP@.5 | curve |',
                '|---|---|---|---|---|---|---|']
        for i, r in enumerate(results):
            name = f'`{names[i]}`' if i < len(names) else f"`{r['command']}`"
            rows.append(f"| {name} | {r['seed']} | {r['machine'].get('torch_threads')} | "
                        f"{r['machine'].get('cpu_capability')} | {r['final']['coco/bbox_mAP']:.3f} | "
                        f"{r['final']['coco/bbox_mAP_50']:.3f} | {_curve(r)} |")
        finals = [r['final']['coco/bbox_mAP'] for r in results]
        rows.append('')
        rows.append(f'Over these {len(results)} runs the final mAP is {min(finals):.3f} to {max(finals):.3f} '
                    f'(mean {sum(finals) / len(finals):.3f}).')
        lines += rows
    return '\n'.join(lines)


def render_parity(entries: Sequence[Tuple[str, dict]]) -> str:
    """The training-parity tables: final mAP of both sides per dataset (one ``(description,
    summary.json)`` or ``(description, summary.json, options)`` each; a summary with only our side, e.g. a
    recipe variant, gives one row), then the reference's own validator on its final models where
    ``--ref-val`` ran, unless the entry's options say ``own_validator: false`` (a summary listed again
    for comparison, whose validator rows belong to its own table)."""
    rows = ['| dataset (CPU, this machine) | side | final mAP50-95 per seed | mean | final mAP50 per seed | mean |',
            '|---|---|---|---|---|---|']
    own = ['', "| dataset | seed | reference's model, our evaluator | its validator, rectangular batches "
           '(its default) | its validator, square letterbox (ours) |', '|---|---|---|---|---|']
    for description, summary, *options in entries:
        first = True
        for side in ('ours', 'reference'):
            s = summary.get(side)
            if not s:
                continue
            label = s['label'] if side == 'ours' else 'reference (ultralytics)'
            several = len(s['seeds']) > 1  # a mean of one seed says nothing more
            mean_95 = f"**{s['mean_mAP50_95']:.3f}**" if several else ''
            mean_50 = f"**{s['mean_mAP50']:.3f}**" if several else ''
            per_seed_95 = ' / '.join(f'{v:.3f}' for v in s['final_mAP50_95'])
            per_seed_50 = ' / '.join(f'{v:.3f}' for v in s['final_mAP50'])
            rows.append(f"| {description if first else ''} | {label} | {per_seed_95} | {mean_95} | {per_seed_50} | "
                        f'{mean_50} |')
            first = False
        own_val = summary.get('reference_own_validator') or {}
        if options and not options[0].get('own_validator', True):
            own_val = {}
        rect = {r['seed']: r for r in own_val.get('own_val_rect', [])}
        square = {r['seed']: r for r in own_val.get('own_val_square', [])}
        short = re.split(r' \(|,', description)[0]  # the dataset's name, without its details
        for seed in sorted(set(rect) & set(square)):
            own.append(f"| {short} | {seed} | {rect[seed]['ours_evaluator']:.3f} | "
                       f"{rect[seed]['mAP50-95']:.3f} | {square[seed]['mAP50-95']:.3f} |")
    return '\n'.join(rows + (own if len(own) > 3 else []))


def render_throughput(summary: dict) -> str:
    """The throughput table of a ``train_parity.py --throughput`` run."""
    rows = ['| imgsz | torch threads | loader workers | ours s/epoch | reference s/epoch | ours / reference |',
            '|---|---|---|---|---|---|']
    for r in summary['rows']:
        rows.append(f"| {r['imgsz']} | {r['threads']} | {r['workers']} | {r['ours_s_per_epoch']:.1f} | "
                    f"{r['reference_s_per_epoch']:.1f} | {r['ratio']:.2f}x |")
    return '\n'.join(rows)


def blocks(root: str) -> Dict[str, str]:
    """Every README block rendered from the committed result files (``docs/results/index.json`` lists
    them: ``{"demo": ["demo/seed0.json", ...], "parity": [["description", "parity/x/summary.json"], ...],
    "parity_<name>": [...] (another parity table, block ``parity_<name>``; an entry may add a third item,
    ``{"own_validator": false}``, see ``render_parity``),
    "throughput": "throughput/summary.json"}``)."""
    index = load_result(root, 'index.json')
    out = {}
    if 'demo' in index:
        out['demo'] = render_demo([load_result(root, rel) for rel in index['demo']], index['demo'])
    for key in (k for k in index if k.startswith('parity')):  # 'parity', 'parity_yolo26', ...: one table each
        out[key] = render_parity([(desc, load_result(root, rel), *options) for desc, rel, *options in index[key]])
    if 'throughput' in index:
        out['throughput'] = render_throughput(load_result(root, index['throughput']))
    return out


_BLOCK_RE = re.compile(r'(<!-- results:(\w+) -->)\n(?:(.*?)\n)?(<!-- /results:\2 -->)', re.S)


def readme_blocks(text: str) -> Dict[str, str]:
    """The blocks of a README text: name -> content between the markers ('' for an empty block)."""
    return {m.group(2): m.group(3) or '' for m in _BLOCK_RE.finditer(text)}


def render_readme(text: str, rendered: Dict[str, str]) -> str:
    """``text`` with every block replaced by ``rendered[name]``.

    Raises:
        KeyError: a block has no rendering (no result files listed for it).
    """
    return _BLOCK_RE.sub(lambda m: f'{m.group(1)}\n{rendered[m.group(2)]}\n{m.group(4)}', text)
