"""Choosing the rows and columns of a results table: the score columns, the key scores an
experiment shows first, a column named loosely (`hue_corr`, `labels.mode`), sorting, filtering.

Best first, in each score's direction as its experiment declares it
(`latent_sweep.scores.declarations`, docs/scores.md), also as `best_<score>`: lower-is-better
scores sort ascending, everything else descending. A sweep's own metric follows its
`sweep.mode`. `--sort SCORE:min` or `SCORE:max` overrides the rule.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence

import pandas as pd

from latent_sweep.analysis.results import META_COLUMNS, Sweep, lower_is_better, nunique
from latent_sweep.errors import UserError
from latent_sweep.spec import experiment
from latent_sweep.spec.columns import config_column, query_columns

EXPERIMENT_COLUMN = "config.experiment"
WHERE_HINT = "column names with dots or dashes need backticks, e.g. \"`config.labels.mode` == 'hard'\""


def score_columns(df: pd.DataFrame) -> list[str]:
    """Final score columns: numeric, neither config nor bookkeeping nor `best_`."""
    return [
        c
        for c in df.select_dtypes("number").columns
        if c not in META_COLUMNS and not c.startswith(("config.", "best_"))
    ]


def key_scores(df: pd.DataFrame, sweeps: Sequence[Sweep]) -> list[str]:
    """The sweeps' metrics, then their experiments' key scores (`Experiment.key_scores`, where
    `*` matches any part of a name: `anchor_error_*`)."""
    kinds = df[EXPERIMENT_COLUMN].dropna().unique() if EXPERIMENT_COLUMN in df else [experiment.DEFAULT]
    patterns = [p for kind in kinds for p in _key_patterns(str(kind))]
    keys = experiment.key_columns(patterns, df.columns)
    wanted = [s.metric for s in sweeps if s.metric] + keys
    return [c for c in dict.fromkeys(wanted) if c in df.columns]


def _key_patterns(kind: str) -> tuple[str, ...]:
    try:
        return experiment.get(kind).key_scores
    except UserError:  # a user's experiment this process cannot import: its results still read
        return ()


def default_columns(df: pd.DataFrame, sweeps: Sequence[Sweep]) -> list[str]:
    params = [f"config.{p}" for s in sweeps for p in s.params]
    members = ["member", "seed"] if "member" in df and (df["member"] > 0).any() else []
    wanted = ["sweep", "trial_id", *members, "status", "pareto", *params, *key_scores(df, sweeps), "steps"]
    return [c for c in dict.fromkeys(wanted) if c in df.columns]


def optional_columns(shown: pd.DataFrame, df: pd.DataFrame, sweeps: Sequence[Sweep]) -> tuple[str, ...]:
    """The columns of `shown` (rows of `df`) a narrow terminal may leave out, the least wanted
    first: columns named beyond these (`--columns`), `status` where every row has the same, `steps`,
    scores other than the key scores, `member` (where `seed` tells the members apart), then the
    key scores from the last. Never the rows' names (sweep, trial_id, seed), the config columns
    (the sampled parameters), the sweeps' metrics, a `status` that differs or the Pareto mark."""
    keys = key_scores(df, sweeps)
    metrics = {s.metric for s in sweeps}
    scores = [c for c in score_columns(shown) if c not in metrics]
    kept = {"sweep", "trial_id", "seed", "member", "status", "steps", "pareto", *metrics, *scores}
    others = [c for c in shown.columns if c not in kept and not c.startswith("config.")]
    status = ["status"] if "status" in shown and nunique(shown["status"]) == 1 else []
    member = ["member"] if "seed" in shown else []
    order = [
        *reversed(others),
        *status,
        "steps",
        *reversed([c for c in scores if c not in keys]),
        *member,
        *reversed([c for c in scores if c in keys]),
    ]
    return tuple(c for c in dict.fromkeys(order) if c in shown)


def resolve_column(
    df: pd.DataFrame, name: str, option: str, scores_only: bool = False, sweeps: Sequence[Sweep] = ()
) -> str:
    """A column by its name, or a config path without the `config.` prefix; a keyframe in any
    form a path may address it (`[@5000]`, `[5]`, `[5@5000]`) in the `sweeps`' schedules."""
    for candidate in (name, f"config.{name}"):
        if candidate in df.columns and (not scores_only or candidate in score_columns(df)):
            return candidate
    schedules = [s.keyframes for s in sweeps]
    if not scores_only and (column := config_column(name, df.columns, schedules, option)):
        return column
    scores = score_columns(df)
    names = scores if scores_only else [*df.columns, *(c.removeprefix("config.") for c in df.columns)]
    close = difflib.get_close_matches(name, names)
    hint = f" (did you mean `{close[0]}`?)" if close else ""
    if scores_only:
        listing = f"available: {', '.join(scores) or 'none'}"
        raise UserError(f"unknown score `{name}` for {option}{hint}; {listing}")
    others = [c for c in df.columns if c not in scores and not c.startswith("config.")]
    configs = [c for c in df.columns if c.startswith("config.")]
    varying = [c for c in configs if nunique(df[c]) > 1]
    shown = configs if len(configs) <= 12 else [*varying, f"… ({len(configs)} config columns in all)"]
    raise UserError(
        f"unknown score or column `{name}` for {option}{hint}; "
        f"available scores: {', '.join(scores) or 'none'}; other columns: {', '.join(others)}; "
        f"config columns: {', '.join(shown) or 'none'}"
    )


def sort_trials(df: pd.DataFrame, key: str, sweeps: Sequence[Sweep]) -> pd.DataFrame:
    """Best first (see the module doc); `key` may end in `:max` or `:min`."""
    name, _, sense = key.partition(":")
    column = resolve_column(df, name, "--sort", sweeps=sweeps)
    if sense and sense not in ("max", "min"):
        raise UserError(f"--sort `{key}`: the direction after `:` must be max or min, but got `{sense}`")
    ascending = sense == "min" if sense else minimize(column, sweeps)
    return df.sort_values(column, ascending=ascending, na_position="last", kind="stable")


def minimize(column: str, sweeps: Sequence[Sweep]) -> bool:
    """Lower is better for `column`: the sweeps' mode for their metric, else the best-first rule."""
    base = column.removeprefix("best_")
    modes = {s.mode for s in sweeps if s.metric == base and s.mode in ("max", "min")}
    return modes == {"min"} if modes else lower_is_better(base)


def filter_trials(df: pd.DataFrame, expr: str, sweeps: Sequence[Sweep]) -> pd.DataFrame:
    query = query_columns(expr, df.columns, [s.keyframes for s in sweeps], "--where")
    try:
        return df.query(query)
    except Exception as err:  # pandas raises many kinds here; all mean the expression is bad
        reason = " ".join(str(err).split()) or type(err).__name__
        raise UserError(f"bad --where expression `{expr}`: {reason}; {WHERE_HINT}") from None


def select_trials(
    df: pd.DataFrame,
    sweeps: Sequence[Sweep],
    *,
    where: str | None = None,
    sort: str | None = None,
    top: int | None = None,
    columns: Sequence[str] | None = None,
) -> pd.DataFrame:
    """The `table` pipeline: filter, sort (best first by the metric by default), top N, columns
    (names, or comma-separated lists of names)."""
    if where:
        df = filter_trials(df, where, sweeps)
    sort = sort or next((s.metric for s in sweeps if s.metric in df.columns), None)
    if sort:
        df = sort_trials(df, sort, sweeps)
    if top is not None:
        if top < 1:
            raise UserError(f"--top must be at least 1, but got {top}")
        df = df.head(top)
    names = [n for item in columns or [] for n in item.split(",") if n]
    chosen = [resolve_column(df, n, "--columns", sweeps=sweeps) for n in names] or default_columns(df, sweeps)
    return df[chosen].reset_index(drop=True)
