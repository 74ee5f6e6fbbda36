#!/usr/bin/env bash
# Creates the project virtualenv and installs the pinned OpenMMLab stack.
#
#   bash tools/install.sh [VENV]          (default: .venv)
#
# mmcv 2.1.0 has no wheel for current torch, so it is compiled from its sdist with
# ops once (about 30 min on 2 cores) and the wheel is cached in
# $MQFORMER_WHEEL_CACHE (default ~/.cache/mqformer/wheels/<torch version>), where a
# fresh clone on the same machine finds it again.
# Set FORCE_CUDA=1 (and install a CUDA torch in the venv first) to build CUDA ops.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${1:-.venv}
PYTHON=${PYTHON:-$(command -v python3.11 || command -v python3)}

if [ ! -x "$VENV/bin/python" ]; then
  echo "[install] creating virtualenv $VENV with $PYTHON"
  "$PYTHON" -m venv "$VENV"
fi
PIP="$VENV/bin/python -m pip"
$PIP install -q --upgrade pip
# Keep an already installed (e.g. CUDA) torch; otherwise take the pinned one.
if ! "$VENV/bin/python" -c "import torch" 2>/dev/null; then
  $PIP install -q -r requirements/build.txt
else
  $PIP install -q "setuptools<81" wheel ninja "numpy>=2.0,<2.3"
fi

TORCH_TAG=$("$VENV/bin/python" -c "import torch; print(torch.__version__)")
CACHE=${MQFORMER_WHEEL_CACHE:-$HOME/.cache/mqformer/wheels}/torch-$TORCH_TAG
mkdir -p "$CACHE"
if ! "$VENV/bin/python" -c "import mmcv, mmcv.ops; assert mmcv.__version__ == '2.1.0'" 2>/dev/null; then
  WHL=$(ls "$CACHE"/mmcv-2.1.0-*.whl 2>/dev/null | head -n1 || true)
  if [ -z "$WHL" ]; then
    echo "[install] building mmcv 2.1.0 with ops against torch $TORCH_TAG (about 30 min on 2 cores)"
    TMP=$(mktemp -d)
    MMCV_WITH_OPS=1 MAX_JOBS=${MAX_JOBS:-$(nproc)} \
      $PIP wheel -q --no-build-isolation --no-deps mmcv==2.1.0 -w "$TMP"
    # move in one step so an interrupted build never leaves a broken cached wheel
    mv "$TMP"/mmcv-2.1.0-*.whl "$CACHE"/ && rm -rf "$TMP"
    WHL=$(ls "$CACHE"/mmcv-2.1.0-*.whl | head -n1)
  else
    echo "[install] reusing cached $WHL"
  fi
  $PIP install -q "$WHL"
fi

$PIP install -q -r requirements/mminstall.txt -r requirements/runtime.txt \
  -r requirements/tests.txt -r requirements/optional.txt \
  -r requirements/deploy.txt -r requirements/web.txt
$PIP install -q --no-deps -r requirements/panoptic.txt
$PIP install -q --no-deps -e .
"$VENV/bin/python" -c "import mmcv.ops, mmdet, mmseg, mqformer; print('[install] ok: mmcv', mmcv.__version__, 'mmdet', mmdet.__version__, 'mmseg', mmseg.__version__, 'mqformer', mqformer.__version__)"
