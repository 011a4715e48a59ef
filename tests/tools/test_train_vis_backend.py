"""tools/train.py --vis-backend: mmengine logging backends by name; results.csv from a tools/train.py run."""
import csv
import importlib.util
import os.path as osp
from glob import glob

import pytest
from mmengine.config import Config

from convnextv2_yolo.utils.launch import VIS_BACKEND_PACKAGES, add_vis_backends, resolve_vis_backend
from tests.helpers.processes import PY, run_tool
from tests.helpers.tiny import make_tiny_data, tiny_cfg


def test_names_resolve_to_mmengine_backends():
    assert resolve_vis_backend('LocalVisBackend') == 'LocalVisBackend'
    assert resolve_vis_backend('local') == 'LocalVisBackend'
    with pytest.raises(SystemExit, match=r"unknown backend 'tensorbored'.*tensorboard"):
        resolve_vis_backend('tensorbored')


def test_a_missing_package_is_named():
    missing = [(b, p) for b, p in VIS_BACKEND_PACKAGES.items() if importlib.util.find_spec(p) is None]
    if not missing:
        pytest.skip('every backend package is installed')
    backend, package = missing[0]
    name = backend[:-len('VisBackend')].lower()
    with pytest.raises(SystemExit, match=rf"needs the package '{package}', which is not installed"):
        resolve_vis_backend(name)


def test_backends_are_added_once_to_the_config_visualizer():
    cfg = Config(dict(visualizer=dict(type='DetLocalVisualizer', vis_backends=[dict(type='LocalVisBackend')])))
    add_vis_backends(cfg, ['local'])
    assert cfg.visualizer.vis_backends == [dict(type='LocalVisBackend')]
    if importlib.util.find_spec('tensorboard') is not None:
        add_vis_backends(cfg, ['tensorboard', 'TensorboardVisBackend'])
        assert cfg.visualizer.vis_backends == [dict(type='LocalVisBackend'), dict(type='TensorboardVisBackend')]


def test_train_writes_tensorboard_events_and_results_csv(tmp_path):
    """A 2-epoch tiny training through tools/train.py --vis-backend tensorboard (requirements/tests.txt)."""
    if importlib.util.find_spec('tensorboard') is None:
        pytest.skip("the package 'tensorboard' is not installed (pip install tensorboard; tools/env/setup.sh "
                    'installs it with requirements/tests.txt)')
    data = make_tiny_data(str(tmp_path / 'shapes'))
    work_dir = str(tmp_path / 'work')
    cfg = tiny_cfg(data, work_dir, max_epochs=2, val_interval=1)
    path = str(tmp_path / 'tiny.py')
    cfg.dump(path)
    run_tool([PY, 'tools/train.py', path, '--work-dir', work_dir, '--vis-backend', 'tensorboard'])
    events = glob(osp.join(work_dir, '*', 'vis_data', 'events.out.tfevents.*'))
    assert events and osp.getsize(events[0]) > 0
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    acc = EventAccumulator(osp.dirname(events[0]))
    acc.Reload()
    assert {'loss', 'lr', 'coco/bbox_mAP'} <= set(acc.Tags()['scalars'])
    with open(osp.join(work_dir, 'results.csv')) as f:  # the demo recipe's ResultsCSVHook
        rows = list(csv.DictReader(f))
    assert [r['epoch'] for r in rows] == ['1', '2']
    assert all(r['metrics/mAP50-95(B)'] != '' for r in rows)


def test_train_refuses_an_unknown_backend(tmp_path):
    data = make_tiny_data(str(tmp_path / 'shapes'), num_train=2, num_val=1)
    cfg = tiny_cfg(data, str(tmp_path / 'work'), max_epochs=1)
    path = str(tmp_path / 'tiny.py')
    cfg.dump(path)
    res = run_tool([PY, 'tools/train.py', path, '--vis-backend', 'nosuch'], check=False)
    assert res.returncode != 0
    assert "--vis-backend: unknown backend 'nosuch'" in res.stderr
    assert not osp.exists(str(tmp_path / 'work'))  # refused before the runner is built
