"""latent-sweep: Ray Tune sweeps over latent-space training experiments.

Public API (stable names; the README lists them):

* schedules: `Dopesheet.from_csv(path)`, `Dopesheet.from_records(records)`, `Timeline(dopesheet)`
* scores: `trustworthiness`, `continuity`, `knn_recall`, `knn_accuracy`, `hue_scores`
* results: `load_trials(dir, ...)`, `load_history(trial_dir)`, `load_evals(trial_dir)`
* analysis: `param_importance(dir, ..., score=...)`
* running: `run_sweep(sweep, storage=…, name=…, num_samples=…, overrides=…)`, `resume_sweep(dir)`,
  `train(config, seeds=…, out=…, steps=…)`: each returns the results table (`load_trials`)

Names load on first use, so `import latent_sweep` stays light.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "Dopesheet": "latent_sweep.spec.schedule",
    "Timeline": "latent_sweep.spec.timeline",
    "trustworthiness": "latent_sweep.scores.neighbors",
    "continuity": "latent_sweep.scores.neighbors",
    "knn_recall": "latent_sweep.scores.neighbors",
    "knn_accuracy": "latent_sweep.scores.neighbors",
    "hue_scores": "latent_sweep.scores.geometry",
    "load_trials": "latent_sweep.analysis.results",
    "load_history": "latent_sweep.analysis.results",
    "load_evals": "latent_sweep.analysis.results",
    "param_importance": "latent_sweep.analysis.importance",
    "run_sweep": "latent_sweep.api",
    "resume_sweep": "latent_sweep.api",
    "train": "latent_sweep.api",
    "UserError": "latent_sweep.errors",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'latent_sweep' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
