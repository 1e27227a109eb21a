"""Ray's and Optuna's internals that `latent_sweep.tune._compat` relies on are still there, with the
shape it expects, in the installed versions: a failure names the internal, the versions it was
checked against and the version installed."""

from __future__ import annotations

import importlib
import inspect
import logging
import re
import warnings

import numpy as np
import optuna
import pytest
import ray
from optuna.samplers import NSGAIISampler, TPESampler
from ray import tune
from ray.tune.search import BasicVariantGenerator

from latent_sweep.tune import _compat, study

RAY = f"checked against Ray {_compat.RAY_CHECKED}, installed Ray {ray.__version__}"
OPTUNA = f"checked against Optuna {_compat.OPTUNA_CHECKED}, installed Optuna {optuna.__version__}"


def ray_moved(internal: str) -> str:
    return f"Ray internal moved: {internal} ({RAY}); update latent_sweep/tune/_compat.py"


def optuna_moved(internal: str) -> str:
    return f"Optuna internal moved: {internal} ({OPTUNA}); update latent_sweep/tune/_compat.py"


def test_tag_callbacks_is_the_hook_tune_calls():
    internal = "ray.air._internal.usage.tag_callbacks, called by ray.tune.tune as air_usage.tag_callbacks"
    try:
        from ray.air._internal import usage
    except ImportError:
        pytest.fail(ray_moved(internal))
    import ray.tune.tune as tune_module

    assert callable(getattr(usage, "tag_callbacks", None)), ray_moved(internal)
    # Tune looks the hook up on the module at each run, so swapping the module's attribute works.
    assert getattr(tune_module, "air_usage", None) is usage, ray_moved(internal)
    assert "air_usage.tag_callbacks(" in inspect.getsource(tune_module), ray_moved(internal)
    hook = usage.tag_callbacks
    with _compat.without_callback_telemetry():
        assert usage.tag_callbacks is _compat._no_callback_telemetry
    assert usage.tag_callbacks is hook


# Where Ray reads each of RAY_SETTINGS.
READ_BY = {
    "RAY_AIR_NEW_OUTPUT": "ray.tune.experimental.output",
    "TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S": "ray.tune.execution.experiment_state",
    "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS": "ray.tune.utils.callback",
}


def test_ray_settings_are_variables_ray_reads():
    from ray.tune.constants import TUNE_ENV_VARS

    assert set(_compat.RAY_SETTINGS) == set(READ_BY), "a new setting: name where Ray reads it in READ_BY"
    for name, module in READ_BY.items():
        internal = f"environment variable {name}, read by {module}"
        try:
            source = inspect.getsource(importlib.import_module(module))
        except ImportError:
            pytest.fail(ray_moved(internal))
        assert f'"{name}"' in source, ray_moved(internal)
        if name.startswith("TUNE_"):
            assert name in TUNE_ENV_VARS, ray_moved(f"{name} in ray.tune.constants.TUNE_ENV_VARS")


# What each of LOG_FILTERS drops, as its logger's module writes it.
DROPPED = {
    "ray.tune.execution.tune_controller": ("Trial task failed", "Trial task failed for trial t_1"),
    "ray.tune.tune": ("Tuner.restore(", 'Resume experiment with: Tuner.restore(path="x", trainable=...)'),
    "ray.tune.analysis.experiment_analysis": ("Failed to fetch metrics", "Failed to fetch metrics for 1"),
    "ray._private.authentication.authentication_token_setup": (
        "Token authentication is enabled for this Ray cluster",
        "Token authentication is enabled for this Ray cluster. Set RAY_AUTH_MODE=disabled to opt out.",
    ),
}


def test_the_token_notice_filter_keeps_the_warning_that_authentication_is_off():
    keep = dict(_compat.LOG_FILTERS)["ray._private.authentication.authentication_token_setup"]
    off = "Token authentication is disabled for this Ray cluster. Anyone with network access can …"
    name = "ray._private.authentication.authentication_token_setup"
    assert keep(logging.LogRecord(name, logging.WARNING, __file__, 0, off, None, None))


def test_local_cpus_is_the_count_ray_init_starts_with():
    internal = "ray._private.utils.get_num_cpus, called by ray.init for a local Ray without num_cpus"
    from ray._private import resource_and_label_spec, utils

    assert _compat.local_cpus() == utils.get_num_cpus() > 0, ray_moved(internal)
    # ray.init → Node → ResourceAndLabelSpec.resolve: a local Ray without num_cpus takes this count.
    assert "get_num_cpus(" in inspect.getsource(resource_and_label_spec), ray_moved(internal)


@pytest.mark.parametrize("name", list(DROPPED))
def test_log_filters_drop_lines_the_loggers_still_write(name):
    keep = dict(_compat.LOG_FILTERS)[name]
    text, message = DROPPED[name]
    internal = f"log line {text!r} of logger {name}"
    try:
        module = importlib.import_module(name)
    except ImportError:
        pytest.fail(ray_moved(internal))
    assert getattr(module, "logger", None) is logging.getLogger(name), ray_moved(internal)
    assert text in inspect.getsource(module), ray_moved(internal)
    record = logging.LogRecord(name, logging.WARNING, __file__, 0, message, None, None)
    assert not keep(record)
    assert keep(logging.LogRecord(name, logging.WARNING, __file__, 0, "anything else", None, None))


def test_a_tuners_search_algorithm(tmp_path):
    alg = BasicVariantGenerator()
    tuner = tune.Tuner(
        lambda config: None,
        tune_config=tune.TuneConfig(search_alg=alg),
        run_config=tune.RunConfig(storage_path=str(tmp_path)),
    )
    internal = "Tuner._local_tuner._tune_config.search_alg"
    try:
        found = _compat.tuner_search_alg(tuner)
    except AttributeError:
        pytest.fail(ray_moved(internal))
    assert found is alg, ray_moved(internal)


class Recording(_compat.HookedOptunaSearch):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.ready = 0

    def study_ready(self) -> None:
        self.ready += 1


@pytest.fixture
def quiet_optuna():
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    yield
    optuna.logging.set_verbosity(verbosity)


def test_optuna_search_state(tmp_path, quiet_optuna):
    internal = (
        "OptunaSearch._setup_study, ._ot_study, ._ot_trials, ._completed_trials, ._space, ._storage, "
        "._study_name, ._sampler"
    )
    journal = study.journal_storage(tmp_path / "optuna.log")
    searcher = Recording(metric="m", mode="max", storage=journal, study_name="s", sampler=TPESampler(seed=0))
    try:
        searcher.set_search_properties(None, None, {"x": tune.uniform(0.0, 1.0)})
        assert searcher.ready == 1, ray_moved(f"{internal}: `_setup_study` is not called")
        ot_study = _compat.optuna_study(searcher)
        assert isinstance(ot_study, optuna.Study), ray_moved(internal)
        assert _compat.search_space(searcher) == {"x": optuna.distributions.FloatDistribution(0.0, 1.0)}
        searcher.suggest("t1")
        asked = _compat.asked_trials(searcher)
        assert isinstance(asked.get("t1"), optuna.Trial), ray_moved(internal)
        asked["t1"].set_user_attr("tag", "t1")
        searcher.on_trial_complete("t1", {"m": 0.5})
        assert _compat.completed_trials(searcher) == {"t1"}, ray_moved(internal)
        assert _compat.stored_trial(ot_study, asked["t1"]).value == 0.5

        # A searcher restored elsewhere, pointed at the journal, takes its trials from there.
        again = Recording(metric="m", mode="max", study_name="s", sampler=TPESampler(seed=0))
        _compat.set_storage(again, study.journal_storage(tmp_path / "optuna.log"))
        _compat.reload_study(again, lambda trial: trial.user_attrs.get("tag"))
    except AttributeError as err:
        pytest.fail(f"{ray_moved(internal)}: {err}")
    assert [t.value for t in _compat.optuna_study(again).trials] == [0.5]
    assert set(_compat.asked_trials(again)) == {"t1"} and _compat.completed_trials(again) == {"t1"}


def test_study_storage_and_trial_ids(quiet_optuna):
    internal = "Study._storage, Study._study_id, Trial._trial_id, FrozenTrial._trial_id"
    ot_study = optuna.create_study()
    trial = ot_study.ask()
    try:
        _compat.set_study_system_attr(ot_study, "k", [1, 2])
        assert _compat.study_system_attrs(ot_study) == {"k": [1, 2]}
        assert _compat.stored_trial(ot_study, trial).number == trial.number
        assert hasattr(ot_study.trials[0], "_trial_id"), optuna_moved(internal)
    except AttributeError as err:
        pytest.fail(f"{optuna_moved(internal)}: {err}")


# How many random states each sampler holds (its own, and its parts'), as of OPTUNA_CHECKED.
RANDOM_STATES = {TPESampler: 2, NSGAIISampler: 2}


@pytest.mark.parametrize("sampler_class", list(RANDOM_STATES), ids=lambda c: c.__name__)
def test_samplers_keep_their_random_states_in_lazy_random_states(sampler_class):
    internal = f"optuna.samplers._lazy_random_state.LazyRandomState in {sampler_class.__name__}"
    from optuna.samplers._lazy_random_state import LazyRandomState

    sampler = sampler_class(seed=0)
    states = _compat.sampler_random_states(sampler)
    assert len(states) == RANDOM_STATES[sampler_class], optuna_moved(internal)
    assert all(isinstance(s, np.random.RandomState) for s in states), optuna_moved(internal)
    # Every random state the sampler and its parts hold is one of those: none is seeded otherwise.
    for value in vars(sampler).values():
        if isinstance(value, LazyRandomState):
            continue
        for held in (value, *getattr(value, "__dict__", {}).values()):
            assert not isinstance(held, np.random.RandomState | np.random.Generator), optuna_moved(
                f"{internal}: a random state outside a LazyRandomState"
            )


MLFLOW = "MLflowLoggerCallback._trial_runs, .mlflow_util.save_artifacts(dir=, run_id=)"


def test_mlflow_callback_keeps_its_runs_by_trial():
    """The shape, read from the source; the slow test below makes a run and adds artifacts."""
    pytest.importorskip("mlflow")
    from ray.air.integrations.mlflow import MLflowLoggerCallback

    try:
        util = MLflowLoggerCallback(tracking_uri="sqlite:///unused.db").mlflow_util
        parameters = inspect.signature(util.save_artifacts).parameters
    except AttributeError as err:
        pytest.fail(f"{ray_moved(MLFLOW)}: {err}")
    assert {"dir", "run_id"} <= set(parameters), ray_moved(MLFLOW)
    assert "self._trial_runs = {}" in inspect.getsource(MLflowLoggerCallback.setup), ray_moved(MLFLOW)
    start = inspect.getsource(MLflowLoggerCallback.log_trial_start)
    assert "self._trial_runs[trial] = run.info.run_id" in start, ray_moved(MLFLOW)


class FakeTrial:
    """What `log_trial_start` reads of a Tune trial: its config, and str()."""

    def __init__(self) -> None:
        self.config = {"x": 1}


@pytest.fixture
def mlflow_uri_kept():
    """Ray's callback sets MLflow's tracking URI, and MLFLOW_TRACKING_URI, for the process."""
    mlflow = pytest.importorskip("mlflow")
    was_set, uri = mlflow.is_tracking_uri_set(), mlflow.get_tracking_uri()
    yield
    mlflow.set_tracking_uri(uri if was_set else None)


@pytest.mark.slow
def test_mlflow_callback_runs_and_artifacts(tmp_path, mlflow_uri_kept, monkeypatch):
    from mlflow.tracking import MlflowClient
    from ray.air.integrations.mlflow import MLflowLoggerCallback

    monkeypatch.chdir(tmp_path)  # the experiment's artifacts go to ./mlruns
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    callback = MLflowLoggerCallback(tracking_uri=uri, experiment_name="compat")
    callback.setup()
    trial = FakeTrial()
    callback.log_trial_start(trial)
    (tmp_path / "plots").mkdir()
    (tmp_path / "plots" / "latent.png").write_bytes(b"png")
    try:
        run_id = _compat.mlflow_run_id(callback, trial)
        _compat.save_mlflow_artifacts(callback, trial, str(tmp_path / "plots"))
    except (AttributeError, KeyError, TypeError) as err:
        pytest.fail(f"{ray_moved(MLFLOW)}: {err}")
    assert [a.path for a in MlflowClient(uri).list_artifacts(run_id)] == ["latent.png"]


REPEATED = "the text of Trial.report's warning for a step reported before (REPEATED_STEP)"


def test_the_repeated_step_warning_is_silenced_inside_only(quiet_optuna):
    trial = optuna.create_study().ask()
    trial.report(0.5, 4)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        before = list(warnings.filters)
        with _compat.without_repeated_step_warnings():
            trial.report(0.5, 4)
            warnings.warn("another warning", UserWarning, stacklevel=1)  # others still show
        assert warnings.filters == before
        trial.report(0.5, 4)
    assert str(caught[0].message) == "another warning"
    (repeated,) = caught[1:]
    assert re.fullmatch(_compat.REPEATED_STEP, str(repeated.message)), optuna_moved(REPEATED)


WANDB = (
    "WandbLoggerCallback._remote_logger_class (made once, if unset), ._logger_actor_cls, "
    "._trial_logging_actors, ._signal_logging_actor_stop, WANDB_ENV_VAR, "
    "ray.air.util.node._force_on_current_node"
)


def test_wandb_callback_makes_its_actor_class_once_and_keeps_its_loggers_by_trial():
    """The shape, read from the source (the slow tests in test_quiet_sweeps.py run it)."""
    from ray.air.integrations import wandb as ray_wandb
    from ray.air.util import node

    callback = ray_wandb.WandbLoggerCallback
    start = inspect.getsource(callback._start_logging_actor)
    assert "if not self._remote_logger_class:" in start, ray_moved(WANDB)
    assert "self._remote_logger_class.remote(" in start, ray_moved(WANDB)
    assert "self._trial_logging_actors[trial] = " in start, ray_moved(WANDB)
    # Still the reason for ours: Ray's restarts its loggers, each given an actor handle (its queue).
    assert "max_restarts=-1" in start and "queue=self._trial_queues[trial]" in start, ray_moved(WANDB)
    assert callback._logger_actor_cls is ray_wandb._WandbLoggingActor, ray_moved(WANDB)
    stop = inspect.getsource(callback._signal_logging_actor_stop)
    assert "self._trial_queues[trial].put((_QueueItem.END, None))" in stop, ray_moved(WANDB)
    assert ray_wandb.WANDB_ENV_VAR == _compat.WANDB_API_KEY, ray_moved(WANDB)
    assert node._force_on_current_node is _compat._force_on_current_node, ray_moved(WANDB)
    assert "ray.is_initialized()" in inspect.getsource(callback.__del__)  # why WandbCallback guards it
