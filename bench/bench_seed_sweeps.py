"""A seeds sweep as one population trial against one trial per seed, in the same run.

    .venv/bin/python bench/bench_seed_sweeps.py [--sweep sweeps/ex15_seeds.yaml] [--repeat 1]

Runs `latent-sweep run SWEEP` twice as a user would (a fresh process, embedded Ray, all the
machine's cores): as written (`population: seeds`, the N seeds as one trial) and with
`--set sweep.population=none` (one single-model trial per seed, Ray running as many at once as
there are cores: how seed sweeps ran before populations). Prints both wall times, their ratio
(the issue's target for ex17_seeds and ex15_seeds is ≥ 5×) and whether the two agree on the
seeds' scores. Several repeats alternate the two, so a machine whose speed drifts moves both.
"""

from __future__ import annotations

import argparse
import os
import tempfile

import numpy as np
import pandas as pd
from bench_sweep import timed_run  # this directory is on the path when a bench script runs

SCORES = ("hue_corr", "hue_order", "hue_winding", "recon_mse")


def run(sweep: str, storage: str, name: str, *overrides: str) -> tuple[float, pd.DataFrame]:
    """Wall time of one `latent-sweep run` and its members' final scores, by seed."""
    wall, results = timed_run(sweep, storage, name, *overrides)
    trials = pd.read_parquet(results / "trials.parquet")
    return wall, trials.set_index("seed").sort_index()[list(SCORES)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sweep", default="sweeps/ex15_seeds.yaml")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each, alternating")
    args = parser.parse_args()

    walls: dict[str, list[float]] = {"population": [], "per seed": []}
    with tempfile.TemporaryDirectory(prefix="bench-seeds-") as storage:
        for i in range(args.repeat):
            wall, pop = run(args.sweep, storage, f"pop{i}")
            walls["population"].append(wall)
            wall, alone = run(args.sweep, storage, f"alone{i}", "sweep.population=none")
            walls["per seed"].append(wall)

    load = os.getloadavg()[0]
    print(f"sweep {args.sweep}: {len(pop)} seeds, {os.cpu_count()} cores, load average {load:.1f} after")
    for label, times in walls.items():
        print(f"{label:<12} {min(times):8.1f} s   (runs: {', '.join(f'{t:.1f}' for t in times)})")
    print(f"speed-up     {min(walls['per seed']) / min(walls['population']):8.2f}×   (target ≥ 5×)")
    # Member k of a population trains like a model alone up to float rounding in batched
    # kernels, so the outcomes agree closely but not bitwise; count seeds whose wheel differs.
    ordered = [(frame["hue_order"] == 1) & (frame["hue_winding"].abs() == 1) for frame in (pop, alone)]
    print(
        f"ordered wheels: population {int(ordered[0].sum())}/{len(pop)}, per seed "
        f"{int(ordered[1].sum())}/{len(alone)}; max |Δ hue_corr| "
        f"{np.nanmax(np.abs(pop['hue_corr'] - alone['hue_corr'])):.2e}"
    )


if __name__ == "__main__":
    main()
