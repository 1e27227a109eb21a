"""The Optuna study made to agree with Tune's experiment state before a resume (`study.reconcile`),
and samplers whose suggestion for a trial depends only on the seed and the trial's number. Real
Optuna journals, read back with `optuna.load_study`."""

from __future__ import annotations

import optuna
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState

from latent_sweep.tune import study

SPACE = {"params/x": FloatDistribution(0.001, 0.03, log=True), "params/y": FloatDistribution(0.5, 2.0)}


def open_study(path, seed: int = 0) -> optuna.Study:
    sampler = study.SeededTPESampler(seed=seed, n_startup_trials=10)
    return optuna.create_study(
        study_name="s", storage=study.journal_storage(path), sampler=sampler, load_if_exists=True
    )


def ask(s: optuna.Study, trial_id: str) -> optuna.Trial:
    trial = s.ask(fixed_distributions=SPACE)
    trial.set_user_attr(study.TRIAL_ID_ATTR, trial_id)
    return trial


def test_a_resume_drops_what_tune_never_recorded_and_reopens_what_it_runs_again(tmp_path):
    journal = tmp_path / study.JOURNAL_FILE
    s = open_study(journal)
    s.add_trial(
        optuna.trial.create_trial(params={"params/x": 0.01, "params/y": 1.0}, distributions=SPACE, value=0.9)
    )
    a, b, c, d = (ask(s, name) for name in "abcd")
    s.tell(a, 0.5)
    b.report(0.6, step=1)
    s.tell(b, 0.7)  # finished in the journal; Tune's snapshot, older, still has it running
    lost = s.trials[d.number].params  # asked after Tune's last snapshot

    said = study.reconcile(journal, "s", {"a": "TERMINATED", "b": "RUNNING", "c": "PENDING"})
    assert said == (
        f"{journal}: the study now agrees with Tune's experiment state: 1 trial that Tune had not "
        "recorded dropped (asked again); 1 trial that Tune runs again reopened"
    )
    trials = optuna.load_study(study_name="s", storage=study.journal_storage(journal)).trials
    assert [t.number for t in trials] == [0, 1, 2, 3]
    assert [t.user_attrs.get(study.TRIAL_ID_ATTR) for t in trials] == [None, "a", "b", "c"]
    assert [t.state for t in trials] == [
        TrialState.COMPLETE,
        TrialState.COMPLETE,
        TrialState.RUNNING,
        TrialState.RUNNING,
    ]
    assert [t.value for t in trials[:2]] == [0.9, 0.5]
    assert trials[2].intermediate_values == {1: 0.6}  # what b reported before the kill
    assert [t.params for t in trials[1:]] == [s.trials[n].params for n in (a.number, b.number, c.number)]

    # A sampler restored from an older snapshot asks the dropped trial's number again, and gets
    # its config: the draws depend on the trial's number, not on the draws made before.
    again = open_study(journal)
    assert again.ask(fixed_distributions=SPACE).params == lost


def test_a_study_that_agrees_is_left_as_it_is(tmp_path):
    journal = tmp_path / study.JOURNAL_FILE
    s = open_study(journal)
    s.tell(ask(s, "a"), 0.5)
    ask(s, "b")
    before = journal.read_bytes()
    assert study.reconcile(journal, "s", {"a": "TERMINATED", "b": "RUNNING"}) is None
    assert journal.read_bytes() == before
    assert study.reconcile(tmp_path / "none.log", "s", {}) is None  # no journal: nothing to do


def test_the_lock_a_killed_writer_left_is_released(tmp_path):
    journal = tmp_path / study.JOURNAL_FILE
    s = open_study(journal)
    ask(s, "a")
    lock = tmp_path / f"{study.JOURNAL_FILE}.lock"
    lock.symlink_to(journal)  # Optuna's lock, held by a process that is gone
    study.reconcile(journal, "s", {"a": "RUNNING"})
    assert not lock.is_symlink()
    ask(open_study(journal), "b")  # would wait for the lock otherwise


def test_suggestions_depend_on_the_seed_and_the_trial_number_only(tmp_path):
    first = open_study(tmp_path / "one.log")
    drawn = [first.ask(fixed_distributions=SPACE).params for _ in range(3)]
    # A second study whose sampler drew for other trials in between still suggests the same for
    # trial numbers 0, 1, 2 (three studies on one sampler: each draw advances its random state).
    sampler = study.SeededTPESampler(seed=0, n_startup_trials=10)
    studies = [
        optuna.create_study(
            study_name="s", storage=study.journal_storage(tmp_path / f"{i}.log"), sampler=sampler
        )
        for i in range(3)
    ]
    for i, s in enumerate(studies):
        for _ in range(i):
            s.ask(fixed_distributions=SPACE)
    assert [s.ask(fixed_distributions=SPACE).params for s in studies] == drawn
    other = open_study(tmp_path / "two.log", seed=1)
    assert other.ask(fixed_distributions=SPACE).params != drawn[0]
