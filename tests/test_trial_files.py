"""What other tools read: every history, evaluation and latent file of a trial carries its
`trial_id` (latents also `step`), so a dataset over many trials' files needs no path parsing
and joins trials.parquet on (trial_id, member)."""

from __future__ import annotations

import copy
from pathlib import Path

import pyarrow.compute as pc
import pyarrow.dataset as ds
import pytest

from latent_sweep.experiments import run_trial
from latent_sweep.history import trial_id_of
from latent_sweep.results import load_trials
from latent_sweep.session import LocalSession


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
