"""The one place that touches Ray's and Optuna's internals: private attributes, private modules,
environment variables and log lines that neither documents as API. Each was checked against the
versions in RAY_CHECKED and OPTUNA_CHECKED; tests/test_compat.py fails, naming it, when one moves.

Ray (RAY_CHECKED):

* `ray.air._internal.usage.tag_callbacks`, which `ray.tune.tune` calls as `air_usage.tag_callbacks`
  at every run (`without_callback_telemetry`). If it moves: each sweep spends ~1 s importing every
  tracker integration Ray ships again (the swap is skipped where the hook is missing).
* The environment variables in RAY_SETTINGS (`ray.tune.experimental.output`, `ray.tune.constants`).
  If renamed: Ray's progress tables and checkpoint-sync hints print among a sweep's own lines, and
  every sweep writes TensorBoard files.
* The loggers and messages in LOG_FILTERS. If they move: Ray's tracebacks of failed trials, its
  `Tuner.restore` hint, its "Failed to fetch metrics" lines and its notice that token
  authentication is on print again.
* `ray._private.utils.get_num_cpus` (`local_cpus`): the CPUs a local Ray starts with. If it moves:
  `run` and `resume` fail with an ImportError as they start Ray.
* `Tuner._local_tuner._tune_config.search_alg` (`tuner_search_alg`): the searcher a restored Tuner
  runs. If it moves: `resume` of an Optuna sweep fails with an AttributeError.
* `OptunaSearch._setup_study` (`HookedOptunaSearch.study_ready`) and its state `_ot_study`,
  `_ot_trials`, `_completed_trials`, `_space`, `_storage`, `_study_name`, `_sampler`. If they move:
  warm starts, trial-id tags and resumes of Optuna sweeps fail with an AttributeError.
* `MLflowLoggerCallback._trial_runs` (trial → MLflow run id, filled by `log_trial_start`) and its
  `mlflow_util.save_artifacts(dir=, run_id=)` (`save_mlflow_artifacts`). If they move: a trial that
  logs to MLflow fails at its end, adding its latent plot.
* `WandbLoggerCallback._remote_logger_class`, `._logger_actor_cls`, `._trial_logging_actors`,
  `._signal_logging_actor_stop` and `ray.air.util.node._force_on_current_node`
  (`make_wandb_actor_class`, `end_wandb_logs`). If they move: Ray's core worker logs an error as
  each trial's W&B logger starts (restarts on, constructor arguments in the object store), or
  Ctrl-C on a W&B sweep waits up to 30 minutes for its loggers.

Optuna (OPTUNA_CHECKED):

* `Study._storage`, `Study._study_id` and `Trial._trial_id`/`FrozenTrial._trial_id`
  (`stored_trial`, `study_system_attrs`, `set_study_system_attr`, `reload_study`). If they move:
  Optuna sweeps fail with an AttributeError when reporting and when resuming.
* `optuna.samplers._lazy_random_state.LazyRandomState`, held by TPE's and NSGA-II's samplers and
  their parts (`sampler_random_states`). If it moves: this module fails to import; if the samplers
  stop holding one, a resumed sweep silently suggests other configs than the run it continues.
* The text of `Trial.report`'s warning for a step reported before (REPEATED_STEP). If it changes: a
  resumed Optuna sweep prints that warning for the steps its re-run trials report again.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import optuna
import ray
from optuna.samplers._lazy_random_state import LazyRandomState
from optuna.storages import BaseStorage
from optuna.trial import FrozenTrial
from ray import tune
from ray._private.utils import get_num_cpus
from ray.air.util.node import _force_on_current_node
from ray.tune.search import Searcher
from ray.tune.search.optuna import OptunaSearch

try:  # private: where it is missing, the telemetry runs as Ray ships it
    from ray.air._internal import usage as _air_usage
except ImportError:
    _air_usage = None

# The versions each internal below was read in (2.60.0, 5.0.0); pyproject's dev extra pins them.
RAY_CHECKED = ">=2.60,<2.61"
OPTUNA_CHECKED = ">=5.0,<5.1"


# ---------------------------------------------------------------------------------------
# Ray's settings for a sweep


# Progress is ours: Ray's new output engine prints its tables even at verbose=0, and its
# "experiment state snapshotting" hint is noise for short checkpoint intervals. The result files
# and trackers are `trackers.callbacks`: TensorBoard's only when asked for.
RAY_SETTINGS = {
    "RAY_AIR_NEW_OUTPUT": "0",
    "TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S": "0",
    "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS": "1",
}


def _no_trial_tracebacks(record: logging.LogRecord) -> bool:
    """A failed trial's traceback goes to its error.txt; Progress prints the one-line reason."""
    return not record.getMessage().startswith("Trial task failed")


def _no_restore_hint(record: logging.LogRecord) -> bool:
    """Ray's `Tuner.restore(…)` hint after Ctrl-C: `sweep._finish` prints `latent-sweep resume DIR`."""
    return "Tuner.restore(" not in record.getMessage()


def _no_missing_metrics(record: logging.LogRecord) -> bool:
    """`Tuner.restore` reads each trial's result file into a table nobody here uses, and names every
    trial killed before its first result (it has none yet); the trial simply starts again."""
    return not record.getMessage().startswith("Failed to fetch metrics")


def _no_token_auth_notice(record: logging.LogRecord) -> bool:
    """`ray.init` says, at every start, that token authentication is on (Ray's default): nothing to
    act on. Only that notice: its warning that authentication is *off* still prints."""
    return not record.getMessage().startswith("Token authentication is enabled for this Ray cluster")


# Ray's log lines that a sweep replaces with its own, or that say nothing to its user: (logger, filter).
LOG_FILTERS = (
    ("ray.tune.execution.tune_controller", _no_trial_tracebacks),
    ("ray.tune.tune", _no_restore_hint),
    ("ray.tune.analysis.experiment_analysis", _no_missing_metrics),
    ("ray._private.authentication.authentication_token_setup", _no_token_auth_notice),
)


def local_cpus() -> float:
    """The CPUs `ray.init` gives a local Ray it starts (its container-aware count), known before it
    starts: `sweep._ray` names them while Ray takes its seconds to start."""
    return get_num_cpus()


def _no_callback_telemetry(callbacks: Any) -> bool:
    return False


@contextmanager
def without_callback_telemetry() -> Iterator[None]:
    """Tune's usage telemetry imports every tracker integration Ray ships, only to name the
    callbacks a sweep passes: ~1 s per sweep (MLflow's import alone). Skipped while inside."""
    tag_callbacks = getattr(_air_usage, "tag_callbacks", None)
    if tag_callbacks is None:
        yield
        return
    _air_usage.tag_callbacks = _no_callback_telemetry
    try:
        yield
    finally:
        _air_usage.tag_callbacks = tag_callbacks


@contextmanager
def sweep_settings() -> Iterator[None]:
    """RAY_SETTINGS (a user's own value wins), LOG_FILTERS and no callback telemetry while inside;
    all put back after it: sweeps run in users' processes."""
    unset = [name for name in RAY_SETTINGS if name not in os.environ]
    for name in unset:
        os.environ[name] = RAY_SETTINGS[name]
    for name, keep in LOG_FILTERS:
        logging.getLogger(name).addFilter(keep)
    try:
        with without_callback_telemetry():
            yield
    finally:
        for name in unset:
            os.environ.pop(name, None)
        for name, keep in LOG_FILTERS:
            logging.getLogger(name).removeFilter(keep)


def tuner_search_alg(tuner: tune.Tuner) -> Searcher | None:
    """The search algorithm a Tuner runs (a restored one's, from its snapshot): Ray offers no public
    way to it."""
    return tuner._local_tuner._tune_config.search_alg


# ---------------------------------------------------------------------------------------
# Ray's OptunaSearch


class HookedOptunaSearch(OptunaSearch):
    """Ray's OptunaSearch with a hook, `study_ready`, after it creates or loads its study: when Tune
    gives it the search space, and again when a sweep resumes."""

    def _setup_study(self, mode: str | list[str]) -> None:
        super()._setup_study(mode)
        self.study_ready()

    def study_ready(self) -> None:
        """Called once the searcher's study is set up (`optuna_study`)."""


def optuna_study(searcher: OptunaSearch) -> optuna.Study:
    return searcher._ot_study


def search_space(searcher: OptunaSearch) -> dict[str, optuna.distributions.BaseDistribution]:
    """The searcher's space: flattened parameter name → Optuna distribution."""
    return searcher._space


def asked_trials(searcher: OptunaSearch) -> dict[str, optuna.Trial]:
    """Tune trial id → the Optuna trial asked for it (the searcher's own dict: it may be changed)."""
    return searcher._ot_trials


def completed_trials(searcher: OptunaSearch) -> set[str]:
    """The Tune trial ids the searcher has told the study about (its own set: it may be changed)."""
    return searcher._completed_trials


def set_storage(searcher: OptunaSearch, storage: BaseStorage) -> None:
    """Where the searcher keeps its study from the next `_setup_study` or `reload_study` on."""
    searcher._storage = storage


def reload_study(searcher: OptunaSearch, tune_trial_id: Callable[[FrozenTrial], str | None]) -> None:
    """Load the searcher's study from its storage again, with its trials: each stored trial that
    `tune_trial_id` names a Tune trial for, finished ones as completed."""
    searcher._ot_study = optuna.load_study(
        study_name=searcher._study_name, storage=searcher._storage, sampler=searcher._sampler
    )
    searcher._ot_trials, searcher._completed_trials = {}, set()
    for trial in searcher._ot_study.get_trials(deepcopy=False):
        trial_id = tune_trial_id(trial)
        if trial_id is not None:
            searcher._ot_trials[trial_id] = optuna.Trial(searcher._ot_study, trial._trial_id)
            if trial.state.is_finished():
                searcher._completed_trials.add(trial_id)


# ---------------------------------------------------------------------------------------
# Optuna


# `Trial.report`'s warning for a step the trial reported before (the value is ignored).
REPEATED_STEP = r"The reported value is ignored because this `step=\d+` is already reported\."


@contextmanager
def without_repeated_step_warnings() -> Iterator[None]:
    """Optuna's warning for a step reported again, silenced while inside (the warnings filters are put
    back after it). A resumed trial reports again the steps after its checkpoint that its journal
    record outlived: the re-run is deterministic, so the ignored value is the one stored."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=REPEATED_STEP, category=UserWarning)
        yield


def stored_trial(study: optuna.Study, trial: optuna.Trial) -> FrozenTrial:
    """The trial as its study's storage holds it now."""
    return study._storage.get_trial(trial._trial_id)


def study_system_attrs(study: optuna.Study) -> dict[str, Any]:
    """The study's system attributes (`Study.system_attrs` is deprecated, without a successor)."""
    return study._storage.get_study_system_attrs(study._study_id)


def set_study_system_attr(study: optuna.Study, key: str, value: Any) -> None:
    study._storage.set_study_system_attr(study._study_id, key, value)


def sampler_random_states(sampler: object) -> list[np.random.RandomState]:
    """The sampler's random states: its own and its parts' (TPE's start-up sampler, NSGA-II's
    child generation), each once, in attribute order."""
    found: dict[int, LazyRandomState] = {}
    for value in vars(sampler).values():
        for candidate in (value, *getattr(value, "__dict__", {}).values()):
            if isinstance(candidate, LazyRandomState):
                found.setdefault(id(candidate), candidate)
    return [state.rng for state in found.values()]


# ---------------------------------------------------------------------------------------
# Ray's MLflow callback


def mlflow_run_id(callback: Any, trial: Any) -> str:
    """The MLflow run of `trial` (a `MLflowLoggerCallback` started it in `log_trial_start`)."""
    return callback._trial_runs[trial]


def save_mlflow_artifacts(callback: Any, trial: Any, directory: str) -> None:
    """The files in `directory` as artifacts of `trial`'s MLflow run."""
    callback.mlflow_util.save_artifacts(run_id=mlflow_run_id(callback, trial), dir=directory)


# ---------------------------------------------------------------------------------------
# Ray's W&B callback

WANDB_API_KEY = "WANDB_API_KEY"  # Ray's `WANDB_ENV_VAR`, which it passes on to the logging actors


def make_wandb_actor_class(callback: Any) -> None:
    """Make the actor class of the callback's per-trial W&B loggers as `_start_logging_actor` does
    (no CPU, on this node, `WANDB_API_KEY` passed on), but without restarts; it keeps the one set
    here. Ray's own restarts them forever, and passes each its trial's queue, an actor handle that
    Ray keeps in the object store: its core worker then logs an error (ray-project/ray#53727) as
    each trial starts. Without restarts, a logger that dies loses the rest of its trial's W&B log;
    the trial goes on."""
    key = {WANDB_API_KEY: os.environ[WANDB_API_KEY]} if WANDB_API_KEY in os.environ else {}
    callback._remote_logger_class = ray.remote(
        num_cpus=0, **_force_on_current_node(), runtime_env={"env_vars": key}, max_restarts=0
    )(callback._logger_actor_cls)


def end_wandb_logs(callback: Any) -> None:
    """Tell each of the callback's W&B loggers still running that its trial ended, as Ray's
    `__del__` does. One told before (its trial ended, its upload not done) ignores it."""
    for trial in list(callback._trial_logging_actors):
        callback._signal_logging_actor_stop(trial=trial)
