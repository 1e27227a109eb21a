"""The names of every file and folder of a results directory and of a trial directory: the one
place they are spelled. Everything that reads or writes results asks this module.

A sweep's results directory, `<storage>/<name>` (`latent-sweep run`; `storage` defaults to
STORAGE_ROOT):

    results_dir/
        sweep.yaml                  SWEEP_FILE: the effective sweep file (schedule inlined,
                                    overrides applied); `resume`, `table`, `importance` read it
        trials.parquet              TRIALS: one row per member of every trial, written at the end
        trial_<ray trial id>/       TRIAL_DIR_PREFIX, trial_dirname(): one trial (below)
        .retried/                   RETRIED_DIR: trial directories of errored trials that
                                    `resume --restart-errored` ran again as new trials
        optuna.log                  OPTUNA_JOURNAL: the Optuna study (`search: optuna`, local storage)
        optuna.log.lock             journal_lock(): Optuna's lock while it appends (a kill may leave it)
        .optuna.log.reconcile       journal_rewrite(): `resume`'s new journal before its rename
        mlflow.db, mlartifacts/     MLFLOW_DB, MLFLOW_ARTIFACTS: MLflow's store (`loggers: [mlflow]`)
        plots/                      PLOTS_DIR: `latent-sweep plot`'s figures (also in a trial directory)
        .latent-sweep.lock          LOCK_FILE: held by the `run`/`resume` writing the directory;
                                    lock_claim() is a claim on it being linked into place
        tuner.pkl                   TUNER_STATE  } Ray Tune's experiment state (`Tuner.restore`):
        experiment_state-*.json     EXPERIMENT_STATE_GLOB } RAY_STATE_GLOBS
        searcher-state-*.pkl, search_gen_state-*.json, basic-variant-state-*.json
                                    SEARCHER_STATE_GLOBS: the search algorithm's state
        .validate_storage_marker    RAY_STORAGE_MARKER: Ray's check that storage is writable

A trial directory (a sweep's `trial_<id>/`, or a `latent-sweep train` directory, by default
`STORAGE_ROOT/TRAIN_DIR/<name>-seed<N>`):

    trial_dir/
        config.yaml                 CONFIG: the full resolved trial config (CONFIG_FILES: also
                                    the config.json of older results)
        history/part-<step>.parquet HISTORY, part_name(): one row per logged step and member
        evals/part-<step>.parquet   EVALS, part_name(): one row per evaluation and member
        latents/step-<step>.parquet LATENTS, snapshot_name(): evaluation-set latents (snapshots)
        checkpoint_<n>/state.pt     CHECKPOINT_PREFIX, CHECKPOINT_STATE: Ray's checkpoints of a
                                    sweep trial (the trial's whole state)
        checkpoints/checkpoint_<step>/state.pt
                                    LOCAL_CHECKPOINTS, checkpoint_dir(): a `train` trial's last two
        params.json, params.pkl, result.json, progress.csv
                                    RAY_TRIAL_FILES: Ray's records of a sweep trial
        error.txt, error.pkl        RAY_ERROR_FILES: a failed trial's traceback (Ray)
        events.out.tfevents.*       TENSORBOARD_PREFIX: TensorBoard's events (`loggers: [tensorboard]`)
        plots/                      PLOTS_DIR

Part files and snapshots carry their first (or only) step zero-padded to 9 digits, so names sort
in step order. Every file is written whole through a temporary beside it whose name starts with
"." (`latent_sweep.store.atomic`); readers skip such names. LATENT_PLOT is the file MLflow gets
as an artifact (drawn outside the results directory).

Ground layer: imports nothing from latent_sweep.
"""

from __future__ import annotations

import fnmatch
import re

# ---------------------------------------------------------------------------------------
# Where results go

STORAGE_ROOT = "results"  # `run`'s storage and `train`'s parent, when not given
TRAIN_DIR = "train"  # `latent-sweep train` trial directories: STORAGE_ROOT/TRAIN_DIR/<name>-seed<N>

# ---------------------------------------------------------------------------------------
# A results directory

SWEEP_FILE = "sweep.yaml"
TRIALS = "trials.parquet"
TRIAL_DIR_PREFIX = "trial_"  # a sweep's trial directories: `trial_<Ray trial id>`
TRIAL_DIR_GLOB = f"{TRIAL_DIR_PREFIX}*"
RETRIED_DIR = ".retried"
OPTUNA_JOURNAL = "optuna.log"
MLFLOW_DB = "mlflow.db"
MLFLOW_ARTIFACTS = "mlartifacts"
PLOTS_DIR = "plots"  # under the results (or trial) directory, unless `plot --out` says otherwise
LOCK_FILE = ".latent-sweep.lock"

# Ray Tune's own files in the experiment directory.
TUNER_STATE = "tuner.pkl"
EXPERIMENT_STATE_PREFIX = "experiment_state-"
EXPERIMENT_STATE_GLOB = f"{EXPERIMENT_STATE_PREFIX}*.json"
SEARCHER_STATE_GLOBS = ("searcher-state-*.pkl", "search_gen_state-*.json", "basic-variant-state-*.json")
RAY_STATE_GLOBS = (EXPERIMENT_STATE_GLOB, *SEARCHER_STATE_GLOBS)  # the newest of each is restored
RAY_STORAGE_MARKER = ".validate_storage_marker"


def trial_dirname(trial_id: str) -> str:
    """A sweep trial's directory name: `trial_<Ray trial id>`."""
    return f"{TRIAL_DIR_PREFIX}{trial_id}"


def is_trial_dirname(name: str) -> bool:
    return name.startswith(TRIAL_DIR_PREFIX)


def journal_lock(journal: str) -> str:
    """The lock Optuna keeps beside its journal file `journal` (a name) while it appends."""
    return f"{journal}.lock"


def journal_rewrite(journal: str) -> str:
    """The temporary a rewrite of the journal file `journal` (a name) goes through."""
    return f".{journal}.reconcile"


def lock_claim(pid: int) -> str:
    """A process's private claim on LOCK_FILE, linked into place to take the lock."""
    return f"{LOCK_FILE}.{pid}"


# ---------------------------------------------------------------------------------------
# A trial directory

CONFIG = "config.yaml"
CONFIG_JSON = "config.json"  # older results
CONFIG_FILES = (CONFIG, CONFIG_JSON)  # what marks a trial directory, in the order they are read
HISTORY = "history"
EVALS = "evals"
PARTS = (HISTORY, EVALS)  # the part-file folders
LATENTS = "latents"
LOCAL_CHECKPOINTS = "checkpoints"  # a `train` trial's checkpoints (a sweep's are Ray's, beside them)
CHECKPOINT_PREFIX = "checkpoint_"
CHECKPOINT_GLOB = f"{CHECKPOINT_PREFIX}*"
CHECKPOINT_STATE = "state.pt"  # in a checkpoint directory: the trial's state
PART_PREFIX = "part-"
PARQUET = ".parquet"
SNAPSHOT_PREFIX = "step-"
SNAPSHOT_GLOB = f"{SNAPSHOT_PREFIX}*{PARQUET}"
SNAPSHOT_FORM = f"{LATENTS}/{SNAPSHOT_PREFIX}<step>{PARQUET}"  # for messages: latents/step-<step>.parquet
RAY_TRIAL_FILES = ("params.json", "params.pkl", "result.json", "progress.csv")
RAY_ERROR_FILES = ("error.txt", "error.pkl")
ERROR_FILE = RAY_ERROR_FILES[0]  # a failed trial's traceback, as Ray writes it
TENSORBOARD_PREFIX = "events.out.tfevents."
LATENT_PLOT = "latent.png"  # member 0's final latents, MLflow's artifact of a trial

_SNAPSHOT = re.compile(rf"{re.escape(SNAPSHOT_PREFIX)}(\d+){re.escape(PARQUET)}")
_PART = re.compile(rf"{re.escape(PART_PREFIX)}(\d+){re.escape(PARQUET)}")


def part_name(first_step: int) -> str:
    """A history or evals part holding steps from `first_step` on: `part-000001000.parquet`."""
    return f"{PART_PREFIX}{first_step:09d}{PARQUET}"


def is_part(name: str) -> bool:
    return name.startswith(PART_PREFIX) and name.endswith(PARQUET)


def part_step(name: str) -> int:
    """The first step of a part file's name (`part_name`'s inverse)."""
    return int(name[len(PART_PREFIX) : -len(PARQUET)])


def snapshot_name(step: int) -> str:
    """A latent snapshot at `step`: `step-000010000.parquet`."""
    return f"{SNAPSHOT_PREFIX}{step:09d}{PARQUET}"


def snapshot_step(name: str) -> int | None:
    """The step of a latent snapshot's name, None for any other name."""
    m = _SNAPSHOT.fullmatch(name)
    return int(m[1]) if m else None


def checkpoint_dir(step: int) -> str:
    """A `train` trial's checkpoint directory (under LOCAL_CHECKPOINTS) at `step`. Ray names its
    own, by checkpoint index: `checkpoint_000003`."""
    return f"{CHECKPOINT_PREFIX}{step:09d}"


def is_checkpoint(name: str) -> bool:
    return name.startswith(CHECKPOINT_PREFIX)


def checkpoint_number(name: str) -> int:
    """The number in a checkpoint directory's name: a `train` trial's step, Ray's index."""
    return int(name[len(CHECKPOINT_PREFIX) :])


# ---------------------------------------------------------------------------------------
# What a directory holds

# Present in every finished sweep's results directory, and in every trial directory that ran.
REQUIRED_IN_RESULTS = (SWEEP_FILE, TRIALS, TUNER_STATE)
REQUIRED_IN_TRIAL = (CONFIG, HISTORY, EVALS)


def declared_in_results(name: str) -> bool:
    """Whether `name` (an entry of a results directory) is one this layout names."""
    exact = {SWEEP_FILE, TRIALS, RETRIED_DIR, OPTUNA_JOURNAL, MLFLOW_DB, MLFLOW_ARTIFACTS, PLOTS_DIR}
    exact |= {LOCK_FILE, TUNER_STATE, RAY_STORAGE_MARKER, journal_lock(OPTUNA_JOURNAL)}
    ray_state = any(fnmatch.fnmatchcase(name, g) for g in RAY_STATE_GLOBS)
    return name in exact or is_trial_dirname(name) or ray_state


def declared_in_trial(name: str) -> bool:
    """Whether `name` (an entry of a trial directory) is one this layout names."""
    exact = {*CONFIG_FILES, *PARTS, LATENTS, LOCAL_CHECKPOINTS, PLOTS_DIR, *RAY_TRIAL_FILES, *RAY_ERROR_FILES}
    return name in exact or is_checkpoint(name) or name.startswith(TENSORBOARD_PREFIX)
