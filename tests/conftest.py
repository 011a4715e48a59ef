"""Shared pytest setup: torch threads for the session, the repository root as a fixture.

The tests are a package (``tests/__init__.py``): pytest puts the repository root on
``sys.path`` itself (its default ``prepend`` import mode), so tests import their helpers
as ``tests.helpers.<module>`` and the package under test as installed (``pip install -e .``).
"""
import os
import os.path as osp

import pytest

from tests.helpers.paths import ROOT


def pytest_configure(config):
    """Refuse to test another checkout's package: a clone sharing an environment whose editable install
    points elsewhere would otherwise pass or fail for code that is not this tree's."""
    import convnextv2_yolo
    here = osp.realpath(osp.join(ROOT, 'projects', 'convnextv2_yolo'))
    found = osp.realpath(osp.dirname(convnextv2_yolo.__file__))
    if found != here:
        raise pytest.UsageError(f'convnextv2_yolo is imported from {found}, not from this checkout ({here}): '
                                f'install this checkout (`pip install -e .`, or `bash run.sh setup`) or put '
                                f'{osp.dirname(here)} first on PYTHONPATH')


@pytest.fixture(autouse=True, scope='session')
def _torch_threads():
    import torch
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    yield


@pytest.fixture(scope='session')
def repo_root() -> str:
    return ROOT
