"""What other tools read: every history, evaluation and latent file of a trial carries its
`trial_id` (latents also `step`), so a dataset over many trials' files needs no path parsing
and joins trials.parquet on (trial_id, member)."""

from __future__ import annotations

import copy
from pathlib import Path

import pandas as pd
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pytest

from latent_sweep.analysis.results import load_trials
from latent_sweep.engine.registry import run_trial
from latent_sweep.engine.session import LocalSession
from latent_sweep.store.history import read_table, trial_id_of


@pytest.fixture(scope="module")
def two_trials(ex17_raw, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two 20-step ex17 trials, named like a sweep's trial directories: a population of
    seeds 0 and 1 (`trial_aaa01`) and a single member of seed 2 (`trial_bbb02`)."""
    root = tmp_path_factory.mktemp("sweep")
    raw = copy.deepcopy(ex17_raw)
    raw.update(steps=20, eval_every=10, checkpoint_every=10, snapshot_every=10)
    run_trial({**raw, "members": [{"seed": 0}, {"seed": 1}]}, LocalSession(root / "trial_aaa01"))
    run_trial({**raw, "seed": 2}, LocalSession(root / "trial_bbb02"))
    return root


def dataset(root: Path, kind: str, pattern: str = "part-*.parquet") -> ds.Dataset:
    return ds.dataset(sorted(str(p) for p in root.glob(f"*/{kind}/{pattern}")), format="parquet")


def test_trial_ids_of_directories():
    assert trial_id_of("results/quick/trial_5f3a2_00001") == "5f3a2_00001"
    assert trial_id_of("results/train/ex17-seed3") == "ex17-seed3"
    assert trial_id_of("trial_") == "trial_"


def test_every_file_carries_its_trial_id(two_trials):
    for kind in ("history", "evals"):
        table = dataset(two_trials, kind).to_table()
        assert table.schema.field("trial_id").type == "string"
        assert table.schema.names[:4] == ["trial_id", "step", "member", "seed"]
        pairs = {(r["trial_id"], r["seed"]) for r in table.select(["trial_id", "seed"]).to_pylist()}
        assert pairs == {("aaa01", 0), ("aaa01", 1), ("bbb02", 2)}, kind
    evals = dataset(two_trials, "evals").to_table()
    assert sorted(evals.filter(pc.field("trial_id") == "aaa01")["step"].to_pylist()) == [10, 10, 20, 20]
    latents = dataset(two_trials, "latents", "step-*.parquet").to_table()
    assert latents.schema.names[:4] == ["trial_id", "step", "member", "seed"]
    for path in two_trials.glob("*/latents/step-*.parquet"):  # the step in the name is the column
        snap = ds.dataset(str(path)).to_table()
        assert set(snap["step"].to_pylist()) == {int(path.stem.removeprefix("step-"))}
        assert set(snap["trial_id"].to_pylist()) == {trial_id_of(path.parent.parent)}


def test_the_files_trial_ids_are_the_tables(two_trials):
    trials = load_trials(two_trials)  # no trials.parquet: rows from the directories
    assert sorted(zip(trials["trial_id"], trials["member"], strict=True)) == [
        ("aaa01", 0), ("aaa01", 1), ("bbb02", 0)
    ]  # fmt: skip
    evals = dataset(two_trials, "evals").to_table().to_pandas()
    last = evals[evals["step"] == 20].merge(trials, on=["trial_id", "member"], suffixes=("", "_table"))
    assert len(last) == 3
    assert (last["hue_corr"] == last["hue_corr_table"]).all()


def test_a_trial_that_takes_over_a_finished_trials_checkpoint_ends_with_its_scores(tiny_ex17, tmp_path):
    """PBT's exploit: a trial continues from another trial's checkpoint, here its final one; the
    taker's files then end with that evaluation, as trials.parquet reads them."""
    donor = LocalSession(tmp_path / "trial_donor")
    final = run_trial(tiny_ex17, donor)

    class TakeOver(LocalSession):
        def restore(self):
            return donor.restore()

    taker = tmp_path / "trial_taker"
    pd.testing.assert_frame_equal(run_trial(tiny_ex17, TakeOver(taker)), final)
    evals = read_table(taker / "evals")
    assert evals["step"].tolist() == [tiny_ex17["steps"]]
    scores = [c for c in final.columns if c not in ("member", "seed", "diverged_at")]
    assert evals[scores].to_numpy().tolist() == final[scores].to_numpy().tolist()
    run_trial(tiny_ex17, TakeOver(taker))  # again: the evaluation is not written twice
    assert read_table(taker / "evals")["step"].tolist() == [tiny_ex17["steps"]]
