"""Catching log records in tests."""
import contextlib
import io
import logging
from typing import Callable, Iterator


class WarningRecords(logging.Handler):
    """A handler that keeps the messages of the WARNING (and higher) records it gets, in ``messages``."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


@contextlib.contextmanager
def current_log() -> Iterator[Callable[[], str]]:
    """Yield a function returning the text logged so far through the current ``MMLogger``.

    Uses a handler on that logger itself: its console handler keeps the stream of the process's first
    logger, which is not a test's captured stdout when an earlier test built a runner.
    """
    from mmengine.logging import MMLogger
    stream, logger = io.StringIO(), MMLogger.get_current_instance()
    handler = logging.StreamHandler(stream)
    logger.addHandler(handler)
    try:
        yield stream.getvalue
    finally:
        logger.removeHandler(handler)
