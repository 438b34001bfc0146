#!/usr/bin/env bash
# Create a virtual environment (default .venv) and install speech2face into it.
#   scripts/install.sh            # the package
#   scripts/install.sh test       # the package with its test extras
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
EXTRAS=${1:-}
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
PIP="$VENV/bin/pip"
"$PIP" install -q --upgrade pip
# Take the CPU build of torch where its wheel lies on this machine's disk; otherwise a plain
# 'torch' requirement would pull a multi-GB CUDA build.
if ! "$VENV/bin/python" -c "import torch" >/dev/null 2>&1; then
    if "$PIP" install -q --no-index --no-deps torch==2.13.0 >/dev/null 2>&1; then
        "$PIP" install -q torch==2.13.0
    fi
fi
if [ -n "$EXTRAS" ]; then
    "$PIP" install -q -e ".[$EXTRAS]"
else
    "$PIP" install -q -e .
fi
echo "installed speech2face into $VENV"
