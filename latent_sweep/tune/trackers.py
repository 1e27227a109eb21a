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
* wandb: `WandbLoggerCallback` (`WandbCallback`), project named after the sweep, one run per trial
  (its id the trial's: a resumed trial continues its run); `WANDB_API_KEY` or `wandb login`, or
  `WANDB_MODE=offline`.
"""

from __future__ import annotations

from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback, TBXLoggerCallback

from latent_sweep.spec.checks import check_loggers
from latent_sweep.spec.sweep_block import SweepSpec


def callbacks(spec: SweepSpec, path: str, name: str) -> list:
    """Ray Tune's logger callbacks for the sweep at `path`: its CSV and JSON result files always,
    then the trackers the sweep lists. (Ray adds TensorBoard's itself unless told not to, see
    `sweep._ray`.)"""
    check_loggers(spec)
    out = [CSVLoggerCallback(), JsonLoggerCallback()]
    for logger in spec.block.loggers:
        if logger == "tensorboard":
            out.append(TBXLoggerCallback())
        elif logger == "mlflow":
            # mlflow: an optional extra, about a second to import; only sweeps that log to it pay.
            from latent_sweep.tune.trackers_mlflow import mlflow_callback

            out.append(mlflow_callback(path, name))
        else:
            # wandb: an optional extra, about a second to import; only sweeps that log to it pay.
            from latent_sweep.tune.trackers_wandb import WandbCallback

            # resume="allow": a resumed trial logs on into its run (Ray's own asks for a new one).
            out.append(WandbCallback(project=name, resume="allow"))
    return out
