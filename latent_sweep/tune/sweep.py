"""`latent-sweep run` and `resume`: a sweep file becomes a Ray Tune experiment, then `trials.parquet`.

The results directory is `<storage>/<name>`: Ray's experiment directory plus `sweep.yaml` (the
effective sweep file, schedule inlined and overrides applied: `resume` and `table` read it),
one directory per trial and `trials.parquet` (one row per member). Local Ray is started
in-process unless `--address` names a cluster. Storage may be a local path or a URI (s3://,
gs://); only a local results directory can be locked against a second concurrent `run` or
`resume`.

What it prints while running and at the end (progress lines, the leaderboard): `sweep_report`.
"""

from __future__ import annotations

import copy
import logging
import os
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import optuna
import pyarrow.fs
import ray
import yaml
from ray import tune

from latent_sweep.errors import UserError
from latent_sweep.interrupts import interrupt_after
from latent_sweep.spec import config
from latent_sweep.spec.resources import trains_on, trial_gpus
from latent_sweep.spec.sweep_block import SweepSpec
from latent_sweep.store import atomic, layout
from latent_sweep.store.lock import ResultsLock
from latent_sweep.store.remote import is_uri
from latent_sweep.tune import _compat, recovery, search, space, trackers
from latent_sweep.tune import report as sweep_report
from latent_sweep.tune import trials as trials_parquet
from latent_sweep.tune.checks import load_sweep
from latent_sweep.tune.trainable import StudySearch, trainable

SWEEP_FILE = layout.SWEEP_FILE
RETRIED_DIR = layout.RETRIED_DIR
KEEP_CHECKPOINTS = 2


@dataclass(frozen=True)
class Outcome:
    """Where a sweep's results are, and how it ended: 0 every trial finished, 1 some trials
    errored, 130 interrupted (resumable)."""

    path: str
    exit_code: int


def run(
    sweep: str | Path | dict,
    *,
    storage: str | None = None,
    name: str | None = None,
    num_samples: int | None = None,
    overrides: config.Overrides = None,
    address: str | None = None,
) -> Outcome:
    """Run a sweep (a file, or a sweep config as a dict) into `<storage>/<name>`; `overrides`
    set config values first, `address` names a Ray cluster (default: local Ray in-process)."""
    loaded, source = config.load(sweep)
    raw = config.apply_overrides(loaded, config.as_overrides(overrides))
    spec = load_sweep(raw, source)
    name = name or spec.block.name or spec.cfg.name
    if "/" in name or name in (".", ".."):
        raise UserError(f"sweep name `{name}` must be a plain directory name (no `/`), e.g. `quick-2`")
    path = experiment_path(storage or spec.block.storage or layout.STORAGE_ROOT, name)
    effective = copy.deepcopy(raw)
    effective["sweep"]["name"] = name
    warm = spec.block.warm_start
    if warm and not is_uri(warm):  # `resume` may run elsewhere: name the earlier sweep absolutely
        effective["sweep"]["warm_start"] = str(Path(warm).resolve())
    if num_samples is not None:
        effective["sweep"]["num_samples"] = num_samples
    spec = load_sweep(effective, source)  # as `resume` reads it: the Optuna study is named `name`
    if not is_uri(path):
        atomic.check_dir(Path(path), "results directory")
    with ResultsLock(path):
        if _exists(f"{path}/{layout.TUNER_STATE}"):
            raise UserError(
                f"{path} already holds a sweep; continue it with `latent-sweep resume {path}`, "
                f"or run into another directory with --name or --storage"
            )
        _write_text(f"{path}/{SWEEP_FILE}", yaml.safe_dump(effective, sort_keys=False))
        with _ray(address):
            resources = trial_resources(spec)
            print(f"sweep {name}: {_describe(spec, resources)} → {path}")
            tuner = _tuner(spec, path, name, resources)
            tuner.fit()
            return Outcome(path, _finish(spec, path))


def resume(results_dir: str | Path, *, restart_errored: bool = False, address: str | None = None) -> Outcome:
    """Finish an interrupted sweep from its checkpoints; `restart_errored` retries errored trials.

    Tune's experiment state decides which trials exist and whether each finished; the Optuna study
    is made to agree with it before Tune starts (docs/reliability.md, "Resume"). A sweep killed
    before Tune saved any state starts again."""
    path = experiment_path(str(results_dir))
    if not _exists(f"{path}/{SWEEP_FILE}"):
        raise UserError(
            f"{path}: no {SWEEP_FILE} here; expected the results directory of a `latent-sweep run`"
        )
    spec = load_sweep(yaml.safe_load(_read_text(f"{path}/{SWEEP_FILE}")), f"{path}/{SWEEP_FILE}")
    name = spec.block.name or spec.cfg.name
    with ResultsLock(path):
        if not is_uri(path):  # damaged files: named, rebuilt where they can be (docs/reliability.md)
            recovery.prepare_resume(Path(path), spec.block.resources.cpu, spec.block.success, name)
        with _ray(address):
            resources = trial_resources(spec)
            if _restorable(path):
                tuner = tune.Tuner.restore(
                    path,
                    trainable=_trainable(spec, path, resources),
                    resume_unfinished=True,
                    restart_errored=restart_errored,
                )
                if not is_uri(path):
                    _point_study_at(tuner, f"{path}/{layout.OPTUNA_JOURNAL}")
                print(f"resuming {path}")
            else:
                tuner = _tuner(spec, path, name, resources)
                print(f"starting {path} again: it was stopped before Tune saved its state")
            with _compat.without_repeated_step_warnings():
                tuner.fit()
            return Outcome(path, _finish(spec, path))


def _restorable(path: str) -> bool:
    """Whether Tune saved its state: its `tuner.pkl` (written first) and an experiment state."""
    if not tune.Tuner.can_restore(path):
        return False
    fs, root = _fs(path)
    found = fs.get_file_info(pyarrow.fs.FileSelector(root))
    return any(i.base_name.startswith(layout.EXPERIMENT_STATE_PREFIX) for i in found)


def _point_study_at(tuner: tune.Tuner, journal: str) -> None:
    """Tell a restored Optuna searcher where its journal is now (its snapshot names the directory
    the sweep ran in)."""
    searcher = _compat.tuner_search_alg(tuner)
    while searcher is not None and not isinstance(searcher, StudySearch):
        searcher = getattr(searcher, "searcher", None)
    if searcher is not None:
        searcher.point_at(journal)


def _set_aside_replaced(path: str, rows: list[dict]) -> None:
    """Move trial directories of trials no longer in the experiment (`resume --restart-errored`
    retries an errored trial as a new one) to `.retried/`: kept for diagnosis, out of tables."""
    if is_uri(path):
        return
    current = {row["trial_dir"] for row in rows}
    for d in Path(path).glob(layout.TRIAL_DIR_GLOB):
        if d.is_dir() and d.name not in current:
            (d.parent / RETRIED_DIR).mkdir(exist_ok=True)
            os.replace(d, d.parent / RETRIED_DIR / d.name)


def _prune_checkpoints(path: str, rows: list[dict]) -> None:
    """Finished trials keep their last KEEP_CHECKPOINTS checkpoints (unfinished ones keep all)."""
    fs, root = _fs(path)
    statuses = {row["trial_dir"]: row["status"] for row in rows}  # rows are members: once per trial
    for trial_dir, status in statuses.items():
        if status not in ("TERMINATED", "ERROR"):
            continue
        selector = pyarrow.fs.FileSelector(f"{root}/{trial_dir}", allow_not_found=True)
        found = [i for i in fs.get_file_info(selector) if i.type == pyarrow.fs.FileType.Directory]
        checkpoints = sorted(i.path for i in found if layout.is_checkpoint(i.base_name))
        for old in checkpoints[:-KEEP_CHECKPOINTS]:
            fs.delete_dir(old)


def experiment_path(storage: str, name: str | None = None) -> str:
    """`<storage>/<name>` as Ray wants it: a URI as is, a local path made absolute."""
    joined = f"{storage.rstrip('/')}/{name}" if name else storage.rstrip("/")
    return joined if is_uri(joined) else str(Path(joined).resolve())


def trial_resources(spec: SweepSpec) -> dict[str, float]:
    """What each trial asks Ray for: `sweep.resources`, `gpu: auto` resolved on the cluster Ray is
    connected to (`resources.trial_gpus`)."""
    b, cluster_gpus = spec.block, ray.cluster_resources().get("GPU", 0)
    gpu = trial_gpus(b.resources.gpu, spec.members_per_trial, cluster_gpus, spec.devices)
    if gpu == 0 and spec.cfg.device == "cuda":
        raise UserError(
            f"{spec.source}: `sweep.resources.gpu` is `auto` and the Ray cluster has no GPUs, but the "
            "config asks for `device: cuda`; run where Ray has a GPU, or use `device: auto` or `cpu`"
        )
    return {"cpu": b.resources.cpu, "gpu": gpu}


def _describe(spec: SweepSpec, resources: dict[str, float]) -> str:
    b = spec.block
    objectives = ", ".join(f"{m} ({d})" for m, d in zip(spec.metrics, spec.modes, strict=True))
    cpu, gpu, where = resources["cpu"], resources["gpu"], trains_on(spec.devices, resources["gpu"])
    return (
        f"{spec.describe()}, search {b.search}, scheduler {b.scheduler}, {objectives}, "
        f"{cpu:g} cpu + {gpu:g} gpu per trial (trains on {where})"
    )


def _trainable(spec: SweepSpec, path: str, resources: dict[str, float]):
    b = spec.block
    results_dir = None if is_uri(path) else path
    return trainable(spec.base, results_dir, spec.source, resources, b.metric, b.mode, b.success)


def trial_dirname(trial) -> str:
    """Short trial directory names (Ray's default packs the whole sampled config into them)."""
    return layout.trial_dirname(trial.trial_id)


def _tuner(spec: SweepSpec, path: str, name: str, resources: dict[str, float]):
    b = spec.block
    storage = path.rsplit("/", 1)[0]
    tune_config = tune.TuneConfig(
        search_alg=search.search_alg(spec, None if is_uri(path) else path),
        scheduler=search.scheduler(spec),
        num_samples=spec.tune_samples,
        trial_dirname_creator=trial_dirname,
        # A trial's process is reused for the next one: no second start of Python, torch and Ray.
        reuse_actors=True,
    )
    run_config = tune.RunConfig(
        name=name,
        storage_path=storage,
        verbose=0,
        callbacks=[
            sweep_report.Progress(spec.metrics[0], spec.modes[0]),
            *trackers.callbacks(spec, path, name),
        ],
        # Keep every checkpoint while the sweep runs; `_prune_checkpoints` keeps the last two at the
        # end. Ray deletes old checkpoints before its experiment state (which names the one to
        # restore from) reaches storage, so a kill in between would leave a dangling reference.
        checkpoint_config=tune.CheckpointConfig(num_to_keep=None),
        # A lost worker or node: retry from the last checkpoint (deterministic failures end the
        # trial instead, see `tune_adapter.train_trial`).
        failure_config=tune.FailureConfig(max_failures=b.max_failures),
        # Only URI storage needs trial files uploaded; local trials write in place.
        sync_config=tune.SyncConfig(sync_artifacts=is_uri(path)),
    )
    return tune.Tuner(
        _trainable(spec, path, resources),
        param_space=space.param_space(spec),
        tune_config=tune_config,
        run_config=run_config,
    )


def _finish(spec: SweepSpec, path: str) -> int:
    rows = trials_parquet.collect(path, spec.base)
    _set_aside_replaced(path, rows)
    _prune_checkpoints(path, rows)
    written = trials_parquet.write(path, trials_parquet.to_table(rows))
    sweep_report.print_leaderboard(rows, spec, results=path)
    print(f"results: {path}\ntrials table: {written}")
    statuses = {row["trial_id"]: row["status"] for row in rows}
    unfinished = sum(status not in ("TERMINATED", "ERROR") for status in statuses.values())
    if unfinished:  # Tune returns before every trial ended only when it was interrupted (Ctrl-C)
        print(
            f"interrupted: {unfinished} of {len(statuses)} trials had not finished; their last "
            f"checkpoints and the experiment state are saved. Continue with `latent-sweep resume {path}`",
            file=sys.stderr,
        )
        return 130
    failed = sum(status != "TERMINATED" for status in statuses.values())
    if failed:
        print(
            f"error: {failed} of {len(statuses)} trials did not finish (status and reason in the "
            f"`status` and `error` columns of `latent-sweep table {path}`); retry errored trials "
            f"with `latent-sweep resume {path} --restart-errored`",
            file=sys.stderr,
        )
        return 1
    return 0


@contextmanager
def _environment_kept() -> Iterator[None]:
    """`os.environ` as it was, after: Ray sets variables in the driver that outlive a sweep
    (`ray.init`: PYTHONBREAKPOINT, to its debugger; its MLflow callback: MLFLOW_TRACKING_URI, which
    `trackers_mlflow.mlflow_uri` would take for the next sweep's store)."""
    before = dict(os.environ)
    try:
        yield
    finally:
        for name in set(os.environ) - set(before):
            del os.environ[name]
        for name, value in before.items():
            if os.environ.get(name) != value:
                os.environ[name] = value


@contextmanager
def _quiet_optuna() -> Iterator[None]:
    """Optuna logs a line at INFO for each trial told and for the study created; progress is ours.
    Quieter for the sweep only (a user's stricter level stays), and put back after it."""
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(max(verbosity, optuna.logging.WARNING))
    try:
        yield
    finally:
        optuna.logging.set_verbosity(verbosity)


class _ray:
    """Connect to `address`, or start local Ray in-process; reuse a Ray this process already runs.
    Ray's settings for a sweep (`_compat.sweep_settings`) and a quiet Optuna hold while inside; they,
    and the environment, are put back after it (once Ray is shut down): `run_sweep` runs in users'
    processes."""

    def __init__(self, address: str | None) -> None:
        self.address = address
        self.started = False
        self.settings = ExitStack()

    def __enter__(self) -> _ray:
        self.settings.enter_context(_environment_kept())
        self.settings.enter_context(_compat.sweep_settings())
        self.settings.enter_context(_quiet_optuna())
        try:
            self._connect()
        except BaseException:
            self.__exit__()
            raise
        return self

    def _connect(self) -> None:
        if not ray.is_initialized():
            # Ray takes seconds to start (~10 s on a busy 2-core machine): say what the wait is.
            if self.address:
                print(f"connecting to Ray at {self.address}…", flush=True)
            else:
                print(f"starting Ray (local, {_compat.local_cpus():g} CPUs)…", flush=True)
            with interrupt_after():
                ray.init(
                    # "local": always a fresh instance; None would join a `ray start` cluster if one runs.
                    address=self.address or "local",
                    include_dashboard=False,
                    log_to_driver=False,
                    logging_level=logging.WARNING,
                )
                self.started = True

    def __exit__(self, *exc) -> None:
        try:
            if self.started:
                with interrupt_after():
                    ray.shutdown()
        finally:
            self.settings.close()


def _fs(path: str) -> tuple[pyarrow.fs.FileSystem, str]:
    return pyarrow.fs.FileSystem.from_uri(path)


def _exists(path: str) -> bool:
    fs, p = _fs(path)
    return fs.get_file_info(p).type != pyarrow.fs.FileType.NotFound


def _read_text(path: str) -> str:
    fs, p = _fs(path)
    with fs.open_input_stream(p) as f:
        return f.read().decode()


def _write_text(path: str, text: str) -> None:
    """Write whole: a temporary name, then a move."""
    fs, p = _fs(path)

    def write(tmp: str) -> None:
        with fs.open_output_stream(tmp) as f:
            f.write(text.encode())

    atomic.write_whole(p, write, fs)
