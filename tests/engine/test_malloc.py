"""env_cfg.malloc (convnextv2_yolo/utils/malloc.py): glibc keeps freed tensors instead of faulting them back.

Each check runs in a fresh process: malloc settings are process-wide and cannot be undone.
"""
import json
import sys

import pytest

from convnextv2_yolo.utils.malloc import _glibc, configure_malloc
from tests.helpers.processes import run_tool

pytestmark = pytest.mark.skipif(_glibc() is None, reason='glibc only')

# allocate and free 64 MiB 5 times (after one warm-up), report the page faults per round
FAULTS = r'''
import json, resource, sys, torch
from convnextv2_yolo.utils.malloc import configure_malloc
report = configure_malloc(json.loads(sys.argv[1]))
def rnd():
    a = torch.ones(16 * 2 ** 20)  # 64 MiB, above glibc's largest mmap threshold
    b = [torch.ones(2 ** 20) for _ in range(8)]  # 4 MiB blocks
    return float(a[-1] + b[-1][-1])
rnd(); rnd()
f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(5):
    rnd()
print(json.dumps(dict(report=report, faults=(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0) // 5)))
'''


def _faults(options, **env) -> dict:
    res = run_tool([sys.executable, '-c', FAULTS, json.dumps(options)], timeout=120, **env)
    return json.loads(res.stdout.strip().splitlines()[-1])


def test_recipe_setting_removes_the_page_faults_of_reallocation():
    default = _faults({})
    tuned = _faults(dict(trim_threshold=-1, mmap_max=0))
    assert default['report'] == {}
    assert tuned['report'] == {'trim_threshold': 'set to -1', 'mmap_max': 'set to 0'}
    # 96 MiB touched per round = 24576 pages: glibc's defaults fault (most of) them in again each round
    assert default['faults'] > 10000, default
    assert tuned['faults'] < default['faults'] / 5, (default, tuned)


@pytest.mark.parametrize('env', [dict(MALLOC_MMAP_MAX_='65536'), dict(MALLOC_ARENA_MAX='2'),
                                 dict(GLIBC_TUNABLES='glibc.malloc.trim_threshold=1000000')])
def test_settings_from_the_environment_win_whole(env):
    """Any malloc setting in the environment: none of env_cfg.malloc is applied (mixing them can be worse)."""
    out = _faults(dict(trim_threshold=-1, mmap_max=0), **env)
    var = next(iter(env))
    assert out['report'] == {'trim_threshold': f'left to the environment ({var})',
                             'mmap_max': f'left to the environment ({var})'}


@pytest.mark.parametrize('options, match', [
    (dict(trim_treshold=-1), r"env_cfg.malloc: unknown setting\(s\) \['trim_treshold'\]"),
    (dict(mmap_max='0'), r"env_cfg.malloc.mmap_max must be an int, got '0'"),
    (dict(mmap_max=True), r'env_cfg.malloc.mmap_max must be an int'),
    (dict(trim_threshold=2 ** 32), r'env_cfg.malloc.trim_threshold=4294967296 is outside -1..2147483647'),
    (dict(trim_threshold=-2), r'env_cfg.malloc.trim_threshold=-2 is outside'),
    (dict(mmap_threshold=2 ** 30), r'env_cfg.malloc.mmap_threshold=1073741824 is outside 0..33554432'),
    (dict(mmap_max=-5), r'env_cfg.malloc.mmap_max=-5 is outside'),
    (dict(arena_max=0), r'env_cfg.malloc.arena_max=0 is outside 1..'),
])
def test_bad_settings_name_the_key(options, match):
    with pytest.raises(ValueError, match=match):
        configure_malloc(options)


def test_yolo_runner_applies_and_logs_env_cfg_malloc(tmp_path):
    script = r'''
import sys
import torch
from mmengine.model import BaseModel
from convnextv2_yolo.engine.runner import YOLORunner
class M(BaseModel):
    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))
    def forward(self, *a, **k):
        return {}
r = YOLORunner(model=M(), work_dir=sys.argv[1], env_cfg=dict(malloc=dict(mmap_max=0)))
print(r._malloc_report)
'''
    res = run_tool([sys.executable, '-c', script, str(tmp_path)], timeout=120)
    assert "{'mmap_max': 'set to 0'}" in res.stdout
    assert 'env_cfg.malloc: mmap_max set to 0' in res.stdout + res.stderr
