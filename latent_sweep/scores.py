"""Pure latent-geometry scores: arrays in, numbers out (hue ordering, concept geometry).

Neighbor-preservation scores live in `latent_sweep.neighbors`.
"""

from __future__ import annotations

import math

import numpy as np
import torch

# Regions of color space for per-region reconstruction error (thresholds on HSV).
VIBRANT_MIN = 0.8  # vibrancy S·V ≥ 0.8
DARK_MAX = 0.3  # V < 0.3
DESATURATED_MAX = 0.3  # S < 0.3 and V ≥ 0.3


def _numpy(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().double().numpy()
    return np.asarray(x, dtype=np.float64)


def hue_scores(latents, hues, plane: tuple[int, int] = (0, 1)) -> dict[str, float]:
    """How well pure hues form an ordered wheel in the hue plane.

    θ_i: angle of each hue's latent in `plane`; φ_i = 2π·h_i. Returns
    * `hue_corr`: orientation- and rotation-free circular correlation,
      max(|mean e^{i(θ−φ)}|, |mean e^{i(θ+φ)}|) — 1 when θ = ±φ + const;
    * `hue_order`: fraction of adjacent hue pairs (in true hue order, cyclic) that step
      around the circle in the majority direction;
    * `hue_winding`: turns of θ around the origin over one loop of hues (±1 for a wheel).
    """
    z = _numpy(latents)
    h = _numpy(hues).reshape(-1)
    order = np.argsort(h, kind="stable")
    theta = np.arctan2(z[order, plane[1]], z[order, plane[0]])
    phi = 2 * np.pi * h[order]
    corr = max(abs(np.exp(1j * (theta - phi)).mean()), abs(np.exp(1j * (theta + phi)).mean()))
    steps = np.angle(np.exp(1j * (np.roll(theta, -1) - theta)))  # wrapped to (−π, π]
    positive, negative = int((steps > 0).sum()), int((steps < 0).sum())
    return {
        "hue_corr": float(corr),
        "hue_order": max(positive, negative) / len(steps),
        "hue_winding": float(round(steps.sum() / (2 * math.pi))),
    }


def anchor_error(latent, point) -> float:
    """Distance of a pinned concept's latent from its pin point."""
    return float(np.linalg.norm(_numpy(latent).reshape(-1) - _numpy(point).reshape(-1)))


def planarity(latents, plane: tuple[int, int] = (0, 1)) -> float:
    """Mean off-plane energy Σ_{d ∉ plane} z_d² (of, e.g., the vibrant colors)."""
    z = _numpy(latents)
    off = [d for d in range(z.shape[1]) if d not in plane]
    return float((z[:, off] ** 2).sum(axis=1).mean()) if off else 0.0


def norm_error(latents) -> float:
    """Mean |‖z‖ − 1|."""
    return float(np.abs(np.linalg.norm(_numpy(latents), axis=1) - 1).mean())


def recon_errors(inputs, outputs, hsv) -> dict[str, float]:
    """Reconstruction MSE overall and per region (vibrant, dark, desaturated); NaN for an empty region."""
    x, y, hsv = _numpy(inputs), _numpy(outputs), _numpy(hsv)
    err = ((x - y) ** 2).mean(axis=1)
    s, v = hsv[:, 1], hsv[:, 2]
    regions = {
        "recon_mse_vibrant": s * v >= VIBRANT_MIN,
        "recon_mse_dark": v < DARK_MAX,
        "recon_mse_desaturated": (s < DESATURATED_MAX) & (v >= DARK_MAX),
    }
    out = {"recon_mse": float(err.mean())}
    out.update({k: float(err[m].mean()) if m.any() else math.nan for k, m in regions.items()})
    return out
