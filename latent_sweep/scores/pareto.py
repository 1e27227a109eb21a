"""Pareto fronts: the rows no other row beats on every objective at once. Shared by the sweep's
leaderboard (`latent_sweep.tune.report`) and the comparisons of results (`latent_sweep.analysis.compare`)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd


def pareto_front(values: np.ndarray, maximize: Sequence[bool]) -> np.ndarray:
    """Boolean mask of the non-dominated rows; rows with a missing value are never on the front."""
    v = np.where(np.asarray(maximize, dtype=bool), 1.0, -1.0) * np.asarray(values, dtype=float)
    valid = ~np.isnan(v).any(axis=1)
    front = valid.copy()
    for i in np.flatnonzero(valid):
        others = v[valid]
        front[i] = not np.any(np.all(others >= v[i], axis=1) & np.any(others > v[i], axis=1))
    return front


def front_mask(table: pd.DataFrame, metrics: Sequence[str], modes: Sequence[str]) -> np.ndarray:
    """The rows of `table` (one per config) that no other row beats on every metric at once;
    `modes` are each metric's `max` or `min`."""
    return pareto_front(table[list(metrics)].to_numpy(dtype=float), [m == "max" for m in modes])
