"""A user's own experiment, defined outside the package, runs through everything the built-in
ones do — validate, train with seeds, a real Ray sweep, the table — with no edit to the package.
The experiment is the complete example in docs/experiments.md, run as the document shows it."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest

from latent_sweep.errors import UserError
from latent_sweep.spec import experiment

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "experiments.md"
CLI = str(Path(sys.executable).with_name("latent-sweep"))


def blocks(kind: str) -> list[str]:
    return re.findall(rf"```{kind}\n(.*?)```", DOC.read_text(), re.S)


@pytest.fixture
def outside(tmp_path) -> Path:
    """docs/experiments.md's package `tinyreg` and its sweep file, in a directory of their own."""
    package = tmp_path / "tinyreg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "exp.py").write_text(blocks("python")[0])
    (tmp_path / "tinyreg.yaml").write_text(blocks("yaml")[0])
    return tmp_path


def cli(where: Path, *args: str, timeout: int = 300) -> str:
    env = {**os.environ, "PYTHONPATH": str(where)}
    done = subprocess.run([CLI, *args], cwd=where, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout


@pytest.mark.slow  # a fresh interpreter (or two CLI processes): seconds of imports
def test_an_outside_experiment_validates_and_trains_a_population(outside):
    assert "tinyreg.yaml: ok" in cli(outside, "validate", "tinyreg.yaml")
    out = cli(outside, "train", "tinyreg.yaml", "--seeds", "0-3", "--out", "results/tinyreg-train")
    assert "mse" in out
    history = list((outside / "results" / "tinyreg-train" / "history").rglob("*.parquet"))
    assert history, "no history written"


@pytest.mark.slow
def test_an_outside_experiment_runs_as_a_ray_sweep_and_tabulates(outside):
    cli(outside, "run", "tinyreg.yaml", timeout=600)
    table = cli(outside, "table", "results/tinyreg", "--format", "markdown")
    rows = [line for line in table.splitlines() if line.startswith("|")]
    assert len(rows) == 2 + 2 * 2, table  # header, rule, 2 configs × 2 seeds
    assert "mse" in rows[0] and "weight_norm" in rows[0]


def test_an_experiment_path_that_does_not_load_is_a_clear_error():
    with pytest.raises(UserError, match=r"experiment `nowhere.exp:EXPERIMENT`: cannot load"):
        experiment.get("nowhere.exp:EXPERIMENT")
    with pytest.raises(UserError, match=r"`experiment` must be one of autoencoder, projection"):
        experiment.get("nowhere")
    with pytest.raises(UserError, match=r"os:sep is a str, not an Experiment"):
        experiment.get("os:sep")


def test_an_installed_package_registers_an_experiment_by_entry_point(outside, monkeypatch):
    monkeypatch.syspath_prepend(str(outside))
    point = EntryPoint(name="tinyreg", value="tinyreg.exp:EXPERIMENT", group=experiment.ENTRY_POINTS)

    def entry_points(group: str, name: str | None = None) -> list[EntryPoint]:
        return [point] if group == point.group and name in (None, point.name) else []

    monkeypatch.setattr(experiment, "entry_points", entry_points)
    try:
        assert experiment.known() == ["autoencoder", "projection", "tinyreg"]
        found = experiment.get("tinyreg")
        assert found.name == "tinyreg" and [s.name for s in found.scores] == ["mse", "weight_norm"]
        assert experiment.goal_of("weight_norm") == "min"
    finally:  # loaded experiments stay for the process: this one must not outlive the test
        experiment._LOADED.pop("tinyreg", None)
        for module in ("tinyreg.exp", "tinyreg"):
            sys.modules.pop(module, None)


def test_results_of_an_experiment_this_process_cannot_import_still_tabulate(tmp_path, capsys):
    from fixtures_results import write_sweep

    from latent_sweep import cli

    rows = [
        {"trial_id": "t0", "seed": s, "status": "TERMINATED", "config.experiment": "gone.exp:EXPERIMENT",
         "config.seed": s, "config.lr": 0.1, "mse": 0.5 + s, "diverged_at": None}
        for s in range(2)
    ]  # fmt: skip
    root = write_sweep(tmp_path / "gone", rows, {"lr": {"uniform": [0.01, 1.0]}})
    assert cli.main(["table", str(root), "--format", "csv"]) == 0  # no key scores known: none first
    assert capsys.readouterr().out.splitlines()[0] == "trial_id,member,seed,status,config.lr"
    assert cli.main(["table", str(root), "--columns", "seed", "mse", "--format", "csv"]) == 0
    assert capsys.readouterr().out.splitlines() == ["seed,mse", "0,0.5", "1,1.5"]
