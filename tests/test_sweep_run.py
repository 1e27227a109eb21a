"""`latent-sweep run` / `resume` end to end: real Ray Tune trials on a local Ray, real Optuna,
trials.parquet read back; a run killed with SIGKILL and resumed; an erroring trial retried."""

from __future__ import annotations

import copy
import os
import select
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
import ray
import yaml
from ray import tune

from latent_sweep import cli, config
from latent_sweep.errors import UserError
from latent_sweep.history import read_table
from latent_sweep.sweep import LOCK_FILE, RETRIED_DIR, ResultsLock

ROOT = Path(__file__).resolve().parent.parent
DEADLINE_S = 240.0  # only a bound on the condition waits below, never a synchronization


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def tiny_sweep(tmp_path: Path, name: str, steps: int, **sweep) -> Path:
    """sweeps/quick.yaml cut to `steps` steps, evaluated and checkpointed every 100."""
    raw = copy.deepcopy(config.load_file(ROOT / "sweeps" / "quick.yaml"))
    raw.update(name=name, steps=steps, eval_every=100, checkpoint_every=100)
    raw["sweep"] = {"metric": "hue_corr", "mode": "max", "max_concurrent": 2, **sweep}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def run(*argv: str) -> int:
    return cli.main([str(a) for a in argv])


def assert_complete_histories(results: Path, trials: pd.DataFrame) -> None:
    """Every trial's history has each step once, its evaluations every 100 steps."""
    for row in trials.itertuples():
        trial_dir = results / row.trial_dir
        assert (trial_dir / "config.yaml").is_file()
        steps = read_table(trial_dir / "history")["step"].tolist()
        assert steps == list(range(row.steps)), row.trial_dir
        assert read_table(trial_dir / "evals")["step"].tolist() == list(range(100, row.steps + 1, 100))


def test_sweep_runs_optuna_trials_and_writes_trials_table(local_ray, tmp_path, capsys):
    space = {
        "schedule.keyframes[5].reg-polar": {"loguniform": [0.001, 0.03]},
        "schedule.scale.reg-separate": {"uniform": [0.5, 2.0]},
    }
    path = tiny_sweep(tmp_path, "opt", 200, search="optuna", num_samples=2, seeds=2, space=space)
    assert run("run", path, "--storage", tmp_path / "res") == 0
    out = capsys.readouterr().out
    results = tmp_path / "res" / "opt"
    assert f"results: {results}" in out and "trials: 4 TERMINATED" in out

    trials = pd.read_parquet(results / "trials.parquet")
    assert len(trials) == 4 and set(trials["status"]) == {"TERMINATED"}
    assert_complete_histories(results, trials)
    # Each Optuna suggestion ran on seeds 0 and 1 with identical sampled values.
    for _, group in trials.groupby("config.schedule.scale.reg-separate"):
        assert sorted(group["config.seed"]) == [0, 1]
        assert group["config.schedule.keyframes[5].reg-polar"].nunique() == 1
    schema = pq.read_schema(results / "trials.parquet")
    assert str(schema.field("steps").type) == "int64" and str(schema.field("config.seed").type) == "int64"
    assert str(schema.field("hue_corr").type) == "double" and str(schema.field("error").type) == "string"
    for row in trials.itertuples():  # best over every evaluation, in each score's direction
        evals = read_table(results / row.trial_dir / "evals")
        assert (row.best_hue_corr, row.best_recon_mse) == (evals["hue_corr"].max(), evals["recon_mse"].min())
    assert set(yaml.safe_load((results / "sweep.yaml").read_text())["sweep"]["space"]) == set(space)

    analysis = tune.ExperimentAnalysis(str(results))
    assert {t.trial_id for t in analysis.trials} == set(trials["trial_id"])

    with pytest.raises(UserError, match="already holds a sweep; continue it with `latent-sweep resume"):
        cli.dispatch(cli.build_parser().parse_args(["run", str(path), "--storage", str(tmp_path / "res")]))


def test_results_dir_in_use_is_refused(tmp_path):
    results = tmp_path / "res" / "busy"
    results.mkdir(parents=True)
    (results / LOCK_FILE).write_text(f"{socket.gethostname()} {os.getpid()}")
    path = tiny_sweep(tmp_path, "busy", 100)
    with pytest.raises(UserError, match=rf"{results} is in use by latent-sweep process {os.getpid()}"):
        cli.dispatch(cli.build_parser().parse_args(["run", str(path), "--storage", str(tmp_path / "res")]))


def test_stale_lock_is_taken_over(tmp_path):
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    (tmp_path / LOCK_FILE).write_text(f"{socket.gethostname()} {gone.stdout.strip()}")
    with ResultsLock(str(tmp_path)):
        assert (tmp_path / LOCK_FILE).read_text() == f"{socket.gethostname()} {os.getpid()}"
    assert not (tmp_path / LOCK_FILE).exists()


def test_erroring_trial_is_recorded_and_restarted(local_ray, tmp_path):
    # lr × 1e15 blows the weights up: the trial stops with TrialDiverged; its sibling finishes.
    path = tiny_sweep(tmp_path, "err", 200, search="grid", space={"schedule.scale.lr": {"grid": [1.0, 1e15]}})
    assert run("run", path, "--storage", tmp_path / "res") == 0
    results = tmp_path / "res" / "err"
    trials = pd.read_parquet(results / "trials.parquet").set_index("config.schedule.scale.lr")
    assert trials.loc[1.0, "status"] == "TERMINATED" and trials.loc[1.0, "steps"] == 200
    failed = trials.loc[1e15]
    assert failed["status"] == "ERROR"
    assert failed["error"].startswith("TrialDiverged: ")

    assert run("resume", results, "--restart-errored") == 0
    again = pd.read_parquet(results / "trials.parquet").set_index("config.schedule.scale.lr")
    assert again.loc[1e15, "status"] == "ERROR" and again.loc[1e15, "trial_id"] != failed["trial_id"]
    assert again.loc[1.0, "trial_id"] == trials.loc[1.0, "trial_id"]  # finished trials are kept
    assert (results / RETRIED_DIR / failed["trial_dir"]).is_dir()
    assert sorted(p.name for p in results.glob("trial_*")) == sorted(again["trial_dir"])


def _descendants(pid: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def _wait_for_exit(pids: set[int]) -> None:
    """Block until each process has exited (a pidfd becomes readable when its process ends)."""
    deadline = time.monotonic() + DEADLINE_S
    for pid in pids:
        try:
            fd = os.pidfd_open(pid)
        except ProcessLookupError:
            continue
        try:
            ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
            assert ready, f"timed out waiting for process {pid} of the killed run to exit"
        finally:
            os.close(fd)


def test_killed_run_resumes_to_the_same_results(local_ray, tmp_path):
    path = tiny_sweep(tmp_path, "kill", 600, seeds=2)
    results = tmp_path / "res" / "kill"
    cmd = [sys.executable, "-m", "latent_sweep", "run", path, "--storage", tmp_path / "res"]
    proc = subprocess.Popen(
        cmd, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    try:
        for line in proc.stdout:  # blocks until `run` announces a trial's first checkpoint
            if "first checkpoint" in line:
                break
        tree = _descendants(proc.pid)
        checkpointed = sorted({p.parent.name for p in results.glob("trial_*/checkpoint_*")})
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    # Ray's workers are not in the group; they exit once their raylet is gone.
    _wait_for_exit(tree)
    assert (results / LOCK_FILE).exists()  # left behind by the killed run; resume takes it over

    assert run("resume", results) == 0
    trials = pd.read_parquet(results / "trials.parquet")
    assert len(trials) == 2 and set(trials["status"]) == {"TERMINATED"} and set(trials["steps"]) == {600}
    assert_complete_histories(results, trials)
    for trial_dir in trials["trial_dir"]:  # six checkpoints each, the last two kept
        assert sorted(p.name for p in (results / trial_dir).glob("checkpoint_*"))[-1] == "checkpoint_000005"
        assert len(list((results / trial_dir).glob("checkpoint_*"))) == 2

    # The trial that had checkpointed before the kill, trained again in-process without Ray.
    resumed = checkpointed[0]
    row = trials.set_index("trial_dir").loc[resumed]
    out = tmp_path / "again"
    train = [sys.executable, "-m", "latent_sweep", "train", results / resumed / "config.yaml", "--out", out]
    subprocess.run(train, check=True, capture_output=True)
    fresh = read_table(out / "evals")
    assert fresh.equals(read_table(results / resumed / "evals"))
    for score in ("hue_corr", "recon_mse", "anchor_error_red"):
        assert fresh[score].iloc[-1] == row[score]
