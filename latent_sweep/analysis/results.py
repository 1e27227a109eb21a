"""Reading sweep results: trials of one or more sweeps, a trial's history and evaluations.

Rows are members. A trial trains a population of members (one, unless its config has
`members:`); every table here has one row per member: `trial_id`, `member`, `seed`, `status`,
the member's own config flattened (`config.<path>`, keyframes by the STEP the sweep's schedule
writes them at: `latent_sweep.spec.columns`), its final scores (its last evaluation),
`best_<score>` (its best evaluation, in each score's direction), `diverged_at`, `device` (where
its trial trained: `latent_sweep.tune.trials`), `steps`, `wall_time_s`, `error` and `trial_dir`. A
trial's `evals/` and `history/` hold all its members (`member` and `seed` columns).

Where rows come from. `trials.parquet` in a sweep directory is authoritative for the trials it
lists. A sweep still running, or interrupted, may have none or a stale one, so trial
directories (a `config.yaml`/`config.json` one or two levels below the sweep directory) that it
does not list become rows built from their own files (`trial_id` the directory's name less a
sweep's `trial_` prefix, as in the files), with status `UNKNOWN`, `steps` the last
logged step and `wall_time_s` the span of the history's `wall_time`. Listed trials that had not
finished (not TERMINATED or ERROR) get scores and steps refreshed from their directories the
same way, since those are newer than the table. Tables that named keyframe columns by row
(`config.schedule.keyframes[5].lr`) read with them renamed by STEP.

Directories may be URIs (s3://, gs://, file://): `latent_sweep.store.remote` mirrors them first.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pandas as pd

from latent_sweep.errors import UserError
from latent_sweep.scores.declarations import Goal, check_returned
from latent_sweep.spec import experiment, population
from latent_sweep.spec.columns import Keyframes
from latent_sweep.spec.config import read_yaml
from latent_sweep.spec.experiment import goal_of
from latent_sweep.spec.sweep_block import SweepBlock, read_written_sweep, statistic_of
from latent_sweep.store import layout
from latent_sweep.store.history import read_local, read_table, trial_id_of
from latent_sweep.store.remote import local_dir

META_COLUMNS = (
    "sweep", "trial_id", "member", "seed", "status", "diverged_at", "device", "steps", "wall_time_s",
    "error", "trial_dir",
)  # fmt: skip
# Columns of evals/ and history/ part files that are not scores or logged values.
KEY_COLUMNS = ("trial_id", "step", "member", "seed", "diverged_at")
TERMINAL = frozenset({"TERMINATED", "ERROR"})
CONFIG_FILES = layout.CONFIG_FILES


@dataclass(frozen=True)
class Sweep:
    """What `sweep.yaml` says about a sweep: its sampled config paths and key metric, as a
    column of member rows, and its space (see `_read_sweep`)."""

    path: Path  # where its files are read: the directory, or a URI's local mirror
    params: tuple[str, ...]  # config paths, without the `config.` prefix
    metric: str | None
    mode: str | None  # "max" | "min"
    objectives: tuple[tuple[str, str], ...] = ()  # (metric, mode) of each objective `sweep.metric` lists
    success: str | None = None  # `sweep.success`
    source: str = ""  # the directory or URI as the user named it, for titles and messages
    # The schedule whose keyframe rows name its columns (`latent_sweep.spec.columns`).
    keyframes: Keyframes = field(default_factory=Keyframes)
    # `sweep.space` as written (path → distribution leaf); empty without a sweep.yaml.
    space: Mapping[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return self.source or str(self.path)


# ---------------------------------------------------------------------------------------
# Loading


def load_trials(*dirs: str | Path) -> pd.DataFrame:
    """One row per trial of each sweep directory; several directories add a `sweep` column."""
    return load_sweeps(dirs)[0]


def load_history(trial_dir: str | Path, member: int | None = None) -> pd.DataFrame:
    """A trial's step history (`history/` part files) as one table sorted by step; one member's
    rows when `member` is given."""
    return _of_member(read_table(_trial_path(trial_dir) / layout.HISTORY), member)


def load_evals(trial_dir: str | Path, member: int | None = None) -> pd.DataFrame:
    """A trial's evaluation history (`evals/` part files) as one table sorted by step; one
    member's rows when `member` is given."""
    return _of_member(read_table(_trial_path(trial_dir) / layout.EVALS), member)


def _of_member(table: pd.DataFrame, member: int | None) -> pd.DataFrame:
    """Rows of one member; all of them when `member` is None."""
    if member is None or table.empty:  # no part files yet: a table of no columns but `step`
        return table
    return table[table["member"] == member].reset_index(drop=True)


def _trial_path(trial_dir: str | Path) -> Path:
    path = local_dir(trial_dir)
    if not path.is_dir():
        raise UserError(f"trial directory `{path}` does not exist")
    return path


def load_sweeps(dirs: Sequence[str | Path]) -> tuple[pd.DataFrame, list[Sweep]]:
    if not dirs:
        raise UserError("no results directory given; name at least one sweep or trial directory")
    frames, sweeps = [], []
    for d in dirs:
        frame, sweep = _load_sweep(local_dir(d))
        frames.append(frame)
        sweeps.append(replace(sweep, source=str(d)))
    if len(frames) == 1:
        return frames[0], sweeps
    names = [s.path.name for s in sweeps]
    if len(set(names)) < len(names):  # same name in different places: keep them apart
        names = [s.label for s in sweeps]
    for frame, name in zip(frames, names, strict=True):
        frame.insert(0, "sweep", name)
    return pd.concat(frames, ignore_index=True), sweeps


def _load_sweep(path: Path) -> tuple[pd.DataFrame, Sweep]:
    if not path.is_dir():
        raise UserError(f"results directory `{path}` does not exist")
    found = {_rel(d, path): d for d in _trial_dirs(path)}
    sweep_file = read_written_sweep(path)  # None: no sweep.yaml (a `train` directory)
    written = Keyframes.of(sweep_file.base) if sweep_file else Keyframes()
    # Without a schedule in sweep.yaml (a `train` directory), each trial's own names its columns,
    # and the first trial's maps names given on input.
    keyframes = written
    if not written.steps and found:
        keyframes = Keyframes.of(read_trial_config(next(iter(found.values()))))
    from_dirs: dict[str, list[dict[str, Any]]] = {}

    def dir_rows(rel: str) -> list[dict[str, Any]]:
        if rel not in from_dirs:
            from_dirs[rel] = _dir_rows(found[rel], rel, written)
        return from_dirs[rel]

    table = path / layout.TRIALS
    remedy = f"rebuild it from the trials with `latent-sweep resume {path}`"
    rows: list[dict[str, Any]] = []
    if table.exists():  # a table written before keyframe columns were named by STEP: renamed here
        rows = read_local(table, remedy).rename(columns=keyframes.label).to_dict("records")
    listed: set[str] = set()
    for row in rows:
        rel = _row_dir(row, found)
        if rel is None:
            continue
        listed.add(rel)
        fresh = dir_rows(rel) if row.get("status") not in TERMINAL else []
        if int(row["member"]) < len(fresh):
            row.update({k: v for k, v in fresh[int(row["member"])].items() if _refreshed(k)})
    rows += [row for rel in found if rel not in listed for row in dir_rows(rel)]
    if not rows:
        raise UserError(
            f"no trials found in `{path}`: expected a {layout.TRIALS} or trial directories "
            f"with a {layout.CONFIG} one or two levels down"
        )
    frame = pd.DataFrame(rows)
    first = [c for c in ("trial_id", "member", "seed", "status") if c in frame]
    frame = frame[first + [c for c in frame.columns if c not in first]]
    return frame, _read_sweep(path, sweep_file.block if sweep_file else None, frame, keyframes)


def _refreshed(column: str) -> bool:
    """Columns a trial's own files bring up to date: scores, best scores, divergence, steps, wall time."""
    return column in ("diverged_at", "steps", "wall_time_s") or not (
        column in META_COLUMNS or column.startswith("config.")
    )


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


def _dir_rows(trial_dir: Path, rel: str, written: Keyframes) -> list[dict[str, Any]]:
    """A trial directory's member rows, from its own files; keyframe columns named by `written`
    (the sweep's schedule), else by the trial's own."""
    history = read_table(trial_dir / layout.HISTORY, columns=("step", "wall_time"))
    evals = read_table(trial_dir / layout.EVALS)
    logged = [int(t["step"].max()) for t in (history, evals) if len(t)]
    span = None
    if "wall_time" in history and len(history):
        span = float(history["wall_time"].max() - history["wall_time"].min())
    return member_rows(
        trial_id_of(trial_dir if rel != "." else trial_dir.resolve()),
        "UNKNOWN",
        read_trial_config(trial_dir),
        evals,
        keyframes=written if written.steps else None,
        steps=max(logged, default=0),
        wall_time_s=span,
        error=None,
        trial_dir=rel,
    )


def member_rows(
    trial_id: str,
    status: str,
    trial_raw: dict,
    evals: pd.DataFrame,
    goals: Mapping[str, Goal] | None = None,
    *,
    keyframes: Keyframes | None = None,
    **tail: Any,
) -> list[dict[str, Any]]:
    """One row per member of a trial (see the module doc) from its config and its evaluations,
    keyframe columns named by `keyframes`: the sweep's schedule as written (`latent_sweep.spec.columns`),
    by default the trial's own (where a sampled STEP has changed it: a sweep passes its own);
    `tail` (device, steps, wall_time_s, error, trial_dir) goes on every row. `goals` (the scores the
    trial's experiment declares for its config) makes the score columns exactly those, empty
    before the first evaluation, and evaluations holding other scores an error; without it the
    score columns are the evaluations' own."""
    found = [c for c in evals.select_dtypes("number").columns if c not in KEY_COLUMNS]
    if goals is None:
        goals = {s: goal_of(s) or "max" for s in found}
    elif len(evals):
        check_returned(str(experiment.kind_of(trial_raw)), goals, found)
    rows = []
    for member, raw in enumerate(population.member_raws(trial_raw)):
        own = _of_member(evals, member)
        row: dict[str, Any] = {"trial_id": trial_id, "member": member, "seed": raw.get("seed", 0)}
        row["status"] = status
        row.update((keyframes or Keyframes.of(trial_raw)).columns(raw))
        last = own.iloc[-1] if len(own) else {}
        row.update({s: last.get(s) for s in goals})
        best = {s: own[s].min() if goal == "min" else own[s].max() for s, goal in goals.items() if len(own)}
        row.update({f"best_{s}": best.get(s) for s in goals})
        diverged = own["diverged_at"].dropna() if "diverged_at" in own else []
        row["diverged_at"] = int(diverged.iloc[0]) if len(diverged) else None
        rows.append({**row, **tail})
    return rows


def row_labels(df: pd.DataFrame) -> pd.Series:
    """Row names for listings: `trial_id`, `trial_id#member` in a sweep of populations,
    `sweep/…` when rows come from several sweeps."""
    labels = df["trial_id"].astype(str)
    if "member" in df and (df["member"] > 0).any():
        labels = labels + "#" + df["member"].astype(str)
    if "sweep" in df:
        labels = df["sweep"].astype(str) + "/" + labels
    return labels


def _read_sweep(path: Path, block: SweepBlock | None, frame: pd.DataFrame, keyframes: Keyframes) -> Sweep:
    """Sampled params and metric from sweep.yaml's validated `block`; without one, the config
    columns that vary."""
    space = block.space if block is not None else {}
    if space:
        params = tuple(keyframes.column(str(k)) for k in space)
    else:
        varying = [c for c in frame.columns if c.startswith("config.") and nunique(frame[c]) > 1]
        params = tuple(c.removeprefix("config.") for c in varying)
    metric, mode = (block.metric, block.mode) if block is not None else (None, None)
    metrics, modes = (v if isinstance(v, list) else [v] for v in (metric, mode))
    paired = len(metrics) == len(modes)
    objectives = tuple(zip(map(str, metrics), map(str, modes), strict=True)) if paired else ()
    metric, mode = metrics[0] if metrics else None, modes[0] if modes else None
    # The metric as a column of member rows: a statistic's score (`hue_corr_min` → hue_corr); the
    # spread of a score (`_std`) ranks members by the score's own direction; rates have no column.
    score = statistic_of(str(metric)) if metric else None
    if score is None or str(metric).endswith("_std"):
        mode = None
    success = block.success if block is not None else None
    mode = str(mode) if mode else None
    return Sweep(path, params, score, mode, objectives, success, keyframes=keyframes, space=dict(space))


def nunique(column: pd.Series) -> int:
    return column.astype(str).nunique(dropna=False)


def lower_is_better(score: str) -> bool:
    """Whether a score (or `best_<score>`) is better lower, as its experiment declares it."""
    return goal_of(score.removeprefix("best_")) == "min"
