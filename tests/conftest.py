"""Shared pytest setup: torch threads for the session, the repository root as a fixture.

The tests are a package (``tests/__init__.py``): pytest puts the repository root on
``sys.path`` itself (its default ``prepend`` import mode), so tests import their helpers
as ``tests.helpers.<module>`` and the package under test as installed (``pip install -e .``).
"""
import os

import pytest

from tests.helpers.paths import ROOT


@pytest.fixture(autouse=True, scope='session')
def _torch_threads():
    import torch
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    yield


@pytest.fixture(scope='session')
def repo_root() -> str:
    return ROOT
