"""tools/env/setup.sh stops with a clear message naming what is missing."""
import os
import os.path as osp
import stat
import subprocess
import sys

from tests.helpers.paths import ROOT

SETUP = osp.join(ROOT, 'tools', 'env', 'setup.sh')


def _run(env_extra, tmp_path, timeout=240):
    env = dict(os.environ)
    env.update(VENV_DIR=str(tmp_path / 'venv'), CONVNEXTV2_YOLO_CACHE=str(tmp_path / 'cache'))
    env.update(env_extra)
    return subprocess.run(['bash', SETUP], env=env, capture_output=True, text=True, timeout=timeout)


def _fake_python(tmp_path, version):
    exe = tmp_path / 'python_fake'
    exe.write_text(f'#!/bin/sh\necho {version}\n')
    exe.chmod(exe.stat().st_mode | stat.S_IEXEC)
    return str(exe)


def test_unsupported_python(tmp_path):
    res = _run({'PYTHON': _fake_python(tmp_path, '3.8')}, tmp_path)
    assert res.returncode != 0
    assert 'Python 3.8' in res.stderr and 'unsupported' in res.stderr
    assert not (tmp_path / 'venv').exists()


def test_missing_python(tmp_path):
    res = _run({'PYTHON': str(tmp_path / 'no_such_python')}, tmp_path)
    assert res.returncode != 0 and 'no_such_python' in res.stderr


def test_missing_compiler(tmp_path):
    res = _run({'PYTHON': sys.executable, 'CXX': str(tmp_path / 'no-g++')}, tmp_path)
    assert res.returncode != 0
    assert 'no C++ compiler' in res.stderr and 'no-g++' in res.stderr
    assert not (tmp_path / 'venv').exists()


def test_unreachable_registry_then_repairable(tmp_path):
    base = sys.executable
    # the interpreter that built our venv (a venv's python may not create venvs with pip)
    real = osp.realpath(base)
    env = {'PYTHON': real, 'PIP_CONFIG_FILE': os.devnull, 'PIP_INDEX_URL': 'http://127.0.0.1:9/simple',
           'PIP_EXTRA_INDEX_URL': '', 'PIP_FIND_LINKS': '', 'PIP_RETRIES': '0', 'PIP_TIMEOUT': '3'}
    res = _run(env, tmp_path)
    assert res.returncode != 0
    assert 'cannot reach the package registry' in res.stderr
    # no stamp: a re-run treats the environment as incomplete and carries on from here
    assert not (tmp_path / 'venv' / '.convnextv2_yolo_env').exists()
