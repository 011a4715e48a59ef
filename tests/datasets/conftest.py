"""Fixtures of the dataset tests: ``mmdet_scope`` and ``frozen_gc`` (used by the YOLODataset modules through
``pytestmark``), ``logs``."""
import gc
import logging

import pytest


@pytest.fixture
def mmdet_scope():
    from mmengine.registry import init_default_scope
    init_default_scope('mmdet')


@pytest.fixture(scope='module')
def frozen_gc():
    """mmengine's dataset serialisation runs gc.collect() (0.2 s over torch + mmdet's objects): freeze those."""
    gc.freeze()
    yield
    gc.unfreeze()


@pytest.fixture
def logs(monkeypatch):
    """Every print_log of yolo_dataset as (level, message)."""
    from convnextv2_yolo.datasets import yolo_dataset
    records = []
    monkeypatch.setattr(yolo_dataset, 'print_log',
                        lambda msg, logger=None, level=logging.INFO: records.append((level, msg)))
    return records


@pytest.fixture
def count_scans(monkeypatch):
    """The image paths yolo_format.verify_image is called with (scans of the index, not cache reads)."""
    from convnextv2_yolo.datasets import yolo_format
    calls = []
    real = yolo_format.verify_image
    monkeypatch.setattr(yolo_format, 'verify_image', lambda path: calls.append(path) or real(path))
    return calls
