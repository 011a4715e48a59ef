"""Smoke test of tools/analysis_tools/benchmark_yolo_speed.py at a tiny size."""
import json
import sys

import pytest

from tests.helpers.processes import PY, run_tool

pytest.importorskip('mmcv.ops')


def test_benchmark_runs_and_writes_json(repo_root, tmp_path):
    # stands in for the reference's venv python (tests/helpers/fake_ultralytics_driver.py)
    fake = tmp_path / 'ref_python'
    fake.write_text(
        f'#!/bin/sh\nshift\nexec "{sys.executable}" "{repo_root}/tests/helpers/fake_ultralytics_driver.py" "$@"\n')
    fake.chmod(0o755)
    record = tmp_path / 'seen.json'
    out = tmp_path / 'speed.json'
    run_tool([PY, 'tools/analysis_tools/benchmark_yolo_speed.py', '--builtin-model', '--device', 'cpu', '--cpu-batch',
              '2', '--img-size', '128', '--num-gt', '6', '--iters', '1', '--warmup', '0', '--nms-candidates', '50',
              '--threads', '1', '--stat', 'min', '--json', str(out), '--ref-python', str(fake)],
             FAKE_BENCH_RECORD=str(record))
    res = json.loads(out.read_text())
    assert res['params'] == 2_624_080  # YOLO11-n, as the reference
    cpu = res['results']['cpu b2']
    for key in ('train_step_ms', 'assigner_loss_ms', 'assigner_loss_share_%', 'forward_ms', 'forward_b1_ms',
                'decode_nms_b1_50cand_ms', 'preprocess_yolo_ms', 'preprocess_default_ms'):
        assert cpu[key] > 0, key
    # the reference's side: timed on the same batch with the same threads, its numbers and the ratios reported
    seen = json.loads(record.read_text())
    assert seen == dict(imgs=[2, 3, 128, 128], dtype='torch.uint8', packed=[6, 6], threads=1, iters=1, omp='1')
    assert res['results']['reference cpu b2']['train_step_ms'] == 1000.0
    ratio = res['results']['ours / reference']
    assert ratio['train_step_ms'] == pytest.approx(cpu['train_step_ms'] / 1000.0)
    assert ratio['forward_b1_ms'] == pytest.approx(cpu['forward_b1_ms'] / 50.0)
