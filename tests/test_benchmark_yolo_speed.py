"""Smoke test of tools/analysis_tools/benchmark_yolo_speed.py at a tiny size."""
import importlib.util
import json
import os.path as osp
import sys

import pytest

pytest.importorskip('mmcv.ops')


def test_benchmark_runs_and_writes_json(repo_root, tmp_path, monkeypatch):
    path = osp.join(repo_root, 'tools', 'analysis_tools', 'benchmark_yolo_speed.py')
    spec = importlib.util.spec_from_file_location('benchmark_yolo_speed', path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = tmp_path / 'speed.json'
    monkeypatch.setattr(sys, 'argv', [
        'benchmark_yolo_speed.py', '--builtin-model', '--device', 'cpu', '--cpu-batch', '2', '--img-size', '128',
        '--num-gt', '6', '--iters', '1', '--warmup', '0', '--nms-candidates', '50', '--threads', '1',
        '--stat', 'min', '--json', str(out)])
    assert bench.main() == 0
    res = json.loads(out.read_text())
    assert res['params'] == 2_624_080  # YOLO11-n, as the reference
    cpu = res['results']['cpu b2']
    for key in ('train_step_ms', 'assigner_loss_ms', 'assigner_loss_share_%', 'forward_ms', 'forward_b1_ms',
                'decode_nms_b1_50cand_ms', 'preprocess_yolo_ms', 'preprocess_default_ms'):
        assert cpu[key] > 0, key
