"""The Optuna journal (`optuna.log`) on resume: a record cut off by a crash mid-write is dropped,
a damaged earlier record stops the resume with its file and line. Real Optuna reads the files."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend

from latent_sweep.errors import UserError
from latent_sweep.tune import recovery
from latent_sweep.tune.study import JOURNAL_FILE

optuna.logging.set_verbosity(optuna.logging.WARNING)


def study(path: Path) -> optuna.Study:
    storage = JournalStorage(JournalFileBackend(str(path / JOURNAL_FILE)))
    return optuna.create_study(study_name="s", storage=storage, load_if_exists=True,
                               sampler=optuna.samplers.RandomSampler(seed=0))  # fmt: skip


def three_trials(path: Path) -> bytes:
    study(path).optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=3)
    return (path / JOURNAL_FILE).read_bytes()


def test_a_record_cut_off_mid_write_is_dropped_and_the_study_goes_on(tmp_path, capsys):
    whole = three_trials(tmp_path)
    journal = tmp_path / JOURNAL_FILE
    torn = b'{"op_code":5,"worker_id":"w","trial_id":3,"sta'
    # Left as it is, Optuna appends the next record to the torn one and cannot read the file again.
    (tmp_path / "hazard").mkdir()
    (tmp_path / "hazard" / JOURNAL_FILE).write_bytes(whole + torn)
    with pytest.raises(ValueError):  # json's decode error
        study(tmp_path / "hazard").optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=1)

    journal.write_bytes(whole + torn)
    recovery.check_journal(tmp_path)
    assert journal.read_bytes() == whole
    assert capsys.readouterr().out == f"{journal}: dropped its last record, cut off after {len(torn)} bytes\n"
    again = study(tmp_path)
    again.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=1)
    assert [t.number for t in study(tmp_path).trials] == [0, 1, 2, 3]
    recovery.check_journal(tmp_path)  # a whole journal is left alone
    assert capsys.readouterr().out == ""


def test_a_damaged_earlier_record_names_the_file_and_line_and_changes_nothing(tmp_path):
    lines = three_trials(tmp_path).splitlines(keepends=True)
    lines[1] = lines[1][: len(lines[1]) // 2] + b"\n"
    journal = tmp_path / JOURNAL_FILE
    journal.write_bytes(b"".join(lines))
    before = journal.read_bytes()
    with pytest.raises(UserError) as err:
        recovery.check_journal(tmp_path)
    assert str(err.value) == (
        f"{journal}: line 2 is not an Optuna journal record, so the sweep's study cannot be restored; the "
        f"trials' own files are not affected: `latent-sweep table {tmp_path}` lists them. Restore the file "
        "from a backup, or run the sweep anew into another directory (`latent-sweep run SWEEP --name NEW`)"
    )
    assert journal.read_bytes() == before
