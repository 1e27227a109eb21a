"""Populations: K members trained as one batched model behave as K separate runs would."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import assert_crash_resume_matches

from latent_sweep.engine.registry import TrialDiverged, run_trial
from latent_sweep.engine.session import LocalSession
from latent_sweep.errors import UserError
from latent_sweep.experiments.autoencoder import Autoencoders
from latent_sweep.spec.population import build_members
from latent_sweep.store.history import read_table

CPU = torch.device("cpu")


def population(raw: dict, *members: dict) -> dict:
    out = copy.deepcopy(raw)
    out["members"] = [dict(m) for m in members]
    return out


def seeds(*values: int) -> list[dict]:
    return [{"seed": s} for s in values]


def histories(trial_dir) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Without what differs between two runs: wall time, trial id (the directory)."""
    hist = read_table(trial_dir / "history").drop(columns=["wall_time", "trial_id"])
    return hist, read_table(trial_dir / "evals").drop(columns="trial_id")


def draws(batches, step: int, cached: bool) -> tuple[torch.Tensor, ...]:
    """Rows, inputs and labels of `step`'s batch; `cached` as the eager loop draws them (a chunk
    of steps at once), else as a CUDA graph does (from the step counter alone)."""
    t = torch.tensor(step)
    shape = batches.shape(step)
    x, labels = batches(t, shape, step if cached else None)
    rows = batches.pick(shape[0], batches.streams.at(t, step if cached else None)["pick"])
    return rows, x, labels


def test_a_member_draws_and_trains_as_it_would_alone(tiny_ex17, tmp_path):
    raw = copy.deepcopy(tiny_ex17)
    raw.update(steps=200, eval_every=200, checkpoint_every=200, history_every=1)
    pool = [3, 11, 5, 8, 0, 21, 2, 9]
    together = Autoencoders(build_members(population(raw, *seeds(*pool))), CPU).batches
    # Another population size, the members in another order: the same draws per seed.
    others = Autoencoders(build_members(population(raw, *seeds(*reversed(pool), 42, 77))), CPU).batches
    checked = (1, 4, 6, 7)  # four members of the eight
    alone = {k: Autoencoders(build_members(population(raw, *seeds(pool[k]))), CPU).batches for k in checked}
    for step in range(200):
        rows8, x8, labels8 = draws(together, step, cached=True)
        rows6, _, labels6 = draws(others, step, cached=False)
        for k, single in alone.items():
            rows1, x1, labels1 = draws(single, step, cached=step % 2 == 0)
            assert torch.equal(rows8[k], rows1[0]) and torch.equal(rows6[len(pool) - 1 - k], rows1[0])
            assert torch.equal(x8[k], x1[0]) and torch.equal(labels8[k], labels1[0])
            assert torch.equal(labels6[len(pool) - 1 - k], labels1[0])

    run_trial(population(raw, *seeds(*pool)), LocalSession(tmp_path / "k8"))
    hist8 = read_table(tmp_path / "k8" / "history")
    for k in checked:
        run_trial(population(raw, *seeds(pool[k])), LocalSession(tmp_path / f"alone{k}"))
        hist1 = read_table(tmp_path / f"alone{k}" / "history")
        mine = hist8[hist8["member"] == k].reset_index(drop=True)
        assert (mine["seed"] == pool[k]).all() and (hist1["seed"] == pool[k]).all()
        np.testing.assert_allclose(mine["loss"], hist1["loss"], rtol=1e-5)
        np.testing.assert_allclose(mine["term.reg-separate"], hist1["term.reg-separate"], rtol=1e-5)


def test_rerunning_a_population_gives_identical_histories(tiny_ex17, tmp_path):
    raw = population(tiny_ex17, *seeds(4, 1, 9))
    a = run_trial(raw, LocalSession(tmp_path / "a"))
    b = run_trial(raw, LocalSession(tmp_path / "b"))
    pd.testing.assert_frame_equal(a, b)
    for x, y in zip(histories(tmp_path / "a"), histories(tmp_path / "b"), strict=True):
        pd.testing.assert_frame_equal(x, y)
    hist, evals = histories(tmp_path / "a")
    assert hist[["step", "member"]].values[:4].tolist() == [[0, 0], [0, 1], [0, 2], [1, 0]]
    assert evals.groupby("step")["seed"].apply(list).tolist() == [[4, 1, 9]] * 3
    # Different seeds, different members.
    assert a["recon_mse"].nunique() == 3


def test_population_resume_after_a_crash_equals_an_uninterrupted_run(tiny_ex17, tmp_path):
    assert_crash_resume_matches(population(tiny_ex17, *seeds(2, 5)), tmp_path)


def test_members_with_different_schedules_train_side_by_side(tiny_ex17, tmp_path):
    raw = population(
        tiny_ex17,
        {"seed": 0},
        {"seed": 0, "schedule.keyframes[5].reg-polar": 0.05, "schedule.scale.reg-separate": 2.0},
        {"seed": 1, "terms[1].power": 4},
    )
    final = run_trial(raw, LocalSession(tmp_path))
    hist = read_table(tmp_path / "history").set_index(["step", "member"])
    # Keyframe 5 sits at step 5000 (past this short run): its value moves the ramp towards it.
    assert hist.loc[(250, 1), "reg-polar"] > hist.loc[(250, 0), "reg-polar"]
    assert hist.loc[(250, 1), "reg-separate"] == pytest.approx(2 * hist.loc[(250, 0), "reg-separate"])
    assert hist.loc[(250, 2), "reg-separate"] == hist.loc[(250, 0), "reg-separate"]
    # Same seed, different schedule: same start, different end.
    assert hist.loc[(0, 0), "term.recon"] == hist.loc[(0, 1), "term.recon"]
    assert final.loc[0, "recon_mse"] != final.loc[1, "recon_mse"]


def test_a_diverging_member_is_frozen_and_the_others_train_on(tiny_ex17, tmp_path):
    raw = population(tiny_ex17, {"seed": 0}, {"seed": 1, "schedule.scale.lr": 1e15}, {"seed": 2})
    final = run_trial(raw, LocalSession(tmp_path)).set_index("member")
    assert final.loc[1, "diverged_at"] < 100
    assert final.loc[1].drop(["seed", "diverged_at"]).isna().all()
    scores = final.drop(columns=["seed", "diverged_at"]).loc[[0, 2]]
    assert np.isfinite(scores.to_numpy()).all() and final.loc[[0, 2], "diverged_at"].isna().all()
    evals = read_table(tmp_path / "evals")
    assert (evals.loc[evals["member"] == 1, "diverged_at"] == final.loc[1, "diverged_at"]).all()


def test_a_trial_errors_when_every_member_diverged(tiny_ex17, tmp_path):
    raw = population(tiny_ex17, *[{"seed": s, "schedule.scale.lr": 1e15} for s in (0, 1)])
    with pytest.raises(
        TrialDiverged, match=r"every member's loss became non-finite \(the first at step \d+\)"
    ):
        run_trial(raw, LocalSession(tmp_path))


def test_members_must_share_shapes_and_phases(tiny_ex17, tmp_path):
    with pytest.raises(UserError) as info:
        run_trial(
            population(tiny_ex17, {"seed": 0}, {"seed": 1, "model.hidden": [8]}), LocalSession(tmp_path)
        )
    assert str(info.value) == (
        "config: members 0 and 1 differ in `model.hidden[0]` (16 vs 8), which cannot vary within a "
        "population: members train as one batched model and share its shapes, data and labels; only "
        "the seed, schedule keyframes, `schedule.scale.*` and scalar term parameters may differ"
    )
    moved_end = population(tiny_ex17, {"seed": 0}, {"seed": 1, "schedule.keyframes[7].STEP": 9000})
    moved_end.pop("steps")
    with pytest.raises(UserError, match="members 0 and 1 have schedules of different length"):
        run_trial(moved_end, LocalSession(tmp_path))


def test_validate_checks_every_member(tiny_ex17, tmp_path, capsys):
    import yaml

    from latent_sweep.cli import main

    good, bad = tmp_path / "good.yaml", tmp_path / "bad.yaml"
    good.write_text(yaml.safe_dump(population(tiny_ex17, *seeds(0, 1, 2))))
    bad.write_text(yaml.safe_dump(population(tiny_ex17, {"seed": 0}, {"seed": 1, "data.batch_size": 32})))
    assert main(["validate", str(good)]) == 0
    assert capsys.readouterr().out.strip().endswith("phases: Train [0–10000]; 3 members")
    assert main(["validate", str(bad)]) == 2
    assert capsys.readouterr().err.startswith(
        f"error: {bad}: members 0 and 1 differ in `data.batch_size` (64 vs 32), which cannot vary"
    )
