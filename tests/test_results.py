"""Trials tables, group statistics and Pareto fronts (latent_sweep.analysis.results), through the CLI too."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fixtures_results import (
    ALPHA,
    BETA,
    GAMMA,
    SCORES,
    gamma_members,
    make_population_sweep,
    make_results,
    make_sweep,
)

from latent_sweep.analysis.results import (
    load_evals,
    load_history,
    load_trials,
    lower_is_better,
    member_rows,
    read_trial_config,
)
from latent_sweep.cli import main
from latent_sweep.errors import UserError
from latent_sweep.scores.pareto import pareto_front
from latent_sweep.store.history import read_table
from latent_sweep.tune import trials

DEFAULT_COLUMNS = [
    "trial_id",
    "status",
    "config.labels.mode",
    "config.schedule.scale.reg-polar",
    "hue_corr",
    "hue_order",
    "recon_mse",
    "anchor_error_red",
    "trustworthiness_k10",
    "steps",
]
ALPHA_SCORES = "hue_corr, hue_order, recon_mse, anchor_error_red, trustworthiness_k10"
ALPHA_LISTING = (
    f"available scores: {ALPHA_SCORES}; other columns: trial_id, member, seed, status, best_hue_corr, "
    "best_hue_order, best_recon_mse, best_anchor_error_red, best_trustworthiness_k10, diverged_at, steps, "
    "wall_time_s, error, trial_dir; config columns: config.seed, config.labels.mode, "
    "config.schedule.scale.reg-polar"
)


@pytest.fixture(scope="module")
def sweeps(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return make_results(tmp_path_factory.mktemp("results"))


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def csv_table(capsys: pytest.CaptureFixture[str], *argv: str) -> pd.DataFrame:
    code, out, err = run(capsys, "table", *argv, "--format", "csv")
    assert (code, err) == (0, "")
    return pd.read_csv(io.StringIO(out))


def final(trials: dict, trial_id: str, score: str) -> float:
    return trials[trial_id][4][SCORES.index(score)]


# ---------------------------------------------------------------------------------------
# Loading


def test_several_dirs_add_a_sweep_column_and_read_unlisted_trials_from_their_dirs(sweeps):
    alpha, beta = sweeps
    df = load_trials(alpha, beta)
    assert list(df["sweep"]) == ["alpha"] * 4 + ["beta"] * 2
    assert list(df["trial_id"]) == ["a0", "a1", "a2", "a3", "b0", "b1"]
    b = df[df.sweep == "beta"].set_index("trial_id")
    assert list(b["status"]) == ["UNKNOWN", "UNKNOWN"]
    assert b.loc["b1", "trial_dir"] == "group/b1"  # found two levels down
    for score in SCORES:
        assert b.loc["b0", score] == pytest.approx(final(BETA, "b0", score))
    # best over the evaluations: the earlier one has half the final values
    assert b.loc["b0", "best_hue_corr"] == pytest.approx(0.8)
    assert b.loc["b0", "best_recon_mse"] == pytest.approx(0.001)
    assert b.loc["b0", "config.labels.mode"] == "soft"
    assert b.loc["b0", "steps"] == 99
    assert b.loc["b0", "wall_time_s"] == pytest.approx(4.5)


def test_one_dir_has_no_sweep_column(sweeps):
    df = load_trials(sweeps[0])
    assert "sweep" not in df.columns
    assert list(df["status"]) == ["TERMINATED", "TERMINATED", "TERMINATED", "ERROR"]


def test_stale_table_keeps_finished_rows_refreshes_running_ones_and_adds_missing(tmp_path):
    root = make_sweep(tmp_path / "s", ALPHA, with_table=True)
    table = pd.read_parquet(root / "trials.parquet")
    table = table[table.trial_id != "a3"].copy()  # a3 started after the table was written
    table.loc[table.trial_id == "a0", "hue_corr"] = 0.33  # finished: the table is authoritative
    table.loc[table.trial_id == "a1", ["status", "hue_corr", "steps"]] = ["RUNNING", 0.1, 10]
    table.to_parquet(root / "trials.parquet")
    df = load_trials(root).set_index("trial_id")
    assert df.loc["a0", "hue_corr"] == pytest.approx(0.33)
    assert df.loc["a1", "status"] == "RUNNING"
    assert df.loc["a1", "hue_corr"] == pytest.approx(0.7)
    assert df.loc["a1", "steps"] == 99
    assert df.loc["a3", "status"] == "UNKNOWN"
    assert df.loc["a3", "hue_corr"] == pytest.approx(0.6)


def test_minimal_trials_table_without_sweep_file_or_trial_dirs(tmp_path, capsys):
    root = tmp_path / "bare"
    root.mkdir()
    pd.DataFrame({"trial_id": ["x", "y"], "status": ["TERMINATED"] * 2, "recon_mse": [0.2, 0.1]}).to_parquet(
        root / "trials.parquet"
    )
    df = csv_table(capsys, root, "--sort", "recon_mse")
    assert list(df.columns) == ["trial_id", "status", "recon_mse"]
    assert list(df["trial_id"]) == ["y", "x"]


def test_history_and_evals_read_back_as_one_table(sweeps):
    trial = sweeps[0] / "a0"
    history = load_history(trial)
    assert list(history["step"]) == list(range(0, 100, 10))  # two part files, in order
    assert {"phase", "lr", "reg-polar", "term.recon", "weighted.recon", "loss"} <= set(history.columns)
    evals = load_evals(trial)
    assert list(evals["step"]) == [50, 99]
    assert evals["hue_corr"].iloc[-1] == pytest.approx(0.9)


def test_missing_trial_directory_is_a_user_error(tmp_path):
    with pytest.raises(UserError) as err:
        load_history(tmp_path / "nope")
    assert str(err.value) == f"trial directory `{tmp_path / 'nope'}` does not exist"


# ---------------------------------------------------------------------------------------
# table


@pytest.mark.parametrize(
    ("sort", "order"),
    [
        (None, ["a2", "a0", "a1", "a3"]),  # the sweep's metric, hue_corr:max
        ("hue_corr", ["a2", "a0", "a1", "a3"]),
        ("recon_mse", ["a1", "a2", "a0", "a3"]),
        ("anchor_error_red", ["a2", "a0", "a1", "a3"]),
        ("best_recon_mse", ["a1", "a2", "a0", "a3"]),
        ("trustworthiness_k10", ["a2", "a0", "a1", "a3"]),
        ("hue_corr:min", ["a3", "a1", "a0", "a2"]),
        ("seed", ["a1", "a3", "a0", "a2"]),  # a config path without `config.`; ties keep file order
    ],
)
def test_sort_is_best_first(sweeps, capsys, sort, order):
    df = csv_table(capsys, sweeps[0], *(["--sort", sort] if sort else []))
    assert list(df["trial_id"]) == order


@pytest.mark.parametrize(
    ("name", "lower"),
    [
        ("recon_mse", True),
        ("recon_mse_vibrant", True),
        ("anchor_error_red", True),
        ("norm_error", True),
        ("planarity_vibrant", True),
        ("recon_mse_desaturated", True),
        ("best_recon_mse", True),
        ("hue_corr", False),
        ("trustworthiness_k10", False),
        ("knn_accuracy_k5", False),
    ],
)
def test_lower_is_better_rule(name, lower):
    assert lower_is_better(name) is lower


def test_default_columns_top_and_where(sweeps, capsys):
    df = csv_table(capsys, sweeps[0], "--top", "2")
    assert list(df.columns) == DEFAULT_COLUMNS
    assert list(df["trial_id"]) == ["a2", "a0"]
    df = csv_table(capsys, sweeps[0], "--where", "`config.labels.mode` == 'hard' and recon_mse < 0.005")
    assert list(df["trial_id"]) == ["a2"]
    df = csv_table(capsys, sweeps[0], "--where", "hue_order == 1")
    assert list(df["trial_id"]) == ["a2", "a0"]


def test_chosen_columns_accept_config_paths(sweeps, capsys):
    df = csv_table(capsys, sweeps[0], "--columns", "trial_id", "hue_corr", "labels.mode", "config.seed")
    assert list(df.columns) == ["trial_id", "hue_corr", "config.labels.mode", "config.seed"]
    assert df.set_index("trial_id").loc["a3", "config.labels.mode"] == "hard"


def test_several_dirs_csv_has_the_sweep_column_first(sweeps, capsys):
    df = csv_table(capsys, *sweeps)
    assert list(df.columns) == ["sweep", *DEFAULT_COLUMNS]
    assert list(zip(df["sweep"], df["trial_id"], strict=True)) == [
        ("alpha", "a2"),
        ("alpha", "a0"),
        ("beta", "b1"),
        ("beta", "b0"),
        ("alpha", "a1"),
        ("alpha", "a3"),
    ]


def test_markdown_format(sweeps, capsys):
    code, out, _ = run(
        capsys, "table", sweeps[0], "--columns", "trial_id", "hue_corr", "recon_mse", "--format", "markdown"
    )
    lines = out.splitlines()
    assert code == 0
    assert lines[0] == "| trial_id | hue_corr | recon_mse |"
    assert lines[1] == "| --- | ---: | ---: |"
    assert lines[2] == "| a2 | 0.95 | 0.003 |"
    assert len(lines) == 6


def test_rich_table_lists_the_trials_best_first(sweeps, capsys):
    code, out, _ = run(capsys, "table", sweeps[0])
    assert code == 0
    assert "config.schedule.scale.reg-polar" in out  # not squeezed to 80 columns
    positions = [out.index(f" {t} ") for t in ("a2", "a0", "a1", "a3")]
    assert positions == sorted(positions)


def test_parquet_and_csv_files(sweeps, capsys, tmp_path):
    out_file = tmp_path / "out" / "trials.parquet"
    code, out, _ = run(capsys, "table", *sweeps, "--format", "parquet", "--out", out_file)
    assert (code, out) == (0, f"wrote {out_file}\n")
    back = pd.read_parquet(out_file)
    assert list(back.columns) == ["sweep", *DEFAULT_COLUMNS]
    assert list(back["trial_id"]) == ["a2", "a0", "b1", "b0", "a1", "a3"]
    assert back["recon_mse"].tolist() == pytest.approx([0.003, 0.004, 0.005, 0.002, 0.001, 0.006])
    csv_file = tmp_path / "t.csv"
    code, _, _ = run(capsys, "table", sweeps[0], "--format", "csv", "--out", csv_file, "--top", "1")
    assert code == 0
    assert pd.read_csv(csv_file)["trial_id"].tolist() == ["a2"]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporaries left


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["--sort", "hue_cor"],
            f"unknown score or column `hue_cor` for --sort (did you mean `hue_corr`?); {ALPHA_LISTING}",
        ),
        (
            ["--sort", "hue_corr:up"],
            "--sort `hue_corr:up`: the direction after `:` must be max or min, but got `up`",
        ),
        (
            ["--where", "config.labels.mode == 'hard'"],
            "bad --where expression `config.labels.mode == 'hard'`: name 'config' is not defined; column "
            "names with dots or dashes need backticks, e.g. \"`config.labels.mode` == 'hard'\"",
        ),
        (["--top", "0"], "--top must be at least 1, but got 0"),
        (
            ["--format", "parquet"],
            "--format parquet writes a binary file: give --out FILE, e.g. --out trials.parquet",
        ),
    ],
)
def test_table_errors(sweeps, capsys, argv, message):
    code, out, err = run(capsys, "table", sweeps[0], *argv)
    assert (code, out, err) == (2, "", f"error: {message}\n")


def test_missing_and_empty_results_dirs(tmp_path, capsys):
    code, _, err = run(capsys, "table", tmp_path / "nope")
    assert (code, err) == (2, f"error: results directory `{tmp_path / 'nope'}` does not exist\n")
    (tmp_path / "empty" / "junk").mkdir(parents=True)
    code, _, err = run(capsys, "table", tmp_path / "empty")
    assert code == 2
    assert err == (
        f"error: no trials found in `{tmp_path / 'empty'}`: expected a trials.parquet or trial "
        "directories with a config.yaml one or two levels down\n"
    )


def test_a_trial_directory_reads_as_a_sweep_of_one(sweeps, capsys):
    df = csv_table(capsys, sweeps[1] / "group" / "b1", "--columns", "trial_id", "status", "hue_corr")
    assert df.to_dict("records") == [{"trial_id": "b1", "status": "UNKNOWN", "hue_corr": 0.85}]


# ---------------------------------------------------------------------------------------
# compare


def test_group_mean_and_std_match_numpy(sweeps, capsys):
    code, out, _ = run(
        capsys,
        "compare",
        *sweeps,
        "--by",
        "labels.mode",
        "--scores",
        "hue_corr",
        "recon_mse",
        "--format",
        "csv",
    )
    assert code == 0
    stats = pd.read_csv(io.StringIO(out)).set_index("config.labels.mode")
    parts = ("mean", "std", "ci_low", "ci_high")
    assert list(stats.columns) == ["count", *(f"{s}_{p}" for s in ("hue_corr", "recon_mse") for p in parts)]
    trials = {**ALPHA, **BETA}
    for mode in ("soft", "hard"):
        ids = [t for t, v in trials.items() if v[0] == mode]
        assert stats.loc[mode, "count"] == len(ids) == 3
        for score in ("hue_corr", "recon_mse"):
            values = np.array([final(trials, t, score) for t in ids])
            assert stats.loc[mode, f"{score}_mean"] == pytest.approx(values.mean())
            assert stats.loc[mode, f"{score}_std"] == pytest.approx(values.std(ddof=1))
            # a bootstrap interval of the mean of 3 values lies between their min and max (within
            # rounding: a resample of one value three times has it as its mean)
            low, high = stats.loc[mode, f"{score}_ci_low"], stats.loc[mode, f"{score}_ci_high"]
            assert low < values.mean() < high
            assert values.min() - 1e-12 <= low and high <= values.max() + 1e-12


def test_by_accepts_the_config_prefix(sweeps, capsys):
    first = run(capsys, "compare", sweeps[0], "--by", "labels.mode", "--format", "csv")
    second = run(capsys, "compare", sweeps[0], "--by", "config.labels.mode", "--format", "csv")
    assert first == second
    assert first[0] == 0


def test_pareto_front_by_hand():
    values = np.array(
        [
            [0.9, 0.004],  # dominated by row 2
            [0.7, 0.001],  # best recon_mse: on the front
            [0.95, 0.003],  # best hue_corr: on the front
            [0.95, 0.003],  # a duplicate of a front point is not beaten by it
            [np.nan, 0.0001],  # missing values: never on the front, never dominating
        ]
    )
    assert pareto_front(values, [True, False]).tolist() == [False, True, True, True, False]
    # flipped senses: lowest hue_corr (row 1) and highest recon_mse (row 0) now win
    assert pareto_front(values[:3], [False, True]).tolist() == [True, True, False]


def test_compare_marks_the_pareto_groups_and_lists_the_trial_front(sweeps, capsys):
    code, out, _ = run(
        capsys, "compare", sweeps[0], "--by", "labels.mode", "--scores", "hue_corr", "recon_mse",
        "--pareto", "hue_corr:max,recon_mse:min", "--format", "markdown",
    )  # fmt: skip
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "| config.labels.mode | count | pareto | hue_corr | recon_mse |"
    # soft (0.8, 0.0025) beats hard (0.775, 0.0045) on both means. Of two values, a resampled
    # mean is the lower one, the midpoint or the higher one (¼, ½, ¼): the 95% interval spans both.
    assert lines[2] == "| hard | 2 |  | 0.775 ± 0.2475 [0.6, 0.95] | 0.0045 ± 0.002121 [0.003, 0.006] |"
    assert lines[3] == "| soft | 2 | ★ | 0.8 ± 0.1414 [0.7, 0.9] | 0.0025 ± 0.002121 [0.001, 0.004] |"
    assert lines[-1] == "trials on the trial-level Pareto front (hue_corr:max, recon_mse:min): a1, a2"


def test_compare_csv_pareto_column_and_default_scores(sweeps, capsys):
    code, out, _ = run(
        capsys, "compare", *sweeps, "--by", "sweep", "--pareto", "hue_corr,recon_mse", "--format", "csv"
    )
    assert code == 0
    stats = pd.read_csv(io.StringIO(out)).set_index("sweep")
    assert [c for c in stats.columns if c.endswith("_mean")] == [f"{s}_mean" for s in SCORES]
    # alpha means (0.7875, 0.0035) vs beta (0.825, 0.0035): beta wins on hue_corr, ties on mse
    assert stats["pareto"].to_dict() == {"alpha": False, "beta": True}


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["--by", "labels.mood"],
            f"unknown score or column `labels.mood` for --by (did you mean `labels.mode`?); {ALPHA_LISTING}",
        ),
        (
            ["--by", "labels.mode", "--scores", "hue_cor"],
            f"unknown score `hue_cor` for --scores (did you mean `hue_corr`?); available: {ALPHA_SCORES}",
        ),
        (
            ["--by", "labels.mode", "--pareto", "hue_corr:max"],
            "--pareto needs at least two scores, e.g. hue_corr:max,recon_mse:min, but got `hue_corr:max`",
        ),
        (
            ["--by", "labels.mode", "--pareto", "hue_corr:best,recon_mse"],
            "--pareto `hue_corr:best`: the direction after `:` must be max or min, but got `best`",
        ),
        (
            ["--by", "labels.mode", "--pareto", "status:max,recon_mse:min"],
            f"unknown score `status` for --pareto; available: {ALPHA_SCORES}",
        ),
    ],
)
def test_compare_errors(sweeps, capsys, argv, message):
    code, out, err = run(capsys, "compare", sweeps[0], *argv)
    assert (code, out, err) == (2, "", f"error: {message}\n")


def test_out_must_be_a_writable_file_path(sweeps, capsys, tmp_path):
    code, _, err = run(capsys, "table", sweeps[0], "--format", "csv", "--out", tmp_path)
    assert (code, err) == (2, f"error: cannot write `{tmp_path}`: it is a directory; give a file name\n")
    (tmp_path / "f").write_text("")
    code, _, err = run(capsys, "table", sweeps[0], "--format", "csv", "--out", tmp_path / "f" / "t.csv")
    assert (code, err) == (
        2,
        f"error: cannot write `{tmp_path / 'f' / 't.csv'}`: a file stands where its directory would go\n",
    )


# ---------------------------------------------------------------------------------------
# Populations: one row per member


@pytest.fixture(scope="module")
def gamma(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_population_sweep(tmp_path_factory.mktemp("populations") / "gamma")


def gamma_rows(root: Path, status: str = "TERMINATED") -> list[dict]:
    """What `trials.collect` builds for each trial, its evaluations read through a URI."""
    rows = []
    for trial_id in GAMMA:
        raw = read_trial_config(root / trial_id)
        evals = read_table(f"file://{root / trial_id / 'evals'}")
        device = "cuda:0" if trial_id == "g0" else None  # g1: a trial that reported no device
        tail = {"device": device, "steps": 99, "wall_time_s": 1.5, "error": None, "trial_dir": trial_id}
        rows += member_rows(trial_id, status, raw, evals, **tail)
    return rows


def test_trial_directories_of_populations_read_as_member_rows(gamma):
    df = load_trials(gamma)
    assert list(zip(df["trial_id"], df["member"], df["seed"], strict=True)) == [
        ("g0", 0, 0), ("g0", 1, 1), ("g0", 2, 0), ("g0", 3, 1), ("g1", 0, 0), ("g1", 1, 1)
    ]  # fmt: skip
    assert list(df.columns[:4]) == ["trial_id", "member", "seed", "status"]
    assert not [c for c in df.columns if c.startswith("config.members")]
    assert list(df["config.seed"]) == list(df["seed"])
    expected = [m for t in GAMMA for m in gamma_members(t)]
    assert list(df["config.schedule.scale.reg-polar"]) == [scale for scale, _, _ in expected]
    for row, (_, _, final) in zip(df.itertuples(), expected, strict=True):
        if (row.trial_id, row.member) == ("g0", 3):
            continue
        assert row.hue_corr == pytest.approx(final["hue_corr"])
        assert row.best_hue_corr == pytest.approx(final["hue_corr"])
        assert row.best_recon_mse == pytest.approx(final["recon_mse"] / 2)  # lower is better
        assert pd.isna(row.diverged_at)
    diverged = df.iloc[3]
    assert diverged["diverged_at"] == 70 and pd.isna(diverged["hue_corr"])
    assert diverged["best_hue_corr"] == pytest.approx(0.25)  # its evaluation before diverging
    assert set(df["steps"]) == {99} and set(df["status"]) == {"UNKNOWN"}
    assert list(df["wall_time_s"]) == pytest.approx([4.5] * 6)  # the history spans steps 0–90


def test_trials_parquet_has_one_typed_row_per_member(gamma, tmp_path):
    table = trials.to_table(gamma_rows(gamma))
    schema = table.schema
    assert schema.names[:4] == ["trial_id", "member", "seed", "status"]
    assert schema.names[-6:] == ["diverged_at", "device", "steps", "wall_time_s", "error", "trial_dir"]
    types = {f.name: str(f.type) for f in schema}
    assert types["device"] == "string" and table["device"].to_pylist() == ["cuda:0"] * 4 + [None] * 2
    assert [types[c] for c in ("member", "seed", "config.seed", "diverged_at", "steps")] == ["int64"] * 5
    assert types["config.schedule.scale.reg-polar"] == types["hue_corr"] == types["best_hue_corr"] == "double"
    assert not [n for n in schema.names if n.startswith("config.members")]
    assert table["diverged_at"].to_pylist() == [None, None, None, 70, None, None]
    assert table["hue_corr"].to_pylist()[3] is None
    assert table.num_rows == 6

    root = tmp_path / "gamma"
    shutil.copytree(gamma, root)
    assert trials.write(str(root), table) == f"{root}/trials.parquet"
    df = load_trials(root)
    assert len(df) == 6 and set(df["status"]) == {"TERMINATED"}  # the table is authoritative
    assert df["device"].tolist()[:4] == ["cuda:0"] * 4 and df["device"].iloc[4:].isna().all()
    assert df["config.schedule.scale.reg-polar"].tolist() == [0.5, 0.5, 2.0, 2.0, 1.0, 1.0]


def test_stale_table_of_a_running_population_is_refreshed_member_by_member(gamma, tmp_path):
    root = tmp_path / "gamma"
    shutil.copytree(gamma, root)
    rows = [r for r in gamma_rows(root, status="RUNNING") if r["trial_id"] == "g0"]
    for row in rows:
        row.update(hue_corr=0.01, steps=10)
    trials.write(str(root), trials.to_table(rows))
    df = load_trials(root).set_index(["trial_id", "member"])
    assert df.loc[("g0", 1), "status"] == "RUNNING"
    assert df.loc[("g0", 1), "hue_corr"] == pytest.approx(0.8) and df.loc[("g0", 1), "steps"] == 99
    assert df.loc[("g0", 3), "diverged_at"] == 70
    assert df.loc[("g1", 1), "status"] == "UNKNOWN"  # not in the table: read from its directory


def test_table_of_populations_shows_members_and_seeds(gamma, capsys):
    df = csv_table(capsys, gamma)
    assert list(df.columns) == [
        "trial_id", "member", "seed", "status", "config.schedule.scale.reg-polar", *SCORES, "steps"
    ]  # fmt: skip
    assert list(zip(df["trial_id"], df["member"], strict=True)) == [
        ("g1", 0), ("g0", 0), ("g1", 1), ("g0", 1), ("g0", 2), ("g0", 3)
    ]  # fmt: skip
    df = csv_table(capsys, gamma, "--where", "diverged_at > 0", "--columns", "trial_id", "member")
    assert df.to_dict("records") == [{"trial_id": "g0", "member": 3}]


def test_compare_groups_members_by_a_sampled_parameter(gamma, capsys):
    code, out, _ = run(
        capsys, "compare", gamma, "--by", "schedule.scale.reg-polar", "--scores", "hue_corr", "recon_mse",
        "--pareto", "hue_corr:max,recon_mse:min", "--format", "csv",
    )  # fmt: skip
    assert code == 0
    lines = out.splitlines()
    stats = pd.read_csv(io.StringIO("\n".join(lines))).set_index("config.schedule.scale.reg-polar")
    assert stats["count"].tolist() == [2, 2, 2]
    assert stats["hue_corr_mean"].tolist() == pytest.approx([0.85, 0.9, 0.6])  # a diverged member: NaN
    assert stats.loc[0.5, "hue_corr_std"] == pytest.approx(np.std([0.9, 0.8], ddof=1))
    code, out, _ = run(
        capsys, "compare", gamma, "--by", "seed", "--scores", "hue_corr", "recon_mse",
        "--pareto", "hue_corr:max,recon_mse:min", "--format", "markdown",
    )  # fmt: skip
    assert out.splitlines()[-1] == (
        "trials on the trial-level Pareto front (hue_corr:max, recon_mse:min): g1#0"
    )


def test_evals_and_history_of_one_member(gamma):
    evals = load_evals(gamma / "g0", member=2)
    assert evals["step"].tolist() == [50, 99] and set(evals["member"]) == {2}
    assert evals["hue_corr"].tolist() == pytest.approx([0.3, 0.6])
    history = load_history(gamma / "g0", member=1)
    assert history["step"].tolist() == list(range(0, 100, 10)) and set(history["seed"]) == {1}
    assert len(load_history(gamma / "g0")) == 40


def test_damaged_files_are_named_not_read_silently(tmp_path, capsys):
    alpha, _ = make_results(tmp_path)
    # A trials.parquet cut short: the table refuses it and says how to rebuild it.
    table = alpha / "trials.parquet"
    table.write_bytes(table.read_bytes()[:100])
    assert main(["table", str(alpha)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {table}: not a readable Parquet file (")
    assert err.endswith(f"rebuild it from the trials with `latent-sweep resume {alpha}`\n")
    table.unlink()
    # A truncated evaluation part of one trial.
    part = sorted(alpha.glob("*/evals/part-*.parquet"))[0]
    part.write_bytes(part.read_bytes()[:-30])
    assert main(["table", str(alpha)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {part}: not a readable Parquet file (") and "Traceback" not in err
    assert err.endswith(
        "remove it to read the rest, or re-run the trial with `latent-sweep train <trial>/config.yaml`\n"
    )
