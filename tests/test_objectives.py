from __future__ import annotations

import pytest
import torch

from latent_sweep.objectives import (
    Anchor,
    Pin,
    Planarity,
    Separate,
    SeparateEuclidean,
    Unitarity,
    affinity_matrix,
    per_sample,
    weigh,
)


def test_unitarity_planarity_pin():
    z = torch.tensor([[3.0, 4.0, 0.0, 0.0], [1.0, 0.0, 2.0, 1.0]])
    assert torch.allclose(
        per_sample(Unitarity(name="u", kind="unitarity"), z), torch.tensor([16.0, 6.0 - 2 * 6**0.5 + 1])
    )
    assert torch.allclose(per_sample(Planarity(name="p", kind="planarity"), z), torch.tensor([0.0, 5.0]))
    assert torch.allclose(
        per_sample(Planarity(name="p", kind="planarity", plane=(0, 2)), z), torch.tensor([16.0, 1.0])
    )
    pin = Pin(name="x", kind="pin", point=[1, 0, 0, 0])
    assert torch.allclose(per_sample(pin, z), torch.tensor([4.0 + 16.0, 5.0]))


def test_separate_ignores_self_and_duplicates():
    z = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 2.0], [-1.0, 0.0]])
    loss = per_sample(Separate(name="s", kind="separate", power=1, shift=False), z)
    # Rows 0 and 1 are duplicates (c = 1): they neither repel themselves nor each other.
    assert torch.allclose(loss, torch.tensor([-1.0, -1.0, 0.0, -2.0]))
    shifted = per_sample(Separate(name="s", kind="separate", power=2, shift=True), z)
    # SPEC order: zero c ≈ 1 first, then shift, so masked entries count (0 + 1)/2 — a constant.
    assert torch.allclose(shifted[2], torch.tensor(4 * 0.25))


def test_separate_euclidean_mean_inverse_square_distance():
    z = torch.tensor([[0.0, 0.0, 5.0], [1.0, 0.0, 0.0], [0.0, 2.0, 0.0]])
    loss = per_sample(SeparateEuclidean(name="e", kind="separate_euclidean", channels=[0, 1]), z)
    expected0 = (1 / (1 + 1e-6) + 1 / (4 + 1e-6)) / 2
    assert loss[0].item() == pytest.approx(expected0, rel=1e-5)


def test_anchor_compares_with_recorded_latents():
    now, then = torch.tensor([[1.0, 1.0]]), torch.tensor([[0.0, 1.0]])
    assert per_sample(Anchor(name="a", kind="anchor"), now, then).item() == 1.0


def test_affinity_rule_and_weighting():
    from types import SimpleNamespace

    terms = [
        Pin(name="p", kind="pin", point=[0, 0], affinities={"red": 1.0, "vibrant": 0.5}),
        Unitarity(name="u", kind="unitarity"),
    ]
    cfg = SimpleNamespace(labels=SimpleNamespace(concepts={"red": None, "vibrant": None}), terms=terms)
    matrix, mask = affinity_matrix(cfg, "cpu")
    labels = torch.tensor([[1.0, 1.0], [0.2, 0.2], [0.0, 0.0]])
    a = torch.where(mask, (labels @ matrix).clamp(0, 1), 1.0)
    assert torch.allclose(a[:, 0], torch.tensor([1.0, 0.3, 0.0]))  # clamped at 1
    assert torch.allclose(a[:, 1], torch.ones(3))  # no affinities: every sample counts
    loss = torch.tensor([2.0, 4.0, 100.0])
    assert weigh(loss, a[:, 0]).item() == pytest.approx((2.0 + 1.2) / 1.3, rel=1e-6)
    assert weigh(loss, torch.zeros(3)).item() == 0.0  # all a_i = 0 → the term vanishes
