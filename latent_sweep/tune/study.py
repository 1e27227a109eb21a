"""The Optuna study of a `search: optuna` sweep: its journal (`optuna.log`), samplers whose
suggestions a resume reproduces, and what `resume` does to the journal before Tune starts.

A sweep keeps state in three stores: Tune's experiment state (which trials exist, their configs and
whether each finished), the trials' own files (histories, checkpoints: how far each got), and this
study, derived from the first two. The journal is written at every report, Tune's state every few
seconds, so after a kill the journal is ahead: it may hold trials Tune never learned of, and trials
finished that Tune will run again. `reconcile` makes it agree with Tune's state (docs/reliability.md,
"Resume"):

* each Optuna trial carries the Tune trial it was asked for (user attr `trial_id`), so the journal
  alone says which study trial is which sweep trial;
* a trial Tune does not know (asked after its last snapshot) is dropped: Tune asks for it again;
* a trial Tune runs again is open (RUNNING) again, with the values it reported so far, and is told
  its result when the re-run ends (the re-run is deterministic: the same result).

Suggestions depend on the trial's number, not on the draws the sampler made before it
(`SeededTPESampler`, `SeededNSGAIISampler`): the sampler restored from Tune's snapshot may be older
than the journal, and the trial asked again gets the number, so the config, of the one dropped.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import optuna
from optuna.samplers import NSGAIISampler, TPESampler
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import FrozenTrial, TrialState

from latent_sweep.store import layout
from latent_sweep.tune import _compat

JOURNAL_FILE = layout.OPTUNA_JOURNAL
TRIAL_ID_ATTR = "trial_id"  # the Tune trial (and trial_<id> directory) an Optuna trial was asked for
UNFINISHED = ("PENDING", "RUNNING", "PAUSED")  # Tune statuses that `resume` runs again


def journal_storage(path: str | Path) -> JournalStorage:
    return JournalStorage(JournalFileBackend(str(path)))


class _TrialSeeded:
    """A sampler mixin: before each trial, every random state of the sampler is seeded from
    (seed, trial number), so a suggestion does not depend on how many the sampler made before."""

    def __init__(self, *args: Any, seed: int | None = None, **kwargs: Any) -> None:
        super().__init__(*args, seed=seed, **kwargs)
        self._trial_seed = seed

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        if self._trial_seed is not None:
            for i, rng in enumerate(_compat.sampler_random_states(self)):
                entropy = np.random.SeedSequence([self._trial_seed, trial.number, i])
                rng.seed(int(entropy.generate_state(1)[0]))
        super().before_trial(study, trial)  # type: ignore[misc]


class SeededTPESampler(_TrialSeeded, TPESampler):
    pass


class SeededNSGAIISampler(_TrialSeeded, NSGAIISampler):
    pass


def reconcile(journal: Path, study_name: str, tune_trials: dict[str, str]) -> str | None:
    """Make the study in `journal` agree with Tune's experiment state (`tune_trials`: trial id →
    status), rewriting the journal whole when it does not; what was done, or None if nothing."""
    if not journal.exists():
        return None
    _release_stale_lock(journal)
    try:
        study = optuna.load_study(study_name=study_name, storage=journal_storage(journal))
    except KeyError:  # killed before the study was created: Tune creates it
        return None
    kept: list[FrozenTrial] = []
    dropped = reopened = 0
    for trial in study.get_trials(deepcopy=False):
        trial_id = trial.user_attrs.get(TRIAL_ID_ATTR)
        status = tune_trials.get(trial_id) if trial_id is not None else None
        if trial_id is None and trial.state.is_finished():
            kept.append(trial)  # a warm-start point
        elif status is None:
            dropped += 1  # asked after Tune's last snapshot (or killed while being asked)
        elif status in UNFINISHED and trial.state.is_finished():
            kept.append(_reopened(trial))
            reopened += 1
        else:
            kept.append(trial)
    if not dropped and not reopened:
        return None
    _rewrite(journal, study, kept)
    done = [f"{_trials(dropped)} that Tune had not recorded dropped (asked again)"] if dropped else []
    done += [f"{_trials(reopened)} that Tune runs again reopened"] if reopened else []
    return f"{journal}: the study now agrees with Tune's experiment state: {'; '.join(done)}"


def _trials(n: int) -> str:
    return f"{n} trial" if n == 1 else f"{n} trials"


def _reopened(trial: FrozenTrial) -> FrozenTrial:
    return optuna.trial.create_trial(
        state=TrialState.RUNNING,
        params=trial.params,
        distributions=trial.distributions,
        user_attrs=trial.user_attrs,
        system_attrs=trial.system_attrs,
        intermediate_values=trial.intermediate_values,
    )


def _rewrite(journal: Path, study: optuna.Study, trials: list[FrozenTrial]) -> None:
    """`trials` in a new journal with the study's name, directions and attributes; then a rename."""
    tmp = journal.with_name(layout.journal_rewrite(journal.name))
    tmp.unlink(missing_ok=True)
    storage = journal_storage(tmp)
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # "A new study created …" is not news here
    try:
        new = optuna.create_study(storage=storage, study_name=study.study_name, directions=study.directions)
    finally:
        optuna.logging.set_verbosity(verbosity)
    for key, value in study.user_attrs.items():
        new.set_user_attr(key, value)
    for key, value in _compat.study_system_attrs(study).items():
        _compat.set_study_system_attr(new, key, value)
    for trial in trials:  # in number order: the numbers stay, but for the dropped ones
        new.add_trial(trial)
    with tmp.open("rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, journal)


def _release_stale_lock(journal: Path) -> None:
    """Optuna locks the journal with a symlink beside it while it appends; a kill can leave it, and
    Optuna would then wait for it. `resume` holds the results directory's lock, so nobody else does."""
    lock = journal.with_name(layout.journal_lock(journal.name))
    if lock.is_symlink() or lock.exists():
        lock.unlink()
