"""The same seed twice gives identical training: losses, samples and schedule, with 0 and 2 loader workers
(YOLO11-n through --data with the recipe's mosaic, 2 epochs on a tiny set)."""
import pytest

from tests.helpers.golden_runs import make_data, run_one


@pytest.fixture(scope='module')
def data(tmp_path_factory):
    return make_data(str(tmp_path_factory.mktemp('shapes')))


@pytest.mark.parametrize('workers', [0, 2])
def test_same_seed_twice_is_identical(data, tmp_path, workers):
    runs = [run_one('yolo11n_data', data, str(tmp_path / f'run{i}'), workers=workers, epochs=2) for i in range(2)]
    first, second = ([{k: r[k] for k in ('epoch', 'iter', 'losses', 'samples', 'lr', 'accumulation')}
                      for r in run['iterations']] for run in runs)
    assert len(first) == 16
    for a, b in zip(first, second):
        assert a == b, f"iteration {a['iter']} differs between two runs with the same seed"
    assert runs[0]['final'] == runs[1]['final']
