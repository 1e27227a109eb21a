"""The GPU path end to end: population trials, checkpoints and a Ray sweep on CUDA.

Marked `cuda`: skipped where no CUDA device is available (CI), run by `scripts/gpu_check.sh`.
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from conftest import ROOT, assert_crash_resume_matches
from test_autoencoder import short_curriculum
from test_population import draws
from test_step import projection

from latent_sweep.engine.registry import run_trial
from latent_sweep.engine.session import LocalSession
from latent_sweep.experiments.autoencoder import Autoencoders
from latent_sweep.spec import config
from latent_sweep.spec.population import build_members
from latent_sweep.store.history import read_table

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


def on(raw: dict, device: str, seeds: range) -> dict:
    out = copy.deepcopy(raw)
    out.update(device=device, members=[{"seed": s} for s in seeds])
    return out


def test_a_population_trains_on_cuda(tiny_ex17, tmp_path):
    # Members draw the same batches on CPU and CUDA (counter-based streams), but CPU and CUDA
    # kernels round differently: the same training, final scores within a tolerance.
    gpu = run_trial(on(tiny_ex17, "cuda", range(4)), LocalSession(tmp_path / "gpu"))
    cpu = run_trial(on(tiny_ex17, "cpu", range(4)), LocalSession(tmp_path / "cpu"))
    assert gpu["diverged_at"].isna().all() and gpu["recon_mse"].nunique() == 4
    pd.testing.assert_series_equal(gpu["diverged_at"], cpu["diverged_at"])
    rel = ((gpu["recon_mse"] - cpu["recon_mse"]) / cpu["recon_mse"]).abs()
    assert (rel < 5e-2).all(), rel.tolist()
    tw = gpu["trustworthiness_k10"] - cpu["trustworthiness_k10"]
    assert abs(tw.mean()) < 0.02, tw.tolist()
    hist = read_table(tmp_path / "gpu" / "history")
    assert hist.groupby("member")["step"].count().tolist() == [300] * 4 and np.isfinite(hist["loss"]).all()


def test_cuda_resume_equals_an_uninterrupted_run(tiny_ex17, tmp_path):
    # Under CUDA graphs (`cuda_graph: auto`, the default): the restore writes into the tensors
    # the graphs captured.
    assert_crash_resume_matches(on(tiny_ex17, "cuda", range(3)), tmp_path / "ex17")
    curriculum = short_curriculum(199, 0.8)
    curriculum.update(eval_every=50, checkpoint_every=100, device="cuda", members=[{"seed": 3}, {"seed": 4}])
    assert_crash_resume_matches(curriculum, tmp_path / "ex15")


def curriculum_on_cuda() -> dict:
    raw = short_curriculum(199, 0.8)
    raw.update(eval_every=100, checkpoint_every=100, device="cuda", history_every=1)
    raw["members"] = [{"seed": 3}, {"seed": 4, "schedule.scale.data-fraction": 0.5}]
    return raw


@pytest.mark.parametrize("which", ["ex17", "ex15"])
def test_graph_replay_equals_the_eager_step(which, tiny_ex17, tmp_path, monkeypatch):
    raw = on(tiny_ex17, "cuda", range(8)) if which == "ex17" else curriculum_on_cuda()
    raw.update(steps=200, history_every=1)
    replays = []
    replay = torch.cuda.CUDAGraph.replay
    monkeypatch.setattr(torch.cuda.CUDAGraph, "replay", lambda g: replays.append(1) or replay(g))
    graph = run_trial({**raw, "cuda_graph": "auto"}, LocalSession(tmp_path / "graph"))
    assert len(replays) == 200  # every step replayed a graph
    eager = run_trial({**raw, "cuda_graph": "off"}, LocalSession(tmp_path / "eager"))
    assert len(replays) == 200
    a, b = (read_table(tmp_path / d / "history") for d in ("graph", "eager"))
    for column in [c for c in a.columns if c.startswith(("term.", "loss"))]:
        np.testing.assert_allclose(a[column], b[column], rtol=1e-4, atol=1e-7, err_msg=column)
    np.testing.assert_allclose(graph["recon_mse"], eager["recon_mse"], rtol=1e-3)


@pytest.mark.parametrize("which", ["ex17", "ex15"])
def test_cpu_and_cuda_draw_the_same_batches(which, tiny_ex17):
    raw = on(tiny_ex17, "cpu", range(8)) if which == "ex17" else {**curriculum_on_cuda(), "device": "cpu"}
    members = build_members(raw)
    cpu = Autoencoders(members, torch.device("cpu")).batches
    gpu = Autoencoders(members, torch.device("cuda")).batches
    for step in range(200):
        for mine, theirs in zip(draws(cpu, step, cached=True), draws(gpu, step, cached=False), strict=True):
            if mine is None:  # the primaries: no rows drawn
                assert theirs is None
                continue
            assert torch.equal(mine, theirs.cpu()), step


def test_a_projection_population_on_cuda(tmp_path):
    raw = projection()
    raw.update(steps=200, eval_every=100, checkpoint_every=100)
    raw["data"]["n_samples"], raw["model"]["hidden"] = 400, [32, 32]
    gpu = run_trial(on(raw, "cuda", range(8)), LocalSession(tmp_path / "gpu"))
    cpu = run_trial(on(raw, "cpu", range(8)), LocalSession(tmp_path / "cpu"))
    # Quality against the same population on CPU: an absolute bar is a property of the seeds
    # (seed 2 ends at 0.882 on both devices), not of the device.
    assert gpu["diverged_at"].isna().all() and cpu["diverged_at"].isna().all()
    gap = gpu["trustworthiness_k10"].mean() - cpu["trustworthiness_k10"].mean()
    assert abs(gap) < 0.02, (gpu["trustworthiness_k10"].tolist(), cpu["trustworthiness_k10"].tolist())
    assert (gpu["trustworthiness_k10"] > 0.85).all(), gpu["trustworthiness_k10"].tolist()


def run_sweep(raw: dict, tmp_path, cpus: int) -> Path:
    """Run the sweep file `raw` on a local Ray of `cpus` CPUs and the one GPU; its results."""
    # An offline GPU image may lack Ray (its wheel is ~80 MB): the other CUDA tests still run.
    ray = pytest.importorskip("ray", reason="the sweep tests need Ray installed")
    from latent_sweep import cli

    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    ray.init(address="local", num_cpus=cpus, num_gpus=1, include_dashboard=False)
    try:
        assert cli.main(["run", str(path), "--storage", str(tmp_path / "res")]) == 0
    finally:
        ray.shutdown()
    return tmp_path / "res" / raw["sweep"].get("name", raw["name"])


def ex17_seeds() -> dict:
    return copy.deepcopy(config.load_file(ROOT / "sweeps" / "ex17_seeds.yaml"))


def test_a_sweep_trial_with_a_gpu_share_runs_on_cuda(tmp_path):
    raw = ex17_seeds()
    raw.update(steps=300, eval_every=100, checkpoint_every=100)
    raw["sweep"].update(seeds=8, resources={"cpu": 1, "gpu": 1})
    trials = pd.read_parquet(run_sweep(raw, tmp_path, cpus=2) / "trials.parquet")
    assert len(trials) == 8 and (trials["status"] == "TERMINATED").all()
    assert (trials["device"] == "cuda:0").all()


def test_four_trials_share_one_gpu(tmp_path, capsys):
    # Four trials of 4 members, a quarter of the one GPU each: Ray runs them at once on it.
    raw = ex17_seeds()
    raw.update(steps=3000, eval_every=250, checkpoint_every=1500)
    space = {"schedule.scale.reg-separate": {"uniform": [0.5, 2.0]}}
    raw["sweep"].update(seeds=4, num_samples=4, space=space, resources={"cpu": 1, "gpu": 0.25})
    results = run_sweep(raw, tmp_path, cpus=4)
    assert "1 cpu + 0.25 gpu per trial (trains on cuda)" in capsys.readouterr().out
    trials = pd.read_parquet(results / "trials.parquet")
    assert len(trials) == 16 and trials["trial_id"].nunique() == 4
    assert (trials["status"] == "TERMINATED").all() and (trials["device"] == "cuda:0").all()
    # Each trial's span from its own files (exact times, where Ray's result stamps are whole
    # seconds and its logs are copied into storage at the end): it writes config.yaml as it
    # starts and its last evaluations as it ends. Run one after another, the spans would not
    # overlap; all four overlap when they run at once.
    spans = []
    for d in trials["trial_dir"].unique():
        evals = [f.stat().st_mtime for f in (results / d / "evals").iterdir()]
        spans.append(((results / d / "config.yaml").stat().st_mtime, max(evals)))
    assert max(start for start, _ in spans) < min(end for _, end in spans), spans
