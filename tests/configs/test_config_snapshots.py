"""Every shipped config has a committed snapshot of its effective config (code defaults written out).

A recipe default changed in code once moved the demo's mAP while every test stayed green (issue 18):
now such a change, or any config change, fails here until ``tools/misc/print_config.py
--update-snapshots`` is run and the snapshots are committed with it.
"""
import os
import os.path as osp

import pytest

from tests.helpers.paths import ROOT


def _configs():
    from convnextv2_yolo.utils.effective_config import shipped_configs
    return shipped_configs(ROOT)


def test_every_shipped_config_is_snapshotted():
    from convnextv2_yolo.utils.effective_config import snapshot_dir, snapshot_file
    configs = _configs()
    assert len(configs) >= 20
    expected = {osp.abspath(snapshot_file(ROOT, rel)) for rel in configs}
    present = {osp.abspath(osp.join(d, f)) for d, _, files in os.walk(snapshot_dir(ROOT)) for f in files}
    assert not expected - present, f'configs without a snapshot: {sorted(expected - present)}'
    assert not present - expected, f'snapshots of configs that no longer exist: {sorted(present - expected)}'


@pytest.mark.parametrize('rel', _configs())
def test_snapshot_is_current(rel):
    from convnextv2_yolo.utils.effective_config import snapshot_file, snapshot_text
    path = snapshot_file(ROOT, rel)
    with open(path, encoding='utf-8') as f:
        committed = f.read()
    now = snapshot_text(ROOT, rel)
    if now != committed:
        import difflib
        diff = ''.join(difflib.unified_diff(committed.splitlines(True), now.splitlines(True), 'committed', 'now', n=1))
        pytest.fail(f'configs/{rel} no longer gives {osp.relpath(path, ROOT)} (a config or a code default changed):\n'
                    f'{diff[:4000]}\nrun tools/misc/print_config.py --update-snapshots and commit the snapshot with '
                    'the change, saying why the recipe moved')


def _set_default(monkeypatch, func, name, value):
    """Change the default of parameter ``name`` of ``func`` (as an edit of its source would)."""
    import inspect
    params = [p for p in inspect.signature(func).parameters.values() if p.default is not p.empty
              and p.kind == p.POSITIONAL_OR_KEYWORD]
    defaults = list(func.__defaults__)
    defaults[[p.name for p in params].index(name)] = value
    monkeypatch.setattr(func, '__defaults__', tuple(defaults))


def test_a_changed_code_default_shows_in_the_snapshot(monkeypatch):
    """The mechanism that can move a recipe silently: a default changed in code, no config changed."""
    from convnextv2_yolo.backbones.convnextv2 import ConvNeXtV2
    from convnextv2_yolo.task_modules.assigners.batch_task_aligned_assigner import BatchTaskAlignedAssigner
    from convnextv2_yolo.utils.effective_config import snapshot_text
    rel = 'demo/yolo11_convnextv2-atto_synthetic.py'
    before = snapshot_text(ROOT, rel)
    _set_default(monkeypatch, BatchTaskAlignedAssigner.__init__, 'min_gt_size', 16.0)
    assert snapshot_text(ROOT, rel) == before  # the demo writes min_gt_size: immune
    _set_default(monkeypatch, ConvNeXtV2.__init__, 'drop_path_rate', 0.1)
    assert snapshot_text(ROOT, rel) == before  # written in the config too
    _set_default(monkeypatch, ConvNeXtV2.__init__, 'frozen_stages', 1)  # relied on: shows
    after = snapshot_text(ROOT, rel)
    assert after != before and 'frozen_stages=1,  # default' in after


def test_code_defaults_are_marked_and_paths_are_portable():
    from mmengine.config import Config

    from convnextv2_yolo.utils.effective_config import CodeDefault, effective_config, format_effective_config
    cfg = Config.fromfile(osp.join(ROOT, 'configs', 'yolo11', 'yolo11_n_8xb16-500e_coco.py'))
    eff = effective_config(cfg)
    assigner = eff['model']['train_cfg']['assigner']
    assert assigner['min_gt_size'] == 16 and not isinstance(assigner['min_gt_size'], CodeDefault)
    assert isinstance(eff['model']['bbox_head']['cls_channels'], CodeDefault)  # not written in the config
    hook = next(h for h in eff['custom_hooks'] if h['type'] == 'YOLOEMAHook')
    assert isinstance(hook['begin_iter'], CodeDefault) and hook['update_on'] == 'optimizer_step'
    text = format_effective_config(eff, root=ROOT)
    assert '  # default' in text and ROOT not in text
    assert "min_gt_size=16," in text
