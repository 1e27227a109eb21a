"""An Optuna sweep of population trials killed mid-run and resumed: as many trials as `num_samples`,
no sampled config twice, every trial's history whole, and, while Optuna still samples at random
(its startup trials), the same configs as the sweep run without a kill (docs/reliability.md)."""

from __future__ import annotations

import os
import signal
import subprocess

import optuna
import pandas as pd
import pytest
from harness import kill_anywhere
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from sweep_runs import assert_complete_histories, run, start_run, tiny_sweep

from latent_sweep.store.lock import LOCK_FILE
from latent_sweep.tune.study import JOURNAL_FILE

SPACE = {
    "schedule.keyframes[@5000].reg-polar": {"loguniform": [0.001, 0.03]},
    "schedule.scale.reg-separate": {"uniform": [0.5, 2.0]},
}
PARAMS = ["config.schedule.keyframes[@5000].reg-polar", "config.schedule.scale.reg-separate"]


def optuna_sweep(tmp_path, name: str):
    return tiny_sweep(
        tmp_path,
        name,
        200,
        search="optuna",
        search_seed=3,
        startup_trials=6,
        num_samples=4,
        seeds=2,
        space=SPACE,
    )


def configs(trials: pd.DataFrame) -> list[tuple]:
    return sorted(trials.drop_duplicates("trial_id")[PARAMS].itertuples(index=False, name=None))


@pytest.mark.slow
def test_a_killed_optuna_sweep_resumes_to_num_samples_distinct_trials(tmp_path):
    results = tmp_path / "res" / "killed"
    proc = start_run(
        optuna_sweep(tmp_path, "killed"), tmp_path / "res", stderr=subprocess.DEVNULL, start_new_session=True
    )
    try:
        tree = kill_anywhere.descendants(proc.pid)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    kill_anywhere.wait_for_exit(tree)
    assert (results / LOCK_FILE).exists()
    # A kill in the middle of Optuna's write leaves a record cut off; resume drops it.
    journal = results / JOURNAL_FILE
    whole = journal.read_bytes()
    journal.write_bytes(whole + b'{"op_code":5,"worker_id":"w","trial_')
    assert run("resume", results) == 0
    assert journal.read_bytes().startswith(whole) and journal.read_bytes().endswith(b"\n")
    storage = JournalStorage(JournalFileBackend(str(journal)))
    study = optuna.load_study(study_name="killed", storage=storage)
    assert sum(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials) == 4
    trials = pd.read_parquet(results / "trials.parquet")
    assert trials["trial_id"].nunique() == 4 and len(trials) == 8  # 4 population trials of 2 seeds
    assert set(trials["status"]) == {"TERMINATED"} and set(trials["steps"]) == {200}
    assert len(set(configs(trials))) == 4  # no sampled config repeated
    assert_complete_histories(results, trials)

    # Within Optuna's random startup trials, the kill changes nothing: the same four configs.
    assert run("run", optuna_sweep(tmp_path, "whole"), "--storage", tmp_path / "res") == 0
    whole = pd.read_parquet(tmp_path / "res" / "whole" / "trials.parquet")
    assert configs(trials) == configs(whole)
