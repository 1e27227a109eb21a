"""Sweep overhead: a sweep's wall time against the work its trials did, spread over the cores.

    .venv/bin/python bench/bench_sweep.py [--sweep sweeps/quick.yaml] [--cores 2]

Runs `latent-sweep run` as a user would (a fresh process, embedded Ray), then divides its
wall time by Σ trial time / cores, for two notions of trial time: Ray's (`wall_time_s`, the
trainable from start to end, setup included) and the training loop's own (the last
`wall_time` in each trial's history). A ratio of 1 means the cores were busy training the
whole time; the target for the quick sweep on 2 cores is ≤ 1.25×. Prints ratios only; the
CPU count and machine load are printed too because both move the numbers.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from latent_sweep.store.history import read_table


def timed_run(sweep: str, storage: str, name: str, *overrides: str) -> tuple[float, Path]:
    """`latent-sweep run SWEEP` in a fresh process (`--set` each override): wall time, results."""
    cmd = [sys.executable, "-m", "latent_sweep", "run", sweep, "--storage", storage, "--name", name]
    for override in overrides:
        cmd += ["--set", override]
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start, Path(storage, name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sweep", default="sweeps/quick.yaml")
    parser.add_argument("--cores", type=int, default=os.cpu_count(), help="cores the sweep may use")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-sweep-") as storage:
        wall, results = timed_run(args.sweep, storage, "b")
        # One row per member: a trial's times once.
        trials = pd.read_parquet(results / "trials.parquet").drop_duplicates("trial_id")
        loop = [read_table(results / d / "history")["wall_time"].iloc[-1] for d in trials["trial_dir"]]

    load = os.getloadavg()[0]
    print(f"sweep {args.sweep}: {len(trials)} trials, {args.cores} cores, load average {load:.1f} after")
    print(f"wall time                      {wall:8.1f} s")
    sums = {"Σ trial time (Ray)": trials["wall_time_s"].sum(), "Σ training loop time": sum(loop)}
    for label, busy in sums.items():
        spread = busy / args.cores
        print(f"{label + ' / cores':<30} {spread:8.1f} s   ratio {wall / spread:.2f}×")
    print("target: ratio ≤ 1.25×")


if __name__ == "__main__":
    main()
