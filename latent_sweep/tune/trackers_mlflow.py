"""The MLflow tracker's callback (`sweep.loggers: [mlflow]`), apart from `tune_adapter` so that
only sweeps that log to MLflow import it (about a second per process)."""

from __future__ import annotations

import tempfile
from pathlib import Path

from ray.air.integrations.mlflow import MLflowLoggerCallback


class LatentMLflowCallback(MLflowLoggerCallback):
    """Ray's MLflow callback, adding the trial's final latent plot (member 0) to its run."""

    def log_trial_end(self, trial, failed: bool = False) -> None:
        from latent_sweep.tune.trackers import latent_plot

        with tempfile.TemporaryDirectory(prefix="latent-sweep-mlflow-") as plot_dir:
            if not failed and latent_plot(Path(trial.path), Path(plot_dir)):
                self.mlflow_util.save_artifacts(run_id=self._trial_runs[trial], dir=plot_dir)
        super().log_trial_end(trial, failed)
