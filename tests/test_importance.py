"""`latent-sweep importance` (latent_sweep.analysis.importance): fANOVA over configs averaged over seeds
ranks the parameter that drives a score first, the same numbers on every run; distributions
from the space's leaves; errors; `plot --kind importance`; a real packed sweep."""

from __future__ import annotations

import copy
import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from fixtures_results import write_sweep
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from test_plots import assert_png

import latent_sweep
from latent_sweep.analysis.importance import configs_of, describe, distribution
from latent_sweep.analysis.results import load_sweeps
from latent_sweep.cli import main
from latent_sweep.spec import config

ROOT = Path(__file__).resolve().parent.parent
SPACE = {
    "schedule.scale.lr": {"loguniform": [0.1, 10]},  # drives hue_corr
    "labels.mode": {"choice": ["soft", "hard"]},  # does not
    "terms[1].power": {"randint": [2, 12]},  # does not
}


def driven_rows(configs: int = 20, seeds: int = 3) -> list[dict]:
    """hue_corr = log10(lr scale) + seed noise; mode and power play no part."""
    rng = np.random.default_rng(0)
    rows = []
    for c in range(configs):
        lr = float(np.exp(rng.uniform(np.log(0.1), np.log(10))))
        mode, power = str(rng.choice(["soft", "hard"])), int(rng.integers(2, 12))
        for s in range(seeds):
            rows.append(
                {
                    "trial_id": f"t{c}",
                    "seed": s,
                    "status": "TERMINATED",
                    "config.seed": s,
                    "config.schedule.scale.lr": lr,
                    "config.labels.mode": mode,
                    "config.terms[1].power": power,
                    "hue_corr": np.log10(lr) + 0.05 * rng.normal(),
                    "recon_mse": 0.01 * rng.uniform(),
                }
            )
    return rows


@pytest.fixture(scope="module")
def driven(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_sweep(tmp_path_factory.mktemp("importance") / "driven", driven_rows(), space=SPACE)


def run(capsys: pytest.CaptureFixture[str], *argv: str | Path) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_the_driving_parameter_ranks_first_and_reruns_agree(driven, capsys):
    code, out, err = run(capsys, "importance", driven, "--format", "csv")
    assert (code, err) == (0, "")
    table = pd.read_csv(io.StringIO(out))
    assert table["parameter"].tolist()[0] == "schedule.scale.lr"
    assert set(table["parameter"]) == {"schedule.scale.lr", "labels.mode", "terms[1].power"}
    assert table["importance"].iloc[0] > 0.9 and table["importance"].sum() == pytest.approx(1.0)
    assert table["distribution"].tolist()[0] == "loguniform [0.1, 10]"
    assert table.set_index("parameter")["values"].to_dict() == {
        "schedule.scale.lr": 20,
        "labels.mode": 2,
        "terms[1].power": len({r["config.terms[1].power"] for r in driven_rows()}),
    }
    assert run(capsys, "importance", driven, "--format", "csv")[1] == out  # seeded fANOVA
    api = latent_sweep.param_importance(driven)
    pd.testing.assert_frame_equal(api, table, check_exact=False, rtol=1e-12)


def test_the_table_names_the_score_and_what_was_averaged(driven, capsys):
    code, out, _ = run(capsys, "importance", driven, "--score", "recon_mse", "--format", "markdown")
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "| parameter | importance | distribution | values |"
    assert lines[-1] == "fANOVA (seed 0) over 20 configs, each the mean of 3 members"
    code, out, _ = run(capsys, "importance", driven)
    assert "importance for hue_corr" in out  # the sweep's metric by default
    assert "choice [soft, hard]" in out  # brackets are text, not rich markup


def test_a_success_rate_and_a_half_of_the_seeds_can_be_explained(driven, capsys):
    success = "hue_corr > 0"  # lr scale > 1, up to the noise: the rate follows lr
    code, out, err = run(
        capsys, "importance", driven, "--score", "success", "--success", success, "--format", "csv"
    )
    assert (code, err) == (0, "")
    assert pd.read_csv(io.StringIO(out))["parameter"].iloc[0] == "schedule.scale.lr"
    code, out, _ = run(
        capsys, "importance", driven, "--score", "success", "--success", success, "--where", "seed < 2"
    )
    assert code == 0
    assert "fANOVA (seed 0) over 20 configs, each the mean of 2 members; members where seed < 2" in out
    assert f"success: {success} (a diverged member fails)" in out
    code, _, err = run(capsys, "importance", driven, "--score", "success")
    assert code == 2 and "--score success needs --success EXPR" in err


def test_configs_are_means_over_seeds_without_diverged_members(tmp_path):
    rows = driven_rows(configs=3, seeds=2)
    rows[1]["hue_corr"] = np.nan  # config t0's seed 1 diverged
    rows[4]["hue_corr"] = rows[5]["hue_corr"] = np.nan  # every member of t2 diverged
    root = write_sweep(tmp_path / "nan", rows, space=SPACE)
    df, sweeps = load_sweeps([root])
    configs = configs_of(df, sweeps, None)
    assert configs.score == "hue_corr" and configs.dropped == 1
    assert describe(configs) == (
        "fANOVA (seed 0) over 2 configs, each the mean of 1–2 members; 1 config without a `hue_corr` left out"
    )
    assert configs.table["members"].tolist() == [1, 2]
    assert configs.table["mean"].tolist() == pytest.approx(
        [rows[0]["hue_corr"], np.mean([rows[2]["hue_corr"], rows[3]["hue_corr"]])]
    )
    assert configs.table["config.schedule.scale.lr"].tolist() == [
        rows[0]["config.schedule.scale.lr"],
        rows[2]["config.schedule.scale.lr"],
    ]


def test_distributions_follow_the_space_leaves_widened_to_the_values():
    floats = pd.Series([0.5, 2.0])
    assert distribution(("loguniform", [0.1, 10]), floats) == FloatDistribution(0.1, 10, log=True)
    assert distribution(("uniform", [1, 3]), floats) == FloatDistribution(0.5, 3)  # widened
    assert distribution(("quniform", [0, 4, 0.5]), floats) == FloatDistribution(0, 4)
    assert distribution(("randint", [2, 12]), pd.Series([3, 5])) == IntDistribution(2, 11)  # hi excluded
    assert distribution(("grid", [1, 2]), pd.Series([1, 2])) == CategoricalDistribution((1, 2))
    assert distribution(None, pd.Series(["b", "a"])) == CategoricalDistribution(("a", "b"))
    assert distribution(None, pd.Series([1, 4])) == IntDistribution(1, 4)
    assert distribution(None, pd.Series([0.01, 5.0])) == FloatDistribution(0.01, 5.0, log=True)


def test_importance_errors(driven, tmp_path, capsys):
    code, out, err = run(capsys, "importance", driven, "--score", "hue_cor")
    assert (code, out) == (2, "")
    assert (
        err == "error: unknown score `hue_cor` for --score (did you mean `hue_corr`?); "
        "available: hue_corr, recon_mse\n"
    )

    constant = [
        {**r, "config.schedule.scale.lr": 1.0, "config.labels.mode": "soft", "config.terms[1].power": 2}
        for r in driven_rows(4)
    ]
    root = write_sweep(tmp_path / "constant", constant, space=SPACE)
    code, _, err = run(capsys, "importance", root)
    assert code == 2 and err == (
        f"error: `{root}`: no sampled parameter varies across the trials, so there is nothing to rank "
        f"(sweep.space lists: labels.mode, schedule.scale.lr, terms[1].power); importance needs a sweep "
        f"whose `sweep.space` samples at least one config path\n"
    )
    one = [{**r, "hue_corr": np.nan if r["trial_id"] == "t1" else r["hue_corr"]} for r in driven_rows(2)]
    root = write_sweep(tmp_path / "one", one, space=SPACE)
    code, _, err = run(capsys, "importance", root)
    assert code == 2 and err == (
        f"error: `{root}`: importance needs at least 2 configs with a `hue_corr` value to compare, but "
        f"found 1 (of 2 configs); run more samples (`sweep.num_samples`)\n"
    )
    flat = [{**r, "hue_corr": 0.5} for r in driven_rows(4)]
    root = write_sweep(tmp_path / "flat", flat, space=SPACE)
    code, _, err = run(capsys, "importance", root)
    assert code == 2 and err == (
        f"error: `{root}`: all 4 configs have the same mean `hue_corr` (0.5), so no parameter "
        f"explains any of it\n"
    )


def test_help_has_an_example(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["importance", "--help"])
    assert exit_.value.code == 0
    assert "example: latent-sweep importance results/quick" in capsys.readouterr().out


def test_plot_importance_writes_bars_and_slices_under_the_results_dir(driven, capsys):
    code, out, err = run(capsys, "plot", driven, "--kind", "importance")
    assert (code, err) == (0, "")
    names = ["driven-importance-hue_corr.png", "driven-slices-hue_corr.png"]
    assert out.splitlines() == [str(driven / "plots" / n) for n in names]
    for line in out.splitlines():
        assert_png(line)
    code, out, _ = run(capsys, "plot", driven, "--kind", "importance", "--score", "recon_mse")
    assert out.splitlines()[0].endswith("driven-importance-recon_mse.png")


@pytest.mark.slow
def test_importance_of_a_real_packed_sweep(tmp_path, capsys):
    """24 configs × 2 seeds as one Ray trial of 48 members, 100 steps: the lr scale drives
    recon_mse, the lr at step 10,000 (keyframe 7) cannot touch a 100-step run."""
    import ray

    raw = copy.deepcopy(config.load_file(ROOT / "sweeps" / "quick.yaml"))
    raw.update(name="imp", steps=100, eval_every=100, checkpoint_every=100)
    space = {
        "schedule.scale.lr": {"uniform": [0.1, 2.0]},
        "schedule.keyframes[7].lr": {"uniform": [0.001, 0.01]},
    }
    raw["sweep"] = {
        "metric": "recon_mse",
        "mode": "min",
        "num_samples": 24,
        "seeds": 2,
        "pack": 24,
        "space": space,
    }
    path = tmp_path / "imp.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        assert main(["run", str(path), "--storage", str(tmp_path / "res")]) == 0
    finally:
        ray.shutdown()
    capsys.readouterr()
    code, out, _ = run(capsys, "importance", tmp_path / "res" / "imp", "--format", "csv")
    table = pd.read_csv(io.StringIO(out))
    assert code == 0
    assert table["parameter"].tolist() == ["schedule.scale.lr", "schedule.keyframes[@10000].lr"]  # row 7
    assert table["importance"].iloc[0] > 0.8
    assert run(capsys, "importance", tmp_path / "res" / "imp", "--format", "csv")[1] == out
