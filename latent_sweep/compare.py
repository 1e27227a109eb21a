"""Comparing trials: sort, filter, choose columns; group statistics; Pareto fronts; the
`table` and `compare` commands.

Rows are members (`latent_sweep.results`): a population trial contributes one row per member,
so `compare --by` counts and averages members, e.g. the seeds of a config, and the tables of a
sweep of populations show `member` and `seed` by default.

Best first. Lower is better for `recon_mse*`, `*_error*` (`anchor_error_<concept>`,
`norm_error`), `planarity_vibrant` and `loss`, also as `best_<score>`; those sort ascending,
everything else descending. A sweep's own metric follows its `sweep.mode`. `--sort SCORE:min`
or `SCORE:max` overrides the rule.

Pareto fronts (`compare --pareto`) are taken over the group means: a user comparing variants
asks which variants no other beats on every score at once. The trials on the trial-level
front are listed as well.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from latent_sweep.errors import UserError
from latent_sweep.results import META_COLUMNS, Sweep, load_sweeps, lower_is_better, nunique, row_labels
from latent_sweep.table_formats import emit, format_cell

KEY_SCORES = ("hue_corr", "hue_order", "recon_mse")
WHERE_HINT = "column names with dots or dashes need backticks, e.g. \"`config.labels.mode` == 'hard'\""


# ---------------------------------------------------------------------------------------
# Columns, sorting, filtering


def score_columns(df: pd.DataFrame) -> list[str]:
    """Final score columns: numeric, neither config nor bookkeeping nor `best_`."""
    return [
        c
        for c in df.select_dtypes("number").columns
        if c not in META_COLUMNS and not c.startswith(("config.", "best_"))
    ]


def key_scores(df: pd.DataFrame, sweeps: Sequence[Sweep]) -> list[str]:
    """The sweeps' metrics, then hue_corr, hue_order, recon_mse, anchor_error_*, trustworthiness_k10."""
    anchors = sorted(c for c in df.columns if c.startswith("anchor_error_"))
    wanted = [s.metric for s in sweeps if s.metric] + [*KEY_SCORES, *anchors, "trustworthiness_k10"]
    return [c for c in dict.fromkeys(wanted) if c in df.columns]


def default_columns(df: pd.DataFrame, sweeps: Sequence[Sweep]) -> list[str]:
    params = [f"config.{p}" for s in sweeps for p in s.params]
    members = ["member", "seed"] if "member" in df and (df["member"] > 0).any() else []
    wanted = ["sweep", "trial_id", *members, "status", *params, *key_scores(df, sweeps), "steps"]
    return [c for c in dict.fromkeys(wanted) if c in df.columns]


def resolve_column(df: pd.DataFrame, name: str, option: str, scores_only: bool = False) -> str:
    """A column by its name, or a config path without the `config.` prefix."""
    for candidate in (name, f"config.{name}"):
        if candidate in df.columns and (not scores_only or candidate in score_columns(df)):
            return candidate
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
    column = resolve_column(df, name, "--sort")
    if sense and sense not in ("max", "min"):
        raise UserError(f"--sort `{key}`: the direction after `:` must be max or min, but got `{sense}`")
    ascending = sense == "min" if sense else _minimize(column, sweeps)
    return df.sort_values(column, ascending=ascending, na_position="last", kind="stable")


def _minimize(column: str, sweeps: Sequence[Sweep]) -> bool:
    base = column.removeprefix("best_")
    modes = {s.mode for s in sweeps if s.metric == base and s.mode in ("max", "min")}
    return modes == {"min"} if modes else lower_is_better(base)


def filter_trials(df: pd.DataFrame, expr: str) -> pd.DataFrame:
    try:
        return df.query(expr)
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
        df = filter_trials(df, where)
    sort = sort or next((s.metric for s in sweeps if s.metric in df.columns), None)
    if sort:
        df = sort_trials(df, sort, sweeps)
    if top is not None:
        if top < 1:
            raise UserError(f"--top must be at least 1, but got {top}")
        df = df.head(top)
    names = [n for item in columns or [] for n in item.split(",") if n]
    chosen = [resolve_column(df, n, "--columns") for n in names] or default_columns(df, sweeps)
    return df[chosen].reset_index(drop=True)


# ---------------------------------------------------------------------------------------
# Groups and Pareto fronts


def parse_pareto(spec: str, df: pd.DataFrame) -> list[tuple[str, bool]]:
    """`hue_corr:max,recon_mse:min` → [(column, maximize)]; a bare score uses the best-first rule."""
    out = []
    for item in (s.strip() for s in spec.split(",")):
        name, _, sense = item.partition(":")
        if sense and sense not in ("max", "min"):
            raise UserError(
                f"--pareto `{item}`: the direction after `:` must be max or min, but got `{sense}`"
            )
        column = resolve_column(df, name, "--pareto", scores_only=True)
        out.append((column, sense == "max" if sense else not lower_is_better(column)))
    if len(out) < 2:
        raise UserError(
            f"--pareto needs at least two scores, e.g. hue_corr:max,recon_mse:min, but got `{spec}`"
        )
    return out


def pareto_front(values: np.ndarray, maximize: Sequence[bool]) -> np.ndarray:
    """Boolean mask of the non-dominated rows; rows with a missing value are never on the front."""
    v = np.where(np.asarray(maximize, dtype=bool), 1.0, -1.0) * np.asarray(values, dtype=float)
    valid = ~np.isnan(v).any(axis=1)
    front = valid.copy()
    for i in np.flatnonzero(valid):
        others = v[valid]
        front[i] = not np.any(np.all(others >= v[i], axis=1) & np.any(others > v[i], axis=1))
    return front


def group_stats(df: pd.DataFrame, by: str, scores: Sequence[str]) -> pd.DataFrame:
    """Per value of `by`: trial count, then `<score>_mean` and `<score>_std` (ddof=1, across seeds)."""
    groups = df.groupby(by, dropna=False, sort=True)
    out = groups.size().rename("count").to_frame()
    for s in scores:
        out[f"{s}_mean"] = groups[s].mean()
        out[f"{s}_std"] = groups[s].std(ddof=1)
    return out.reset_index()


def _display_stats(stats: pd.DataFrame, scores: Sequence[str]) -> pd.DataFrame:
    shown = stats[[c for c in stats.columns if not c.endswith(("_mean", "_std"))]].copy()
    for s in scores:
        mean, std = stats[f"{s}_mean"], stats[f"{s}_std"]
        shown[s] = [
            format_cell(m) + ("" if pd.isna(d) else f" ± {format_cell(d)}")
            for m, d in zip(mean, std, strict=True)
        ]
    if "pareto" in shown:
        shown["pareto"] = np.where(shown["pareto"], "★", "")
    return shown


# ---------------------------------------------------------------------------------------
# Commands


def table_command(
    results_dirs: Sequence[str | Path],
    *,
    where: str | None = None,
    sort: str | None = None,
    top: int | None = None,
    columns: Sequence[str] | None = None,
    fmt: str = "table",
    out: str | Path | None = None,
) -> int:
    if fmt == "parquet" and not out:
        raise UserError("--format parquet writes a binary file: give --out FILE, e.g. --out trials.parquet")
    df, sweeps = load_sweeps(results_dirs)
    shown = select_trials(df, sweeps, where=where, sort=sort, top=top, columns=columns)
    emit(shown, fmt, None if out is None else str(out), title=", ".join(str(s.path) for s in sweeps))
    return 0


def compare_command(
    results_dirs: Sequence[str | Path],
    *,
    by: str,
    scores: Sequence[str] | None = None,
    pareto: str | None = None,
    fmt: str = "table",
) -> int:
    df, sweeps = load_sweeps(results_dirs)
    by = resolve_column(df, by, "--by")
    front = parse_pareto(pareto, df) if pareto else []
    names = scores or key_scores(df, sweeps)
    columns = [resolve_column(df, n, "--scores", scores_only=True) for n in names]
    columns += [c for c, _ in front if c not in columns]
    if not columns:
        raise UserError(
            f"no scores to compare; give --scores, one of: {', '.join(score_columns(df)) or 'none'}"
        )
    stats = group_stats(df, by, columns)
    note = ""
    if front:
        on, maximize = [c for c, _ in front], [m for _, m in front]
        stats["pareto"] = pareto_front(stats[[f"{c}_mean" for c in on]].to_numpy(), maximize)
        on_front = pareto_front(df[on].to_numpy(dtype=float), maximize)
        ids = row_labels(df)
        senses = ", ".join(f"{c}:{'max' if m else 'min'}" for c, m in front)
        note = f"trials on the trial-level Pareto front ({senses}): {', '.join(ids[on_front])}"
    shown = stats if fmt == "csv" else _display_stats(stats, columns)
    emit(shown, fmt, None, title=f"grouped by {by}", note=note)
    return 0
