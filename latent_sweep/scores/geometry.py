"""Pure latent-geometry scores: arrays in, numbers out (hue ordering, concept geometry).

Each score comes in two forms: for one model (`hue_scores`, ...: arrays of one model's points,
Python floats out) and for a population (`hue_scores_members`, ...: a leading member axis K,
float64 arrays of shape (K,) out). The single-model form is the population form with K = 1.
The population forms compute in torch on the input's device and copy to the host once, at the
end; a diverged member (any non-finite value in its points) scores NaN without touching the
others.

Neighbor-preservation scores live in `latent_sweep.scores.neighbors`. Definitions for users: docs/scores.md.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

# Regions of color space for per-region reconstruction error (thresholds on HSV).
VIBRANT_MIN = 0.8  # vibrancy S·V ≥ 0.8
DARK_MAX = 0.3  # V < 0.3
DESATURATED_MAX = 0.3  # S < 0.3 and V ≥ 0.3


def hue_scores(latents: Any, hues: Any, plane: tuple[int, int] = (0, 1)) -> dict[str, float]:
    """How well pure hues form an ordered wheel in the hue plane.

    θ_i: angle of each hue's latent in `plane`; φ_i = 2π·h_i. Returns
    * `hue_corr`: orientation- and rotation-free circular correlation,
      max(|mean e^{i(θ−φ)}|, |mean e^{i(θ+φ)}|) — 1 when θ = ±φ + const;
    * `hue_order`: fraction of adjacent hue pairs (in true hue order, cyclic) that step
      around the circle in the majority direction;
    * `hue_winding`: turns of θ around the origin over one loop of hues (±1 for a wheel).
    """
    return _first(hue_scores_members(_tensor(latents)[None], hues, plane))


def hue_scores_members(
    latents: torch.Tensor, hues: Any, plane: tuple[int, int] = (0, 1)
) -> dict[str, np.ndarray]:
    """`hue_scores` of every member: latents (K × n × E) of the n pure hues (n, in [0, 1))."""
    z = _tensor(latents)
    h = _numpy(hues).reshape(-1)
    order = np.argsort(h, kind="stable")
    zo = z[:, torch.from_numpy(order).to(z.device)]
    theta = torch.atan2(zo[..., plane[1]], zo[..., plane[0]])
    phi = torch.from_numpy(2 * np.pi * h[order]).to(z.device)
    corr = torch.maximum(_mean_resultant(theta - phi), _mean_resultant(theta + phi))
    delta = torch.roll(theta, -1, dims=1) - theta
    steps = torch.atan2(torch.sin(delta), torch.cos(delta))  # wrapped to (−π, π]
    positive, negative = (steps > 0).sum(dim=1), (steps < 0).sum(dim=1)
    order_frac = torch.maximum(positive, negative).double() / steps.shape[1]
    winding = torch.round(steps.sum(dim=1) / (2 * math.pi)) + 0.0  # + 0.0: no "-0" for no turn
    names = ("hue_corr", "hue_order", "hue_winding")
    return _to_host(names, (corr, order_frac, winding), _finite(z))


def anchor_error(latent: Any, point: Any) -> float:
    """Distance of a pinned concept's latent from its pin point."""
    return float(anchor_error_members(_tensor(latent).reshape(1, -1), point)[0])


def anchor_error_members(latent: torch.Tensor, point: Any) -> np.ndarray:
    """`anchor_error` of every member: latent (K × E or K × 1 × E), one pin point (E)."""
    z = _tensor(latent)
    z = z.reshape(z.shape[0], -1)
    p = _tensor(point, z.device).reshape(-1)
    return _to_host(("anchor_error",), (torch.linalg.vector_norm(z - p, dim=1),), _finite(z))["anchor_error"]


def planarity(latents: Any, plane: tuple[int, int] = (0, 1)) -> float:
    """Mean off-plane energy Σ_{d ∉ plane} z_d² (of, e.g., the vibrant colors)."""
    return float(planarity_members(_tensor(latents)[None], plane)[0])


def planarity_members(latents: torch.Tensor, plane: tuple[int, int] = (0, 1)) -> np.ndarray:
    """`planarity` of every member: latents K × n × E."""
    z = _tensor(latents)
    off = [d for d in range(z.shape[2]) if d not in plane]
    energy = z[..., off].square().sum(dim=2).mean(dim=1) if off else z.new_zeros(z.shape[0])
    return _to_host(("planarity",), (energy,), _finite(z))["planarity"]


def norm_error(latents: Any) -> float:
    """Mean |‖z‖ − 1|."""
    return float(norm_error_members(_tensor(latents)[None])[0])


def norm_error_members(latents: torch.Tensor) -> np.ndarray:
    """`norm_error` of every member: latents K × n × E."""
    z = _tensor(latents)
    error = (torch.linalg.vector_norm(z, dim=2) - 1).abs().mean(dim=1)
    return _to_host(("norm_error",), (error,), _finite(z))["norm_error"]


def recon_errors(inputs: Any, outputs: Any, hsv: Any) -> dict[str, float]:
    """Reconstruction MSE overall and per region (vibrant, dark, desaturated); NaN for an empty region."""
    return _first(recon_errors_members(inputs, _tensor(outputs)[None], hsv))


def recon_errors_members(inputs: Any, outputs: torch.Tensor, hsv: Any) -> dict[str, np.ndarray]:
    """`recon_errors` of every member: shared inputs (n × 3), each member's outputs (K × n × 3)
    and the inputs' HSV (n × 3)."""
    y = _tensor(outputs)
    err = (_tensor(inputs, y.device) - y).square().mean(dim=2)
    hsv = _numpy(hsv)
    s, v = hsv[:, 1], hsv[:, 2]
    regions = {
        "recon_mse_vibrant": s * v >= VIBRANT_MIN,
        "recon_mse_dark": v < DARK_MAX,
        "recon_mse_desaturated": (s < DESATURATED_MAX) & (v >= DARK_MAX),
    }
    columns = [err.mean(dim=1)]
    for mask in regions.values():
        rows = torch.from_numpy(np.flatnonzero(mask)).to(y.device)
        empty = err.new_full(err.shape[:1], math.nan)
        columns.append(err.index_select(1, rows).mean(dim=1) if rows.numel() else empty)
    return _to_host(("recon_mse", *regions), columns, _finite(y))


# --- helpers ---------------------------------------------------------------------------------


def _tensor(x: Any, device: torch.device | None = None) -> torch.Tensor:
    """x as a detached float64 tensor, on its own device (a tensor's) or `device`."""
    if isinstance(x, torch.Tensor):
        return x.detach().to(device=device or x.device, dtype=torch.float64)
    return torch.as_tensor(np.asarray(x, dtype=np.float64), device=device)


def _numpy(x: Any) -> np.ndarray:
    """Host-side metadata (hues, HSV) as float64 numpy."""
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().double().numpy()
    return np.asarray(x, dtype=np.float64)


def _finite(z: torch.Tensor) -> torch.Tensor:
    """Which members (leading axis) hold only finite values."""
    return torch.isfinite(z).flatten(1).all(dim=1)


def _mean_resultant(angles: torch.Tensor) -> torch.Tensor:
    """|mean e^{iα}| over the last axis."""
    return torch.hypot(torch.cos(angles).mean(dim=-1), torch.sin(angles).mean(dim=-1))


def _to_host(names: tuple[str, ...], values: Any, finite: torch.Tensor) -> dict[str, np.ndarray]:
    """Per-member scores, NaN for non-finite members, copied to the host in one transfer."""
    table = torch.stack([v.double() for v in values]).masked_fill_(~finite, math.nan).cpu().numpy()
    return dict(zip(names, table, strict=True))


def _first(scores: dict[str, np.ndarray]) -> dict[str, float]:
    return {name: float(v[0]) for name, v in scores.items()}
