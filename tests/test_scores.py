from __future__ import annotations

import math

import numpy as np
import pytest

from latent_sweep import hue_scores, scores


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
