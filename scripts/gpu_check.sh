#!/usr/bin/env bash
# On a machine with an NVIDIA GPU: the CUDA tests, then the population benchmark on the GPU
# (model-steps/s up to K = 16,384, with a profile of the largest population).
#   bash scripts/gpu_check.sh            sets up .venv first (needs the package index)
#   bash scripts/gpu_check.sh python3    uses that interpreter as it is: an offline image with
#                                        torch, latent-sweep's requirements importable and the
#                                        repository on PYTHONPATH (Ray only for the sweep test)
set -euo pipefail
cd "$(dirname "$0")/.."
if [ $# -gt 0 ]; then
  PY=$1
else
  bash scripts/setup.sh
  PY=.venv/bin/python
fi
"$PY" -m pytest -q -m cuda tests/test_cuda.py
"$PY" bench/bench_population.py --device cuda --members 1,1024,4096,16384 --compile --profile
