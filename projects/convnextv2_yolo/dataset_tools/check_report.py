"""The outputs of a dataset check: plots, the text report, ``summary.json``."""
import os.path as osp
from typing import Any, Dict, List, Sequence

import numpy as np

from .check_problems import ERROR, MAX_JSON_ITEMS, MAX_LISTED, NOTE, SEVERITY, TINY_SIDES, WARNING, SplitStats


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
