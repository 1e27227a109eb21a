"""`trials.parquet`: one row per member of every trial of a sweep, from Ray's records and the
trials' own evaluations.

Ray's `ExperimentAnalysis` (local paths and URIs alike) gives each trial's status, its config
(turned back into the full trial config by `sweep_spec.trial_config`), its last report (`steps`,
`wall_time_s`: Ray's training time, `device`: where the trial trained, as its loop reports it)
and the pickled error of a failed trial. Each trial's `evals/` part files, read from its
directory in storage through pyarrow's filesystems, give each member's final scores (its last
evaluation), `best_<score>` (its best one, in each score's direction) and `diverged_at`; the
score columns are those the trial's experiment declares for its config
(`latent_sweep.scores.declarations`). Columns: `trial_id`, `member`, `seed`,
`status`, `config.<path>` (the member's full config, flattened in the sweep's path syntax, its
keyframes named by the STEP the sweep's schedule writes them at: `latent_sweep.spec.columns`),
final scores, `best_<score>`, `diverged_at`, `device` (`cuda:0`, `cpu`; empty for a trial that
never reported one: it ran before trials reported their device, or reported nothing), `steps`,
`wall_time_s`, `error` and `trial_dir` (relative to the sweep directory).
The schema is explicit: no column type is left to inference.
"""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Any

import pyarrow as pa
import pyarrow.fs
import pyarrow.parquet as pq
from ray.tune import ExperimentAnalysis

from latent_sweep.analysis.results import member_rows
from latent_sweep.spec.columns import Keyframes
from latent_sweep.spec.population import declared_for
from latent_sweep.spec.sweep_block import trial_config
from latent_sweep.store import atomic, layout
from latent_sweep.store.history import read_table

FILE = layout.TRIALS
# A trial that failed for a reason a retry would meet again (divergence, a config error) reports
# it under this key and ends; its rows say ERROR with that reason.
FAILED = "trial_failed"
HEAD = [("trial_id", pa.string()), ("member", pa.int64()), ("seed", pa.int64()), ("status", pa.string())]
TAIL = [
    ("diverged_at", pa.int64()),
    ("device", pa.string()),
    ("steps", pa.int64()),
    ("wall_time_s", pa.float64()),
    ("error", pa.string()),
    ("trial_dir", pa.string()),
]


def collect(experiment_path: str, base: dict) -> list[dict[str, Any]]:
    """One dict per member of each trial of the experiment at `experiment_path` (a path or a URI)."""
    analysis = ExperimentAnalysis(experiment_path)
    keyframes = Keyframes.of(base)  # as written: a sampled STEP does not rename its row
    rows = []
    for trial in sorted(analysis.trials, key=lambda t: t.trial_id):
        last = trial.last_result or {}
        trial_dir = PurePosixPath(trial.path).name
        failed = last.get(FAILED)  # ended by a deterministic failure, not retried
        status = "ERROR" if failed else trial.status
        raw = trial_config(base, trial.config)
        rows += member_rows(
            trial.trial_id,
            status,
            raw,
            read_table(f"{experiment_path.rstrip('/')}/{trial_dir}/{layout.EVALS}"),
            declared_for(raw),
            keyframes=keyframes,
            device=None if last.get("device") is None else str(last["device"]),
            steps=int(last.get("step", 0)),
            wall_time_s=last.get("time_total_s"),
            error=failed or (error_reason(trial.get_pickled_error()) if trial.status == "ERROR" else None),
            trial_dir=trial_dir,
        )
    return rows


def error_reason(err: BaseException | None) -> str:
    """The exception a trial raised, as `Type: message` (Ray wraps it; unwrap to the cause)."""
    if err is None:
        return f"unknown error (see the trial's {layout.ERROR_FILE})"
    cause = getattr(err, "cause", None) or err
    return f"{type(cause).__name__}: {cause}"


def to_table(rows: list[dict[str, Any]]) -> pa.Table:
    """Rows → a table: fixed columns typed as in HEAD/TAIL, config columns by their values,
    scores and best scores as float64."""
    names = list(dict.fromkeys(k for row in rows for k in row))
    fixed = dict(HEAD + TAIL)
    configs = [n for n in names if n.startswith("config.")]
    bests = [n for n in names if n.startswith("best_")]
    finals = [n for n in names if n not in fixed and n not in configs and n not in bests]
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
        columns[field.name] = pa.array(values, type=field.type, from_pandas=True)
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
    atomic.write_whole(f"{root}/{FILE}", lambda tmp: pq.write_table(table, tmp, filesystem=fs), fs)
    return f"{experiment_path.rstrip('/')}/{FILE}"
