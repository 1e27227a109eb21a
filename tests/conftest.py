from __future__ import annotations

import copy
from pathlib import Path

import pytest

from latent_sweep.engine.session import LocalSession
from latent_sweep.spec import config

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def local_ray():
    """A local Ray of 2 CPUs for the tests of one module."""
    import ray  # seconds to import: only the tests that start Ray pay for it

    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="session")
def ex17_raw() -> dict:
    trial, _ = config.split_sweep(config.load_file(ROOT / "sweeps" / "ex17.yaml"))
    return trial


@pytest.fixture
def tiny_ex17(ex17_raw) -> dict:
    """The 1.7 config cut to a few hundred steps with frequent evaluations and checkpoints."""
    raw = copy.deepcopy(ex17_raw)
    raw.update(steps=300, eval_every=100, checkpoint_every=100, seed=7)
    return raw


class Crash(Exception):
    """What CrashingSession raises in place of a killed process."""


class CrashingSession(LocalSession):
    """Dies right after its first checkpoint is safely on disk, like a killed process."""

    def report(self, metrics, checkpoint=None):
        super().report(metrics, checkpoint)
        if checkpoint is not None:
            raise Crash


def assert_crash_resume_matches(raw: dict, root):
    """Run `raw` whole, and again crashing after its first checkpoint (step 100) then resuming;
    the resumed run must return the same scores and write the same history and evaluations,
    and running the finished trial once more must return those scores again."""
    import pandas as pd

    from latent_sweep.engine.registry import run_trial
    from latent_sweep.store.history import read_table

    whole = run_trial(raw, LocalSession(root / "whole"))
    with pytest.raises(Crash):
        run_trial(raw, CrashingSession(root / "cut"))
    assert read_table(root / "cut" / "history")["step"].max() == 99
    pd.testing.assert_frame_equal(run_trial(raw, LocalSession(root / "cut")), whole)
    # Run again, a finished trial restores its last checkpoint and returns its scores.
    pd.testing.assert_frame_equal(run_trial(raw, LocalSession(root / "cut")), whole)
    for part in ("history", "evals"):
        a, b = (
            read_table(root / d / part).drop(columns=["wall_time", "trial_id"], errors="ignore")
            for d in ("whole", "cut")
        )
        pd.testing.assert_frame_equal(a, b)
    return whole
