"""Running the repository's tools in fresh Python processes (as a user would)."""
import os
import subprocess
import sys

from .paths import ROOT

PY = sys.executable


def tool_env(**extra) -> dict:
    """This process's environment (the package as installed) with 1 thread per process."""
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHON=PY)
    env.update(extra)
    return env


def run_tool(cmd, timeout: int = 600, check: bool = True, **env) -> subprocess.CompletedProcess:
    """Run ``cmd`` from the repository root; with ``check``, fail the test (with its output) on rc != 0."""
    res = subprocess.run(cmd, cwd=ROOT, env=tool_env(**env), capture_output=True, text=True, timeout=timeout)
    if check:
        assert res.returncode == 0, f'{cmd} failed ({res.returncode}):\n{res.stdout[-3000:]}\n{res.stderr[-5000:]}'
    return res
