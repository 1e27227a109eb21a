"""The W&B tracker's callback (`sweep.loggers: [wandb]`). Apart from `trackers` so that only
sweeps that log to W&B import wandb (Ray's W&B module imports it wherever it is installed:
about a second per process)."""

from __future__ import annotations

import sys

from ray.air.integrations.wandb import WandbLoggerCallback

from latent_sweep.tune import _compat


class WandbCallback(WandbLoggerCallback):
    """Ray's W&B callback, quiet and prompt:

    * its per-trial logging actors start without restarts (`_compat.make_wandb_actor_class`: Ray's
      core worker logs an error for each otherwise);
    * an interrupted sweep ends the logs of its unfinished trials before it waits for the uploads
      (Ray waits for their loggers, which wait for a trial end Tune never reports: 30 minutes);
    * nothing is done when it is collected as the interpreter exits (Ray's `__del__` then meets a
      module already torn down, and Python prints the AttributeError)."""

    def setup(self, *args, **kwargs) -> None:
        super().setup(*args, **kwargs)
        _compat.make_wandb_actor_class(self)

    def on_experiment_end(self, trials, **info) -> None:
        _compat.end_wandb_logs(self)
        super().on_experiment_end(trials, **info)

    def __del__(self) -> None:
        if not sys.is_finalizing():
            super().__del__()
