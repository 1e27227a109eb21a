"""Damaged results (what a power cut, a full disk or a copy cut short leaves): a truncated history
or evals part, a truncated trials.parquet, a partial checkpoint, damaged Ray experiment state.
`resume` rebuilds what an earlier checkpoint can rebuild and says so; `table`, `compare`, `plot`
and `resume` name whatever they cannot read, with what to do. One real sweep, copied per case."""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
from pathlib import Path

import pandas as pd
import pytest
import ray
from sweep_runs import (
    DEADLINE_S,
    assert_complete_histories,
    assert_train_reproduces,
    start_run,
    tiny_sweep,
)

from latent_sweep import cli
from latent_sweep.store.history import read_table
from latent_sweep.tune import recovery

pytestmark = pytest.mark.slow
REASON = r" \([A-Za-z]+(Error|Invalid): [^\n]*\)"  # the reader's own words (pyarrow, torch, pickle)


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    """A finished sweep: one population trial (seeds 0 and 1) of 300 steps, checkpoints every 100."""
    tmp = tmp_path_factory.mktemp("corrupt")
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        assert (
            cli.main(["run", str(tiny_sweep(tmp, "dmg", 300, seeds=2)), "--storage", str(tmp / "res")]) == 0
        )
    finally:
        ray.shutdown()
    return tmp / "res" / "dmg"


@pytest.fixture
def results(finished, tmp_path) -> Path:
    copy = tmp_path / "dmg"
    shutil.copytree(finished, copy)
    return copy


def cut(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def trial_of(results: Path) -> Path:
    (trial,) = results.glob("trial_*")
    return trial


def frames(results: Path) -> dict[str, pd.DataFrame]:
    trial = trial_of(results)
    out = {
        sub: read_table(trial / sub).drop(columns="wall_time", errors="ignore")
        for sub in ("history", "evals")
    }
    out["trials"] = pd.read_parquet(results / "trials.parquet").drop(columns="wall_time_s")
    return out


def test_resume_rebuilds_damaged_parts_and_the_trials_table(finished, results, capsys):
    trial = trial_of(results)
    cut(trial / "history" / "part-000000100.parquet")
    cut(trial / "evals" / "part-000000300.parquet")
    cut(results / "trials.parquet")
    capsys.readouterr()
    assert cli.main(["resume", str(results)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert re.fullmatch(
        re.escape(f"damaged: {results}/trials.parquet") + REASON + "; it is written anew at the end", out[0]
    )
    # The history part from step 100 needs a checkpoint from step ≤ 100: only 200 and 300 are kept.
    assert re.fullmatch(
        re.escape(f"damaged: {trial}/history/part-000000100.parquet")
        + REASON
        + re.escape(f"; {trial}/evals/part-000000300.parquet")
        + REASON
        + re.escape(
            f". Trial {trial.name} continues from the start; its history from there on is written anew"
        ),
        out[1],
    )
    assert out[2] == f"rebuilt {trial.name}"
    assert re.fullmatch(r"starting Ray \(local, \d+ CPUs\)…", out[3])  # the repairs come first
    assert out[4] == f"resuming {results}"
    # The same rows as before the damage, and the same scores: the rerun is deterministic.
    for name, frame in frames(results).items():
        pd.testing.assert_frame_equal(frame, frames(finished)[name], obj=name)


def test_a_damaged_checkpoint_is_passed_over_for_the_one_before(results):
    trial = trial_of(results)
    newest, previous = sorted(trial.glob("checkpoint_*"), reverse=True)
    assert recovery.restore_state(newest, trial)["step"] == 300
    cut(newest / "state.pt")
    assert recovery.restore_state(newest, trial)["step"] == 200
    (previous / "state.pt").unlink()  # a checkpoint directory copied in part
    assert recovery.restore_state(newest, trial) is None  # none whole: from the start
    plan = recovery.restart(trial, newest)
    assert (plan.checkpoint, plan.step) == (None, 0)
    assert [re.sub(REASON, "", d) for d in plan.damaged] == [f"{newest}/state.pt", f"{previous}/state.pt"]


@pytest.mark.parametrize("pattern", ["tuner.pkl", "experiment_state-*.json", "basic-variant-state-*.json"])
def test_damaged_experiment_state_is_named_and_nothing_changes(results, pattern, capsys):
    (state,) = results.glob(pattern)
    cut(state)
    before = {p: p.read_bytes() for p in results.rglob("*") if p.is_file()}
    assert cli.main(["resume", str(results)]) == 2
    err = capsys.readouterr().err
    assert re.fullmatch(
        re.escape(f"error: {state}: Ray's experiment state is damaged")
        + REASON
        + re.escape(
            f", so the sweep cannot be resumed; the trials' own files are not affected: `latent-sweep table "
            f"{results}` lists them. Restore the file from a backup, or run the sweep anew into another "
            "directory (`latent-sweep run SWEEP --name NEW`)"
        )
        + "\n",
        err,
    )
    assert {p: p.read_bytes() for p in results.rglob("*") if p.is_file()} == before
    assert cli.main(["table", str(results)]) == 0  # tables do not read Ray's state


def test_table_compare_and_plot_name_damaged_files(results, tmp_path, capsys):
    trial = trial_of(results)
    table = results / "trials.parquet"
    cut(table)
    remedy = f"rebuild it from the trials with `latent-sweep resume {results}`\n"
    commands = (["table"], ["compare", "--by", "seed"], ["plot", "--kind", "sweep", "--out", str(tmp_path)])
    for command in commands:
        capsys.readouterr()
        assert cli.main([command[0], str(results), *command[1:]]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"error: {table}: not a readable Parquet file (") and err.endswith(remedy)
    table.unlink()  # without it, tables come from the trials' own files
    part = trial / "evals" / "part-000000200.parquet"
    cut(part)
    for command in commands:
        capsys.readouterr()
        assert cli.main([command[0], str(results), *command[1:]]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"error: {part}: not a readable Parquet file (")
        assert err.endswith(
            "remove it to read the rest, or re-run the trial with `latent-sweep train <trial>/config.yaml`\n"
        )
    history = trial / "history" / "part-000000000.parquet"
    cut(history)
    assert cli.main(["plot", str(trial), "--kind", "curves", "--out", str(tmp_path)]) == 2
    assert capsys.readouterr().err.startswith(f"error: {history}: not a readable Parquet file (")
    assert not list(tmp_path.glob("*.png"))


def test_an_interrupted_trial_with_a_damaged_checkpoint_continues_from_an_earlier_one(tmp_path, capsys):
    results = tmp_path / "res" / "cut"
    proc = start_run(tiny_sweep(tmp_path, "cut", 400, seeds=2), tmp_path / "res", stderr=subprocess.PIPE)
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=DEADLINE_S)
    assert proc.returncode == 130
    trial = trial_of(results)
    checkpoints = sorted(trial.glob("checkpoint_*"))
    cut(checkpoints[-1] / "state.pt")  # the copy into storage cut short
    earlier = f"{checkpoints[-2].name} (step " if len(checkpoints) > 1 else "the start"
    capsys.readouterr()
    assert cli.main(["resume", str(results)]) == 0
    line = capsys.readouterr().out.splitlines()[0]
    assert re.fullmatch(
        re.escape(f"damaged: {checkpoints[-1]}/state.pt")
        + REASON
        + re.escape(f". Trial {trial.name} continues from {earlier}")
        + r"(\d+\))?; its history from there on is written anew",
        line,
    )
    trials = pd.read_parquet(results / "trials.parquet")
    assert set(trials["status"]) == {"TERMINATED"} and set(trials["steps"]) == {400}
    assert_complete_histories(results, trials)
    assert_train_reproduces(trial, tmp_path / "again")  # where an uninterrupted run ends
