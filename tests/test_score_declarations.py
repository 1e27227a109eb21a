"""Experiments declare their scores (name and goal): what an evaluation returns must be exactly
what its config declares, and `trials.parquet` takes its score columns from the declaration."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest

from latent_sweep.analysis.results import KEY_COLUMNS, lower_is_better, member_rows
from latent_sweep.engine.registry import run_trial
from latent_sweep.engine.session import LocalSession
from latent_sweep.experiments.autoencoder import Autoencoders
from latent_sweep.scores.declarations import ScoreMismatch
from latent_sweep.spec import config
from latent_sweep.spec.experiment import declared, goal_of
from latent_sweep.spec.population import declared_for
from latent_sweep.tune import trials

AE_FIXED = [
    "recon_mse", "recon_mse_vibrant", "recon_mse_dark", "recon_mse_desaturated", "hue_corr", "hue_order",
    "hue_winding", "planarity_vibrant", "norm_error",
]  # fmt: skip


def short(raw: dict, **changes) -> dict:
    raw = copy.deepcopy(raw)
    raw.update(steps=50, eval_every=50, checkpoint_every=50, **changes)
    return raw


def neighbor_names(ks: list[int], kinds=("trustworthiness", "continuity", "knn_recall")) -> list[str]:
    return [f"{kind}_k{k}" for kind in kinds for k in ks]


def test_names_follow_the_config(tiny_ex17):
    raw = copy.deepcopy(tiny_ex17)
    raw["scores"] = {"neighbors_k": [3, 7]}
    raw["labels"]["concepts"]["green"] = {"kind": "color", "rgb": [0, 1, 0]}
    pin = next(t for t in raw["terms"] if t["kind"] == "pin")
    pin["affinities"] = {"red": 1.0, "green": 1.0, "vibrant": 1.0}  # vibrant: not a color, no anchor
    goals = declared(config.validate(raw))
    assert list(goals) == [*AE_FIXED, "anchor_error_red", "anchor_error_green", *neighbor_names([3, 7])]
    assert {n: g for n, g in goals.items() if g == "min"}.keys() == {
        "recon_mse", "recon_mse_vibrant", "recon_mse_dark", "recon_mse_desaturated", "planarity_vibrant",
        "norm_error", "anchor_error_red", "anchor_error_green",
    }  # fmt: skip

    projection = {"experiment": "projection", "schedule": raw["schedule"], "scores": {"ks": [4]}}
    for source, extra in [
        ("digits", ["knn_accuracy_k4"]),
        ("swiss_roll", []),
        ("color_cube", ["hue_corr", "hue_order", "hue_winding"]),
    ]:
        cfg = config.validate({**projection, "data": {"source": source}})
        assert list(declared(cfg)) == [*neighbor_names([4]), *extra], source


def test_goals_by_name_alone():
    assert [goal_of(n) for n in ("anchor_error_blue", "knn_accuracy_k12", "hue_winding")] == [
        "min",
        "max",
        "max",
    ]
    assert goal_of("hue_corr_std") is None and goal_of("loss") is None
    assert lower_is_better("best_recon_mse_dark") and not lower_is_better("best_continuity_k5")


@pytest.mark.slow
@pytest.mark.parametrize("experiment", ["autoencoder", "projection"])
def test_evaluations_return_exactly_the_declared_scores(experiment, tiny_ex17, tmp_path):
    raw = short(tiny_ex17)
    if experiment == "projection":
        data = {"source": "color_cube", "cube": "rgb", "grid": 6}
        raw = short({"experiment": "projection", "schedule": raw["schedule"], "data": data})
    final = run_trial(raw, LocalSession(tmp_path))
    goals = declared(config.validate(raw))
    assert {c for c in final.columns if c not in ("member", "seed", "diverged_at")} == set(goals)
    evals = pd.read_parquet(tmp_path / "evals")
    assert set(evals.columns) - set(KEY_COLUMNS) == set(goals)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (lambda s: {**s, "hue_spread": s["hue_corr"]}, "returned hue_spread, which it does not declare"),
        (
            lambda s: {k: v for k, v in s.items() if k != "norm_error"},
            "declared norm_error, which it did not return",
        ),
    ],
)
def test_an_undeclared_or_missing_score_stops_the_trial(change, problem, tiny_ex17, tmp_path, monkeypatch):
    evaluate = Autoencoders.evaluate
    monkeypatch.setattr(Autoencoders, "evaluate", lambda self, rows: change(evaluate(self, rows)))
    raw = short(tiny_ex17)
    with pytest.raises(ScoreMismatch) as err:
        run_trial(raw, LocalSession(tmp_path))
    names = ", ".join(declared(config.validate(raw)))
    assert str(err.value) == (
        f"experiment `autoencoder` {problem} for this config (declared: {names}); its "
        "`Experiment.scores` must list every score its evaluation returns (latent_sweep.scores.declarations)"
    )
    assert not (tmp_path / "evals").exists()  # nothing half-scored was written


def test_trials_parquet_columns_come_from_the_declaration(tiny_ex17):
    raw = short(tiny_ex17, members=[{"seed": 0}, {"seed": 1}])
    goals = declared_for(raw)
    assert goals is not None and "anchor_error_red" in goals
    evals = pd.DataFrame(
        {"step": [50, 50, 100, 100], "member": [0, 1, 0, 1], "seed": [0, 1, 0, 1]}
        | {name: [0.4, 0.6, 0.2, 0.8] for name in goals}
    )
    rows = member_rows("t0", "TERMINATED", raw, evals, goals, steps=100)
    table = trials.to_table(rows)
    scores = [n for n in table.column_names if n in goals]
    assert scores == list(goals) and [n for n in table.column_names if n.startswith("best_")] == [
        f"best_{n}" for n in goals
    ]
    got = table.to_pandas()
    assert got["hue_corr"].tolist() == [0.2, 0.8] and got["best_hue_corr"].tolist() == [0.4, 0.8]
    assert got["best_recon_mse"].tolist() == [0.2, 0.6]  # lower is better: the minimum

    # A trial stopped before its first evaluation still has every declared column, empty.
    empty = trials.to_table(member_rows("t1", "ERROR", raw, evals.iloc[:0], goals, steps=0))
    assert [n for n in empty.column_names if n in goals] == list(goals)
    assert np.isnan(empty.column("hue_corr").to_numpy(zero_copy_only=False)).all()

    # Evaluations holding a score the config does not declare, or lacking one, are an error.
    with pytest.raises(ScoreMismatch, match="returned hue_spread, which it does not declare"):
        member_rows("t2", "TERMINATED", raw, evals.assign(hue_spread=0.5), goals)
    with pytest.raises(ScoreMismatch, match="declared anchor_error_red, which it did not return"):
        member_rows("t3", "TERMINATED", raw, evals.drop(columns="anchor_error_red"), goals)
