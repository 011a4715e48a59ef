"""Shared pytest setup: single-threaded torch, repo root on sys.path."""
import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TESTS = os.path.join(ROOT, 'tests')
for path in (ROOT, TESTS):  # tests import their shared helpers (_tiny.py) by name
    if path not in sys.path:
        sys.path.insert(0, path)


@pytest.fixture(autouse=True, scope='session')
def _torch_threads():
    import torch
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    yield


@pytest.fixture(scope='session')
def repo_root() -> str:
    return ROOT
