"""Which sampled parameters matter for a score: fANOVA (`optuna.importance`) over a sweep's configs.

Rows are members, so the members of a config (its seeds; in a packed sweep, members of one
trial with the same sampled values) are averaged first: a config is one combination of the
sampled parameters' values and its value the mean of the score over its members. Members
without the score (diverged) are left out of the mean; a config none of whose members has it
is left out and counted in the note.

The parameters are the sweeps' `sweep.space` paths whose `config.*` column varies (without a
sweep.yaml, the varying config columns other than the seed). Each gets the Optuna distribution
of its space leaf — uniform and quniform: float; loguniform: log float; randint [lo, hi): int
[lo, hi − 1]; choice and grid: categorical — widened to the values found (PBT may move a value
out of its range); a parameter without a leaf gets one inferred from its values. The configs
become trials of an in-memory study and fANOVA (its forest seeded with FANOVA_SEED) scores each
parameter's share of the variance of the config means; the shares are normalized to sum to 1.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution

from latent_sweep.analysis.compare import SUCCESS, mark_success
from latent_sweep.analysis.results import Sweep, load_sweeps, nunique
from latent_sweep.analysis.select import filter_trials, key_scores, resolve_column
from latent_sweep.analysis.tables import Listing, format_cell
from latent_sweep.errors import UserError

FANOVA_SEED = 0
CATEGORICAL = (None, bool, int, float, str)  # what an Optuna categorical choice may be


@dataclass(frozen=True)
class Configs:
    """The configs of one or more sweeps for one score: `table` has one row per config (the
    `params` columns, then `mean`, `std` (ddof=1) and `members` counted with a score)."""

    score: str
    params: list[str]  # config columns, `config.<path>`
    table: pd.DataFrame
    leaves: dict[str, tuple[str, list]]  # param → its space leaf, e.g. ("loguniform", [0.001, 0.03])
    dropped: int  # configs without a value of the score


def param_importance(*dirs: str | Path, score: str | None = None) -> pd.DataFrame:
    """Importance of each sampled parameter of the sweeps in `dirs` for `score` (default: the
    first sweep's metric): columns `parameter`, `importance` (fANOVA, sums to 1), `distribution`,
    `values` (distinct values), best first."""
    df, sweeps = load_sweeps(dirs)
    return importance(configs_of(df, sweeps, score))


def configs_of(df: pd.DataFrame, sweeps: Sequence[Sweep], score: str | None) -> Configs:
    """Group member rows into configs (see the module doc); errors say what is missing."""
    where = ", ".join(f"`{s.label}`" for s in sweeps)
    if score is None:
        metric = sweeps[0].metric if sweeps[0].metric in df.columns else None
        score = metric or next(iter(key_scores(df, sweeps)), None)
        if score is None:
            raise UserError(f"{where} has no scores to explain; name one with --score")
    else:
        score = resolve_column(df, score, "--score", scores_only=True)
    spaces = [(f"config.{p}", s) for s in sweeps for p in s.params]
    listed = list(dict.fromkeys(c for c, _ in spaces if c != "config.seed"))
    params = [c for c in listed if c in df and nunique(df[c]) > 1]
    if not params:
        found = ", ".join(p.removeprefix("config.") for p in listed) or "none"
        raise UserError(
            f"{where}: no sampled parameter varies across the trials, so there is nothing to rank "
            f"(sweep.space lists: {found}); importance needs a sweep whose `sweep.space` samples "
            f"at least one config path"
        )
    keys = df[params].astype(str)
    groups = df.assign(_score=pd.to_numeric(df[score], errors="coerce")).groupby(
        [keys[c] for c in params], sort=False
    )
    table = groups[params].first().reset_index(drop=True)
    stats = groups["_score"].agg(["mean", "std", "count"]).reset_index(drop=True)
    table[["mean", "std", "members"]] = stats.to_numpy()
    scored = table[table["members"] > 0].reset_index(drop=True)
    if len(scored) < 2:
        raise UserError(
            f"{where}: importance needs at least 2 configs with a `{score}` value to compare, but "
            f"found {len(scored)} (of {len(table)} configs); run more samples (`sweep.num_samples`)"
        )
    if scored["mean"].nunique() < 2:
        raise UserError(
            f"{where}: all {len(scored)} configs have the same mean `{score}` "
            f"({format_cell(scored['mean'].iloc[0])}), so no parameter explains any of it"
        )
    leaves = {c: leaf for c, s in reversed(spaces) if c in params and (leaf := _leaf(s, c))}
    return Configs(score, params, scored, leaves, len(table) - len(scored))


def _leaf(sweep: Sweep, column: str) -> tuple[str, list] | None:
    # Space keys as written (a keyframe by STEP or by row) → their columns, as `Sweep.params`.
    space = {sweep.keyframes.column(str(k)): v for k, v in sweep.space.items()}
    leaf = space.get(column.removeprefix("config."))
    if not isinstance(leaf, dict) or len(leaf) != 1:
        return None
    kind, args = next(iter(leaf.items()))
    return str(kind), list(args) if isinstance(args, list) else [args]


def distribution(leaf: tuple[str, list] | None, values: pd.Series) -> BaseDistribution:
    """The Optuna distribution of a parameter: its space leaf widened to `values`, else inferred."""
    kind, args = leaf or ("", [])
    numeric = pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)
    if kind in ("choice", "grid") or not numeric:
        choices = tuple(dict.fromkeys(_choice(v) for v in values))
        return CategoricalDistribution(tuple(sorted(choices, key=str)))
    args = [float(a) for a in args[:2]]
    lo, hi = float(values.min()), float(values.max())
    if args:
        lo, hi = min(lo, args[0]), max(hi, args[1] - (kind == "randint"))
    if kind == "randint" or (not args and pd.api.types.is_integer_dtype(values)):
        return IntDistribution(math.floor(lo), math.ceil(hi))
    log = kind == "loguniform" or (not kind and lo > 0 and hi / lo >= 100)
    return FloatDistribution(lo, hi, log=log)


def _choice(value: Any) -> Any:
    return value if isinstance(value, CATEGORICAL[1:]) or value is None else str(value)


def importance(configs: Configs) -> pd.DataFrame:
    """fANOVA importance of `configs.params` for the config means (see the module doc)."""
    dists = {c: distribution(configs.leaves.get(c), configs.table[c]) for c in configs.params}
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # no "study created" lines
    try:
        study = optuna.create_study()
        for row in configs.table.itertuples(index=False):
            values = dict(zip(configs.table.columns, row, strict=True))
            params = {c: _param_value(values[c], dists[c]) for c in configs.params}
            study.add_trial(
                optuna.trial.create_trial(params=params, distributions=dists, value=values["mean"])
            )
        evaluator = optuna.importance.FanovaImportanceEvaluator(seed=FANOVA_SEED)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            shares = optuna.importance.get_param_importances(study, evaluator=evaluator)
    finally:
        optuna.logging.set_verbosity(verbosity)
    return pd.DataFrame(
        {
            "parameter": [p.removeprefix("config.") for p in shares],
            "importance": [float(v) for v in shares.values()],
            "distribution": [_describe_leaf(configs.leaves.get(p), dists[p]) for p in shares],
            "values": [configs.table[p].nunique() for p in shares],
        }
    )


def _param_value(value: Any, dist: BaseDistribution) -> Any:
    if isinstance(dist, CategoricalDistribution):
        return _choice(value)
    return int(value) if isinstance(dist, IntDistribution) else float(value)


def _describe_leaf(leaf: tuple[str, list] | None, dist: BaseDistribution) -> str:
    """The space leaf as written (`loguniform [0.001, 0.03]`), else the distribution inferred."""
    if leaf:
        return f"{leaf[0]} [{', '.join(format_cell(a) for a in leaf[1])}]"
    if isinstance(dist, CategoricalDistribution):
        return f"categorical ({len(dist.choices)} values)"
    kind = "int" if isinstance(dist, IntDistribution) else "log float" if dist.log else "float"
    return f"{kind} [{format_cell(dist.low)}, {format_cell(dist.high)}] (inferred)"


def describe(configs: Configs) -> str:
    """What the importances were computed over, for the table's note."""
    members = configs.table["members"]
    low, high = int(members.min()), int(members.max())
    each = "one member" if high == 1 else f"the mean of {low if low == high else f'{low}–{high}'} members"
    n = configs.dropped
    dropped = f"; {n} config{'s' * (n != 1)} without a `{configs.score}` left out" if n else ""
    return f"fANOVA (seed {FANOVA_SEED}) over {len(configs.table)} configs, each {each}{dropped}"


def importance_table(
    results_dirs: Sequence[str | Path],
    *,
    score: str | None = None,
    where: str | None = None,
    success: str | None = None,
) -> Listing:
    """The importance table of the sweeps (`param_importance`), with what it was computed over.
    `where` keeps the member rows it holds for (e.g. `seed < 4`: half of the seeds); `score`
    `success` explains the rate of members that satisfy `success` (default: the sweeps' own
    `sweep.success`), each config's mean being its success rate."""
    df, sweeps = load_sweeps(results_dirs)
    counted = ""
    if score == SUCCESS or success is not None:
        df, counted = mark_success(df, sweeps, success)
        if SUCCESS not in df:
            raise UserError("--score success needs --success EXPR: the sweeps share no `sweep.success`")
        score = SUCCESS
    if where:
        df = filter_trials(df, where, sweeps)
    configs = configs_of(df, sweeps, score)
    notes = [describe(configs), f"members where {where}" if where else "", counted]
    note = "; ".join(n for n in notes if n)
    return Listing(importance(configs), title=f"importance for {configs.score}", note=note)
