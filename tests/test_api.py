"""The Python API as a notebook uses it: `train` and `run_sweep`/`resume_sweep` on config dicts,
returning the rows `latent-sweep table` shows, read back from the files they wrote."""

from __future__ import annotations

import copy
import io
import os
from pathlib import Path

import pandas as pd
import pytest

import latent_sweep as ls
from latent_sweep import cli
from latent_sweep.spec import config
from latent_sweep.tune import _compat, sweep

ROOT = Path(__file__).resolve().parent.parent


def table_rows(results: Path, capsys) -> pd.DataFrame:
    """What `latent-sweep table --format csv` prints for `results`, all columns of interest."""
    columns = ["trial_id", "member", "seed", "status", "steps", "hue_corr", "recon_mse"]
    assert cli.main(["table", str(results), "--format", "csv", "--columns", *columns]) == 0
    return pd.read_csv(io.StringIO(capsys.readouterr().out))


def test_train_a_dict_config_returns_the_members_table(tiny_ex17, tmp_path, capsys):
    raw = copy.deepcopy(tiny_ex17)
    raw.pop("seed")
    out = tmp_path / "pop"
    trials = ls.train(raw, seeds=[3, 5], steps=100, out=out, overrides={"eval_every": 50})
    capsys.readouterr()

    assert trials["member"].tolist() == [0, 1] and trials["seed"].tolist() == [3, 5]
    assert trials["steps"].tolist() == [100, 100]
    assert (out / "config.yaml").is_file()
    assert config.read_yaml(out / "config.yaml")["members"] == [{"seed": 3}, {"seed": 5}]
    for row in trials.itertuples():  # final scores are each member's last evaluation
        evals = ls.load_evals(out, member=row.member)
        assert evals["step"].tolist() == [50, 100]
        assert row.hue_corr == evals["hue_corr"].iloc[-1]
        assert row.best_recon_mse == evals["recon_mse"].min()
    shown = table_rows(out, capsys)
    pd.testing.assert_frame_equal(shown, trials[shown.columns], check_dtype=False)

    # Training into the same directory again continues from its last checkpoint: same rows.
    again = ls.train(raw, seeds="3,5", steps=100, out=out, overrides=["eval_every=50"])
    pd.testing.assert_frame_equal(again.drop(columns="wall_time_s"), trials.drop(columns="wall_time_s"))


def test_a_bad_dict_config_is_a_user_error_naming_the_key(tiny_ex17, tmp_path):
    raw = {**tiny_ex17, "stpes": 100}
    with pytest.raises(ls.UserError, match=r"^<config dict>: `stpes` is not a known key$"):
        ls.train(raw, out=tmp_path / "t")
    with pytest.raises(ls.UserError, match=r"--seeds must name distinct seeds ≥ 0, but got `1,1`"):
        ls.train(tiny_ex17, seeds=[1, 1], out=tmp_path / "t")
    assert not (tmp_path / "t").exists()


@pytest.mark.slow
def test_run_sweep_and_resume_sweep_return_the_trials_table(tmp_path, capsys):
    import ray

    raw = config.load_file(ROOT / "sweeps" / "quick.yaml")  # the schedule inlined: a plain dict
    raw.update(name="api", steps=200, eval_every=100, checkpoint_every=100)
    raw["sweep"] = {
        "metric": "hue_corr",
        "mode": "max",
        "max_concurrent": 2,
        "search_seed": 3,
        "space": {"schedule.scale.reg-separate": {"uniform": [0.5, 2.0]}},
    }
    from ray.air._internal import usage

    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    environment, tag_callbacks = dict(os.environ), usage.tag_callbacks
    try:
        with sweep._ray(None):  # Ray runs already: nothing is started
            assert usage.tag_callbacks is _compat._no_callback_telemetry
        trials = ls.run_sweep(raw, storage=str(tmp_path), num_samples=2, overrides={"sweep.seeds": 2})
        assert dict(os.environ) == environment  # Ray's settings for the sweep are put back
        assert usage.tag_callbacks is tag_callbacks  # and so is its telemetry hook
        results = tmp_path / "api"
        assert "sweep api: 2 sampled configs × 2 seeds" in capsys.readouterr().out
        assert len(trials) == 4 and set(trials["status"]) == {"TERMINATED"}
        assert trials["trial_id"].nunique() == 2 and sorted(trials["seed"]) == [0, 0, 1, 1]
        assert (trials["steps"] == 200).all()
        pd.testing.assert_frame_equal(trials, ls.load_trials(results))
        parquet = pd.read_parquet(results / "trials.parquet")
        assert parquet["hue_corr"].tolist() == trials["hue_corr"].tolist()
        shown = table_rows(results, capsys)
        best_first = trials.sort_values("hue_corr", ascending=False, kind="stable").reset_index(drop=True)
        pd.testing.assert_frame_equal(shown, best_first[shown.columns], check_dtype=False)

        # A finished sweep resumes to the same table.
        again = ls.resume_sweep(results)
        pd.testing.assert_frame_equal(again, trials)
    finally:
        ray.shutdown()
