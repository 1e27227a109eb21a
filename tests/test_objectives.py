from __future__ import annotations

import pytest
import torch

from latent_sweep.experiments.objectives import (
    Anchor,
    Pin,
    Planarity,
    Separate,
    SeparateEuclidean,
    TermSet,
    Unitarity,
    per_sample,
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
    # The order: zero c ≈ 1 first, then shift, so masked entries count (0 + 1)/2 — a constant.
    assert torch.allclose(shifted[2], torch.tensor(4 * 0.25))


def test_separate_euclidean_mean_inverse_square_distance():
    z = torch.tensor([[0.0, 0.0, 5.0], [1.0, 0.0, 0.0], [0.0, 2.0, 0.0]])
    loss = per_sample(SeparateEuclidean(name="e", kind="separate_euclidean", channels=[0, 1]), z)
    expected0 = (1 / (1 + 1e-6) + 1 / (4 + 1e-6)) / 2
    assert loss[0].item() == pytest.approx(expected0, rel=1e-5)


def test_anchor_compares_with_recorded_latents():
    now, then = torch.tensor([[1.0, 1.0]]), torch.tensor([[0.0, 1.0]])
    assert per_sample(Anchor(name="a", kind="anchor"), now, then).item() == 1.0


def test_term_set_applies_one_affinity_rule_and_shares_equal_terms():
    terms = [
        Pin(name="p", kind="pin", point=[0, 0], affinities={"red": 1.0, "vibrant": 0.5}),
        Unitarity(name="u", kind="unitarity"),
        Unitarity(name="u-red", kind="unitarity", affinities={"red": 1.0}),
    ]
    ts = TermSet(terms, ["red", "vibrant"], "cpu")
    assert ts.columns == [0, 1, 1]  # the two unitarity terms share one per-sample column
    z = torch.tensor([[1.0, 1.0], [2.0, 0.0], [3.0, 4.0]])
    labels = torch.tensor([[1.0, 1.0, 1.0], [0.2, 0.2, 1.0], [0.0, 0.0, 1.0]])  # last: "everyone"
    out = ts(z, labels, [True, True])
    pin, unit = per_sample(terms[0], z), per_sample(terms[1], z)
    a = torch.tensor([1.0, 0.3, 0.0])  # clamp(1·red + 0.5·vibrant, 0, 1)
    assert out[0].item() == pytest.approx(((pin * a).sum() / a.sum()).item(), rel=1e-5)
    assert out[1].item() == pytest.approx(unit.mean().item(), rel=1e-5)  # no affinities: all count
    red = torch.tensor([1.0, 0.2, 0.0])
    assert out[2].item() == pytest.approx(((unit * red).sum() / red.sum()).item(), rel=1e-5)
    nobody = ts(z, torch.tensor([[0.0, 0.0, 1.0]] * 3), [True, True])
    assert nobody[0].item() == 0.0  # all a_i = 0 → the term vanishes
    assert ts(z, labels, [False, True])[0].item() == 0.0  # inactive functions are not evaluated


def test_without_labels_the_term_set_gives_the_general_rule_bitwise():
    # A config without concepts passes no labels: every a_i = 1, the same numbers in fewer kernels.
    torch.manual_seed(0)
    terms = [Unitarity(name="u", kind="unitarity"), Planarity(name="p", kind="planarity")]
    ts = TermSet(terms, [], "cpu")
    z = torch.randn(3, 256, 4)
    everyone = torch.ones(3, 256, 1)
    assert torch.equal(ts(z, None, [True, True]), ts(z, everyone, [True, True]))


def test_a_run_of_channels_is_picked_as_a_view_with_the_same_values_and_gradients():
    torch.manual_seed(1)
    z = torch.randn(2, 64, 4, requires_grad=True)
    run = per_sample(SeparateEuclidean(name="s", kind="separate_euclidean", channels=[1, 2]), z)
    (grad_run,) = torch.autograd.grad(run.sum(), z)
    w = z.detach()[..., [1, 2]].clone().requires_grad_()
    whole = per_sample(SeparateEuclidean(name="s", kind="separate_euclidean"), w)
    (grad_whole,) = torch.autograd.grad(whole.sum(), w)
    assert torch.equal(run, whole)
    assert torch.equal(grad_run[..., [1, 2]], grad_whole)
    assert (grad_run[..., [0, 3]] == 0).all()
