"""Helpers for the tests that run sweeps end to end (`latent-sweep run`, `resume`, `train`): a
tiny sweep file, the CLI in-process or as a subprocess, and checks of the histories a run
wrote. The `local_ray` fixture is in conftest.py."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import pandas as pd
import yaml

from latent_sweep import cli
from latent_sweep.analysis.results import load_evals, load_history
from latent_sweep.spec import config
from latent_sweep.store.history import read_table

ROOT = Path(__file__).resolve().parent.parent
DEADLINE_S = 240.0  # only a bound on the condition waits of the tests, never a synchronization


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


def start_run(path: Path, storage: Path, **popen) -> subprocess.Popen:
    """`latent-sweep run` in a subprocess, returned once it announced a trial's first checkpoint."""
    cmd = [sys.executable, "-m", "latent_sweep", "run", path, "--storage", storage]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, **popen)
    for line in proc.stdout:  # blocks until then
        if "first checkpoint" in line:
            break
    return proc


def assert_complete_histories(results: Path, trials: pd.DataFrame) -> None:
    """Every member's history has each step once, its evaluations every 100 steps."""
    for row in trials.itertuples():
        trial_dir = results / row.trial_dir
        assert (trial_dir / "config.yaml").is_file()
        steps = load_history(trial_dir, member=row.member)["step"].tolist()
        assert steps == list(range(row.steps)), (row.trial_dir, row.member)
        evals = load_evals(trial_dir, member=row.member)
        assert evals["step"].tolist() == list(range(100, row.steps + 1, 100))
        assert set(evals["seed"]) == {row.seed}


def assert_train_reproduces(trial_dir: Path, out: Path) -> None:
    """`latent-sweep train <trial>/config.yaml` (no Ray) writes the evaluations the trial wrote (into
    `out/<the trial directory's name>`: the same name, so the same trial_id in its files)."""
    out = out / trial_dir.name
    train = [sys.executable, "-m", "latent_sweep", "train", trial_dir / "config.yaml", "--out", out]
    subprocess.run(train, check=True, capture_output=True)
    assert read_table(out / "evals").equals(read_table(trial_dir / "evals"))
