"""Keyframe columns by STEP (latent_sweep.spec.columns): `trials.parquet` names a sampled keyframe as the
sweep's space does (`config.schedule.keyframes[@5000].reg-polar`), a sampled STEP included; names
by row (`[2]`, `[2@5000]`) are accepted on input and mapped; `compare --by [@5000]` works;
importance keeps the space's log distribution; tables written by row read renamed."""

from __future__ import annotations

import copy
import io
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import yaml
from fixtures_results import make_trial

from latent_sweep.analysis.results import load_trials, member_rows
from latent_sweep.cli import main
from latent_sweep.spec.checks import load_spec
from latent_sweep.spec.columns import Keyframes
from latent_sweep.spec.config import load_file
from latent_sweep.spec.sweep_block import trial_config
from latent_sweep.store.history import read_table
from latent_sweep.tune import trials

ROOT = Path(__file__).resolve().parent.parent
SHEET = [
    {"STEP": 0, "PHASE": "Train", "lr": 0.01, "reg-polar": 0.006},
    {"STEP": "+10", "lr": 0.01},
    {"STEP": 5000, "reg-polar": 0.006},
    {"STEP": "+0.5", "reg-polar": 0.0002},
    {"STEP": 10000, "lr": 0.001},
]
POLAR, STEP = "schedule.keyframes[@5000].reg-polar", "schedule.keyframes[@5000].STEP"
SPACE = {POLAR: {"loguniform": [0.001, 0.03]}, STEP: {"randint": [3000, 7001]}}
CONFIGS, SEEDS = 12, 2


def make_keyframe_sweep(root: Path, sheet: list[dict], space: dict = SPACE) -> Path:
    """A sweep of CONFIGS population trials (SEEDS members each) sampling reg-polar and the STEP
    of the keyframe written at 5000; hue_corr rises with log10(reg-polar), plus seeded noise.
    trials.parquet is built as `trials.collect` builds it (without Ray)."""
    root.mkdir(parents=True)
    doc = {"experiment": "autoencoder", "schedule": {"keyframes": sheet}}
    doc["sweep"] = {"space": space, "metric": "hue_corr", "mode": "max", "seeds": SEEDS}
    (root / "sweep.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    base = {**copy.deepcopy(doc), "members": [{"seed": s} for s in range(SEEDS)]}
    del base["sweep"]
    rng = np.random.default_rng(0)
    rows = []
    for c in range(CONFIGS):
        polar = float(np.exp(rng.uniform(np.log(0.001), np.log(0.03))))
        raw = trial_config(base, {"params": {POLAR: polar, STEP: int(rng.integers(3000, 7001))}})
        finals = [
            {"hue_corr": 1 + 0.2 * np.log10(polar) + 0.01 * rng.normal(), "recon_mse": 0.01 * rng.uniform()}
            for _ in range(SEEDS)
        ]
        trial_dir = root / f"trial_t{c}"
        make_trial(trial_dir, raw, finals)
        rows += member_rows(
            f"t{c}",
            "TERMINATED",
            raw,
            read_table(trial_dir / "evals"),
            keyframes=Keyframes.of(doc),
            steps=99,
            wall_time_s=1.0,
            error=None,
            trial_dir=trial_dir.name,
        )
    trials.write(str(root), trials.to_table(rows))
    return root


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_keyframe_sweep(tmp_path_factory.mktemp("keyframes") / "kf", SHEET)


def run(capsys: pytest.CaptureFixture[str], *argv: str | Path) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def csv(out: str) -> pd.DataFrame:
    return pd.read_csv(io.StringIO(out))


def test_labels_name_each_row_by_its_written_step():
    keyframes = Keyframes((0, "+10", 5000, 5000, None, "-10", 8000))
    assert keyframes.labels == ("[@0]", "[@0+10]", "[2@5000]", "[3@5000]", "[4]", "[@8000-10]", "[@8000]")
    assert keyframes.label("config.schedule.keyframes[1].lr") == "config.schedule.keyframes[@0+10].lr"
    assert keyframes.label("schedule.keyframes[9].lr") == "schedule.keyframes[9].lr"  # no such row
    assert keyframes.column("schedule.keyframes[@8000-10].lr") == "schedule.keyframes[@8000-10].lr"
    assert keyframes.column("config.schedule.keyframes[3@5000].lr") == "config.schedule.keyframes[3@5000].lr"
    assert keyframes.column("schedule.keyframes[3].lr") == "schedule.keyframes[3@5000].lr"
    # Two rows at STEP 5000, or a row that is not at the STEP named: no column, as given.
    assert keyframes.column("schedule.keyframes[@5000].lr") == "schedule.keyframes[@5000].lr"
    assert keyframes.column("schedule.keyframes[1@5000].lr") == "schedule.keyframes[1@5000].lr"
    assert keyframes.column("terms[1].power") == "terms[1].power"


def test_trials_parquet_names_keyframes_by_step_and_keeps_the_sampled_step(sweep):
    names = pq.read_schema(sweep / "trials.parquet").names
    keyframe_columns = [n for n in names if n.startswith("config.schedule.keyframes")]
    assert keyframe_columns == [
        "config.schedule.keyframes[@0].STEP",
        "config.schedule.keyframes[@0].PHASE",
        "config.schedule.keyframes[@0].lr",
        "config.schedule.keyframes[@0].reg-polar",
        "config.schedule.keyframes[@0+10].STEP",
        "config.schedule.keyframes[@0+10].lr",
        f"config.{STEP}",
        f"config.{POLAR}",
        "config.schedule.keyframes[@5000+0.5].STEP",
        "config.schedule.keyframes[@5000+0.5].reg-polar",
        "config.schedule.keyframes[@10000].STEP",
        "config.schedule.keyframes[@10000].lr",
    ]
    table = pd.read_parquet(sweep / "trials.parquet")
    steps = table[f"config.{STEP}"]  # the STEP sampled for the keyframe written at 5000
    assert steps.between(3000, 7000).all() and steps.nunique() == CONFIGS and (steps != 5000).all()
    # Read from the trial directories alone (a sweep still running): the same columns and values.
    alone = sweep.parent / "alone"
    shutil.copytree(sweep, alone)
    (alone / "trials.parquet").unlink()
    from_dirs = load_trials(alone).sort_values(["trial_id", "member"], ignore_index=True)
    ordered = table.sort_values(["trial_id", "member"], ignore_index=True)
    assert from_dirs[keyframe_columns].equals(ordered[keyframe_columns])


def test_compare_by_a_keyframe_addressed_by_step_or_by_row(sweep, capsys):
    code, out, err = run(capsys, "compare", sweep, "--by", POLAR, "--bins", "0", "--format", "csv")
    assert (code, err) == (0, "")
    stats = csv(out)
    assert stats.columns[0] == f"config.{POLAR}" and len(stats) == CONFIGS
    assert set(stats["count"]) == {SEEDS}
    for name in ("schedule.keyframes[2].reg-polar", "config.schedule.keyframes[2@5000].reg-polar"):
        assert run(capsys, "compare", sweep, "--by", name, "--bins", "0", "--format", "csv") == (0, out, "")


def test_table_accepts_keyframes_by_row_in_columns_sort_and_where(sweep, capsys):
    where = "`config.schedule.keyframes[2].reg-polar` > 0.005 and `schedule.keyframes[2@5000].STEP` > 0"
    argv = [
        "--columns",
        "trial_id,schedule.keyframes[2].reg-polar",
        "--sort",
        "schedule.keyframes[2].STEP:min",
    ]
    code, out, err = run(capsys, "table", sweep, *argv, "--where", where, "--format", "csv")
    assert (code, err) == (0, "")
    shown = csv(out)
    assert shown.columns.tolist() == ["trial_id", f"config.{POLAR}"]
    table = pd.read_parquet(sweep / "trials.parquet")
    wanted = table[table[f"config.{POLAR}"] > 0.005].sort_values(f"config.{STEP}", kind="stable")
    assert shown["trial_id"].tolist() == wanted["trial_id"].tolist() and len(shown) > 0
    assert shown[f"config.{POLAR}"].tolist() == pytest.approx(wanted[f"config.{POLAR}"].tolist())


def test_importance_keeps_the_log_distribution_of_a_step_addressed_key(sweep, capsys):
    code, out, err = run(capsys, "importance", sweep, "--format", "csv")
    assert (code, err) == (0, "")
    table = csv(out).set_index("parameter")
    assert table.index.tolist() == [POLAR, STEP]  # hue_corr follows reg-polar
    assert table.loc[POLAR, "distribution"] == "loguniform [0.001, 0.03]"
    assert table.loc[STEP, "distribution"] == "randint [3000, 7001]"
    assert table["values"].tolist() == [CONFIGS, CONFIGS]


def test_a_space_written_by_row_finds_its_columns_and_leaves(tmp_path, capsys):
    space = {"schedule.keyframes[2].reg-polar": SPACE[POLAR], "schedule.keyframes[2@5000].STEP": SPACE[STEP]}
    root = make_keyframe_sweep(tmp_path / "rows", SHEET, space)
    table = csv(run(capsys, "importance", root, "--format", "csv")[1]).set_index("parameter")
    assert table.loc[POLAR, "distribution"] == "loguniform [0.001, 0.03]"
    assert table.loc[STEP, "distribution"] == "randint [3000, 7001]"
    code, out, err = run(capsys, "plot", root, "--kind", "sweep", "--out", tmp_path / "plots")
    assert (code, err) == (0, "") and len(out.splitlines()) == 2


def test_a_table_written_with_keyframes_by_row_reads_renamed(sweep, tmp_path, capsys):
    old = tmp_path / "old"
    shutil.copytree(sweep, old)
    table = pd.read_parquet(sweep / "trials.parquet")
    rows = {"[@0]": "[0]", "[@0+10]": "[1]", "[@5000]": "[2]", "[@5000+0.5]": "[3]", "[@10000]": "[4]"}
    positional = {}
    for name in table.columns:
        for label, row in rows.items():
            name_by_row = name.replace(f"keyframes{label}.", f"keyframes{row}.")
            if name_by_row != name:
                positional[name] = name_by_row
    table.rename(columns=positional).to_parquet(old / "trials.parquet")
    assert "config.schedule.keyframes[2].reg-polar" in pq.read_schema(old / "trials.parquet").names
    assert load_trials(old).equals(load_trials(sweep))
    code, out, _ = run(capsys, "compare", old, "--by", POLAR, "--bins", "0", "--format", "csv")
    assert code == 0 and csv(out).columns[0] == f"config.{POLAR}"


def test_a_row_that_is_another_keyframe_in_another_sweep_is_refused(sweep, tmp_path, capsys):
    sheet = [SHEET[0], {"STEP": "+5", "lr": 0.01}, *SHEET[1:]]  # row 2 is now the one at 0+10
    other = make_keyframe_sweep(tmp_path / "other", sheet)
    code, out, _ = run(capsys, "compare", sweep, other, "--by", STEP, "--bins", "0", "--format", "csv")
    assert code == 0 and csv(out)["count"].sum() == 2 * CONFIGS * SEEDS
    code, _, err = run(capsys, "compare", sweep, other, "--by", "schedule.keyframes[2].STEP")
    assert code == 2
    assert err == (
        "error: --by `schedule.keyframes[2].STEP` names different keyframes in the sweeps given "
        "(config.schedule.keyframes[@0+10].STEP, config.schedule.keyframes[@5000].STEP): their schedules "
        "differ; name the keyframe by its STEP, e.g. `schedule.keyframes[@5000].lr`\n"
    )


def test_the_leaderboard_shows_sampled_keyframes_by_step():
    from latent_sweep.tune.report import config_summaries

    spec = load_spec(load_file(ROOT / "sweeps" / "quick.yaml"), "sweeps/quick.yaml")
    raw = trial_config(spec.base, {"params": {POLAR: 0.02, STEP: 6000, "schedule.scale.reg-separate": 1.5}})
    rows = member_rows(
        "t0", "TERMINATED", raw, pd.DataFrame(), keyframes=Keyframes.of(spec.base), steps=0, error=None
    )
    table = config_summaries(pd.DataFrame(rows), spec)
    assert table[[f"config.{POLAR}", f"config.{STEP}"]].values.tolist() == [[0.02, 6000]]


def test_a_warm_start_finds_the_step_addressed_parameters_of_the_earlier_sweep(sweep):
    from latent_sweep.tune.warm_start import OPTUNA_PREFIX, warm_start

    raw = load_file(ROOT / "sweeps" / "quick.yaml")
    raw["sweep"].update(space=SPACE, warm_start=str(sweep))
    start = warm_start(load_spec(raw, "sweeps/quick.yaml"))
    table = pd.read_parquet(sweep / "trials.parquet").sort_values("trial_id").drop_duplicates("trial_id")
    found = [(params[OPTUNA_PREFIX + POLAR], params[OPTUNA_PREFIX + STEP]) for params, _ in start.trials]
    assert found == list(zip(table[f"config.{POLAR}"], table[f"config.{STEP}"], strict=True))


def test_slices_of_a_log_sampled_keyframe_have_a_log_axis(sweep):
    from latent_sweep.analysis.importance import configs_of
    from latent_sweep.analysis.plots_sweep import plot_slices
    from latent_sweep.analysis.results import load_sweeps

    configs = configs_of(*load_sweeps([sweep]), None)
    fig = plot_slices(configs, [f"config.{POLAR}", f"config.{STEP}"])
    # reg-polar spans less than 100× here: its log axis comes from the space's loguniform leaf.
    assert [ax.get_xscale() for ax in fig.axes[:2]] == ["log", "linear"]
    assert [ax.get_xlabel() for ax in fig.axes[:2]] == [POLAR, STEP]
