from __future__ import annotations

import copy
import os
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import assert_crash_resume_matches

from latent_sweep.engine.registry import run_trial
from latent_sweep.engine.session import LocalSession
from latent_sweep.spec import config
from latent_sweep.store.history import read_table

ROOT = Path(__file__).resolve().parent.parent


def tables(trial_dir: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """History and evaluations without what differs between two runs: wall time, trial id (the directory)."""
    hist = read_table(trial_dir / "history").drop(columns=["wall_time", "trial_id"])
    return hist, read_table(trial_dir / "evals").drop(columns="trial_id")


def test_short_run_writes_the_trial_layout(tiny_ex17, tmp_path):
    final = run_trial(tiny_ex17, LocalSession(tmp_path))
    hist, evals = tables(tmp_path)
    assert hist["step"].tolist() == list(range(300))
    assert hist["step"].dtype == "int64" and (hist["member"] == 0).all() and (hist["seed"] == 7).all()
    for col in ["phase", "lr", "reg-polar", "term.recon", "weighted.reg-separate", "term.reg-norm", "loss"]:
        assert col in hist.columns
    assert (hist["phase"] == "Train").all()
    assert evals["step"].tolist() == [100, 200, 300]
    assert set(final.columns) == set(evals.columns) - {"step"}
    assert final[["member", "seed"]].values.tolist() == [[0, 7]] and final["diverged_at"].isna().all()
    assert {"hue_corr", "hue_order", "hue_winding", "anchor_error_red", "recon_mse", "norm_error"} <= set(
        set(final.columns)
    )
    assert yaml.safe_load((tmp_path / "config.yaml").read_text()) == tiny_ex17
    assert len(list((tmp_path / "latents").glob("step-*.parquet"))) == 1
    # Weighted = weight × unweighted, with the schedule's weight for that step.
    row = hist.iloc[150]
    assert row["weighted.reg-polar"] == pytest.approx(row["reg-polar"] * row["term.reg-polar"], rel=1e-5)


def test_resume_after_a_crash_equals_an_uninterrupted_run(tiny_ex17, tmp_path):
    assert_crash_resume_matches(tiny_ex17, tmp_path)


def test_hard_labels_differ_from_soft(tiny_ex17, tmp_path):
    soft = copy.deepcopy(tiny_ex17)
    soft["labels"]["mode"] = "soft"
    a = run_trial(soft, LocalSession(tmp_path / "soft"))
    b = run_trial(tiny_ex17, LocalSession(tmp_path / "hard"))
    assert a.loc[0, "recon_mse"] != b.loc[0, "recon_mse"]


def short_curriculum(end: int, fraction: float) -> dict:
    """ex15 on a short three-phase sheet: the anchor action at step 40, the full color space
    (data fraction `fraction`) from step 80, the last step `end`."""
    raw, _ = config.split_sweep(config.load_file(ROOT / "sweeps" / "ex15.yaml"))
    raw["schedule"]["keyframes"] = [
        {"STEP": 0, "PHASE": "Primary & secondary", "lr": 0.01, "reg-anchor": 0.0, "data-fraction": 0.0},
        {"STEP": 40, "PHASE": "All hues", "ACTION": "anchor", "reg-anchor": 1.0},
        {"STEP": 80, "PHASE": "Full color space", "data-fraction": fraction, "lr": 0.005},
        {"STEP": end},
    ]
    return raw


def test_curriculum_phases_anchor_action_and_checkpointed_anchors(tmp_path):
    raw = short_curriculum(119, 1.0)
    raw.update(eval_every=40, checkpoint_every=60, seed=1)
    session = LocalSession(tmp_path)
    run_trial(raw, session)
    hist = read_table(tmp_path / "history")
    assert hist.groupby("phase")["step"].agg(["min", "max"]).loc["All hues"].tolist() == [40, 79]
    assert (hist.loc[hist.step < 40, "term.reg-anchor"] == 0).all()
    assert (hist.loc[hist.step > 41, "term.reg-anchor"] > 0).all()
    state = session.restore()
    assert state["step"] == 120
    assert state["experiment"]["anchors"]["reg-anchor"].shape == (1, 6, 4)


@pytest.mark.slow
def test_killed_train_command_continues_to_the_same_files(tiny_ex17, tmp_path):
    raw = copy.deepcopy(tiny_ex17)
    raw.update(steps=1500, eval_every=250, checkpoint_every=500)
    cfg_file = tmp_path / "config.yaml"
    cfg_file.write_text(yaml.safe_dump(raw))
    cmd = [sys.executable, "-m", "latent_sweep", "train", str(cfg_file)]
    subprocess.run([*cmd, "--out", str(tmp_path / "whole")], check=True, capture_output=True)

    cut = tmp_path / "cut"
    proc = subprocess.Popen(
        [*cmd, "--out", str(cut)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        start_new_session=True,
    )
    for line in proc.stdout:  # blocks until the command announces its first checkpoint
        if line.startswith("checkpoint: step 500"):
            break
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert read_table(cut / "evals")["step"].max() < 1500  # it really was cut short
    subprocess.run([*cmd, "--out", str(cut)], check=True, capture_output=True)
    for a, b in zip(tables(tmp_path / "whole"), tables(cut), strict=True):
        pd.testing.assert_frame_equal(a, b)


def test_train_refuses_a_directory_holding_another_trial(tiny_ex17, tmp_path, capsys):
    from latent_sweep.cli import main

    raw = copy.deepcopy(tiny_ex17)
    raw.update(steps=100, eval_every=50, checkpoint_every=50, snapshot_every=25)
    cfg_file = tmp_path / "config.yaml"
    cfg_file.write_text(yaml.safe_dump(raw))
    out = tmp_path / "trial"
    assert main(["train", str(cfg_file), "--out", str(out)]) == 0
    # Snapshots between evaluations too: every 25 steps.
    assert sorted(p.name for p in (out / "latents").iterdir()) == [
        f"step-{s:09d}.parquet" for s in (25, 50, 75, 100)
    ]
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    capsys.readouterr()

    assert main(["train", str(cfg_file), "--out", str(out), "--seed", "8"]) == 2
    assert capsys.readouterr().err == (
        f"error: {out} holds a trial of another config (`seed` is 7 there, 8 here); train into another "
        f"directory with --out, or remove {out} to start over\n"
    )
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before

    assert main(["train", str(cfg_file), "--out", str(out)]) == 0  # the same config: it continues
    assert capsys.readouterr().out.startswith(f"resuming from step 100 (the last checkpoint in {out})")


def test_data_fraction_weights_apply_from_a_phases_first_step():
    # ex15: the fraction is 0 (only the most vibrant colors) from step 3000 on, unchanged since
    # step 0 — the "All hues" phase must draw from the vibrant colors on its first step, and
    # so must a trial resumed in the middle of it.
    import torch

    from latent_sweep.experiments.autoencoder import Autoencoders
    from latent_sweep.spec.population import build_members

    raw, _ = config.split_sweep(config.load_file(ROOT / "sweeps" / "ex15.yaml"))
    members = build_members(raw)
    for first in (3000, 5000):
        batches = Autoencoders(members, torch.device("cpu")).batches
        x, _ = batches(torch.tensor(first), batches.shape(first), first)
        vibrancy = x.max(dim=-1).values - x.min(dim=-1).values
        assert vibrancy.min() >= 0.99, first
    # Past the ramp (fraction 1), every color of the cube may be drawn.
    batches = Autoencoders(members, torch.device("cpu")).batches
    x, _ = batches(torch.tensor(15000), batches.shape(15000), None)
    assert (x.max(dim=-1).values - x.min(dim=-1).values).min() < 0.5


def test_curriculum_resume_after_a_crash_equals_an_uninterrupted_run(tmp_path):
    # Phases, the anchor action and a data fraction that stops changing before the checkpoint
    # the crashed run resumes from (step 100).
    raw = short_curriculum(199, 0.8)
    raw.update(eval_every=50, checkpoint_every=100, seed=3, members=[{"seed": 3}, {"seed": 4}])
    assert_crash_resume_matches(raw, tmp_path)


def test_members_sharing_a_data_fraction_sample_by_the_weights_of_members_that_do_not():
    # Shared fractions build one row of sampling weights, differing ones a row per member:
    # the rows must be the same numbers for the same fraction, or a member's batches would
    # depend on its neighbours.
    import torch

    from latent_sweep.experiments.autoencoder import Autoencoders
    from latent_sweep.spec.population import build_members

    raw, _ = config.split_sweep(config.load_file(ROOT / "sweeps" / "ex15.yaml"))
    shared = build_members({**raw, "members": [{"seed": 0}, {"seed": 1}]})
    mixed = build_members({**raw, "members": [{"seed": 0}, {"seed": 1, "schedule.scale.data-fraction": 0.5}]})

    def cdf(members, step: int) -> torch.Tensor:
        batches = Autoencoders(members, torch.device("cpu")).batches
        batches.rebuild(torch.tensor(step))
        return batches.cdf

    for step in (6000, 12000):
        one, rows = cdf(shared, step), cdf(mixed, step)
        assert one.shape == (3600,) and rows.shape == (2, 3600)
        assert torch.equal(rows[0], one) and not torch.equal(rows[1], one)
