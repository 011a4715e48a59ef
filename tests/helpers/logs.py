"""Catching log records in tests."""
import logging


class WarningRecords(logging.Handler):
    """A handler that keeps the messages of the WARNING (and higher) records it gets, in ``messages``."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())
