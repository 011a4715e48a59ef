#!/usr/bin/env bash
# Idempotent environment setup for convnextv2-yolo.
#
# Creates (or repairs) a virtual environment and installs the pinned stack:
#   torch + torchvision from the package registry, mmcv 2.1.0 built from source
#   against that torch (wheel cached per Python/torch/ops key), mmengine, mmdet,
#   mmpretrain, pycocotools, openmim and this package in editable mode.
#
# Environment variables (all optional):
#   VENV_DIR              where the venv lives            (default: <repo>/.venv)
#   PYTHON                interpreter used to create it    (default: python3.11, python3.12, python3.10, python3)
#   TORCH_VERSION         torch to install                 (default: 2.11.0)
#   TORCHVISION_VERSION   matching torchvision             (default: 0.26.0)
#   MMCV_VERSION          mmcv to build                    (default: 2.1.0)
#   CONVNEXTV2_YOLO_CACHE wheel cache folder               (default: ${XDG_CACHE_HOME:-~/.cache}/convnextv2_yolo)
#   FORCE_CUDA=1          build mmcv's CUDA ops (needs nvcc); auto when torch sees a GPU and nvcc exists
#   TORCH_CUDA_ARCH_LIST  GPU architectures for the CUDA ops, e.g. "8.0;9.0" (default: the visible GPUs')
#   MAX_JOBS              parallel compile jobs            (default: number of cores)
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VENV_DIR="${VENV_DIR:-$REPO_ROOT/.venv}"
TORCH_VERSION="${TORCH_VERSION:-2.11.0}"
TORCHVISION_VERSION="${TORCHVISION_VERSION:-0.26.0}"
MMCV_VERSION="${MMCV_VERSION:-2.1.0}"
CACHE_DIR="${CONVNEXTV2_YOLO_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/convnextv2_yolo}"
STAMP="$VENV_DIR/.convnextv2_yolo_env"

log() { printf '[setup] %s\n' "$*" >&2; }
die() { printf '[setup] ERROR: %s\n' "$*" >&2; exit 1; }
elapsed() { echo "$(( $(date +%s) - START ))s"; }
START=$(date +%s)

# ---------------------------------------------------------------- checks
pick_python() {
  if [ -n "${PYTHON:-}" ]; then echo "$PYTHON"; return; fi
  for p in python3.11 python3.12 python3.10 python3; do
    if command -v "$p" >/dev/null 2>&1; then echo "$p"; return; fi
  done
  die "no Python interpreter found: install Python 3.10-3.12 (3.11 recommended) or set PYTHON=/path/to/python"
}

check_python() {
  local py="$1" ver
  command -v "$py" >/dev/null 2>&1 || die "PYTHON=$py is not an executable"
  ver=$("$py" -c 'import sys; print("%d.%d" % sys.version_info[:2])') || die "$py does not run"
  case "$ver" in
    3.10|3.11|3.12) ;;
    *) die "Python $ver ($py) is unsupported: mmcv $MMCV_VERSION + torch $TORCH_VERSION need Python 3.10-3.12 (3.11 recommended); set PYTHON=python3.11" ;;
  esac
  "$py" -c 'import venv, ensurepip' 2>/dev/null || die "$py lacks the venv/ensurepip modules (Debian/Ubuntu: apt-get install python${ver}-venv)"
  echo "$ver"
}

check_compiler() {
  local cxx="${CXX:-g++}" inc
  command -v "$cxx" >/dev/null 2>&1 || die "no C++ compiler ($cxx) found: mmcv $MMCV_VERSION is built from source (Debian/Ubuntu: apt-get install g++)"
  inc=$("$1" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
  [ -f "$inc/Python.h" ] || die "Python headers missing ($inc/Python.h): install the python dev package (Debian/Ubuntu: apt-get install python3-dev)"
}

check_registry() {
  # A tiny metadata query: fails fast when the package registry is unreachable.
  if ! timeout 120 "$VENV_PY" -m pip download --no-deps --no-build-isolation -q -d "$TMP_DIR/probe" "mmengine==0.10.7" >/dev/null 2>"$TMP_DIR/probe.err"; then
    tail -n 3 "$TMP_DIR/probe.err" >&2 || true
    die "cannot reach the package registry (pip download mmengine==0.10.7 failed): check network/proxy or pip's index-url"
  fi
}

# ---------------------------------------------------------------- helpers
pip_i() { "$VENV_PY" -m pip install --disable-pip-version-check "$@"; }

have() { "$VENV_PY" - "$@" <<'PY' >/dev/null 2>&1
import importlib.metadata as md, sys
for spec in sys.argv[1:]:
    name, ver = spec.split('==')
    v = md.version(name)
    if v.split('+')[0] != ver:
        sys.exit(1)
PY
}

mmcv_ok() { "$VENV_PY" - <<PY >"$TMP_DIR/mmcv_check.log" 2>&1
import mmcv, mmcv.ops
assert mmcv.__version__ == "$MMCV_VERSION", mmcv.__version__
from mmcv.ops import nms  # loads the compiled extension
PY
}

mmcv_cache_key() { "$VENV_PY" - <<'PY'
import os, platform, shutil, sys
import torch
cuda = False
if os.environ.get('FORCE_CUDA') == '1':
    cuda = True
elif os.environ.get('FORCE_CUDA') != '0' and torch.cuda.is_available() and shutil.which('nvcc'):
    cuda = True
if cuda:
    archs = os.environ.get('TORCH_CUDA_ARCH_LIST')
    if not archs and torch.cuda.is_available():
        archs = ';'.join(sorted({'%d.%d' % torch.cuda.get_device_capability(i)
                                 for i in range(torch.cuda.device_count())}))
    ops = 'cuda%s-sm%s' % (torch.version.cuda, (archs or 'default').replace(';', '_').replace(' ', '_'))
else:
    ops = 'cpu'
print('py%d.%d-%s-torch%s-%s' % (sys.version_info[0], sys.version_info[1], platform.machine(),
                                   torch.__version__.replace('+', '_'), ops))
print('1' if cuda else '0')
print(archs if cuda and archs else '')
PY
}

install_mmcv() {
  if mmcv_ok; then log "mmcv $MMCV_VERSION with compiled ops: present"; return; fi
  local info key force_cuda archs wheel_dir wheel build_dir
  info=$(mmcv_cache_key) || die "torch does not import in $VENV_DIR; re-run to repair"
  key=$(echo "$info" | sed -n 1p); force_cuda=$(echo "$info" | sed -n 2p); archs=$(echo "$info" | sed -n 3p)
  wheel_dir="$CACHE_DIR/mmcv/mmcv-$MMCV_VERSION-$key"
  wheel=$(ls "$wheel_dir"/mmcv-"$MMCV_VERSION"-*.whl 2>/dev/null | head -n 1 || true)
  if [ -z "$wheel" ]; then
    log "building mmcv $MMCV_VERSION from source for $key (about 25 min on 2 cores; cached afterwards)"
    mkdir -p "$CACHE_DIR/sdist"
    if [ ! -f "$CACHE_DIR/sdist/mmcv-$MMCV_VERSION.tar.gz" ]; then
      "$VENV_PY" -m pip download --no-deps --no-binary :all: --no-build-isolation -q \
        -d "$CACHE_DIR/sdist" "mmcv==$MMCV_VERSION" || die "could not download the mmcv $MMCV_VERSION source from the package registry"
    fi
    build_dir=$(mktemp -d "$TMP_DIR/mmcv-build.XXXX")
    ( export MMCV_WITH_OPS=1 MAX_JOBS="${MAX_JOBS:-$(nproc)}" FORCE_CUDA="$force_cuda"
      [ -n "$archs" ] && export TORCH_CUDA_ARCH_LIST="$archs"
      "$VENV_PY" -m pip wheel --no-deps --no-build-isolation --no-cache-dir \
        "$CACHE_DIR/sdist/mmcv-$MMCV_VERSION.tar.gz" -w "$build_dir" ) \
      > "$TMP_DIR/mmcv-build.log" 2>&1 || { tail -n 30 "$TMP_DIR/mmcv-build.log" >&2; die "mmcv build failed (full log: $TMP_DIR/mmcv-build.log)"; }
    mkdir -p "$wheel_dir"
    # move into place only once complete: an interrupted build never leaves a cached wheel
    for f in "$build_dir"/mmcv-*.whl; do mv "$f" "$wheel_dir/"; done
    wheel=$(ls "$wheel_dir"/mmcv-"$MMCV_VERSION"-*.whl | head -n 1)
  else
    log "reusing cached mmcv wheel $wheel"
  fi
  pip_i --no-deps --force-reinstall -q "$wheel"
  if ! mmcv_ok; then
    tail -n 5 "$TMP_DIR/mmcv_check.log" >&2
    if grep -q -e 'undefined symbol' -e '_ext' "$TMP_DIR/mmcv_check.log"; then
      rm -f "$wheel"   # built against another torch: never reuse it
      die "the mmcv wheel for $key does not load its compiled ops (removed from the cache); re-run to rebuild"
    fi
    die "mmcv $MMCV_VERSION does not import (see above)"
  fi
}

# ---------------------------------------------------------------- main
PY_BIN=$(pick_python)
PY_VER=$(check_python "$PY_BIN")
check_compiler "$PY_BIN"
mkdir -p "$CACHE_DIR"
TMP_DIR=$(mktemp -d)
trap 'rm -rf "$TMP_DIR"' EXIT

REQ_HASH=$(cat "$REPO_ROOT"/requirements/*.txt "$REPO_ROOT/setup.py" "${BASH_SOURCE[0]}" | sha1sum | cut -c1-12)

if [ -x "$VENV_DIR/bin/python" ] && ! "$VENV_DIR/bin/python" -c 'import sys' >/dev/null 2>&1; then
  log "broken venv at $VENV_DIR: recreating"; rm -rf "$VENV_DIR"
fi
if [ -x "$VENV_DIR/bin/python" ]; then
  VENV_VER=$("$VENV_DIR/bin/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
  if [ "$VENV_VER" != "$PY_VER" ]; then
    if [ -z "${PYTHON:-}" ] && [[ "$VENV_VER" =~ ^3\.(10|11|12)$ ]]; then
      PY_VER="$VENV_VER"   # keep the existing venv's (supported) interpreter
    else
      log "venv uses Python $VENV_VER, $PY_VER wanted: recreating"; rm -rf "$VENV_DIR"
    fi
  fi
fi
WANT="py$PY_VER torch$TORCH_VERSION tv$TORCHVISION_VERSION mmcv$MMCV_VERSION req$REQ_HASH"
VENV_PY="$VENV_DIR/bin/python"

if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$WANT" ] && mmcv_ok && "$VENV_PY" -c 'import convnextv2_yolo' >/dev/null 2>&1; then
  log "environment ready ($VENV_DIR, $WANT) [$(elapsed)]"
  exit 0
fi
rm -f "$STAMP"   # from here on the env counts as incomplete until the end

if [ ! -x "$VENV_PY" ]; then
  log "creating venv $VENV_DIR with $PY_BIN (Python $PY_VER)"
  "$PY_BIN" -m venv "$VENV_DIR"
fi

build_tools_ok() { "$VENV_PY" - <<'PY' >/dev/null 2>&1
import setuptools, wheel, ninja, packaging
major = int(setuptools.__version__.split('.')[0])
assert 64 <= major < 81  # PEP 660 editable installs; pkg_resources still present
PY
}

if ! build_tools_ok || ! have "torch==$TORCH_VERSION" "torchvision==$TORCHVISION_VERSION"; then
  check_registry
  log "installing build tools (setuptools<81) and torch $TORCH_VERSION / torchvision $TORCHVISION_VERSION"
  pip_i -q --upgrade pip "setuptools>=64,<81" wheel ninja packaging || die "installing the build tools failed (see above)"
  pip_i -q "torch==$TORCH_VERSION" "torchvision==$TORCHVISION_VERSION" || die "installing torch $TORCH_VERSION failed (see above)"
fi

log "installing mmengine / mmdet / mmpretrain / pycocotools / openmim (mmcv's runtime dependencies among them)"
pip_i -q -r "$REPO_ROOT/requirements/runtime.txt" -r "$REPO_ROOT/requirements/tests.txt" \
  -c "$REPO_ROOT/requirements/constraints.txt" \
  "torch==$TORCH_VERSION" "torchvision==$TORCHVISION_VERSION" || die "installing the OpenMMLab packages failed (see above)"
pip_i -q --no-deps "openmim==0.3.9"

install_mmcv

log "installing this package (editable)"
pip_i -q --no-deps --no-build-isolation -e "$REPO_ROOT" || die "pip install -e $REPO_ROOT failed"

"$VENV_PY" - <<'PY' || die "the environment does not import cleanly (see above); re-run to repair"
import torch, torchvision, mmcv, mmcv.ops, mmengine, mmdet, mmpretrain, convnextv2_yolo
print('[setup] torch %s  torchvision %s  mmcv %s  mmengine %s  mmdet %s  mmpretrain %s  convnextv2_yolo %s'
      % (torch.__version__, torchvision.__version__, mmcv.__version__, mmengine.__version__,
         mmdet.__version__, mmpretrain.__version__, convnextv2_yolo.__version__))
PY
echo "$WANT" > "$STAMP"
log "environment ready ($VENV_DIR) [$(elapsed)]"
