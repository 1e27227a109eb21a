"""The Python API for notebooks and scripts: what `latent-sweep run`, `resume` and `train` do,
returning the results as a DataFrame (one row per member, as `load_trials` and `latent-sweep
table` read them) instead of an exit code. Configs may be files or dicts; overrides may be
`{path: value}` or `PATH=VALUE` strings. Bad input raises `latent_sweep.UserError`.

    import latent_sweep as ls
    trials = ls.run_sweep("sweeps/quick.yaml", storage="results", num_samples=4)
    trials.sort_values("hue_corr", ascending=False).head()
    members = ls.train({"experiment": "autoencoder", ...}, seeds=[0, 1, 2], steps=1000, out="results/t")
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

import pandas as pd

from latent_sweep.analysis.results import load_trials
from latent_sweep.commands import train_progress
from latent_sweep.engine import local
from latent_sweep.spec.config import Overrides


def _sweeps() -> ModuleType:
    """`latent_sweep.tune.sweep`, imported on first use."""
    from latent_sweep.tune import sweep  # Ray: seconds to import, which `train` need not pay

    return sweep


def run_sweep(
    sweep: str | Path | dict,
    *,
    storage: str | None = None,
    name: str | None = None,
    num_samples: int | None = None,
    overrides: Overrides = None,
    address: str | None = None,
) -> pd.DataFrame:
    """Run a sweep (a sweep file, or its contents as a dict) on Ray Tune into `<storage>/<name>`
    (defaults: the sweep's `storage`, else `results/`; its `name`); `address` joins a Ray cluster
    instead of starting local Ray. Returns the sweep's trials. Trials that errored are rows with
    status ERROR and their reason in `error`; an interrupted sweep's unfinished trials continue
    with `resume_sweep`."""
    outcome = _sweeps().run(
        sweep, storage=storage, name=name, num_samples=num_samples, overrides=overrides, address=address
    )
    return load_trials(outcome.path)


def resume_sweep(
    results_dir: str | Path, *, restart_errored: bool = False, address: str | None = None
) -> pd.DataFrame:
    """Finish an interrupted sweep from its checkpoints (`restart_errored` retries the trials
    that errored); returns its trials."""
    return load_trials(_sweeps().resume(results_dir, restart_errored=restart_errored, address=address).path)


def train(
    config: str | Path | dict,
    *,
    seeds: str | Sequence[int] | None = None,
    seed: int | None = None,
    out: str | Path | None = None,
    steps: int | None = None,
    overrides: Overrides = None,
    threads: int | None = local.THREADS,
) -> pd.DataFrame:
    """Train one trial in this process, without Ray: the base config of a sweep file, a trial's
    config.yaml, or a config dict. `seeds` (a list, or `0-19`/`0,2,5-7`) trains those seeds as one
    population; `out` is the trial directory (default `results/train/<name>-<seeds>`; a directory
    holding this very trial continues from its last checkpoint); `threads` sets torch's threads
    while it trains (default 1, as `latent-sweep train`: these models are tiny, and more threads
    only slow them; None leaves torch's as they are). Shows progress as `latent-sweep train` does.
    Returns the trial's rows, one per member."""
    trial_dir, _ = local.train(
        config,
        seed=seed,
        seeds=seeds,
        steps=steps,
        overrides=overrides,
        out=out,
        threads=threads,
        watch=train_progress,
    )
    return load_trials(trial_dir)
