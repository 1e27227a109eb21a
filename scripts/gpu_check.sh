#!/usr/bin/env bash
# On a machine with an NVIDIA GPU, in under 8 minutes on an H100/H200: (a) the CUDA tests,
# (c) `train sweeps/ex17.yaml --seeds 0-999` on the GPU, timed, (b) the population benchmark on
# the GPU (K = 1 … 16,384, CUDA graphs on and off, compiled at K = 16,384), then one summary.
#   bash scripts/gpu_check.sh            sets up .venv first (needs the package index)
#   bash scripts/gpu_check.sh python3    uses that interpreter as it is: an offline image with
#                                        torch, latent-sweep's requirements importable and the
#                                        repository on PYTHONPATH (Ray only for the sweep test)
# Every part prints as it goes and runs under its own `timeout`, all within one deadline
# (GPU_CHECK_SECONDS, default 470), so a hung part cannot eat the budget and a timeout leaves
# what was measured. The benchmark runs last, its rows (cheapest first) printed as each
# finishes, and gets whatever time is left. With $OUT set, everything also goes to
# $OUT/gpu.log (unless .gpu/run.sh is already writing it), train's full output to
# $OUT/train_ex17.log. Exit status: 0 when every part passed, else 1.
set -uo pipefail
cd "$(dirname "$0")/.."
if [ $# -gt 0 ]; then
  PY=$1
else
  bash scripts/setup.sh || exit 1
  PY=.venv/bin/python
fi
export PYTHONUNBUFFERED=1

# Whether our stdout is a pipe into a `tee …gpu.log` (what .gpu/run.sh does with $OUT).
logged_by_caller() {
  local pipe pid
  pipe=$(readlink "/proc/$$/fd/1" 2>/dev/null) && [[ $pipe == pipe:* ]] || return 1
  for pid in /proc/[0-9]*; do
    [ "$(readlink "$pid/fd/0" 2>/dev/null)" = "$pipe" ] || continue
    tr '\0' ' ' <"$pid/cmdline" 2>/dev/null | grep -q 'gpu\.log' && return 0
  done
  return 1
}
if [ -n "${OUT:-}" ] && ! logged_by_caller; then
  exec > >(tee "$OUT/gpu.log") 2>&1
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
deadline=$((SECONDS + ${GPU_CHECK_SECONDS:-470}))
failed=()

# limit CAP: seconds for the next part, at most CAP and what is left before the deadline.
limit() {
  local left=$((deadline - SECONDS))
  echo $((left < $1 ? left : $1))
}
# run NAME CAP COMMAND...: under `timeout`; records a failure; the command's status in $rc.
run() {
  local name=$1 secs
  secs=$(limit "$2")
  shift 2
  if [ "$secs" -lt 20 ]; then
    echo "== $name: skipped, out of time"
    failed+=("$name (skipped)")
    rc=125
    return
  fi
  echo "== $name (timeout ${secs} s)"
  local t0=$SECONDS
  timeout -k 10 "$secs" "$@"
  rc=$?
  [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ] && echo "== $name: timed out after ${secs} s"
  [ "$rc" -eq 0 ] || failed+=("$name (exit $rc)")
  echo "== $name: exit $rc, $((SECONDS - t0)) s"
}

"$PY" - <<'PY' || { echo "no CUDA device for $PY: nothing to check"; exit 1; }
import sys, torch
ok = torch.cuda.is_available()
gpu = torch.cuda.get_device_name() if ok else "no CUDA device"
print(f"{gpu}; torch {torch.__version__}, CUDA {torch.version.cuda}; python {sys.version.split()[0]}")
sys.exit(0 if ok else 1)
PY

# (a) The CUDA tests; the line pytest ends with goes in the summary.
run "CUDA tests" 180 bash -c '"$1" -m pytest -q -p no:cacheprovider -m cuda tests/test_cuda.py 2>&1 \
  | tee "$2"; exit "${PIPESTATUS[0]}"' _ "$PY" "$work/tests.txt"
tests_line=$(grep -E '(passed|failed|error|skipped|no tests ran)' "$work/tests.txt" 2>/dev/null | tail -1)
tests_rc=$rc

# (c) A 1,000-seed population of ex17 (10,001 steps) on the GPU, timed whole. Its per-member
# table (1,000 rows) is kept out of the log; the rest streams.
t0=$(date +%s%N)
run "train ex17 --seeds 0-999" 150 bash -c '"$1" -m latent_sweep train sweeps/ex17.yaml --seeds 0-999 \
  --set device=cuda --out "$2/ex17-1000" 2>&1 | tee "$2/train.txt" \
  | grep --line-buffered -Ev "^ *[0-9]+ +[0-9]+ "; exit "${PIPESTATUS[0]}"' _ "$PY" "$work"
ms=$((($(date +%s%N) - t0) / 1000000))
train_wall=$((ms / 1000)).$((ms % 1000 / 100))
train_rc=$rc
[ -n "${OUT:-}" ] && cp "$work/train.txt" "$OUT/train_ex17.log" 2>/dev/null

# (b) The population benchmark: a row per (K, eager/compiled, graph on/off), printed as each
# finishes. On an H200 (before CUDA graphs): eager K=1 304 steps/s, K=1,024 194k and K=16,384
# 1.05M model-steps/s, so 1,500 steps take ~5 s, ~8 s and ~23 s a row; compiling, tens of s.
run "bench_population" 330 bash -c '"$1" bench/bench_population.py --device cuda \
  --members 1,64,1024,16384 --graph both --compile 16384 --steps 1500 --baseline-steps 1000 2>&1 \
  | tee "$2"; exit "${PIPESTATUS[0]}"' _ "$PY" "$work/bench.txt"
bench_rc=$rc

echo
echo "== summary ($SECONDS s)"
echo "CUDA tests: exit $tests_rc; ${tests_line:-no pytest summary line}"
echo "bench_population (ex17, 1,500 steps, steady state; exit $bench_rc):"
grep -E '^ +K  device|^ +(seed|[0-9]+)  (cpu|cuda) |^ +\(cuda_graph asked' "$work/bench.txt" 2>/dev/null || echo "  no rows"
printf 'train ex17 --seeds 0-999 --set device=cuda: %s s wall, exit %s' "$train_wall" "$train_rc"
ordered=$(grep -m1 '^ordered wheels' "$work/train.txt" 2>/dev/null | sed 's/.*: //')
echo "${ordered:+; ordered wheels $ordered}"
if [ ${#failed[@]} -gt 0 ]; then
  echo "FAILED: ${failed[*]}"
  exit 1
fi
echo "all parts passed"
