"""What `resume` does with a results directory that a power cut, a full disk or a copy cut short
has damaged (docs/reliability.md lists every case).

latent-sweep writes its files whole, but Ray copies checkpoints into storage file by file, and a
file can be damaged after it was written. Before Ray starts, `resume` checks:

* Ray's experiment state (`tuner.pkl`, the newest `experiment_state-*.json` and the search
  algorithm's state files): damaged, the sweep cannot be resumed; a UserError names the file.
* The Optuna journal (`optuna.log`): a last record cut off mid-write is dropped (Optuna would
  append the next record to it and could not read the file again); a damaged earlier record is
  a UserError naming the file and line.
* `trials.parquet`: derived from the trials, so a damaged one is removed and written anew at the end.
* Each trial's `history/` and `evals/` parts and checkpoints. A damaged part is dropped with every
  part after it, and the trial continues from its newest whole checkpoint from before the part
  (from the start when there is none): a finished trial here and now, in-process; an unfinished
  one when Ray resumes it (`restore_state`, called by the trial). A damaged checkpoint is passed over
  for the one before it. Each such decision is printed.

Only a local results directory is checked; with URI storage Ray's own restore applies.
"""

from __future__ import annotations

import json
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from latent_sweep.analysis.results import read_trial_config
from latent_sweep.engine import process, registry
from latent_sweep.engine.session import load_state
from latent_sweep.errors import UserError
from latent_sweep.store import history, layout
from latent_sweep.tune import study
from latent_sweep.tune.study import UNFINISHED

PARTS = layout.PARTS


def check_experiment_state(path: Path) -> dict[str, str]:
    """Ray's files that `Tuner.restore` reads must be whole; otherwise a UserError names the file.
    Returns the trials of the newest experiment state (trial id → Tune status; empty if none)."""
    files = [path / layout.TUNER_STATE]
    for pattern in layout.RAY_STATE_GLOBS:
        found = sorted(path.glob(pattern))
        files += found[-1:]  # Ray restores from the newest
    trials: dict[str, str] = {}
    for file in files:
        if not file.exists():
            continue
        try:
            data = file.read_bytes()
            # Ray writes the experiment state as JSON, the rest pickled (whatever the suffix).
            if file.name.startswith(layout.EXPERIMENT_STATE_PREFIX):
                trials = _tune_trials(json.loads(data))
            else:
                pickle.loads(data)
        except Exception as err:  # unpickling a damaged file raises almost anything
            raise UserError(
                f"{file}: Ray's experiment state is damaged ({type(err).__name__}: {err}), so the sweep "
                f"cannot be resumed; the trials' own files are not affected: `latent-sweep table {path}` "
                f"lists them. Restore the file from a backup, or run the sweep anew into another directory "
                f"(`latent-sweep run SWEEP --name NEW`)"
            ) from None
    return trials


def _tune_trials(state: dict) -> dict[str, str]:
    """Trial id → status in Tune's experiment state (its format as of Ray 2.60: `trial_data` holds
    [trial as JSON text, run metadata] pairs)."""
    trials = (json.loads(trial) for trial, _ in state["trial_data"])
    return {t["trial_id"]: t["status"] for t in trials}


def check_journal(path: Path) -> None:
    """The Optuna journal of a `search: optuna` sweep (see the module doc)."""
    journal = path / layout.OPTUNA_JOURNAL
    if not journal.exists():
        return
    data = journal.read_bytes()
    whole = data[: data.rfind(b"\n") + 1]  # the records Optuna finished writing
    for number, line in enumerate(whole.splitlines(), start=1):
        try:
            json.loads(line)
        except ValueError:
            raise UserError(
                f"{journal}: line {number} is not an Optuna journal record, so the sweep's study cannot "
                f"be restored; the trials' own files are not affected: `latent-sweep table {path}` lists "
                f"them. Restore the file from a backup, or run the sweep anew into another directory "
                f"(`latent-sweep run SWEEP --name NEW`)"
            ) from None
    if len(whole) < len(data):
        with journal.open("r+b") as f:
            f.truncate(len(whole))
        print(f"{journal}: dropped its last record, cut off after {len(data) - len(whole)} bytes", flush=True)


@dataclass
class Restart:
    """Where a trial continues: from `checkpoint` (None: the start) at `step`, and why."""

    checkpoint: Path | None
    step: int
    state: dict[str, Any] | None
    damaged: list[str]  # "FILE (reason)" for each damaged file that decided it


def _damaged_parts(trial_dir: Path) -> list[tuple[int, Path, str]]:
    """(the last step a checkpoint may have for the rows to be rebuilt, part, reason)."""
    out = []
    for sub in PARTS:
        for part in history.list_parts(trial_dir / sub):
            try:
                pq.read_metadata(part)
            except Exception as err:  # pyarrow raises ArrowInvalid or OSError for a cut file
                first = layout.part_step(part.name)
                # A history part holds steps ≥ its first; an evals part, evaluations after a checkpoint.
                limit = first if sub == layout.HISTORY else first - 1
                out.append((limit, part, f"{type(err).__name__}: {err}"))
    return out


def restart(trial_dir: Path, newest: Path | None = None) -> Restart:
    """Where the trial in `trial_dir` continues from, passing over damaged files (`damaged` empty:
    none). `newest`: the checkpoint Ray restores (default: the newest there)."""
    parts = _damaged_parts(trial_dir)
    limit = min((p[0] for p in parts), default=None)
    checkpoints = sorted(trial_dir.glob(layout.CHECKPOINT_GLOB), reverse=True)
    if newest is not None:
        checkpoints = [newest, *[c for c in checkpoints if c.name < newest.name]]
    damaged = [f"{p[1]} ({p[2]})" for p in parts]
    for checkpoint in checkpoints:
        try:
            state = load_state(checkpoint)
        except Exception as err:  # torch.load of a cut file raises RuntimeError, EOFError, …
            damaged.append(f"{checkpoint / layout.CHECKPOINT_STATE} ({type(err).__name__}: {err})")
            continue
        if limit is None or int(state["step"]) <= limit:
            return Restart(checkpoint, int(state["step"]), state, damaged)
    return Restart(None, 0, None, damaged)


def restore_state(newest: Path, trial_dir: Path | None) -> dict[str, Any] | None:
    """The checkpoint state a resumed trial continues from: Ray's `newest`, unless it or a
    history part before it is damaged (see `restart`)."""
    return load_state(newest) if trial_dir is None else restart(trial_dir, newest).state


def describe(trial_dir: Path, plan: Restart) -> str:
    where = f"{plan.checkpoint.name} (step {plan.step})" if plan.checkpoint else "the start"
    return (
        f"damaged: {'; '.join(plan.damaged)}. Trial {trial_dir.name} continues from {where}; its "
        f"history from there on is written anew"
    )


def check_trials(path: Path, statuses: dict[str, str]) -> list[tuple[Path, Restart]]:
    """Every trial directory with damaged files and where it continues from; prints each. Returns
    those not known to be unfinished (`statuses`: trial directory → status), which Ray may not
    run again (rebuilding an unfinished one costs time, not results: Ray then continues it)."""
    finished = []
    for trial_dir in sorted(path.glob(layout.TRIAL_DIR_GLOB)):
        done = statuses.get(trial_dir.name) not in UNFINISHED
        if done and not _damaged_parts(trial_dir):
            continue  # its checkpoints are not read again
        plan = restart(trial_dir)
        if not plan.damaged:
            continue
        if done:
            finished.append((trial_dir, plan))
        print(describe(trial_dir, plan), flush=True)
    return finished


def rebuild(trial_dir: Path, plan: Restart, cpus: float, success: str | None) -> None:
    """Re-run a finished trial from `plan`'s checkpoint in this process: the run drops the parts
    from there on (the damaged one among them) and writes them anew. Its checkpoints stay (a
    rerun from one writes what it holds)."""

    # The trial's own share, as a Ray trial counts it; the driver's count again after.
    with process.threads(max(1, int(cpus))):
        registry.run_trial(read_trial_config(trial_dir), _FromState(trial_dir, plan.state), success=success)


class _FromState:
    """A session that starts from a given checkpoint state and keeps no new checkpoints."""

    def __init__(self, trial_dir: Path, state: dict[str, Any] | None) -> None:
        self.trial_dir = trial_dir
        self.state = state

    def restore(self) -> dict[str, Any] | None:
        return self.state

    def report(self, metrics: dict[str, float], checkpoint: dict[str, Any] | None = None) -> None:
        pass


def prepare_resume(path: Path, cpus: float, success: str | None, study_name: str) -> None:
    """`resume`'s checks of a local results directory before Ray starts (see the module doc)."""
    tune_trials = check_experiment_state(path)
    check_journal(path)
    reconciled = study.reconcile(path / layout.OPTUNA_JOURNAL, study_name, tune_trials)
    if reconciled:
        print(reconciled, flush=True)
    for trial_dir, plan in check_trials(path, _statuses(path)):
        rebuild(trial_dir, plan, cpus, success)
        print(f"rebuilt {trial_dir.name}", flush=True)


def _statuses(path: Path) -> dict[str, str]:
    """Trial directory → status, from `trials.parquet`; a damaged one is removed (it is derived:
    `resume` writes it anew at the end)."""
    table = path / layout.TRIALS
    if not table.exists():
        return {}
    try:
        rows = pq.read_table(table, columns=["trial_dir", "status"]).to_pylist()
    except Exception as err:  # a cut file: ArrowInvalid or OSError
        print(f"damaged: {table} ({type(err).__name__}: {err}); it is written anew at the end", flush=True)
        table.unlink()
        return {}
    return {str(row["trial_dir"]): str(row["status"]) for row in rows}
