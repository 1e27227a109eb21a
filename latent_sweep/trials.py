"""`trials.parquet`: one row per trial of a sweep, built from Ray's own records of the experiment.

Rows come from `ray.tune.ExperimentAnalysis` (works for local paths and URIs alike): status,
config, the last reported metrics (final scores), every report (for `best_<score>`), and the
pickled error of a failed trial. Columns: `trial_id`, `status`, `config.<path>` (the full
trial config it ran, flattened in the sweep's path syntax), final scores, `best_<score>`,
`steps`, `wall_time_s` (Ray's training time of the trial), `error` and `trial_dir` (relative
to the sweep directory). The schema is explicit: no column type is left to inference.
"""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.fs
import pyarrow.parquet as pq

from latent_sweep.results import flatten, lower_is_better
from latent_sweep.sweep_spec import SCORE_NAME, trial_config

FILE = "trials.parquet"
HEAD = [("trial_id", pa.string()), ("status", pa.string())]
TAIL = [
    ("steps", pa.int64()),
    ("wall_time_s", pa.float64()),
    ("error", pa.string()),
    ("trial_dir", pa.string()),
]


def collect(experiment_path: str, base: dict) -> list[dict[str, Any]]:
    """One dict per trial of the experiment at `experiment_path` (a local path or a URI)."""
    from ray.tune import ExperimentAnalysis

    analysis = ExperimentAnalysis(experiment_path)
    frames = analysis.trial_dataframes
    rows = []
    for trial in sorted(analysis.trials, key=lambda t: t.trial_id):
        last = trial.last_result or {}
        reports = frames.get(trial.trial_id, pd.DataFrame())
        scores = sorted(k for k in last if SCORE_NAME.fullmatch(k))
        row: dict[str, Any] = {"trial_id": trial.trial_id, "status": trial.status}
        row.update(flatten(trial_config(base, trial.config), "config"))
        row.update({s: last[s] for s in scores})
        for s in scores:
            values = reports[s] if s in reports else pd.Series([last[s]])
            row[f"best_{s}"] = values.min() if lower_is_better(s) else values.max()
        row["steps"] = int(last.get("step", 0))
        row["wall_time_s"] = last.get("time_total_s")
        row["error"] = error_reason(trial.get_pickled_error()) if trial.status == "ERROR" else None
        row["trial_dir"] = PurePosixPath(trial.path).name
        rows.append(row)
    return rows


def error_reason(err: BaseException | None) -> str:
    """The exception a trial raised, as `Type: message` (Ray wraps it; unwrap to the cause)."""
    if err is None:
        return "unknown error (see the trial's error.txt)"
    cause = getattr(err, "cause", None) or err
    return f"{type(cause).__name__}: {cause}"


def to_table(rows: list[dict[str, Any]]) -> pa.Table:
    names = list(dict.fromkeys(k for row in rows for k in row))
    fixed = dict(HEAD + TAIL)
    configs = [n for n in names if n.startswith("config.")]
    finals = [n for n in names if SCORE_NAME.fullmatch(n)]
    bests = [n for n in names if n.startswith("best_")]
    fields = [pa.field(n, t) for n, t in HEAD]
    fields += [pa.field(n, _config_type([row.get(n) for row in rows])) for n in configs]
    fields += [pa.field(n, pa.float64()) for n in finals + bests]
    fields += [pa.field(n, t) for n, t in TAIL]
    schema = pa.schema(fields)
    columns = {}
    for field in schema:
        values = [row.get(field.name) for row in rows]
        if field.name in configs and field.type == pa.string():
            values = [None if v is None else str(v) for v in values]
        columns[field.name] = pa.array(values, type=fixed.get(field.name, field.type))
    return pa.table(columns, schema=schema)


def _config_type(values: list[Any]) -> pa.DataType:
    """One type per config column: bool, int64, float64, or string for anything else or a mix."""
    present = [v for v in values if v is not None]
    if present and all(isinstance(v, bool) for v in present):
        return pa.bool_()
    if present and all(isinstance(v, int) and not isinstance(v, bool) for v in present):
        return pa.int64()
    if present and all(isinstance(v, int | float) and not isinstance(v, bool) for v in present):
        return pa.float64()
    return pa.string()


def write(experiment_path: str, table: pa.Table) -> str:
    """Write `trials.parquet` whole (temp name, then move) on the experiment's filesystem."""
    fs, root = pyarrow.fs.FileSystem.from_uri(experiment_path)
    final, tmp = f"{root}/{FILE}", f"{root}/.{FILE}.tmp"
    pq.write_table(table, tmp, filesystem=fs)
    fs.move(tmp, final)
    return f"{experiment_path.rstrip('/')}/{FILE}"
