#!/usr/bin/env bash
# Create .venv/ and install latent-sweep with its dev tools.
# Torch first: on a machine without an NVIDIA GPU we pin the CPU build (an unpinned torch
# pulls several GB of CUDA wheels); a torch already in .venv is reused as it is.
# pip stays quiet; one line per step says what the minute or two goes to.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
step() { echo "setup: $*"; }
if [ -x .venv/bin/python ]; then
  step "reusing .venv ($(.venv/bin/python --version))"
else
  step "creating .venv with $("$PY" --version)"
  "$PY" -m venv .venv
fi
if torch=$(.venv/bin/python -c "import torch; print(torch.__version__)" 2>/dev/null); then
  step "reusing torch $torch"
elif command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
  step "installing torch with CUDA (an NVIDIA GPU is here; a few GB to fetch)"
  .venv/bin/pip install --quiet "torch>=2.2,<2.15"
else
  step "installing torch 2.13.0, CPU build (no NVIDIA GPU here)"
  .venv/bin/pip install --quiet "torch==2.13.0"
fi
step "installing latent-sweep (editable) with its dev extra: Ray Tune, Optuna, MLflow, TensorBoard, W&B, pytest, ruff"
.venv/bin/pip install --quiet -e ".[dev]"
step "done: .venv/bin/latent-sweep --help, .venv/bin/python -m pytest -q"
