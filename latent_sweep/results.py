"""Comparing trials: load sweeps' trials; sort, filter, choose columns; group statistics; Pareto fronts.

Where rows come from. `trials.parquet` in a sweep directory is authoritative for the trials it
lists. A sweep still running, or interrupted, may have none or a stale one, so trial
directories (a `config.yaml`/`config.json` one or two levels below the sweep directory) that it
does not list become rows built from their own files, with status `UNKNOWN`: the flattened
config, final scores (the last evaluation), `best_<score>` (the best evaluation), `steps` (the
last logged step) and `wall_time_s` (the span of the history's `wall_time`). Listed trials that
had not finished (not TERMINATED or ERROR) get scores and steps refreshed from their
directories the same way, since those are newer than the table.

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
from argparse import Namespace
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from latent_sweep.config import read_yaml
from latent_sweep.errors import UserError
from latent_sweep.history import read_table
from latent_sweep.table_formats import emit, format_cell

META_COLUMNS = ("sweep", "trial_id", "status", "steps", "wall_time_s", "error", "trial_dir")
KEY_SCORES = ("hue_corr", "hue_order", "recon_mse")
LOWER_IS_BETTER = frozenset({"recon_mse", "norm_error", "planarity_vibrant", "loss"})
TERMINAL = frozenset({"TERMINATED", "ERROR"})
CONFIG_FILES = ("config.yaml", "config.json")
WHERE_HINT = "column names with dots or dashes need backticks, e.g. \"`config.labels.mode` == 'hard'\""


@dataclass(frozen=True)
class Sweep:
    """What `sweep.yaml` says about a sweep: its sampled config paths and key metric."""

    path: Path
    params: tuple[str, ...]  # config paths, without the `config.` prefix
    metric: str | None
    mode: str | None  # "max" | "min"


# ---------------------------------------------------------------------------------------
# Loading


def load_trials(*dirs: str | Path) -> pd.DataFrame:
    """One row per trial of each sweep directory; several directories add a `sweep` column."""
    return load_sweeps(dirs)[0]


def load_history(trial_dir: str | Path) -> pd.DataFrame:
    """A trial's step history (`history/` part files) as one table sorted by step."""
    return read_table(_trial_path(trial_dir) / "history")


def load_evals(trial_dir: str | Path) -> pd.DataFrame:
    """A trial's evaluation history (`evals/` part files) as one table sorted by step."""
    return read_table(_trial_path(trial_dir) / "evals")


def _trial_path(trial_dir: str | Path) -> Path:
    path = Path(trial_dir)
    if not path.is_dir():
        raise UserError(f"trial directory `{path}` does not exist")
    return path


def load_sweeps(dirs: Sequence[str | Path]) -> tuple[pd.DataFrame, list[Sweep]]:
    if not dirs:
        raise UserError("no results directory given; name at least one sweep or trial directory")
    frames, sweeps = [], []
    for d in dirs:
        frame, sweep = _load_sweep(Path(d))
        frames.append(frame)
        sweeps.append(sweep)
    if len(frames) == 1:
        return frames[0], sweeps
    names = [s.path.name for s in sweeps]
    if len(set(names)) < len(names):  # same name in different places: keep them apart
        names = [str(s.path) for s in sweeps]
    for frame, name in zip(frames, names, strict=True):
        frame.insert(0, "sweep", name)
    return pd.concat(frames, ignore_index=True), sweeps


def _load_sweep(path: Path) -> tuple[pd.DataFrame, Sweep]:
    if not path.is_dir():
        raise UserError(f"results directory `{path}` does not exist")
    found = {_rel(d, path): d for d in _trial_dirs(path)}
    table = path / "trials.parquet"
    rows: list[dict[str, Any]] = pd.read_parquet(table).to_dict("records") if table.exists() else []
    listed: set[str] = set()
    for row in rows:
        rel = _row_dir(row, found)
        if rel is None:
            continue
        listed.add(rel)
        if row.get("status") not in TERMINAL:
            row.update({k: v for k, v in _dir_row(found[rel], rel).items() if _refreshed(k)})
    rows += [_dir_row(d, rel) for rel, d in found.items() if rel not in listed]
    if not rows:
        raise UserError(
            f"no trials found in `{path}`: expected a trials.parquet or trial directories "
            f"with a config.yaml one or two levels down"
        )
    frame = pd.DataFrame(rows)
    return frame, _read_sweep(path, frame)


def _refreshed(column: str) -> bool:
    """Columns a trial's own files bring up to date: scores, best scores, steps, wall time."""
    return column in ("steps", "wall_time_s") or not (column in META_COLUMNS or column.startswith("config."))


def _rel(d: Path, root: Path) -> str:
    return d.relative_to(root).as_posix()


def _trial_dirs(root: Path) -> list[Path]:
    """Directories holding a trial config: the root itself, or one or two levels below it."""
    if is_trial_dir(root):
        return [root]
    found = []
    for child in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if is_trial_dir(child):
            found.append(child)
        else:
            found.extend(sorted(g for g in child.iterdir() if g.is_dir() and is_trial_dir(g)))
    return found


def is_trial_dir(d: Path) -> bool:
    return any((d / name).is_file() for name in CONFIG_FILES)


def read_trial_config(trial_dir: Path) -> dict[str, Any]:
    return read_yaml(next(trial_dir / n for n in CONFIG_FILES if (trial_dir / n).is_file()))


def _row_dir(row: dict[str, Any], found: dict[str, Path]) -> str | None:
    """The trial directory a trials.parquet row describes: by `trial_dir`, else by its id."""
    rel = row.get("trial_dir")
    if isinstance(rel, str) and rel:
        rel = Path(rel).name if Path(rel).is_absolute() else Path(rel).as_posix()  # a Ray trial path
        return rel if rel in found else None
    matches = [r for r in found if str(row.get("trial_id")) in Path(r).name]
    return matches[0] if len(matches) == 1 else None


def _dir_row(trial_dir: Path, rel: str) -> dict[str, Any]:
    config = read_trial_config(trial_dir)
    evals = read_table(trial_dir / "evals")
    history = read_table(trial_dir / "history")
    row: dict[str, Any] = {"trial_id": trial_dir.name if rel != "." else trial_dir.resolve().name}
    row["status"] = "UNKNOWN"
    row.update(flatten(config, "config"))
    scores = [c for c in evals.select_dtypes("number").columns if c != "step"]
    if len(evals):
        row.update({s: evals[s].iloc[-1] for s in scores})
        row.update({f"best_{s}": evals[s].min() if lower_is_better(s) else evals[s].max() for s in scores})
    logged = [int(t["step"].max()) for t in (history, evals) if len(t)]
    row["steps"] = max(logged, default=0)
    if "wall_time" in history and len(history):
        row["wall_time_s"] = float(history["wall_time"].iloc[-1] - history["wall_time"].iloc[0])
    row["error"] = None
    row["trial_dir"] = rel
    return row


def flatten(value: Any, prefix: str) -> dict[str, Any]:
    """Nested config → `prefix.a.b` / `prefix.list[3].c` keys, the sweep's config path syntax."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(flatten(v, f"{prefix}.{k}"))
        return out
    if isinstance(value, list):
        out = {}
        for i, v in enumerate(value):
            out.update(flatten(v, f"{prefix}[{i}]"))
        return out
    return {prefix: value}


def _read_sweep(path: Path, frame: pd.DataFrame) -> Sweep:
    """Sampled params and metric from sweep.yaml; without one, the config columns that vary."""
    spec: dict = {}
    if (path / "sweep.yaml").is_file():
        doc = read_yaml(path / "sweep.yaml")
        spec = doc.get("sweep") if isinstance(doc.get("sweep"), dict) else {}
    space = spec.get("space")
    if isinstance(space, dict) and space:
        params = tuple(str(k) for k in space)
    else:
        varying = [c for c in frame.columns if c.startswith("config.") and _nunique(frame[c]) > 1]
        params = tuple(c.removeprefix("config.") for c in varying)
    metric, mode = spec.get("metric"), spec.get("mode")
    metric = metric[0] if isinstance(metric, list) and metric else metric
    mode = mode[0] if isinstance(mode, list) and mode else mode
    return Sweep(path, params, str(metric) if metric else None, str(mode) if mode else None)


def _nunique(column: pd.Series) -> int:
    return column.astype(str).nunique(dropna=False)


# ---------------------------------------------------------------------------------------
# Columns, sorting, filtering


def lower_is_better(score: str) -> bool:
    name = score.removeprefix("best_")
    return name in LOWER_IS_BETTER or "_error" in name or name.startswith("recon_mse")


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
    wanted = ["sweep", "trial_id", "status", *params, *key_scores(df, sweeps), "steps"]
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
    varying = [c for c in configs if _nunique(df[c]) > 1]
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


def select_trials(df: pd.DataFrame, sweeps: Sequence[Sweep], args: Namespace) -> pd.DataFrame:
    """The `table` pipeline: filter, sort (best first by the metric by default), top N, columns."""
    if args.where:
        df = filter_trials(df, args.where)
    sort = args.sort or next((s.metric for s in sweeps if s.metric in df.columns), None)
    if sort:
        df = sort_trials(df, sort, sweeps)
    if args.top is not None:
        if args.top < 1:
            raise UserError(f"--top must be at least 1, but got {args.top}")
        df = df.head(args.top)
    names = [n for item in args.columns or [] for n in item.split(",") if n]
    columns = [resolve_column(df, n, "--columns") for n in names] or default_columns(df, sweeps)
    return df[columns].reset_index(drop=True)


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


def table_command(args: Namespace) -> int:
    if args.format == "parquet" and not args.out:
        raise UserError("--format parquet writes a binary file: give --out FILE, e.g. --out trials.parquet")
    df, sweeps = load_sweeps(args.results_dirs)
    shown = select_trials(df, sweeps, args)
    emit(shown, args.format, args.out, title=", ".join(str(s.path) for s in sweeps))
    return 0


def compare_command(args: Namespace) -> int:
    df, sweeps = load_sweeps(args.results_dirs)
    by = resolve_column(df, args.by, "--by")
    pareto = parse_pareto(args.pareto, df) if args.pareto else []
    names = args.scores or key_scores(df, sweeps)
    scores = [resolve_column(df, n, "--scores", scores_only=True) for n in names]
    scores += [c for c, _ in pareto if c not in scores]
    if not scores:
        raise UserError(
            f"no scores to compare; give --scores, one of: {', '.join(score_columns(df)) or 'none'}"
        )
    stats = group_stats(df, by, scores)
    note = ""
    if pareto:
        columns, maximize = [c for c, _ in pareto], [m for _, m in pareto]
        stats["pareto"] = pareto_front(stats[[f"{c}_mean" for c in columns]].to_numpy(), maximize)
        on_front = pareto_front(df[columns].to_numpy(dtype=float), maximize)
        ids = df["trial_id"].astype(str)
        if "sweep" in df:
            ids = df["sweep"].astype(str) + "/" + ids
        senses = ", ".join(f"{c}:{'max' if m else 'min'}" for c, m in pareto)
        note = f"trials on the trial-level Pareto front ({senses}): {', '.join(ids[on_front])}"
    shown = stats if args.format == "csv" else _display_stats(stats, scores)
    emit(shown, args.format, None, title=f"grouped by {by}", note=note)
    return 0
