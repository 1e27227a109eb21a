"""The training step as a function of device tensors: no host sync inside it, and the same
numbers whether its draws come from the eager loop's chunk or from the step counter alone
(as a captured CUDA graph computes them)."""

from __future__ import annotations

import copy

import pandas as pd
import pytest
import torch
from test_autoencoder import short_curriculum
from torch.utils._python_dispatch import TorchDispatchMode

from latent_sweep.engine import graphs, loop
from latent_sweep.engine.models import Stack
from latent_sweep.engine.registry import run_trial
from latent_sweep.engine.session import LocalSession
from latent_sweep.engine.streams import MemberStreams
from latent_sweep.store.history import read_table

# Operators that wait for a tensor's values on the host: a scalar read (`.item()`, `bool()`,
# `int()`, `float()`, `.tolist()`) and the ops whose output shape depends on the values.
SYNCING = {"_local_scalar_dense", "nonzero", "masked_select", "unique", "_unique2", "repeat_interleave"}


class NoHostSync(TorchDispatchMode):
    """Raises on any operator that would sync a CUDA device with the host."""

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func._overloadpacket.__name__ in SYNCING:
            raise AssertionError(f"the step syncs with the host: {func}")
        return func(*args, **(kwargs or {}))


@pytest.fixture
def step_as_a_graph(monkeypatch):
    """Every step runs as a CUDA graph would run it — from the device counter alone, not the
    host's step — under `NoHostSync`."""

    def call(self, key, step):
        with NoHostSync():
            self.step(key, None)

    monkeypatch.setattr(graphs.StepGraphs, "__call__", call)


def projection() -> dict:
    return {
        "experiment": "projection",
        "steps": 120,
        "eval_every": 60,
        "checkpoint_every": 60,
        "schedule": {"keyframes": [{"STEP": 0, "lr": 3e-3, "exaggeration": 4}, {"STEP": 60}]},
        "data": {"source": "swiss_roll", "n_samples": 300},
        "model": {"hidden": [16]},
        "members": [{"seed": s} for s in (0, 1, 2)],
    }


def curriculum() -> dict:
    # Phases on three training sets, the anchor action, a data fraction rebuilt along a ramp,
    # hard labels; two members whose fractions differ (a row of weights each).
    raw = short_curriculum(159, 0.8)
    raw.update(eval_every=80, checkpoint_every=80, history_every=1)
    raw["members"] = [{"seed": 3}, {"seed": 4, "schedule.scale.data-fraction": 0.5}]
    return raw


def hard_ex17(raw: dict) -> dict:
    out = copy.deepcopy(raw)
    out.update(steps=150, history_every=1, members=[{"seed": s} for s in (1, 2)])
    out["labels"]["mode"] = "hard"
    return out


def outputs(path) -> tuple[pd.DataFrame, pd.DataFrame]:
    drop = ["wall_time", "trial_id"]
    return read_table(path / "history").drop(columns=drop), read_table(path / "evals").drop(
        columns="trial_id"
    )


@pytest.mark.parametrize("make", [curriculum, projection, hard_ex17], ids=["ex15", "projection", "ex17"])
def test_the_step_never_syncs_and_draws_the_same_from_its_counter(make, tiny_ex17, tmp_path, request):
    raw = make(tiny_ex17) if make is hard_ex17 else make()
    eager = run_trial(raw, LocalSession(tmp_path / "eager"))
    request.getfixturevalue("step_as_a_graph")
    graphed = run_trial(raw, LocalSession(tmp_path / "graph"))
    pd.testing.assert_frame_equal(graphed, eager)
    for a, b in zip(outputs(tmp_path / "graph"), outputs(tmp_path / "eager"), strict=True):
        pd.testing.assert_frame_equal(a, b)


def test_the_guard_catches_a_sync(step_as_a_graph):
    with pytest.raises(AssertionError, match="syncs with the host"), NoHostSync():
        bool(torch.ones(2).sum() > 1)


def test_member_streams_are_a_function_of_seed_and_step():
    shapes = {"pick": (64,), "labels": (64, 3)}
    alone = MemberStreams([11], 1, shapes, torch.device("cpu"))
    crowd = MemberStreams([5, 11, 9, 0], 1, shapes, torch.device("cpu"))
    for step in (0, 1, 63, 64, 4097, 9_999_999):
        t = torch.tensor(step)
        mine = alone.at(t)
        for name, u in crowd.at(t, step).items():
            assert torch.equal(u[1], mine[name][0])
            assert u.dtype == torch.float32 and 0 <= u.min() and u.max() < 1
    # Another stream of the same seed, another step: other numbers.
    other = MemberStreams([11], 2, shapes, torch.device("cpu")).at(torch.tensor(0))["pick"]
    assert not torch.equal(other, alone.at(torch.tensor(0))["pick"])
    assert not torch.equal(alone.at(torch.tensor(1))["pick"], alone.at(torch.tensor(0))["pick"])


def test_member_streams_are_uniform():
    u = MemberStreams(list(range(64)), 1, {"u": (256,)}, torch.device("cpu")).draw(torch.arange(64))["u"]
    counts = torch.histc(u.flatten(), bins=16, min=0, max=1)  # 2^20 numbers, 65,536 expected per bin
    assert (counts - 65536).abs().max() < 5 * 256  # 5 standard deviations
    # Neighbouring steps and members are uncorrelated.
    flat = u.flatten(1)
    assert torch.corrcoef(flat[:8]).fill_diagonal_(0).abs().max() < 0.04  # 5 standard errors of 16,384 pairs


@pytest.mark.parametrize("make", [hard_ex17, projection], ids=["ex17", "projection"])
def test_evaluating_in_blocks_of_members_gives_the_same_scores(make, tiny_ex17, tmp_path, monkeypatch):
    raw = make(tiny_ex17) if make is hard_ex17 else make()
    raw.update(steps=60, eval_every=60, checkpoint_every=60, members=[{"seed": s} for s in (1, 2, 3)])
    whole = run_trial(raw, LocalSession(tmp_path / "whole"))
    # A budget smaller than one member's evaluation: blocks of one member each.
    monkeypatch.setitem(loop.EVAL_BUDGET, "cpu", 1)
    blocks = []
    block = Stack.block
    monkeypatch.setattr(Stack, "block", lambda self, rows: blocks.append(rows) or block(self, rows))
    blocked = run_trial(raw, LocalSession(tmp_path / "blocked"))
    assert blocks == [slice(0, 1), slice(1, 2), slice(2, 3)]
    pd.testing.assert_frame_equal(blocked, whole, check_exact=True)
