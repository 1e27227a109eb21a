"""Trackers: `sweep.loggers` attaches Ray Tune's logger callbacks. MLflow runs read back from a
real SQLite tracking store with MLflow's client, TensorBoard event files read back record by
record; a logger whose extra is missing is a one-paragraph error."""

from __future__ import annotations

import copy
import struct
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from sweep_runs import run, tiny_sweep

from latent_sweep.spec import config

ROOT = Path(__file__).resolve().parent.parent
SCALE = "schedule.scale.reg-polar"


def read_scalars(events: Path) -> dict[str, list[tuple[int, float]]]:
    """A TensorBoard event file's scalars by tag: TFRecords (length, its CRC, an Event, its CRC)."""
    from tensorboardX.proto import event_pb2

    data, i, out = events.read_bytes(), 0, {}
    while i < len(data):
        (n,) = struct.unpack("<Q", data[i : i + 8])
        event = event_pb2.Event.FromString(data[i + 12 : i + 12 + n])
        i += 12 + n + 4
        for value in event.summary.value:
            out.setdefault(value.tag, []).append((event.step, value.simple_value))
    return out


def test_a_missing_extra_names_its_install_command(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "wandb", None)  # as if not installed
    raw = copy.deepcopy(config.load_file(ROOT / "sweeps" / "quick.yaml"))
    raw["sweep"]["loggers"] = ["mlflow", "wandb"]
    path = tmp_path / "q.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    assert run("validate", path) == 2
    assert capsys.readouterr().err == (
        f"error: {path}: `sweep.loggers` lists `wandb`, but Weights & Biases (wandb) is not installed; "
        "install it with `pip install 'latent-sweep[wandb]'` (or `pip install wandb`), or remove `wandb`\n"
    )


@pytest.mark.slow
def test_mlflow_and_tensorboard_record_every_trial(local_ray, tmp_path, monkeypatch):
    from mlflow.tracking import MlflowClient

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    space = {SCALE: {"uniform": [0.5, 2.0]}}
    block = dict(num_samples=4, search_seed=3, space=space, loggers=["tensorboard", "mlflow"])
    path = tiny_sweep(tmp_path, "tracked", 200, **block)
    assert run("run", path, "--storage", tmp_path / "res") == 0
    results = tmp_path / "res" / "tracked"
    trials = pd.read_parquet(results / "trials.parquet").set_index("trial_dir")
    assert len(trials) == 4

    client = MlflowClient(f"sqlite:///{results / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("tracked").experiment_id])
    by_scale = {float(r.data.params[f"params/{SCALE}"]): r for r in runs}
    assert sorted(by_scale) == sorted(trials[f"config.{SCALE}"])  # one run per trial, its config
    for trial_dir, row in trials.iterrows():
        tracked = by_scale[row[f"config.{SCALE}"]]
        run_id = tracked.info.run_id
        assert tracked.info.status == "FINISHED"
        for score in ("hue_corr", "recon_mse", "anchor_error_red"):
            assert tracked.data.metrics[score] == row[score]  # the last report: the final scores
        assert len(client.get_metric_history(run_id, "hue_corr")) == 2  # evaluations at steps 100, 200
        assert [a.path for a in client.list_artifacts(run_id)] == ["latent.png"]
        assert Path(client.download_artifacts(run_id, "latent.png", str(tmp_path))).stat().st_size > 0

        (events,) = (results / trial_dir).glob("events.out.tfevents.*")
        scalars = read_scalars(events)
        assert scalars["ray/tune/hue_corr"][-1][1] == np.float32(row["hue_corr"])
        assert len(scalars["ray/tune/hue_corr"]) == 2
    assert not (ROOT / "mlruns").exists() and not Path("mlruns").exists()
