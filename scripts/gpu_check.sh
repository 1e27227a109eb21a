#!/usr/bin/env bash
# On a machine with an NVIDIA GPU: the CUDA tests, then the population benchmark on the GPU
# (model-steps/s up to K = 16,384, with a profile of the largest population).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/python -m pytest -q -m cuda tests/test_cuda.py
.venv/bin/python bench/bench_population.py --device cuda --members 1,1024,4096,16384 --compile --profile
