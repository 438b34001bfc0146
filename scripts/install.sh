#!/usr/bin/env bash
# Create a virtual environment (default .venv) and install speech2face into it.
#   scripts/install.sh            # the runtime: reconstruct on ONNX Runtime (no torch)
#   scripts/install.sh train      # with an extra (photos, train, eval, serve, test; comma-separated)
#   scripts/install.sh test       # the package with its test extras (everything)
#   TORCH=cpu scripts/install.sh  # force PyTorch's CPU-only build (default on machines without an NVIDIA GPU)
#   TORCH=pypi scripts/install.sh # whatever PyPI's torch is (on Linux: the CUDA build, several GB)
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
EXTRAS=${1:-}
TORCH=${TORCH:-auto}
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
PIP="$VENV/bin/pip"
"$PIP" install -q --upgrade pip
# torch first where an extra needs it, so 'torch>=2.4' is already met and pulls nothing more.
NEEDS_TORCH=0
case ",$EXTRAS," in *,train,*|*,eval,*|*,test,*) NEEDS_TORCH=1 ;; esac
if [ "$NEEDS_TORCH" = 1 ] && ! "$VENV/bin/python" -c "import torch" >/dev/null 2>&1; then
    if [ "$TORCH" != pypi ] && "$PIP" install -q --no-index --no-deps torch==2.13.0 >/dev/null 2>&1; then
        "$PIP" install -q torch==2.13.0          # a CPU wheel this machine keeps on disk
    elif [ "$TORCH" = cpu ] || { [ "$TORCH" = auto ] && ! command -v nvidia-smi >/dev/null 2>&1; }; then
        # no NVIDIA GPU: PyTorch's own CPU-only index (~200 MB instead of several GB of CUDA libraries)
        "$PIP" install -q torch --index-url https://download.pytorch.org/whl/cpu \
            || echo "PyTorch's CPU index is unreachable; PyPI's torch will be installed" >&2
    fi
fi
if [ -n "$EXTRAS" ]; then
    "$PIP" install -q -e ".[$EXTRAS]"
else
    "$PIP" install -q -e .
fi
# the page's on-device drawing: onnxruntime-web from the npm registry, into the package's static folder
bash scripts/fetch_onnxruntime_web.sh
echo "installed speech2face${EXTRAS:+[$EXTRAS]} into $VENV"
