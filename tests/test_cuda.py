"""The GPU path end to end: population trials, checkpoints and a Ray sweep on CUDA.

Marked `cuda`: skipped where no CUDA device is available (CI), run by `scripts/gpu_check.sh`.
"""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import assert_crash_resume_matches

from latent_sweep.experiments import run_trial
from latent_sweep.history import read_table
from latent_sweep.session import LocalSession

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


def on(raw: dict, device: str, seeds: range) -> dict:
    out = copy.deepcopy(raw)
    out.update(device=device, members=[{"seed": s} for s in seeds])
    return out


def test_a_population_trains_on_cuda(tiny_ex17, tmp_path):
    # CUDA generators draw other numbers than CPU ones: compare quality, not values.
    gpu = run_trial(on(tiny_ex17, "cuda", range(4)), LocalSession(tmp_path / "gpu"))
    cpu = run_trial(on(tiny_ex17, "cpu", range(4)), LocalSession(tmp_path / "cpu"))
    assert gpu["diverged_at"].isna().all() and gpu["recon_mse"].nunique() == 4
    assert gpu["recon_mse"].mean() < 2 * cpu["recon_mse"].mean()
    assert (gpu["trustworthiness_k10"] > 0.9).all()
    hist = read_table(tmp_path / "gpu" / "history")
    assert hist.groupby("member")["step"].count().tolist() == [300] * 4 and np.isfinite(hist["loss"]).all()


def test_cuda_resume_equals_an_uninterrupted_run(tiny_ex17, tmp_path):
    assert_crash_resume_matches(on(tiny_ex17, "cuda", range(3)), tmp_path)


def test_a_projection_population_on_cuda(tmp_path):
    raw = {
        "experiment": "projection",
        "device": "cuda",
        "steps": 200,
        "eval_every": 100,
        "checkpoint_every": 100,
        "schedule": {"keyframes": [{"STEP": 0, "lr": 3e-3, "exaggeration": 4}, {"STEP": 60}]},
        "data": {"source": "swiss_roll", "n_samples": 400},
        "model": {"hidden": [32, 32]},
        "members": [{"seed": s} for s in range(8)],
    }
    final = run_trial(raw, LocalSession(tmp_path))
    assert (final["trustworthiness_k10"] > 0.9).all()


def test_a_sweep_trial_with_a_gpu_share_runs_on_cuda(tmp_path):
    # An offline GPU image may lack Ray (its wheel is ~80 MB): the other CUDA tests still run.
    ray = pytest.importorskip("ray", reason="the sweep test needs Ray installed")
    import yaml
    from conftest import ROOT

    from latent_sweep import cli, config

    raw = copy.deepcopy(config.load_file(ROOT / "sweeps" / "ex17_seeds.yaml"))
    raw.update(steps=300, eval_every=100, checkpoint_every=100)
    raw["sweep"].update(seeds=8, resources={"cpu": 1, "gpu": 1})
    path = tmp_path / "gpu.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    ray.init(address="local", num_cpus=2, num_gpus=1, include_dashboard=False)
    try:
        assert cli.main(["run", str(path), "--storage", str(tmp_path / "res")]) == 0
    finally:
        ray.shutdown()
    trials = pd.read_parquet(tmp_path / "res" / "ex17_seeds" / "trials.parquet")
    assert len(trials) == 8 and (trials["status"] == "TERMINATED").all()
    assert (trials["config.device"] == "auto").all()
