from __future__ import annotations

import colorsys

import numpy as np
import torch

from latent_sweep.experiments import colors


def test_hsv_cube_matches_colorsys_and_has_3600_colors():
    cube = colors.hsv_cube()
    assert cube.rgb.shape == (3600, 3)
    rng = np.random.default_rng(0)
    for i in rng.choice(len(cube), 50, replace=False):
        assert np.allclose(cube.rgb[i], colorsys.hsv_to_rgb(*cube.hsv[i]))


def test_rgb_to_hsv_inverts_hsv_to_rgb_on_the_grid():
    grid = colors.rgb_cube(8)
    assert grid.rgb.shape == (512, 3)
    assert np.allclose(colors.hsv_to_rgb(grid.hsv), grid.rgb)
    for i in [5, 77, 300, 511]:
        assert np.allclose(grid.hsv[i], colorsys.rgb_to_hsv(*grid.rgb[i]))


def test_sampling_bias_formula():
    cube = colors.hsv_cube()
    bias = colors.sampling_bias(cube, n_hues=36, n_saturation=10)
    _, s, v = cube.hsv.T
    expected = (1 - v) / 360 + (1 - s) * v / 36 + s * v
    assert np.allclose(bias, expected)
    assert bias[(s == 1) & (v == 1)].min() == 1.0  # pure hues weigh most


def test_levels_and_data_fraction():
    x = torch.tensor([0.0, 0.5, 0.995, 1.0], dtype=torch.float64)
    assert np.allclose(colors.levels(x, in_low=0.5, out_low=0.2), [0.2, 0.2, 0.2 + 0.8 * 0.99, 1.0])
    f = torch.tensor([-0.1, 0.0, 0.25, 0.5, 0.75, 1.0, 1.2], dtype=torch.float64)
    in_low, out_low = colors.fraction_levels(f)
    assert np.allclose(in_low, [0.99, 0.99, 0.495, 0, 0, 0, 0])
    assert np.allclose(out_low, [0, 0, 0, 0, 0.5, 1.0, 1.0])


def test_concept_probabilities():
    rgb = torch.tensor([[1.0, 0.0, 0.0], [0.8, 0.4, 0.2], [1.0, 1.0, 0.0], [0.5, 0.5, 0.5]])
    red = colors.concept_probability(rgb, "color", (1, 0, 0), 10)
    r, g, b = rgb.T
    assert torch.allclose(red, (r * (1 - g / 2 - b / 2)) ** 10)
    yellow = colors.concept_probability(rgb, "color", (1, 1, 0), 1)
    assert torch.allclose(yellow, r * g * (1 - b))
    vibrant = colors.concept_probability(rgb, "vibrant", None, 100)
    hsv = colors.rgb_to_hsv(rgb.double().numpy())
    assert np.allclose(vibrant.numpy(), (hsv[:, 1] * hsv[:, 2]) ** 100, atol=1e-6)
