"""Comparing trials: group statistics, Pareto fronts and paired comparisons; the tables the
`table` and `compare` commands show (`trials_table`, `compare_groups`; rows chosen, sorted and
filtered by `latent_sweep.analysis.select`).

Rows are members (`latent_sweep.analysis.results`): a population trial contributes one row per member,
so `compare --by` counts and averages members, e.g. the seeds of a config, and the tables of a
sweep of populations show `member` and `seed` by default.

Pareto fronts (`compare --pareto`) are taken over the group means: a user comparing variants
asks which variants no other beats on every score at once. The trials on the trial-level
front are listed as well.

Groups come with a 95% bootstrap interval of their mean; `--paired` compares groups member by
member instead (`latent_sweep.scores.stats`). `--success EXPR` (by default the sweeps' own
`sweep.success`) adds a `success` column, 1 for a member whose final scores satisfy it (a
diverged member fails): groups show it as a count with the exact binomial interval of the rate,
and `--paired` as wins and losses in discordant pairs, where the Wilcoxon test on ±1
differences is McNemar's (normal approximation). A continuous `--by` (a float with more than
AUTO_BIN_ABOVE distinct values) is cut into AUTO_BINS quantile bins, or `--bins N`; `--bins 0`
keeps one group per value.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from latent_sweep.analysis.results import (
    Sweep,
    load_sweeps,
    lower_is_better,
    row_labels,
)
from latent_sweep.analysis.select import (
    key_scores,
    minimize,
    optional_columns,
    resolve_column,
    score_columns,
    select_trials,
)
from latent_sweep.analysis.tables import Listing, format_cell
from latent_sweep.errors import UserError
from latent_sweep.scores import summary
from latent_sweep.scores.pareto import front_mask, pareto_front
from latent_sweep.scores.stats import binomial_ci, bootstrap_ci, pair_groups, paired_stats
from latent_sweep.spec.sweep_block import is_score

SUCCESS = "success"
AUTO_BIN_ABOVE, AUTO_BINS = 10, 5


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


def mark_front(df: pd.DataFrame, sweeps: Sequence[Sweep]) -> pd.DataFrame:
    """Member rows with a `pareto` column (★ for the rows of a config on its multi-objective
    sweep's front, over the statistics its trial reported) when a sweep searched several
    objectives; `df` as it is otherwise."""
    out = []
    parts = [df] if "sweep" not in df else [df[df["sweep"] == name] for name in df["sweep"].unique()]
    for part, sweep in zip(parts, sweeps, strict=True):
        part = part.copy()
        metrics = [m for m, _ in sweep.objectives]
        if len(metrics) > 1:
            scores = [c for c in part.select_dtypes("number").columns if is_score(c)]
            stats = pd.DataFrame(
                {tid: summary.summarize(g, scores, sweep.success) for tid, g in part.groupby("trial_id")}
            ).T
            if all(m in stats for m in metrics):
                on_front = stats.index[front_mask(stats, metrics, [d for _, d in sweep.objectives])]
                part["pareto"] = np.where(part["trial_id"].isin(on_front), "★", "")
        out.append(part)
    marked = pd.concat(out)
    return marked.fillna({"pareto": ""}) if "pareto" in marked else marked


def group_stats(df: pd.DataFrame, by: str, scores: Sequence[str]) -> pd.DataFrame:
    """Per value of `by`: member count, then per score `_mean`, `_std` (ddof=1, across seeds)
    and `_ci_low`/`_ci_high`, the 95% bootstrap interval of the mean; for `success`, the count
    `success_k` and the exact binomial interval of the rate (`_mean`) instead."""
    groups = df.groupby(by, dropna=False, sort=True, observed=True)
    out = groups.size().rename("count").to_frame()
    for s in scores:
        out[f"{s}_mean"] = groups[s].mean()
        if s == SUCCESS:
            out[f"{s}_k"] = groups[s].sum().astype(int)
            cis = pd.Series([binomial_ci(k, n) for k, n in zip(out[f"{s}_k"], out["count"], strict=True)])
            cis.index = out.index
        else:
            out[f"{s}_std"] = groups[s].std(ddof=1)
            cis = groups[s].apply(bootstrap_ci)
        out[f"{s}_ci_low"], out[f"{s}_ci_high"] = cis.str[0], cis.str[1]
    return out.reset_index()


def _display_stats(stats: pd.DataFrame, scores: Sequence[str]) -> pd.DataFrame:
    parts = ("_mean", "_std", "_ci_low", "_ci_high")
    shown = stats[[c for c in stats.columns if not c.endswith((*parts, "_k"))]].copy()
    for s in scores:
        if s == SUCCESS:  # a count out of the group's members, its rate and interval
            shown[s] = [
                f"{k}/{n} = {format_cell(m)}" + _interval(lo, hi)
                for k, n, m, lo, hi in zip(
                    *(stats[c] for c in (f"{s}_k", "count", f"{s}_mean", f"{s}_ci_low", f"{s}_ci_high")),
                    strict=True,
                )
            ]
            continue
        shown[s] = [
            format_cell(m) + ("" if pd.isna(d) else f" ± {format_cell(d)}") + _interval(lo, hi)
            for m, d, lo, hi in zip(*(stats[f"{s}{p}"] for p in parts), strict=True)
        ]
    if "pareto" in shown:
        shown["pareto"] = np.where(shown["pareto"], "★", "")
    return shown


def _interval(low: float, high: float) -> str:
    return "" if pd.isna(low) else f" [{format_cell(low)}, {format_cell(high)}]"


def bin_groups(df: pd.DataFrame, by: str, bins: int | None) -> tuple[pd.DataFrame, str]:
    """`by` cut into quantile bins when asked (`bins` > 0) or when it is a float with more than
    AUTO_BIN_ABOVE distinct values (`bins` None); the bins are ordered labels `[lo, hi]` (each
    holds values above the previous bin's hi). Returns the rows and a note for the table."""
    column = df[by]
    numeric = pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column)
    distinct = column.nunique()
    if bins == 0 or (
        bins is None and not (pd.api.types.is_float_dtype(column) and distinct > AUTO_BIN_ABOVE)
    ):
        return df, ""
    if bins is not None and bins < 0:
        raise UserError(f"--bins must be 0 (one group per value) or a number of bins, but got {bins}")
    if not numeric:
        raise UserError(
            f"--bins {bins}: `{by}` is not numeric (values such as `{column.dropna().iloc[0]}`), "
            f"so it cannot be cut into quantile bins; leave out --bins to group by its values"
        )
    cut, edges = pd.qcut(column, bins or AUTO_BINS, retbins=True, duplicates="drop")
    labels = [f"[{format_cell(lo)}, {format_cell(hi)}]" for lo, hi in itertools.pairwise(edges)]
    binned = df.assign(**{by: cut.cat.rename_categories(labels)})
    how = "" if bins else f"{distinct} distinct values, "
    return binned, (
        f"`{by}` ({how}{len(labels)} quantile bins; --bins N for another number, --bins 0 for one "
        f"group per value)"
    )


def paired_comparison(
    df: pd.DataFrame, by: str, scores: Sequence[str], sweeps: Sequence[Sweep], baseline: str | None
) -> tuple[pd.DataFrame, str, str]:
    """`compare --paired`: per group other than the baseline and per score, `paired_stats` of
    its members paired with the baseline's; the table, its title and a note on what was paired."""
    if by == "seed":
        raise UserError(
            "--paired pairs members that share a seed, so it cannot group --by seed; group by a config path"
        )
    # Members pair by seed and by the sampled values that vary within a group; a value constant
    # within each group (a sweep's own fixed choice, compared --by name) is what is compared.
    grouped = df.groupby(by, sort=True, observed=True)
    sampled = dict.fromkeys(f"config.{p}" for s in sweeps for p in s.params)
    key = [
        "seed",
        *(
            c
            for c in sampled
            if c in df and c not in (by, "config.seed") and (grouped[c].nunique(dropna=False) > 1).any()
        ),
    ]
    groups = list(grouped.groups)
    if len(groups) < 2:
        raise UserError(
            f"--paired needs at least two groups of `{by}`, but found {len(groups)}: "
            f"{', '.join(map(str, groups)) or 'none'}"
        )
    names = [str(g) for g in groups]
    if baseline is not None and baseline not in names:
        raise UserError(f"--baseline `{baseline}` is not a group of `{by}`; groups: {', '.join(names)}")
    base = groups[names.index(baseline)] if baseline is not None else groups[0]
    found = pair_groups(df, by, key, scores, base)
    if not any(len(pairs.table) for pairs in found):
        raise UserError(_no_pairs(df, by, key, groups, base))
    rows, drops = [], []
    for pairs in found:
        drops.append(f"{pairs.group}: {len(pairs.table)} pairs, {pairs.dropped} members unpaired")
        for score in scores:
            rows.append(
                {by: pairs.group, "score": score, **paired_stats(pairs, score, not minimize(score, sweeps))}
            )
    title = f"paired against {by} = {base} by {', '.join(key)}"
    note = "group − baseline; " + "; ".join(drops)
    return pd.DataFrame(rows), title, note


def _no_pairs(df: pd.DataFrame, by: str, key: Sequence[str], groups: list, base: object) -> str:
    """Why `--paired` found no pairs at all, with the groups' seeds (a few of each)."""
    seeds = {g: sorted(df.loc[df[by] == g, "seed"].dropna().unique()) for g in groups}
    shown = "; ".join(f"{g}: {_few(seeds[g])}" for g in groups[:4]) + ("; …" if len(groups) > 4 else "")
    if not any(set(seeds[g]) & set(seeds[base]) for g in groups if g != base):
        why = "no other group has a seed of the baseline's"
    elif key[1:]:
        why = f"the members that share a seed differ in the other sampled values ({', '.join(key[1:])})"
    else:
        why = "the members of a group share their seeds, so none has one partner"
    return (
        f"--paired found no pairs: it pairs each member of a group of `{by}` with the member of the "
        f"baseline `{base}` that has the same seed and other sampled values, but {why}. Seeds by group: "
        f"{shown}. Pairs need each config run on the same seeds (e.g. `sweep.seeds: 4`); compare without "
        "--paired for each group's statistics"
    )


def _few(values: list, shown: int = 5) -> str:
    """`0, 3, 7, 9, 12, … (20 seeds)`."""
    text = ", ".join(str(int(v)) if float(v).is_integer() else str(v) for v in values[:shown])
    return text + (f", … ({len(values)} seeds)" if len(values) > shown else "")


# ---------------------------------------------------------------------------------------
# What the commands show


def trials_table(
    results_dirs: Sequence[str | Path],
    *,
    where: str | None = None,
    sort: str | None = None,
    top: int | None = None,
    columns: Sequence[str] | None = None,
) -> Listing:
    """The `table` of the sweeps in `results_dirs`: their member rows selected (`select_trials`),
    a multi-objective sweep's front marked."""
    df, sweeps = load_sweeps(results_dirs)
    shown = select_trials(mark_front(df, sweeps), sweeps, where=where, sort=sort, top=top, columns=columns)
    restore = "--columns to choose the columns, --format markdown for every one"
    return Listing(
        shown,
        title=", ".join(s.label for s in sweeps),
        optional=optional_columns(shown, df, sweeps),
        restore=restore,
    )


def compare_groups(
    results_dirs: Sequence[str | Path],
    *,
    by: str,
    scores: Sequence[str] | None = None,
    pareto: str | None = None,
    paired: bool = False,
    baseline: str | None = None,
    bins: int | None = None,
    success: str | None = None,
    formatted: bool = False,
) -> Listing:
    """Group statistics (or with `paired`, paired comparisons against `baseline`) of the sweeps
    in `results_dirs`; `formatted`: each score's statistics as one text cell (`mean ± std [CI]`),
    as the table and markdown formats show them, instead of a column per statistic."""
    df, sweeps = load_sweeps(results_dirs)
    by = resolve_column(df, by, "--by", sweeps=sweeps)
    front = parse_pareto(pareto, df) if pareto else []
    names = scores or key_scores(df, sweeps)
    columns = [resolve_column(df, n, "--scores", scores_only=True) for n in names]
    columns += [c for c, _ in front if c not in columns]
    df, success_note = mark_success(df, sweeps, success)
    if success_note:
        columns.append(SUCCESS)
    if not columns:
        raise UserError(
            f"no scores to compare; give --scores, one of: {', '.join(score_columns(df)) or 'none'}"
        )
    if paired and front:
        raise UserError("--paired and --pareto answer different questions; give one of them")
    df, bin_note = bin_groups(df, by, bins)
    if paired:
        table, title, note = paired_comparison(df, by, columns, sweeps, baseline)
        shown = _display_paired(table) if formatted else table
        return Listing(shown, title=title, note="\n".join(n for n in (bin_note, success_note, note) if n))
    if baseline is not None:
        raise UserError("--baseline names the group the others are paired with: it needs --paired")
    stats = group_stats(df, by, columns)
    notes = [bin_note, success_note]
    if front:
        on, maximize = [c for c, _ in front], [m for _, m in front]
        stats["pareto"] = pareto_front(stats[[f"{c}_mean" for c in on]].to_numpy(), maximize)
        on_front = pareto_front(df[on].to_numpy(dtype=float), maximize)
        ids = row_labels(df)
        senses = ", ".join(f"{c}:{'max' if m else 'min'}" for c, m in front)
        notes.append(f"trials on the trial-level Pareto front ({senses}): {', '.join(ids[on_front])}")
    shown = _display_stats(stats, columns) if formatted else stats
    # A narrow terminal leaves out scores from the last, never the first, --pareto's or success.
    optional = tuple(reversed([c for c in columns[1:] if c not in (SUCCESS, *(c for c, _ in front))]))
    return Listing(
        shown,
        title=f"grouped by {by}",
        note="\n".join(n for n in notes if n),
        optional=optional,
        restore="--scores to choose the scores, --format markdown for every one",
    )


def mark_success(df: pd.DataFrame, sweeps: Sequence[Sweep], expr: str | None) -> tuple[pd.DataFrame, str]:
    """The rows with a 0/1 `success` column for `expr` (default: the sweeps' shared
    `sweep.success`, when their scores can answer it; else no column) and a note saying which
    expression counted. A member without scores (an errored trial's) fails too."""
    asked = expr is not None
    if not asked:
        own = {s.success for s in sweeps}
        if len(own) != 1 or None in own:
            return df, ""
        (expr,) = own
    if SUCCESS in df.columns:
        problem = f"would replace the trials' own `{SUCCESS}` column"
    else:
        problem = summary.success_problem(expr, score_columns(df))
    if problem and not asked:  # the sweeps' own applies where their scores can answer it
        return df, ""
    if problem:
        raise UserError(f"--success {problem}")
    ok = summary.success_mask(df, expr)
    if "diverged_at" in df:  # as `success_rate` counts: a diverged member fails
        ok = ok & df["diverged_at"].isna().to_numpy()
    return df.assign(**{SUCCESS: ok.astype(float)}), f"success: {expr} (a diverged member fails)"


def _display_paired(table: pd.DataFrame) -> pd.DataFrame:
    shown = table.drop(columns=["ci_low", "ci_high", "p_wilcoxon"])
    shown["median_diff"] = table["median_diff"].map(format_cell)
    shown["95% CI"] = [
        _interval(lo, hi).strip() for lo, hi in zip(table["ci_low"], table["ci_high"], strict=True)
    ]
    shown["p (Wilcoxon)"] = table["p_wilcoxon"].map(format_cell)
    return shown
