"""Run trackers: `sweep.loggers: [tensorboard, mlflow, wandb]` attaches Ray Tune's own logger
callbacks, each from an optional extra (`pip install 'latent-sweep[mlflow]'`).

Every tracker gets, per trial, the Tune config (the sampled values, `params/<path>`) as
parameters and every report (the scores' statistics over the trial's members, `step`, Ray's
timings) as metrics; MLflow also gets the trial's final latent plot (member 0) as an artifact.

* tensorboard: `TBXLoggerCallback`, event files in each trial directory
  (`tensorboard --logdir <results>`). Ray writes them only when asked here.
* mlflow: `MLflowLoggerCallback`, one MLflow experiment named after the sweep, one run per
  trial, at `MLFLOW_TRACKING_URI` when set, else in `<results>/mlflow.db` (SQLite, artifacts
  in `<results>/mlartifacts/`).
* wandb: `WandbLoggerCallback`, project named after the sweep; `WANDB_API_KEY` or `wandb login`,
  or `WANDB_MODE=offline`.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import TYPE_CHECKING

from latent_sweep.errors import UserError

if TYPE_CHECKING:
    from latent_sweep.spec.sweep_block import SweepSpec

# logger → (module it needs, extra that installs it, what it is called)
EXTRAS = {
    "tensorboard": ("tensorboardX", "tensorboard", "tensorboardX"),
    "mlflow": ("mlflow", "mlflow", "MLflow"),
    "wandb": ("wandb", "wandb", "Weights & Biases (wandb)"),
}
MLFLOW_DB = "mlflow.db"
MLFLOW_ARTIFACTS = "mlartifacts"
LATENT_PLOT = "latent.png"


def installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ValueError:  # a module set to None in sys.modules: as good as absent
        return False


def check_loggers(spec: SweepSpec) -> None:
    """Each logger's extra is installed, else a one-paragraph error naming the install command."""
    for name in spec.block.loggers:
        module, extra, title = EXTRAS[name]
        if not installed(module):
            raise UserError(
                f"{spec.source}: `sweep.loggers` lists `{name}`, but {title} is not installed; install it "
                f"with `pip install 'latent-sweep[{extra}]'` (or `pip install {module}`), or remove `{name}`"
            )


def callbacks(spec: SweepSpec, path: str, name: str) -> list:
    """Ray Tune's logger callbacks for the sweep at `path`: its CSV and JSON result files always,
    then the trackers the sweep lists. (Ray adds TensorBoard's itself unless told not to, see
    `sweep._ray`.)"""
    from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback

    check_loggers(spec)
    out = [CSVLoggerCallback(), JsonLoggerCallback()]
    for logger in spec.block.loggers:
        if logger == "tensorboard":
            from ray.tune.logger import TBXLoggerCallback

            out.append(TBXLoggerCallback())
        elif logger == "mlflow":
            out.append(_mlflow(path, name))
        else:
            from ray.air.integrations.wandb import WandbLoggerCallback

            out.append(WandbLoggerCallback(project=name))
    return out


def mlflow_uri(path: str) -> str:
    """Where MLflow runs go: `MLFLOW_TRACKING_URI`, else a SQLite store in the results directory."""
    uri = os.environ.get("MLFLOW_TRACKING_URI")
    if uri:
        return uri
    if "://" in path:
        raise UserError(
            f"`sweep.loggers` lists `mlflow` and the results go to {path}, where MLflow cannot keep its "
            "SQLite store; set MLFLOW_TRACKING_URI to a tracking server (e.g. http://host:5000) or a "
            "local store (e.g. sqlite:///mlflow.db)"
        )
    return f"sqlite:///{Path(path, MLFLOW_DB)}"


def _mlflow(path: str, name: str):
    from latent_sweep.tune.trackers_mlflow import LatentMLflowCallback

    uri = mlflow_uri(path)
    if uri.endswith(MLFLOW_DB):  # our own store: its artifacts beside it, not under the working directory
        from mlflow.tracking import MlflowClient

        client = MlflowClient(uri)
        if client.get_experiment_by_name(name) is None:
            client.create_experiment(name, artifact_location=Path(path, MLFLOW_ARTIFACTS).as_uri())
    return LatentMLflowCallback(tracking_uri=uri, experiment_name=name)


def latent_plot(trial_dir: Path, out: Path) -> bool:
    """Draw member 0's final latents into `out`; False when the trial has none (or is not local)."""
    from latent_sweep.analysis.plots_trial import load_latents, plot_latent, save_figure

    if not (trial_dir / "latents").is_dir():
        return False
    step, latents = load_latents(trial_dir)
    save_figure(plot_latent(latents, title=f"{trial_dir.name}  member 0  step {step}"), out / LATENT_PLOT)
    return True
