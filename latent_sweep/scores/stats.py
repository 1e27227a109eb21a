"""Statistics over seeds for `compare`: bootstrap confidence intervals of group means, and
paired comparisons of groups (wins, losses, ties, median difference, its bootstrap interval and
a Wilcoxon signed-rank p-value).

Intervals are 95% percentile bootstraps (`scipy.stats.bootstrap`, 9,999 resamples) drawn from a
generator seeded with SEED, so a table printed twice prints the same numbers. The percentile
method is used rather than BCa because groups here are small and scores often repeat (a median
of differences, a hue_order of 1), where BCa's acceleration estimate breaks down.

Pairing. Two members are a pair when they share a seed and the rest of their sampled config
(`key` columns: `seed` and the sweeps' sampled parameters other than the one grouped by), one
in the baseline group and one in the other. Every group is compared with the baseline group (the
first one in sorted order unless chosen), so two groups give one comparison and k groups give
k − 1, all against the same reference. A member without a partner, or whose key is not unique
in its group (two members of one group with the same seed and config cannot be told apart),
is dropped and counted. A pair where either side has no score (a diverged member) is left out
of that score's statistics.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.stats

SEED = 0
RESAMPLES = 9999
LEVEL = 0.95


def bootstrap_ci(values: np.ndarray | Sequence[float], statistic: Callable = np.mean) -> tuple[float, float]:
    """95% percentile bootstrap interval of `statistic` over the finite `values` (NaN, NaN for
    fewer than two; both ends the value itself when all are equal)."""
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    if len(x) < 2:
        return np.nan, np.nan
    if np.ptp(x) == 0:  # every resample is the same: scipy would warn of a degenerate sample
        return float(x[0]), float(x[0])
    result = scipy.stats.bootstrap(
        (x,),
        statistic,
        n_resamples=RESAMPLES,
        confidence_level=LEVEL,
        method="percentile",
        rng=np.random.default_rng(SEED),
    )
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def binomial_ci(successes: int, trials: int) -> tuple[float, float]:
    """Exact (Clopper–Pearson) 95% interval of a success rate: guaranteed coverage, also at
    0/n and n/n, where a bootstrap collapses to a point (NaN, NaN for no trials)."""
    if trials == 0:
        return np.nan, np.nan
    ci = scipy.stats.binomtest(successes, trials).proportion_ci(confidence_level=LEVEL, method="exact")
    return float(ci.low), float(ci.high)


def wilcoxon_p(differences: np.ndarray) -> float:
    """Two-sided Wilcoxon signed-rank p-value of paired differences (zeros dropped, scipy's
    default); NaN when no difference is non-zero."""
    d = np.asarray(differences, dtype=float)
    if not np.any(d != 0):
        return np.nan
    with warnings.catch_warnings():  # small samples: scipy notes its method choice
        warnings.simplefilter("ignore")
        return float(scipy.stats.wilcoxon(d).pvalue)


@dataclass(frozen=True)
class Pairs:
    """Members of `group` matched with members of the baseline: `scores` columns of each side,
    suffixed `_group` and `_base`, one row per pair; `dropped` members of the two groups had
    no partner."""

    group: object
    table: pd.DataFrame
    dropped: int


def pair_groups(
    df: pd.DataFrame, by: str, key: Sequence[str], scores: Sequence[str], baseline: object
) -> list[Pairs]:
    """Each group of `by` other than `baseline` paired with the baseline on the `key` columns."""
    matchable = df.assign(_key=_key_strings(df, key))
    base = matchable[matchable[by] == baseline]
    out = []
    for group, rows in matchable.groupby(by, sort=True, observed=True):
        if group == baseline:
            continue
        left, right = _unique_keys(rows), _unique_keys(base)
        table = left[["_key", *scores]].merge(
            right[["_key", *scores]], on="_key", suffixes=("_group", "_base"), sort=True
        )
        out.append(Pairs(group, table.drop(columns="_key"), len(rows) + len(base) - 2 * len(table)))
    return out


def _key_strings(df: pd.DataFrame, key: Sequence[str]) -> pd.Series:
    # Text compares a value read from two sweeps alike (an int in one, a float in another).
    return df[list(key)].map(str).agg("\x1f".join, axis=1)  # str(nan) too: a value absent in one sweep


def _unique_keys(rows: pd.DataFrame) -> pd.DataFrame:
    return rows[~rows["_key"].duplicated(keep=False)]


def paired_stats(pairs: Pairs, score: str, maximize: bool) -> dict[str, float | int]:
    """Differences group − baseline of one score over the pairs where both sides have it: counts
    of wins (better in the score's direction), losses and ties, median difference, its 95%
    bootstrap interval and the Wilcoxon p-value."""
    d = (pairs.table[f"{score}_group"] - pairs.table[f"{score}_base"]).to_numpy(dtype=float)
    d = d[np.isfinite(d)]
    better = d > 0 if maximize else d < 0
    low, high = bootstrap_ci(d, np.median)
    return {
        "pairs": len(d),
        "wins": int(better.sum()),
        "losses": int((d != 0).sum() - better.sum()),
        "ties": int((d == 0).sum()),
        "median_diff": float(np.median(d)) if len(d) else np.nan,
        "ci_low": low,
        "ci_high": high,
        "p_wilcoxon": wilcoxon_p(d),
    }
