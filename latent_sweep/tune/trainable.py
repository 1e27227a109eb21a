"""The Ray Tune side of a trial: the trainable and `RaySession`. The only module trials import Ray from.

Where a trial writes. Ray gives each trial a scratch working directory on its node and a
directory in the experiment's storage. When storage is a local path (one disk, or a shared
file system mounted on every node, which Ray requires for local storage on a multi-node
cluster), the trial writes `history/`, `evals/`, `latents/` and `config.yaml` straight into
its storage directory, so they are there even after a crash. When storage is a URI (S3, GCS),
it writes into the working directory and Ray uploads it (`SyncConfig(sync_artifacts=True)`)
at every checkpoint and when the trial ends; on resume the continued run rewrites part files
under the same names, so storage holds no duplicates.
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path
from typing import Any

import optuna
import ray
import torch
from ray import tune
from ray.tune.result import TRAINING_ITERATION

from latent_sweep.engine.registry import run_trial
from latent_sweep.engine.session import save_state
from latent_sweep.errors import TrialDiverged, UserError
from latent_sweep.spec.sweep_block import trial_config
from latent_sweep.tune import _compat, recovery, study
from latent_sweep.tune.trials import FAILED


class RaySession:
    """The session protocol on Tune: checkpoints become `tune.Checkpoint`s, metrics `tune.report`."""

    def __init__(self, trial_dir: Path, local: bool = True) -> None:
        self.trial_dir = trial_dir
        self.local = local  # trial_dir is in the sweep's storage (not a scratch directory)
        self.step = 0  # the last step reported
        self.device: str | None = None  # where the loop said it trains (`device` in its reports)

    def restore(self) -> dict[str, Any] | None:
        checkpoint = tune.get_checkpoint()
        if checkpoint is None:
            return None
        with checkpoint.as_directory() as directory:
            # A damaged checkpoint or history part (a power cut, a full disk): an earlier whole one.
            return recovery.restore_state(Path(directory), self.trial_dir if self.local else None)

    def report(self, metrics: dict[str, float | str], checkpoint: dict[str, Any] | None = None) -> None:
        # `done` is Ray's own key: reporting done=True makes Tune stop the trial at once, which
        # would cut off whatever the loop does after its final report.
        metrics = {k: v for k, v in metrics.items() if k != "done"}
        self.step = int(metrics.get("step", self.step))
        self.device = metrics.get("device", self.device)
        if checkpoint is None:
            tune.report(metrics)
            return
        # Tune copies the directory into storage during `report`, so it can go right after.
        with tempfile.TemporaryDirectory(prefix="latent-sweep-ckpt-") as directory:
            save_state(checkpoint, Path(directory))
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(directory))


def train_trial(
    tune_config: dict,
    *,
    base: dict,
    results_dir: str | None,
    source: str,
    metric: str | list[str],
    mode: str | list[str],
    success: str | None = None,
) -> None:
    """One Tune trial: build its config (with its population's `members`), fit torch to its
    resources, run it through a RaySession; its reports carry `success_rate` when `success`
    (the sweep's expression over a member's scores) is given.

    Tune retries a trial that raises (from its last checkpoint, up to `max_failures` times):
    right for a lost worker or node, wasted on a deterministic failure. So a trial that
    diverged or met a configuration error ends instead, reporting the reason (`FAILED`) and the
    worst value of `metric` (of each, when it is a list); `trials.parquet` lists it as ERROR with that reason.

    `results_dir` is the sweep's local results directory, or None when storage is a URI.
    """

    context = tune.get_context()
    cpus = context.get_trial_resources().required_resources.get("CPU", 1.0)
    torch.set_num_threads(max(1, int(cpus)))  # for good: this process is the trial's (Ray's worker)
    raw = trial_config(base, tune_config)
    if raw.get("device", "auto") == "auto":
        # Ray hides GPUs it did not assign; config.yaml records the device actually used.
        raw["device"] = "cuda" if ray.get_gpu_ids() else "cpu"
    working_dir = Path(context.get_trial_dir())
    trial_dir = Path(results_dir, working_dir.name) if results_dir else working_dir
    session = RaySession(trial_dir, local=results_dir is not None)
    try:
        run_trial(raw, session, source=source, success=success)
    except (TrialDiverged, UserError) as err:
        metrics, modes = (metric, mode) if isinstance(metric, list) else ([metric], [mode])
        worst = {m: -math.inf if d == "max" else math.inf for m, d in zip(metrics, modes, strict=True)}
        where = {} if session.device is None else {"device": session.device}
        tune.report({"step": session.step, **worst, **where, FAILED: f"{type(err).__name__}: {err}"})


def trainable(
    base: dict,
    results_dir: str | None,
    source: str,
    resources: dict,
    metric: str | list[str],
    mode: str | list[str],
    success: str | None,
):
    """The Tune trainable for a sweep: `train_trial` with its fixed arguments and resources."""
    fn = tune.with_parameters(
        train_trial,
        base=base,
        results_dir=results_dir,
        source=source,
        metric=metric,
        mode=mode,
        success=success,
    )
    return tune.with_resources(fn, resources)


class StudySearch(_compat.HookedOptunaSearch):
    """Ray's OptunaSearch, with the study kept in agreement with Tune (`latent_sweep.tune.study`) and
    warm-started with completed trials of one or several objectives (`warm`: Optuna params and
    metric values per config, see `warm_start`).

    * Each Optuna trial is tagged with its Tune trial id when asked for.
    * Restored from Tune's snapshot, it takes its trials from the journal, which `resume` made
      agree with Tune's experiment state; the snapshot may be older. The journal is the one in the
      results directory being resumed (`point_at`): the sweep may have moved since.
    * A trial the study holds as finished is told nothing more (a trial re-run after a kill that
      its journal record outlived), and a step already reported is not reported again.

    Ray's own `evaluated_rewards` take one value per point, and Tune sets the study up again when a
    sweep is resumed, which would add the points to a stored study a second time; so the points go
    in here, once, into a study that has no trials yet."""

    def __init__(self, *args: Any, warm: list[tuple[dict, list[float]]], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._warm = warm
        self._journal: str | None = None

    def study_ready(self) -> None:
        ot_study = _compat.optuna_study(self)
        if not self._warm or ot_study.trials:
            return
        space = _compat.search_space(self)
        for params, values in self._warm:
            trial = optuna.trial.create_trial(
                params=params,
                distributions={name: space[name] for name in params},
                values=values,
                state=optuna.trial.TrialState.COMPLETE,
            )
            ot_study.add_trial(trial)

    def point_at(self, journal: str) -> None:
        """Keep the study in `journal` (the directory being resumed), also after `restore`."""
        self._journal = journal
        _compat.set_storage(self, study.journal_storage(journal))

    def suggest(self, trial_id: str) -> dict | None:
        asked = trial_id not in _compat.asked_trials(self)
        config = super().suggest(trial_id)
        if asked:
            _compat.asked_trials(self)[trial_id].set_user_attr(study.TRIAL_ID_ATTR, trial_id)
        return config

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        if self._told(trial_id) or result[TRAINING_ITERATION] in self._stored(trial_id).intermediate_values:
            return
        super().on_trial_result(trial_id, result)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        if self._told(trial_id):
            return
        super().on_trial_complete(trial_id, result, error)

    def _told(self, trial_id: str) -> bool:
        """Whether the study has nothing more to learn of this trial (or does not know it)."""
        completed = _compat.completed_trials(self)
        if trial_id in completed or trial_id not in _compat.asked_trials(self):
            return True
        if self._stored(trial_id).state.is_finished():
            completed.add(trial_id)
            return True
        return False

    def _stored(self, trial_id: str) -> optuna.trial.FrozenTrial:
        return _compat.stored_trial(_compat.optuna_study(self), _compat.asked_trials(self)[trial_id])

    def restore(self, checkpoint_path: str) -> None:
        journal = self._journal
        super().restore(checkpoint_path)
        self._journal = journal
        if journal is None:  # URI storage: the study lives in Ray's snapshot only
            return
        self.point_at(journal)
        _compat.reload_study(self, lambda trial: trial.user_attrs.get(study.TRIAL_ID_ATTR))
