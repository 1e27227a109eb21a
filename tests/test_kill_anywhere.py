"""Sweeps interrupted again and again (SIGKILL of the process group, or SIGINT to it as Ctrl-C
sends it), at start-up, at checkpoints, at any moment and at the end, `resume` interrupted too,
then resumed to the end: the CI-sized part of `scripts/kill_anywhere.py` (which runs every search
and scheduler at 20 points per signal). Real Ray, real Optuna; the moments are drawn from a seeded
random generator, and the checks hold wherever they land."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time

import pytest
from harness import kill_anywhere


@pytest.mark.slow
@pytest.mark.parametrize(("search", "sig", "seed"), [("optuna", "kill", 1), ("random", "int", 2)])
def test_a_sweep_interrupted_anywhere_resumes_to_what_an_uninterrupted_run_gives(tmp_path, search, sig, seed):
    sweep = kill_anywhere.sweep_file(tmp_path, search)
    span, reference = kill_anywhere.reference_run(sweep, tmp_path)
    events, results, problems = kill_anywhere.chain(
        search, sig, sweep, tmp_path, "chain", random.Random(seed), span, 3, reference["trial_id"].nunique()
    )
    assert not problems
    assert events  # at least one interruption landed before the sweep ended
    assert kill_anywhere.check(search, results, reference, kill_anywhere.SEARCHES[search]) == []


@pytest.mark.slow
def test_a_resume_reconciles_an_optuna_journal_far_ahead_of_tunes_state(tmp_path):
    """Tune saving its state only at start (`stale`): killed after two trials finished, its state
    still has them pending and knows none of the trials asked since; the journal has them all.
    `resume` makes the study agree (reopens the two, drops the rest) and ends as a run never killed."""
    sweep = kill_anywhere.sweep_file(tmp_path, "optuna")
    _, reference = kill_anywhere.reference_run(sweep, tmp_path)
    log = tmp_path / "killed.log"
    log.touch()
    proc = kill_anywhere._command(["run", sweep, "--storage", tmp_path, "--name", "killed"], log, stale=True)
    while proc.poll() is None and log.read_bytes().count(b"  done  ") < 2:
        time.sleep(0.01)  # polling for the moment to kill, not waiting for a result
    assert kill_anywhere._interrupt(proc, "kill") == -signal.SIGKILL
    resumed = subprocess.run(
        [sys.executable, "-m", "latent_sweep", "resume", tmp_path / "killed"], capture_output=True, text=True
    )
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "the study now agrees with Tune's experiment state" in resumed.stdout
    assert "that Tune runs again reopened" in resumed.stdout
    assert "Failed to fetch metrics" not in resumed.stdout + resumed.stderr
    results = tmp_path / "killed"
    assert kill_anywhere.check("optuna", results, reference, kill_anywhere.SEARCHES["optuna"]) == []
