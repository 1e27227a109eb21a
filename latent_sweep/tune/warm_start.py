"""`warm_start: RESULTS_DIR`: the configs an earlier sweep evaluated, with their values of this
sweep's metric(s) recomputed from its member rows, for the new Optuna study to start from.
Configs with a value outside this sweep's space, of a trial that did not finish, or without a
finite metric are left out. Imports no Ray: `validate` checks a warm start too."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from latent_sweep.analysis.results import load_sweeps
from latent_sweep.errors import UserError
from latent_sweep.scores import summary
from latent_sweep.spec.sweep_block import Leaf, SampledSeed, SweepSpec, is_score
from latent_sweep.store import layout

# Ray flattens the Tune config {"params": {path: value}} into Optuna parameter names "params/<path>".
OPTUNA_PREFIX = "params/"


@dataclass(frozen=True)
class WarmStart:
    trials: list[tuple[dict, list[float]]]  # (Optuna params "params/<path>", metric values) per config
    configs: int  # configs the earlier sweep holds
    source: str


def warm_start(spec: SweepSpec) -> WarmStart:
    """The earlier sweep's configs inside this sweep's space, with this sweep's metric values;
    a UserError when the directory is not a sweep's, its parameters differ, or none is usable."""
    src, where = spec.source, spec.block.warm_start
    loc = "sweep.warm_start"
    try:
        df, (earlier,) = load_sweeps([where])
    except UserError as err:
        raise UserError(f"{src}: `{loc}` names `{where}`, which is not a readable sweep: {err}") from None
    if not (earlier.path / layout.TRIALS).is_file():
        raise UserError(
            f"{src}: `{loc}` names `{where}`, which has no {layout.TRIALS}; expected the results "
            "directory of a finished (or resumed) `latent-sweep run`"
        )
    wanted = sorted(spec.space) + (["seed"] if isinstance(spec.block.seeds, SampledSeed) else [])
    # The earlier sweep's columns name keyframes by its schedule's STEPs; a space may name them by row.
    column = {p: earlier.keyframes.column(p) for p in wanted}
    if sorted(earlier.params) != sorted(column[p] for p in spec.space):
        raise UserError(
            f"{src}: `{loc}` names `{where}`, whose sampled parameters ({', '.join(sorted(earlier.params))}) "
            f"differ from this sweep's space ({', '.join(sorted(spec.space))}); warm start needs the same "
            "parameters"
        )
    scores = [c for c in df.select_dtypes("number").columns if is_score(c)]
    trials = []
    configs = df.groupby("trial_id", sort=True)
    for _, group in configs:
        first = group.iloc[0]
        values = _metric_values(spec, group, scores) if (group["status"] == "TERMINATED").all() else None
        params = {p: _plain(first.get(f"config.{column[p]}")) for p in wanted}
        if values is None or not all(_inside(spec.space[p], v) for p, v in params.items() if p in spec.space):
            continue
        trials.append(({OPTUNA_PREFIX + p: v for p, v in params.items()}, values))
    if not trials:
        raise UserError(
            f"{src}: `{loc}` names `{where}`, but none of its {configs.ngroups} configs lies inside this "
            f"sweep's space, finished, with a finite {', '.join(spec.metrics)}; widen the space or drop "
            "`warm_start`"
        )
    return WarmStart(trials, configs.ngroups, str(where))


def _metric_values(spec: SweepSpec, group: pd.DataFrame, scores: list[str]) -> list[float] | None:
    """This sweep's metric(s) over a config's member rows, as its trial would report them;
    None when one is missing or not finite."""
    stats = summary.summarize(group, scores, spec.block.success)
    values = [stats.get(m) for m in spec.metrics]
    return values if all(v is not None and math.isfinite(v) for v in values) else None


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _inside(leaf: Leaf, value: Any) -> bool:
    """Whether Optuna's version of `leaf` can hold `value` (a value from an earlier sweep)."""
    if leaf.kind == "choice":
        return value in leaf.args
    if not isinstance(value, int | float) or isinstance(value, bool):
        return False
    lo, hi = leaf.args[0], leaf.args[1]
    if leaf.kind == "randint":
        return float(value).is_integer() and lo <= value < hi
    if leaf.kind == "quniform":
        q = leaf.args[2]
        return lo <= value <= hi and math.isclose((value - lo) / q, round((value - lo) / q), abs_tol=1e-9)
    return lo <= value <= hi
