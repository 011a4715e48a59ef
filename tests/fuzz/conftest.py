"""Fixtures of the fuzz tests: ``count`` (mutations per reader: ``$CONVNEXTV2_YOLO_FUZZ_COUNT``, default 60,
and a ``slow`` variant with 1000) and ``quiet_logs`` (the readers' warnings are not printed)."""
import gc

import pytest

from tests.helpers.fuzz import fuzz_count


@pytest.fixture(params=[pytest.param('default', id='default'),
                        pytest.param('1000', id='1000', marks=pytest.mark.slow)])
def count(request):
    return fuzz_count() if request.param == 'default' else 1000


@pytest.fixture(autouse=True)
def quiet_logs(monkeypatch):
    """The readers' print_log lines are dropped (thousands of warnings on bad inputs)."""
    from convnextv2_yolo.datasets import checked_coco, yolo_dataset
    for module in (checked_coco, yolo_dataset):
        monkeypatch.setattr(module, 'print_log', lambda *args, **kwargs: None)


@pytest.fixture(scope='module', autouse=True)
def frozen_gc():
    """mmengine's dataset code runs gc.collect() (0.2 s over torch + mmdet's objects): freeze those."""
    gc.freeze()
    yield
    gc.unfreeze()
