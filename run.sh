#!/usr/bin/env bash
# convnextv2-yolo entry point.
#   bash run.sh demo [ARGS]   set up the environment if needed, then run the demo training (the main job)
#   bash run.sh test [ARGS]   set up the environment if needed, then run the test suite (ARGS go to pytest)
#   bash run.sh lint          set up the environment if needed, then check code style (flake8 + isort, setup.cfg)
#   bash run.sh setup         only set up / repair the environment (.venv)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cmd="${1:-}"; shift || true
case "$cmd" in
  setup) exec bash "$ROOT/tools/env/setup.sh" ;;
  demo)
    bash "$ROOT/tools/env/setup.sh"
    cd "$ROOT" && exec "${VENV_DIR:-$ROOT/.venv}/bin/python" tools/demo.py "$@" ;;
  lint)
    bash "$ROOT/tools/env/setup.sh"
    cd "$ROOT"
    PY="${VENV_DIR:-$ROOT/.venv}/bin/python"
    "$PY" -m flake8 projects tools tests configs setup.py
    "$PY" -m isort --check-only --diff projects tools tests configs setup.py
    echo "[run.sh] lint: flake8 and isort clean" ;;
  test)
    bash "$ROOT/tools/env/setup.sh"
    cd "$ROOT"
    set +e
    "${VENV_DIR:-$ROOT/.venv}/bin/python" -m pytest "$@"
    rc=$?
    set -e
    # pytest exit codes: 0 all passed, 1 failures, 2 interrupted, 3 internal error,
    # 4 usage error, 5 no tests collected (treated as a failure: the suite must run).
    case $rc in
      0) ;;
      5) echo "[run.sh] pytest collected no tests: failing" >&2; rc=1 ;;
      *) echo "[run.sh] pytest exited with code $rc" >&2 ;;
    esac
    exit $rc ;;
  *) echo "usage: bash run.sh {demo|test|lint|setup} [ARGS]" >&2; exit 2 ;;
esac
