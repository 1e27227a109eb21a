"""Benchmark `latent_sweep.scores.neighbors.trustworthiness` against `sklearn.manifold.trustworthiness`.

Targets (issue "Neighbor-preservation scores"): ≥ 20× faster than sklearn at n = 6,000;
n = 50,000 in ≤ 60 s within 2 GB. Data: a 64-D Gaussian mixture and a random 2-D
projection of it. Each (n, implementation) runs in its own subprocess so its peak RSS
(`ru_maxrss`) is its own; "score MB" is the peak minus the RSS before the call (after imports
and data). sklearn holds several n × n arrays, so it only runs where they fit comfortably.

    .venv/bin/python bench/bench_trustworthiness.py [--sizes 6000 20000 50000] [--k 10] [--threads N]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np

# sklearn keeps an n × n float64 distance matrix, its int64 argsort and an int64 inverted index.
SKLEARN_BYTES_PER_PAIR = 3 * 8
WIDTHS = (7, 8, 10, 10, 7, 9, 8)


def make_data(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centers = rng.normal(scale=3.0, size=(10, 64))
    x = centers[rng.integers(0, 10, n)] + rng.normal(size=(n, 64))
    z = x @ rng.normal(size=(64, 2)) / 8.0
    return x, z


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def worker(impl: str, n: int, k: int, threads: int) -> None:
    """Time one implementation on one size; print one JSON line."""
    from threadpoolctl import threadpool_limits

    x, z = make_data(n)
    with threadpool_limits(threads):
        if impl == "ours":
            import torch

            from latent_sweep.scores.neighbors import trustworthiness

            torch.set_num_threads(threads)
            trustworthiness(*make_data(200, seed=1), k)  # first-call setup stays out of the timing
            score = trustworthiness
        else:
            from sklearn.manifold import trustworthiness as sk_trustworthiness

            def score(a: np.ndarray, b: np.ndarray, size: int) -> float:
                return sk_trustworthiness(a, b, n_neighbors=size)

        before = rss_mb()
        start, cpu = time.perf_counter(), time.process_time()
        value = score(x, z, k)
        seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu
    result = {"value": value, "seconds": seconds, "cpu": cpu_seconds, "before": before, "peak": rss_mb()}
    print(json.dumps(result))


def run_worker(impl: str, n: int, k: int, threads: int) -> dict[str, float]:
    cmd = [sys.executable, __file__, "--worker", impl, "--sizes", str(n), "--k", str(k)]
    cmd += ["--threads", str(threads)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def available_bytes() -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no MemAvailable in /proc/meminfo")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[6000, 20000, 50000])
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--worker", choices=["ours", "sklearn"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.sizes[0], args.k, args.threads)
        return

    load = os.getloadavg()[0]
    print(f"k = {args.k}; torch and BLAS threads = {args.threads}; 1-min load average {load:.1f}")
    header = ("n", "ours s", "ours cpu s", "sklearn s", "ratio", "score MB", "peak MB")
    print(" ".join(f"{h:>{w}}" for h, w in zip(header, WIDTHS, strict=True)) + "  notes")
    for n in args.sizes:
        ours = run_worker("ours", n, args.k, args.threads)
        sk_needed = SKLEARN_BYTES_PER_PAIR * n * n
        notes, sk_s, ratio = [], "-", "-"
        if sk_needed <= available_bytes() / 4:
            sk = run_worker("sklearn", n, args.k, args.threads)
            sk_s, ratio = f"{sk['seconds']:.2f}", f"{sk['seconds'] / ours['seconds']:.1f}x"
            notes.append(f"|ours - sklearn| = {abs(ours['value'] - sk['value']):.1e}")
        else:
            notes.append(f"sklearn skipped (needs ~{sk_needed / 2**30:.1f} GiB)")
        notes.append(f"T = {ours['value']:.6f}")
        row = (n, f"{ours['seconds']:.2f}", f"{ours['cpu']:.2f}", sk_s, ratio)
        row += (f"{ours['peak'] - ours['before']:.0f}", f"{ours['peak']:.0f}")
        print(" ".join(f"{v:>{w}}" for v, w in zip(row, WIDTHS, strict=True)) + "  " + "; ".join(notes))


if __name__ == "__main__":
    main()
