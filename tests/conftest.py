from __future__ import annotations

import copy
from pathlib import Path

import pytest

from latent_sweep import config
from latent_sweep.session import LocalSession

ROOT = Path(__file__).resolve().parent.parent


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
