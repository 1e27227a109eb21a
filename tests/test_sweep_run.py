"""`latent-sweep run` / `resume` end to end: real Ray Tune trials on a local Ray, real Optuna,
trials.parquet read back; population trials (seeds, success_rate under Optuna, 64 packed
configs × 4 seeds in one trial); a run killed with SIGKILL and resumed; an erroring trial retried."""

from __future__ import annotations

import io
import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
import torch
import yaml
from harness import kill_anywhere
from ray import tune
from sweep_runs import (
    DEADLINE_S,
    assert_complete_histories,
    assert_train_reproduces,
    run,
    start_run,
    tiny_sweep,
)

from latent_sweep import cli
from latent_sweep.analysis.results import load_evals, member_rows, read_trial_config
from latent_sweep.engine.registry import run_trial
from latent_sweep.engine.session import LocalSession
from latent_sweep.errors import UserError
from latent_sweep.scores import summary
from latent_sweep.spec import config
from latent_sweep.spec.checks import load_spec
from latent_sweep.store.history import read_table
from latent_sweep.store.lock import LOCK_FILE, ResultsLock
from latent_sweep.tune import space as tune_space
from latent_sweep.tune.report import config_summaries, print_leaderboard
from latent_sweep.tune.sweep import RETRIED_DIR

ROOT = Path(__file__).resolve().parent.parent
SUCCESS = "hue_order >= 0.999 and abs(hue_winding) == 1"


def assert_devices_reported(results: Path, trials: pd.DataFrame) -> None:
    """Each trial's `device` is the one its last result (Ray's result.json) names, and empty when
    that result names none; where the trial trained, as the start line said."""
    for trial_dir, rows in trials.groupby("trial_dir"):
        lines = (results / str(trial_dir) / "result.json").read_text().splitlines()
        expected = json.loads(lines[-1]).get("device")
        if expected is None:
            assert rows["device"].isna().all()
        else:
            assert rows["device"].tolist() == [expected] * len(rows)
        assert expected in (None, "cuda:0" if torch.cuda.is_available() else "cpu")


@pytest.mark.slow
def test_optuna_optimizes_the_success_rate_of_population_trials(local_ray, tmp_path, capsys):
    space = {
        "schedule.keyframes[5].reg-polar": {"loguniform": [0.001, 0.03]},
        "schedule.scale.reg-separate": {"uniform": [0.5, 2.0]},
    }
    block = dict(search="optuna", num_samples=2, seeds=2, space=space, metric="success_rate", success=SUCCESS)
    path = tiny_sweep(tmp_path, "opt", 200, **block)
    assert run("run", path, "--storage", tmp_path / "res") == 0
    out = capsys.readouterr().out
    results = tmp_path / "res" / "opt"
    assert "sweep opt: 2 sampled configs × 2 seeds as 2 population trials, search optuna" in out
    # `gpu: auto`: a GPU share where Ray has a GPU, and the line says where trials train.
    share = (
        "0.125 gpu per trial (trains on cuda)"
        if torch.cuda.is_available()
        else "0 gpu per trial (trains on cpu)"
    )
    assert f"success_rate (max), 1 cpu + {share} → {tmp_path / 'res' / 'opt'}\n" in out
    assert f"results: {results}" in out and "trials: 2 TERMINATED (4 members)" in out

    trials = pd.read_parquet(results / "trials.parquet")
    assert len(trials) == 4 and set(trials["status"]) == {"TERMINATED"}
    assert trials["trial_id"].nunique() == 2
    assert_complete_histories(results, trials)
    # Each Optuna suggestion ran as one trial of seeds 0 and 1 with identical sampled values.
    for _, group in trials.groupby("trial_id"):
        assert group["member"].tolist() == [0, 1] and group["seed"].tolist() == [0, 1]
        assert group["config.seed"].tolist() == [0, 1]
        assert group["config.schedule.keyframes[@5000].reg-polar"].nunique() == 1
        assert group["config.schedule.scale.reg-separate"].nunique() == 1
    schema = pq.read_schema(results / "trials.parquet")
    types = {name: str(schema.field(name).type) for name in schema.names}
    assert [types[c] for c in ("member", "seed", "steps", "config.seed", "diverged_at")] == ["int64"] * 5
    assert types["hue_corr"] == "double" and types["error"] == types["device"] == "string"
    assert_devices_reported(results, trials)
    assert not [n for n in schema.names if n.startswith("config.members")]
    for row in trials.itertuples():  # a member's best over its evaluations, in each score's direction
        evals = load_evals(results / row.trial_dir, member=row.member)
        assert (row.best_hue_corr, row.best_recon_mse) == (evals["hue_corr"].max(), evals["recon_mse"].min())
    assert set(yaml.safe_load((results / "sweep.yaml").read_text())["sweep"]["space"]) == set(space)

    # What each trial reported to Tune (and Optuna optimized): statistics over its members.
    analysis = tune.ExperimentAnalysis(str(results))
    assert {t.trial_id for t in analysis.trials} == set(trials["trial_id"])
    for trial in analysis.trials:
        members = trials[trials["trial_id"] == trial.trial_id]
        last = trial.last_result
        assert last["hue_corr"] == pytest.approx(members["hue_corr"].mean())
        assert last["hue_corr_min"] == pytest.approx(members["hue_corr"].min())
        assert last["recon_mse_std"] == pytest.approx(members["recon_mse"].std(ddof=0))
        assert last["success_rate"] == pytest.approx(summary.success_mask(members, SUCCESS).mean())
        assert last["diverged_rate"] == 0.0

    with pytest.raises(UserError, match="already holds a sweep; continue it with `latent-sweep resume"):
        cli.dispatch(cli.build_parser().parse_args(["run", str(path), "--storage", str(tmp_path / "res")]))


@pytest.mark.slow
def test_pack_runs_64_configs_by_4_seeds_as_one_trial(local_ray, tmp_path, capsys):
    space = {
        "schedule.keyframes[@5000].reg-polar": {"loguniform": [0.001, 0.03]},
        "schedule.scale.reg-separate": {"uniform": [0.5, 2.0]},
    }
    path = tiny_sweep(tmp_path, "pack", 100, num_samples=64, seeds=4, pack=64, space=space)
    assert run("run", path, "--storage", tmp_path / "res") == 0
    out = capsys.readouterr().out
    assert (
        "64 sampled configs × 4 seeds, packed 64 to a trial: 1 population trial of up to 256 members" in out
    )
    assert "trials: 1 TERMINATED (256 members)" in out

    results = tmp_path / "res" / "pack"
    trials = pd.read_parquet(results / "trials.parquet")
    assert (
        len(trials) == 256 and trials["trial_id"].nunique() == 1 and set(trials["status"]) == {"TERMINATED"}
    )
    assert trials["member"].tolist() == list(range(256))
    # The members' configs are the ones sampled: config c, seed s is member 4c + s.
    spec = load_spec(yaml.safe_load((results / "sweep.yaml").read_text()), results / "sweep.yaml")
    (pack,) = tune_space.packs(spec)
    assert trials["seed"].tolist() == trials["config.seed"].tolist() == [m % 4 for m in range(256)]
    for p in space:
        assert trials[f"config.{p}"].tolist() == [pack[m // 4][p] for m in range(256)]
    assert trials["hue_corr"].notna().all()
    assert_devices_reported(results, trials)
    evals = load_evals(results / trials["trial_dir"].iloc[0])
    assert evals["step"].tolist() == [100] * 256 and evals["member"].tolist() == list(range(256))

    code = run(
        "compare", results, "--by", "schedule.scale.reg-separate", "--bins", "0", "--scores", "hue_corr",
        "--format", "csv",
    )  # fmt: skip
    assert code == 0
    stats = pd.read_csv(io.StringIO(capsys.readouterr().out))
    assert len(stats) == 64 and set(stats["count"]) == {4}
    assert stats["hue_corr_mean"].mean() == pytest.approx(trials["hue_corr"].mean())


def test_leaderboard_has_one_row_per_config_with_its_statistics(tmp_path, capsys):
    from fixtures_results import GAMMA, GAMMA_SPACE, make_population_sweep

    root = make_population_sweep(tmp_path / "gamma")
    rows = []
    for trial_id in GAMMA:
        raw, evals = read_trial_config(root / trial_id), load_evals(root / trial_id)
        rows += member_rows(trial_id, "TERMINATED", raw, evals, steps=99, error=None, trial_dir=trial_id)
    raw = config.load_file(ROOT / "sweeps" / "quick.yaml")
    success = "hue_corr >= 0.85"
    raw["sweep"] = dict(
        metric="success_rate", mode="max", seeds=2, pack=2, space=GAMMA_SPACE, success=success
    )
    spec = load_spec(raw, "gamma.yaml")
    table = config_summaries(pd.DataFrame(rows), spec)
    assert list(table.columns) == [
        "trial_id",
        "status",
        "config.schedule.scale.reg-polar",
        "seeds",
        "success_rate",
        "hue_corr",
        "hue_order",
        "recon_mse",
        "steps",
        "error",
    ]  # fmt: skip  (the metric, then the experiment's first three key scores)
    by_scale = table.set_index("config.schedule.scale.reg-polar")
    assert by_scale["trial_id"].to_dict() == {0.5: "g0", 2.0: "g0", 1.0: "g1"}
    assert by_scale["seeds"].tolist() == [2, 2, 2]
    assert by_scale["success_rate"].to_dict() == {0.5: 0.5, 2.0: 0.0, 1.0: 1.0}  # diverged: a failure
    assert by_scale["hue_corr"].to_dict() == pytest.approx({0.5: 0.85, 2.0: 0.6, 1.0: 0.9})
    print_leaderboard(rows, spec)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "trials: 2 TERMINATED (6 members)"
    assert lines[1].split() == [
        "trial_id", "status", "scale.reg-polar", "seeds", "success_rate", "hue_corr", "hue_order",
        "recon_mse", "steps",
    ]  # fmt: skip
    assert [line.split()[:5] for line in lines[2:5]] == [
        ["g1", "TERMINATED", "1", "2", "1"],
        ["g0", "TERMINATED", "0.5", "2", "0.5"],
        ["g0", "TERMINATED", "2", "2", "0"],
    ]
    # the legend of the short labels; every config is shown, so no `top N of M`
    assert lines[5:] == ["scale.reg-polar = config.schedule.scale.reg-polar"]


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


@pytest.mark.slow
def test_a_diverged_trial_ends_once_with_its_reason(local_ray, tmp_path, capsys):
    # lr × 1e15 blows the weights up: the trial stops with TrialDiverged; its sibling finishes.
    # Divergence is deterministic, so it is not retried, though `max_failures` is 2 by default.
    path = tiny_sweep(tmp_path, "err", 200, search="grid", space={"schedule.scale.lr": {"grid": [1.0, 1e15]}})
    assert run("run", path, "--storage", tmp_path / "res") == 1  # not every trial finished
    results = tmp_path / "res" / "err"
    assert capsys.readouterr().err.startswith("error: 1 of 2 trials did not finish (status and reason in")
    trials = pd.read_parquet(results / "trials.parquet").set_index("config.schedule.scale.lr")
    assert trials.loc[1.0, "status"] == "TERMINATED" and trials.loc[1.0, "steps"] == 200
    failed = trials.loc[1e15]
    assert failed["status"] == "ERROR"
    assert failed["error"].startswith("TrialDiverged: every member's loss became non-finite")
    attempts = {t.trial_id: t.num_failures for t in tune.ExperimentAnalysis(str(results)).trials}
    assert attempts == {failed["trial_id"]: 0, trials.loc[1.0, "trial_id"]: 0}

    # Nothing to restart: the trial ended for good, and resume says so again.
    assert run("resume", results, "--restart-errored") == 1
    again = pd.read_parquet(results / "trials.parquet").set_index("config.schedule.scale.lr")
    pd.testing.assert_frame_equal(again, trials)
    assert not (results / RETRIED_DIR).exists()


@pytest.mark.slow
@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA for the trial to meet")
def test_a_trial_with_a_config_error_ends_once_with_its_reason(local_ray, tmp_path, capsys):
    # `device: cuda` passes validate (a cluster's workers may have GPUs) and fails where the trial
    # runs, on this machine without one: a configuration error, so the trial ends at once.
    path = tiny_sweep(tmp_path, "cfg", 200, search="grid", space={"device": {"grid": ["cpu", "cuda"]}})
    raw = yaml.safe_load(path.read_text())
    path.write_text(yaml.safe_dump({**raw, "device": "cpu"}, sort_keys=False))
    assert run("run", path, "--storage", tmp_path / "res") == 1
    results = tmp_path / "res" / "cfg"
    assert capsys.readouterr().err.startswith("error: 1 of 2 trials did not finish (status and reason in")
    trials = pd.read_parquet(results / "trials.parquet").set_index("config.device")
    assert trials.loc["cpu", "status"] == "TERMINATED" and trials.loc["cpu", "steps"] == 200
    assert trials.loc["cuda", "status"] == "ERROR"
    assert trials.loc["cuda", "error"] == (
        "UserError: `device` is `cuda`, but no CUDA device is available here; use `auto` or `cpu`"
    )
    attempts = {t.trial_id: t.num_failures for t in tune.ExperimentAnalysis(str(results)).trials}
    assert attempts == {trials.loc["cuda", "trial_id"]: 0, trials.loc["cpu", "trial_id"]: 0}


@pytest.mark.slow
def test_killed_run_resumes_to_the_same_results(local_ray, tmp_path):
    path = tiny_sweep(tmp_path, "kill", 600, seeds=2)  # one population trial of seeds 0 and 1
    results = tmp_path / "res" / "kill"
    proc = start_run(path, tmp_path / "res", stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        tree = kill_anywhere.descendants(proc.pid)
        checkpointed = sorted({p.parent.name for p in results.glob("trial_*/checkpoint_*")})
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    # Ray's workers are not in the group; they exit once their raylet is gone.
    kill_anywhere.wait_for_exit(tree)
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
    members = trials[trials["trial_dir"] == resumed].set_index("member")
    out = tmp_path / "again" / resumed  # the same directory name: the same trial_id in its files
    train = [sys.executable, "-m", "latent_sweep", "train", results / resumed / "config.yaml", "--out", out]
    subprocess.run(train, check=True, capture_output=True)
    fresh = read_table(out / "evals")
    assert fresh.equals(read_table(results / resumed / "evals"))
    final = fresh.groupby("member").last()
    for score in ("hue_corr", "recon_mse", "anchor_error_red"):
        assert final[score].tolist() == members[score].tolist()


@pytest.mark.slow
def test_a_reused_trial_process_gives_what_train_gives(local_ray, tmp_path):
    # One trial at a time: Ray reuses one worker process for all three trials.
    path = tiny_sweep(
        tmp_path,
        "reuse",
        200,
        search="grid",
        max_concurrent=1,
        space={"labels.mode": {"grid": ["soft", "hard", "soft"]}},
    )
    assert run("run", path, "--storage", tmp_path / "res") == 0
    results = tmp_path / "res" / "reuse"
    trials = pd.read_parquet(results / "trials.parquet")
    assert len(trials) == 3 and trials["trial_id"].nunique() == 3
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # the trial's CPU share
    try:
        for row in trials.itertuples():
            raw = yaml.safe_load((results / row.trial_dir / "config.yaml").read_text())
            alone = run_trial(raw, LocalSession(tmp_path / "alone" / row.trial_dir))
            pd.testing.assert_frame_equal(
                read_table(results / row.trial_dir / "history").drop(columns="wall_time"),
                read_table(tmp_path / "alone" / row.trial_dir / "history").drop(columns="wall_time"),
            )
            assert alone.loc[0, "hue_corr"] == row.hue_corr
    finally:
        torch.set_num_threads(before)


@pytest.mark.slow
def test_ctrl_c_stops_the_run_and_resume_finishes_it(tmp_path):
    path = tiny_sweep(
        tmp_path, "sigint", 600, seeds=2, search="grid", space={"labels.mode": {"grid": ["soft", "hard"]}}
    )
    results = tmp_path / "res" / "sigint"
    proc = start_run(path, tmp_path / "res", stderr=subprocess.PIPE)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=DEADLINE_S)
    assert proc.returncode == 130
    assert (
        f"checkpoints and the experiment state are saved. Continue with `latent-sweep resume {results}`"
        in err
    )
    assert "Tuner.restore" not in err  # Ray's own hint, for its Python API, is not shown

    assert run("resume", results) == 0
    trials = pd.read_parquet(results / "trials.parquet")
    assert len(trials) == 4 and set(trials["status"]) == {"TERMINATED"} and set(trials["steps"]) == {600}
    assert_complete_histories(results, trials)


@pytest.mark.slow
def test_a_lost_worker_is_retried_from_its_checkpoint(tmp_path):
    path = tiny_sweep(tmp_path, "lost", 600, seeds=2)  # one population trial of seeds 0 and 1
    results = tmp_path / "res" / "lost"
    proc = start_run(path, tmp_path / "res", stderr=subprocess.DEVNULL)
    # The trial's worker: the Ray actor process running the function trainable.
    workers = [p for p in kill_anywhere.descendants(proc.pid) if b"ImplicitFunc" in _cmdline(p)]
    assert len(workers) == 1, workers
    os.kill(workers[0], signal.SIGKILL)  # a lost worker, as on a reclaimed spot node
    proc.communicate(timeout=DEADLINE_S)
    assert proc.returncode == 0

    trials = pd.read_parquet(results / "trials.parquet")
    assert set(trials["status"]) == {"TERMINATED"} and set(trials["steps"]) == {600}
    assert_complete_histories(results, trials)
    assert [t.num_failures for t in tune.ExperimentAnalysis(str(results)).trials] == [1]
    # The retried trial ends where an uninterrupted run of its config ends.
    assert_train_reproduces(results / trials["trial_dir"].iloc[0], tmp_path / "again")


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:  # exited meanwhile
        return b""
