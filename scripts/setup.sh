#!/usr/bin/env bash
# Create .venv/ and install latent-sweep with its dev tools.
# Torch first: on a machine without an NVIDIA GPU we pin the CPU build (an unpinned torch
# pulls several GB of CUDA wheels); a torch already in .venv is reused as it is.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    .venv/bin/pip install --quiet "torch>=2.2,<2.15"
  else
    .venv/bin/pip install --quiet "torch==2.13.0"
  fi
fi
.venv/bin/pip install --quiet -e ".[dev]"
