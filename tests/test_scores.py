from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from latent_sweep import hue_scores
from latent_sweep.scores import geometry as scores


def wheel(h: np.ndarray, sign: float = 1.0, offset: float = 0.3, dims: int = 4) -> np.ndarray:
    z = np.zeros((len(h), dims))
    z[:, 0], z[:, 1] = np.cos(sign * 2 * np.pi * h + offset), np.sin(sign * 2 * np.pi * h + offset)
    return z


def test_a_proper_wheel_scores_perfectly_in_either_orientation():
    h = np.arange(36) / 36
    for sign in (1.0, -1.0):
        s = hue_scores(wheel(h, sign), h)
        assert s["hue_corr"] == pytest.approx(1.0)
        assert s["hue_order"] == 1.0
        assert s["hue_winding"] == sign


def test_out_of_order_hues_are_caught():
    h = np.arange(36) / 36
    z = wheel(h)
    z[[3, 20]] = z[[20, 3]]  # two hues swapped
    s = hue_scores(z, h)
    assert s["hue_order"] < 1.0 and s["hue_corr"] < 0.99
    folded = wheel(np.where(h < 0.5, h, 1 - h))  # the wheel folded back on itself
    f = hue_scores(folded, h)
    assert f["hue_winding"] == 0.0


def test_plane_selects_dimensions():
    h = np.arange(12) / 12
    z = wheel(h)[:, [2, 0, 3, 1]]  # wheel now in dims (1, 3)
    assert hue_scores(z, h, plane=(1, 3))["hue_order"] == 1.0


def test_concept_geometry_and_recon_regions():
    assert scores.anchor_error([[1.0, 0.0, 0.0, 0.0]], [0.7, 0.4, 0.0, 0.0]) == pytest.approx(0.5)
    z = np.array([[1.0, 0.0, 0.3, 0.4], [0.0, 2.0, 0.0, 0.0]])
    assert scores.planarity(z) == pytest.approx(0.125)
    assert scores.norm_error(z) == pytest.approx((abs(math.sqrt(1.25) - 1) + 1) / 2)
    x = np.array([[1.0, 0, 0], [0.1, 0.1, 0.1], [0.6, 0.6, 0.6]])
    y = x + np.array([[0.1, 0, 0], [0, 0, 0], [0, 0, 0.3]])
    hsv = np.array([[0, 1, 1], [0, 0, 0.1], [0, 0, 0.6]])
    r = scores.recon_errors(x, y, hsv)
    assert r["recon_mse"] == pytest.approx((0.01 / 3 + 0.09 / 3) / 3)
    assert r["recon_mse_vibrant"] == pytest.approx(0.01 / 3)
    assert r["recon_mse_dark"] == 0.0
    assert r["recon_mse_desaturated"] == pytest.approx(0.03)


# --- populations: the member-batched scores ------------------------------------------------------


def _population(seed: int, members: int, n: int, dims: int) -> torch.Tensor:
    """Random latents, member 0 a proper wheel, member 1 a reversed one, the last two diverged."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(members, n, dims))
    h = np.arange(n) / n
    z[0], z[1] = wheel(h, 1.0, dims=dims), wheel(h, -1.0, offset=2.0, dims=dims)
    z[-2, 0, 1] = np.nan
    z[-1, 0, dims - 1] = np.inf
    return torch.from_numpy(z)


def test_hue_scores_members_equal_the_per_member_scores():
    z = _population(0, 7, 36, 4)
    hues = np.random.default_rng(1).permutation(36) / 36  # hues given out of order
    z[:2] = z[:2, np.argsort(np.argsort(hues))]  # the wheels follow the shuffled hues
    got = scores.hue_scores_members(z.float(), hues, plane=(0, 1))
    assert set(got) == {"hue_corr", "hue_order", "hue_winding"}
    for values in got.values():
        assert values.dtype == np.float64 and values.shape == (7,)
        assert np.isnan(values[-2:]).all()  # diverged members only
    for m in range(5):
        one = hue_scores(z[m].float(), hues)
        assert got["hue_corr"][m] == pytest.approx(one["hue_corr"], abs=1e-9)
        assert got["hue_order"][m] == one["hue_order"]
        assert got["hue_winding"][m] == one["hue_winding"]
    assert got["hue_winding"][:2].tolist() == [1.0, -1.0]
    assert got["hue_order"][:2].tolist() == [1.0, 1.0]
    other = scores.hue_scores_members(z[:, :, [2, 0, 3, 1]], hues, plane=(1, 3))
    np.testing.assert_array_equal(other["hue_order"], got["hue_order"])


def test_geometry_members_equal_the_per_member_scores():
    z = _population(2, 6, 20, 4)
    got_planarity = scores.planarity_members(z, (0, 2))
    got_norm = scores.norm_error_members(z)
    got_anchor = scores.anchor_error_members(z[:, :1], [0.5, 0.1, 0.0, -0.2])
    np.testing.assert_array_equal(scores.anchor_error_members(z[:, 0], [0.5, 0.1, 0.0, -0.2]), got_anchor)
    for values in (got_planarity, got_norm, got_anchor):
        assert values.dtype == np.float64 and values.shape == (6,)
        assert np.isnan(values[-2:]).all()
    for m in range(4):
        assert got_planarity[m] == pytest.approx(scores.planarity(z[m], (0, 2)), rel=1e-12)
        assert got_norm[m] == pytest.approx(scores.norm_error(z[m]), rel=1e-12)
        assert got_anchor[m] == pytest.approx(scores.anchor_error(z[m, :1], [0.5, 0.1, 0.0, -0.2]), rel=1e-12)
    wheels = scores.planarity_members(z[:2], (0, 1))
    np.testing.assert_array_equal(wheels, [0.0, 0.0])  # the wheels lie in dims (0, 1)
    flat = scores.planarity_members(z[:, :, :2], (0, 1))  # no dimension off the plane
    np.testing.assert_array_equal(flat, [0.0] * 4 + [np.nan, 0.0])  # the last member's inf is cut off


def test_recon_errors_members_equal_the_per_member_errors():
    rng = np.random.default_rng(3)
    x = rng.random((40, 3))
    hsv = np.column_stack([rng.random(40), rng.random(40), 0.3 + 0.7 * rng.random(40)])
    hsv[:5, 2] = 0.1  # a few dark colors
    hsv[5:10, 1:] = 1.0  # and vibrant ones
    y = torch.from_numpy(x[None] + rng.normal(scale=0.1, size=(5, 40, 3)))
    y[3, 7, 0] = np.nan
    y[4, 0, 2] = -np.inf
    got = scores.recon_errors_members(torch.from_numpy(x), y.float(), hsv)
    assert set(got) == {"recon_mse", "recon_mse_vibrant", "recon_mse_dark", "recon_mse_desaturated"}
    for m in range(3):
        one = scores.recon_errors(x, y[m].float(), hsv)
        for name, values in got.items():
            assert values[m] == pytest.approx(one[name], rel=1e-12)
    for values in got.values():
        assert values.shape == (5,) and np.isnan(values[3:]).all()
    hsv[:5, 2] = 0.5  # no dark color left: that region is empty
    empty = scores.recon_errors_members(x, y[:2], hsv)
    assert np.isnan(empty["recon_mse_dark"]).all() and not np.isnan(empty["recon_mse"]).any()
    assert math.isnan(scores.recon_errors(x, y[0], hsv)["recon_mse_dark"])


def test_single_model_scores_of_a_diverged_model_are_nan():
    z = wheel(np.arange(12) / 12)
    z[4, 0] = np.nan
    assert all(math.isnan(v) for v in hue_scores(z, np.arange(12) / 12).values())
    assert math.isnan(scores.planarity(z)) and math.isnan(scores.norm_error(z))


def test_no_turn_is_a_plain_zero():
    # Hues folded back and forth: the angle steps sum to a small negative number of turns.
    h = np.arange(36) / 36
    theta = 0.3 * np.sin(2 * np.pi * h) - 0.01
    z = np.stack([np.cos(theta), np.sin(theta)], axis=1)
    winding = hue_scores(z, h)["hue_winding"]
    assert winding == 0 and math.copysign(1.0, winding) == 1.0
