"""What a sweep prints, and nothing else: `run` and `resume` through the command line with each
tracker, Ctrl-C between them, their output free of Ray's, Optuna's and W&B's noise; a line while Ray
starts; the first checkpoint of a trial announced once; a resume's status line naming the best
final score. `latent_sweep.train` and `latent-sweep train` train with the same torch threads."""

from __future__ import annotations

import inspect
import math
import os
import re
import signal
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml
from sweep_runs import DEADLINE_S, tiny_sweep

import latent_sweep as ls
from latent_sweep import cli
from latent_sweep.engine import local, process
from latent_sweep.tune.report import STATUS_EVERY_S, Progress
from latent_sweep.tune.trials import FAILED

# Lines a user saw among a sweep's own: Ray's token notice and its core worker's error about the W&B
# loggers, Optuna's warning for a step reported again (as Python prints it), the AttributeError of
# Ray's W&B callback at exit.
NOISE = (
    "Token authentication",
    "optuna_warn",
    "UserWarning",
    "core_worker.cc",
    "Exception ignored",
    "Traceback",
)
FIRST_CHECKPOINT = re.compile(r"saved (\w+)  first checkpoint")


# ---------------------------------------------------------------------------------------
# Progress, on trials as Tune hands them to it


class FakeTrial:
    """What `Progress` reads of a Tune trial."""

    def __init__(self, trial_id: str, status: str, result: dict | None = None) -> None:
        self.trial_id, self.status = trial_id, status
        self.last_result = result or {}
        self.checkpoint: object | None = None  # the latest Tune recorded


def test_a_trials_first_checkpoint_is_announced_once_also_across_a_resume(capsys):
    trial = FakeTrial("t1", "RUNNING")
    progress = Progress("hue_corr", "max")
    progress.setup()
    progress.on_checkpoint(0, [trial], trial, checkpoint=object())  # Tune records it after
    trial.checkpoint = object()
    progress.on_checkpoint(1, [trial], trial, checkpoint=object())
    resumed = Progress("hue_corr", "max")  # as `resume` unpickles it: from before any checkpoint
    resumed.setup()
    resumed.on_checkpoint(2, [trial], trial, checkpoint=object())  # the trial restored with its own
    assert capsys.readouterr().out == "  saved t1  first checkpoint (resumable from here)\n"


def test_status_lines_name_the_best_final_score_and_a_resume_starts_with_one(capsys):
    trials = [
        FakeTrial("f1", "TERMINATED", {"hue_corr": 0.9832, "step": 400}),
        FakeTrial("f2", "TERMINATED", {"hue_corr": 0.9701, "step": 400}),
        FakeTrial("r1", "PENDING", {"hue_corr": 0.9937, "step": 300}),  # a running trial's latest
        FakeTrial("e1", "TERMINATED", {"hue_corr": -math.inf, FAILED: "TrialDiverged: at step 9"}),
        FakeTrial("n1", "PENDING"),
    ]
    fresh = Progress("hue_corr", "max")
    fresh.setup()
    fresh.on_step_end(0, [FakeTrial("n1", "PENDING"), FakeTrial("n2", "PENDING")])
    assert capsys.readouterr().out == ""  # a new sweep: its header said it all
    resumed = Progress("hue_corr", "max")
    resumed.last_status = 0.0  # the clock of the process that pickled it
    resumed.setup()
    resumed.on_step_end(0, trials)
    resumed.on_step_end(1, trials)  # the next one after STATUS_EVERY_S
    assert capsys.readouterr().out == "  2 pending, 3 terminated; best hue_corr=0.9832 (f1)\n"
    resumed.last_status -= STATUS_EVERY_S
    resumed.on_step_end(2, trials)
    assert capsys.readouterr().out == "  2 pending, 3 terminated; best hue_corr=0.9832 (f1)\n"
    lowest = Progress("recon_mse", "min")
    lowest.setup()
    lowest.on_step_end(0, [FakeTrial("a", "TERMINATED", {"recon_mse": 2e-3}), *trials])
    assert capsys.readouterr().out == "  2 pending, 4 terminated; best recon_mse=0.002 (a)\n"


# ---------------------------------------------------------------------------------------
# torch threads: the API's default is the command's


def test_train_and_the_train_command_default_to_the_same_threads(tiny_ex17, tmp_path, monkeypatch, capsys):
    seen = []
    threads = process.threads

    @contextmanager
    def recording(n: int | None):
        with threads(n):
            seen.append((n, torch.get_num_threads()))
            yield

    monkeypatch.setattr(process, "threads", recording)
    ls.train(tiny_ex17, steps=2, out=tmp_path / "api")
    config = tmp_path / "trial.yaml"
    config.write_text(yaml.safe_dump(tiny_ex17))
    assert cli.main(["train", str(config), "--steps", "2", "--out", str(tmp_path / "cli")]) == 0
    assert seen == [(local.THREADS, local.THREADS)] * 2
    assert inspect.signature(ls.train).parameters["threads"].default == local.THREADS
    capsys.readouterr()
    with pytest.raises(SystemExit):
        cli.main(["train", "--help"])
    assert f"torch threads (default {local.THREADS}:" in " ".join(capsys.readouterr().out.split())


# ---------------------------------------------------------------------------------------
# `run`, Ctrl-C, `resume` through the command line


def interrupted_then_resumed(
    tmp_path: Path, loggers: list[str], env: dict
) -> tuple[str, str, Path, pd.DataFrame]:
    """Two trials, one after the other: Ctrl-C once the second saved its first checkpoint (the first
    finished), then `resume`. Returns what each printed (stdout and stderr), the results directory
    and its trials table as the interrupted run left it."""
    space = {"schedule.scale.reg-separate": {"uniform": [0.5, 2.0]}}
    block = dict(search="optuna", num_samples=2, max_concurrent=1, space=space, loggers=loggers)
    path = tiny_sweep(tmp_path, "quiet", 1000, **block)
    raw = yaml.safe_load(path.read_text())
    raw.update(eval_every=250, checkpoint_every=250)  # 750 steps left after the first: time for Ctrl-C
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    run = [sys.executable, "-m", "latent_sweep", "run", path, "--storage", tmp_path / "res"]
    proc = subprocess.Popen(run, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        printed, finished = [], False
        for line in proc.stdout:  # blocks until then
            printed.append(line)
            finished = finished or "  done  " in line
            if finished and "first checkpoint" in line:
                proc.send_signal(signal.SIGINT)
                break
        printed.append(proc.communicate(timeout=DEADLINE_S)[0])
    finally:
        if proc.poll() is None:
            proc.kill()
    run_out = "".join(printed)
    assert proc.returncode == 130, run_out
    results = tmp_path / "res" / "quiet"
    before = pd.read_parquet(results / "trials.parquet").set_index("trial_id")
    resume = [sys.executable, "-m", "latent_sweep", "resume", results]
    done = subprocess.run(
        resume, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, timeout=DEADLINE_S
    )
    assert done.returncode == 0, done.stdout
    return run_out, done.stdout, results, before


@pytest.mark.slow
# Without loggers, and with all three at once (each one's noise would show there too; one sweep
# each keeps CI's time in bounds).
@pytest.mark.parametrize("loggers", [[], ["tensorboard", "mlflow", "wandb"]], ids=str)
def test_run_and_resume_print_nothing_but_their_own(tmp_path, loggers):
    if "wandb" in loggers:
        pytest.importorskip("wandb")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WANDB_", "MLFLOW_"))}
    env.update(WANDB_MODE="offline", WANDB_DIR=str(tmp_path / "wandb"))
    (tmp_path / "wandb").mkdir()
    run_out, resume_out, results, before = interrupted_then_resumed(tmp_path, loggers, env)
    for marker in NOISE:
        assert marker not in run_out + resume_out, (marker, run_out, resume_out)
    for out in (run_out, resume_out):
        assert out.startswith("starting Ray (local, "), out
    after = pd.read_parquet(results / "trials.parquet").set_index("trial_id")
    assert set(after["status"]) == {"TERMINATED"} and len(after) == 2

    # Each trial's first checkpoint is announced once: the resumed trial's came before Ctrl-C.
    announced = FIRST_CHECKPOINT.findall(run_out)
    assert len(announced) == 2 and not set(FIRST_CHECKPOINT.findall(resume_out)) & set(announced)

    # The resume's first status line names the best final score: the trial finished before Ctrl-C,
    # at the score trials.parquet holds (the other's, still running then, was an intermediate one).
    (finished,) = before.index[before["status"] == "TERMINATED"]
    assert (before["status"] != "TERMINATED").sum() == 1, before  # Ctrl-C came before it finished
    lines = resume_out.splitlines()
    status = lines[lines.index(f"resuming {results}") + 1]
    (best,) = re.findall(r"; best hue_corr=(\S+) \((\w+)\)$", status)
    assert best == (f"{after.loc[finished, 'hue_corr']:.4g}", finished), status
    assert after.loc[finished, "hue_corr"] == before.loc[finished, "hue_corr"]

    if "wandb" in loggers:  # one offline run per trial, the resumed trial's continued under its id
        offline = list((tmp_path / "wandb" / "wandb").glob("offline-run-*"))
        assert {d.name.rsplit("-", 1)[1] for d in offline} == set(after.index)
        assert len(offline) == 3
    if "tensorboard" in loggers:
        assert all(any((results / d).glob("events.out.tfevents.*")) for d in after["trial_dir"])
    if "mlflow" in loggers:
        assert (results / "mlflow.db").is_file()
