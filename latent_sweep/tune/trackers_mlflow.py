"""The MLflow tracker (`sweep.loggers: [mlflow]`): where its runs go, and Ray's callback with
the trial's final latent plot added. Apart from `trackers` so that only sweeps that log to
MLflow import it (about a second per process)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from mlflow.tracking import MlflowClient
from ray.air.integrations.mlflow import MLflowLoggerCallback

from latent_sweep.analysis.figures import save_figure
from latent_sweep.analysis.plots_trial import load_latents, plot_latent
from latent_sweep.errors import UserError
from latent_sweep.store import layout
from latent_sweep.store.remote import is_uri
from latent_sweep.tune import _compat


def mlflow_uri(path: str) -> str:
    """Where MLflow runs go: `MLFLOW_TRACKING_URI`, else a SQLite store in the results directory."""
    uri = os.environ.get("MLFLOW_TRACKING_URI")
    if uri:
        return uri
    if is_uri(path):
        raise UserError(
            f"`sweep.loggers` lists `mlflow` and the results go to {path}, where MLflow cannot keep its "
            "SQLite store; set MLFLOW_TRACKING_URI to a tracking server (e.g. http://host:5000) or a "
            f"local store (e.g. sqlite:///{layout.MLFLOW_DB})"
        )
    return f"sqlite:///{Path(path, layout.MLFLOW_DB)}"


def mlflow_callback(path: str, name: str) -> LatentMLflowCallback:
    """The callback for the sweep at `path`, its MLflow experiment named `name`."""
    uri = mlflow_uri(path)
    if uri.endswith(layout.MLFLOW_DB):  # our own store: its artifacts beside it, not in the working dir
        client = MlflowClient(uri)
        if client.get_experiment_by_name(name) is None:
            client.create_experiment(name, artifact_location=Path(path, layout.MLFLOW_ARTIFACTS).as_uri())
    return LatentMLflowCallback(tracking_uri=uri, experiment_name=name)


def latent_plot(trial_dir: Path, out: Path) -> bool:
    """Draw member 0's final latents into `out`; False when the trial has none (or is not local)."""
    if not (trial_dir / layout.LATENTS).is_dir():
        return False
    step, latents = load_latents(trial_dir)
    title = f"{trial_dir.name}  member 0  step {step}"
    save_figure(plot_latent(latents, title=title), out / layout.LATENT_PLOT)
    return True


class LatentMLflowCallback(MLflowLoggerCallback):
    """Ray's MLflow callback, adding the trial's final latent plot (member 0) to its run."""

    def log_trial_end(self, trial, failed: bool = False) -> None:
        with tempfile.TemporaryDirectory(prefix="latent-sweep-mlflow-") as plot_dir:
            if not failed and latent_plot(Path(trial.path), Path(plot_dir)):
                _compat.save_mlflow_artifacts(self, trial, plot_dir)
        super().log_trial_end(trial, failed)
