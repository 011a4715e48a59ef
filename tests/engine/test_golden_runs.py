"""Golden runs: the four training paths (the demo, YOLO11-n through --data, the ConvNeXt V2 backbone
swap, FCMAE pretraining) trained for 24 iterations and compared, iteration by iteration, with the
committed traces in tests/golden/ (see tests/helpers/golden_runs.py). A change that moves a recipe value
(LR, momentum, weight decay, accumulation, EMA decay), a loss, a training sample's boxes or pixels,
or the final EMA weights fails here. Regenerate with ``python -m tests.helpers.golden_runs --update`` in a
commit of its own that says why the numbers moved."""
import copy
import json
import os
import subprocess
import sys

import pytest

from tests.helpers.golden_runs import NUMERICS_ENV, ROOT, RUNS, compare, golden_path


def _golden(run: str) -> dict:
    with open(golden_path(run), encoding='utf-8') as f:
        return json.load(f)


@pytest.fixture(scope='module')
def traces(tmp_path_factory):
    out = tmp_path_factory.mktemp('golden')
    env = dict(os.environ, **NUMERICS_ENV)
    res = subprocess.run([sys.executable, '-m', 'tests.helpers.golden_runs', '--out', str(out)], cwd=ROOT,
                         env=env, capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    return {run: json.loads((out / f'{run}.json').read_text()) for run in RUNS}


@pytest.mark.parametrize('run', RUNS)
def test_golden_run(traces, run):
    diffs = compare(_golden(run), traces[run])
    assert not diffs, (
        f'golden run {run!r} moved (first differences below). If the change is intended, run '
        '`python -m tests.helpers.golden_runs --update` and commit tests/golden/ on its own, saying why:\n' +
        '\n'.join(diffs))


def test_golden_traces_cover_the_recipe():
    """What the golden files pin is there: 24 iterations over 3 epochs, every param group's values, the
    accumulation ramp and EMA of the YOLO recipe, GT boxes per sample, the EMA weights."""
    for run in RUNS:
        g = _golden(run)
        its = g['iterations']
        assert len(its) == 24 and sorted({r['epoch'] for r in its}) == [0, 1, 2], run
        assert all(r['lr'] and r['momentum'] and r['weight_decay'] and r['losses'] for r in its), run
        assert all(len(r['samples']) == 4 and all('pixel_sum' in s for s in r['samples']) for r in its), run
        assert g['final'], run
    for run in ('demo', 'yolo11n_data', 'convnextv2_swap'):
        g = _golden(run)
        assert g['weights'] == 'ema'
        assert all(r['ema_decay'] is not None and s['boxes'] for r in g['iterations'] for s in r['samples'])
    recipe = _golden('yolo11n_data')['iterations']
    assert [r['accumulation'] for r in recipe][:4] == [1, 2, 3, 4]  # the reference's warmup ramp


@pytest.mark.parametrize('mutate,expect', [
    (lambda t: t['iterations'][5]['lr'][0].__setitem__(0, t['iterations'][5]['lr'][0][0] * (1 + 1e-6)), 'lr'),
    (lambda t: t['iterations'][5]['weight_decay'].append([0.1, 1]), 'weight_decay'),
    (lambda t: t['iterations'][7].__setitem__('accumulation', t['iterations'][7]['accumulation'] + 1), 'accumulation'),
    (lambda t: t['iterations'][9].__setitem__('ema_decay', t['iterations'][9]['ema_decay'] * 0.999), 'ema_decay'),
    (lambda t: t['iterations'][0]['losses'].__setitem__('loss_cls', t['iterations'][0]['losses']['loss_cls'] * 1.01),
     'loss_cls'),
    (lambda t: t['iterations'][3]['samples'][1]['boxes'][0].__setitem__(
        0, t['iterations'][3]['samples'][1]['boxes'][0][0] + 0.1), 'box'),
    (lambda t: t['final']['neck'].__setitem__(3, t['final']['neck'][3] + 0.05 * t['final']['neck'][2]), 'weights'),
])
def test_the_comparison_sees_small_changes(mutate, expect):
    golden = _golden('yolo11n_data')
    changed = copy.deepcopy(golden)
    mutate(changed)
    assert compare(golden, golden) == []
    diffs = compare(golden, changed)
    assert diffs and expect in diffs[0], diffs
