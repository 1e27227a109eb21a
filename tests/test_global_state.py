"""Importing and using the library leaves the process as it found it: torch's threads, the denormal
mode, glibc's allocator thresholds, Optuna's verbosity and the environment. Trials run in users' own
processes (`latent_sweep.train`, `run_sweep`'s driver, the rebuilds of `resume`)."""

from __future__ import annotations

import copy
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
import torch

import latent_sweep as ls
from latent_sweep.engine import process
from latent_sweep.engine.registry import run_trial
from latent_sweep.engine.session import LocalSession
from latent_sweep.spec import config
from latent_sweep.spec.checks import load_spec
from latent_sweep.tune import _compat, sweep
from latent_sweep.tune.search import search_alg

ROOT = Path(__file__).resolve().parent.parent


def state() -> dict:
    """What the library could change for good, as far as it can be read."""
    return {
        "threads": torch.get_num_threads(),
        "flush_denormal": process.flushes_denormals(),
        "optuna_verbosity": optuna.logging.get_verbosity(),
        "environ": dict(os.environ),
    }


# Run in a fresh interpreter: here, most modules are imported already. The dependencies come first,
# since some set variables on import (ray: RAY_CLIENT_MODE; mlflow: its telemetry session).
IMPORT_ALL = """
import importlib, json, os, pkgutil
import numpy, optuna, pandas, ray, ray.tune, torch
try:
    import mlflow
except ImportError:
    pass

def state():
    return {
        "threads": torch.get_num_threads(),
        "flush_denormal": (torch.tensor([1e-39], dtype=torch.float32) * 2).item() == 0.0,
        "optuna_verbosity": optuna.logging.get_verbosity(),
        "environ": dict(os.environ),
    }

before = state()
import latent_sweep
names = [m.name for m in pkgutil.walk_packages(latent_sweep.__path__, "latent_sweep.")]
for name in names:
    if not name.endswith("__main__"):  # runs the command line
        importlib.import_module(name)
from latent_sweep.engine import process
# glibc is loaded only to change its allocator's settings: never on import.
print(json.dumps({"before": before, "after": state(), "modules": len(names),
                  "libc_loaded": process._libc.cache_info().currsize > 0}))
"""


@pytest.mark.slow  # a fresh interpreter (or two CLI processes): seconds of imports
def test_importing_every_module_changes_nothing():
    done = subprocess.run(
        [sys.executable, "-c", IMPORT_ALL], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout.splitlines()[-1])
    assert found["modules"] > 50
    assert found["after"] == found["before"]
    assert not found["libc_loaded"]


def test_the_denormal_probe_reads_torchs_mode():
    if not can_flush():
        pytest.skip("this CPU cannot flush denormals")
    before = process.flushes_denormals()
    try:
        torch.set_flush_denormal(True)
        assert process.flushes_denormals()
        torch.set_flush_denormal(False)
        assert not process.flushes_denormals()
    finally:
        torch.set_flush_denormal(before)


class RecordingLibc:
    """glibc's mallopt as `process` calls it, recorded (and passed on to glibc when there is one)."""

    def __init__(self, libc) -> None:
        self.libc = libc
        self.calls: list[tuple[int, int]] = []

    def mallopt(self, param: int, value: int) -> int:
        self.calls.append((param, value))
        return self.libc.mallopt(param, value) if self.libc is not None else 1


TRIAL_MALLOPT = [
    (process.M_MMAP_THRESHOLD, process.TRIAL_MMAP_THRESHOLD),
    (process.M_TRIM_THRESHOLD, process.TRIAL_TRIM_THRESHOLD),
]
# glibc has no getter: its documented defaults are put back.
DEFAULT_MALLOPT = [
    (process.M_MMAP_THRESHOLD, process.GLIBC_MMAP_THRESHOLD),
    (process.M_TRIM_THRESHOLD, process.GLIBC_TRIM_THRESHOLD),
]


@pytest.fixture
def libc(monkeypatch) -> RecordingLibc:
    recording = RecordingLibc(process._libc())
    monkeypatch.setattr(process, "_libc", lambda: recording)
    return recording


def can_flush() -> bool:
    """Whether this CPU can flush denormals (setting the mode it is in already says)."""
    return torch.set_flush_denormal(process.flushes_denormals())


class Watching(LocalSession):
    """A session that notes the process settings the trial trains under."""

    def report(self, metrics, checkpoint=None):
        self.seen = state()
        super().report(metrics, checkpoint)


def test_run_trial_leaves_the_process_as_it_found_it(tiny_ex17, tmp_path, libc):
    raw = {**copy.deepcopy(tiny_ex17), "steps": 4, "eval_every": 2, "checkpoint_every": 2}
    before = state()
    session = Watching(tmp_path / "t")
    run_trial(raw, session)
    assert state() == before
    assert session.seen["flush_denormal"] == can_flush()  # while it trained
    # glibc has no getter for its thresholds, and what it does with a block depends on the whole
    # process's heap (a full test run made an mmap check flaky): the calls themselves are checked.
    assert libc.calls == TRIAL_MALLOPT + DEFAULT_MALLOPT


def test_trial_process_puts_back_a_flushing_mode(libc):
    if not can_flush():
        pytest.skip("this CPU cannot flush denormals")
    torch.set_flush_denormal(True)
    try:
        with pytest.raises(RuntimeError), process.trial_process():
            assert process.flushes_denormals()
            raise RuntimeError("a trial that fails")
        assert process.flushes_denormals()
    finally:
        torch.set_flush_denormal(False)
    assert libc.calls == TRIAL_MALLOPT + DEFAULT_MALLOPT


def test_threads_are_put_back():
    before = torch.get_num_threads()
    with process.threads(before + 1):
        assert torch.get_num_threads() == before + 1
    assert torch.get_num_threads() == before
    with process.threads(None):
        assert torch.get_num_threads() == before


def test_train_leaves_the_process_as_it_found_it(tiny_ex17, tmp_path, libc, capsys):
    before = state()
    overrides = {"eval_every": 2, "checkpoint_every": 2}
    ls.train(tiny_ex17, steps=4, out=tmp_path / "t", overrides=overrides, threads=before["threads"] + 1)
    capsys.readouterr()
    assert state() == before
    assert libc.calls == TRIAL_MALLOPT + DEFAULT_MALLOPT


def test_a_sweeps_settings_are_put_back(monkeypatch):
    from ray.air._internal import usage

    users = next(iter(_compat.RAY_SETTINGS))
    monkeypatch.setenv(users, "a user's own")  # a user's value wins, and stays

    def connect(self) -> None:  # as `ray.init` does, without starting Ray
        os.environ["PYTHONBREAKPOINT"] = "ray.util.rpdb._driver_set_trace"
        os.environ["MLFLOW_TRACKING_URI"] = "sqlite:///elsewhere.db"  # Ray's MLflow callback

    monkeypatch.setattr(sweep._ray, "_connect", connect)
    before, hook = state(), usage.tag_callbacks
    with sweep._ray(None):
        for name, value in _compat.RAY_SETTINGS.items():
            assert os.environ[name] == ("a user's own" if name == users else value)
        assert optuna.logging.get_verbosity() >= optuna.logging.WARNING
        assert usage.tag_callbacks is not hook
    assert state() == before
    assert usage.tag_callbacks is hook
    for name, keep in _compat.LOG_FILTERS:
        assert keep not in logging.getLogger(name).filters


def test_an_optuna_search_leaves_optunas_verbosity():
    raw = config.load_file(ROOT / "sweeps" / "quick.yaml")
    space = {"schedule.scale.reg-separate": {"uniform": [0.5, 2.0]}}
    raw["sweep"] = {"metric": "hue_corr", "mode": "max", "search": "optuna", "space": space}
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.INFO)
    try:
        search_alg(load_spec(raw, "sweeps/q.yaml"))
        assert optuna.logging.get_verbosity() == optuna.logging.INFO
    finally:
        optuna.logging.set_verbosity(verbosity)
