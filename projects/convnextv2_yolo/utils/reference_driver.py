"""Reading what ``tools/analysis_tools/ultralytics_driver.py`` reports.

The driver runs in the reference's (Ultralytics') own venv, where this package is not installed, and ends
each sub-command by printing one ``RESULT {json}`` line; the parity and speed tools read it from its output.
"""
import json
from typing import Optional

RESULT_PREFIX = 'RESULT '


def read_result(text: str) -> Optional[dict]:
    """The last ``RESULT {json}`` line the driver printed in ``text``, parsed.

    Args:
        text (str): The driver's output (stdout, or a log holding it).

    Returns:
        dict | None: The parsed JSON; None when there is no such line.
    """
    results = [line[len(RESULT_PREFIX):] for line in text.splitlines() if line.startswith(RESULT_PREFIX)]
    return json.loads(results[-1]) if results else None
