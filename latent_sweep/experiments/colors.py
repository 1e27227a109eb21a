"""Color data: HSV and RGB cubes, vibrancy, sampling bias, `levels`, noisy concept labels."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class ColorSet:
    """Colors as RGB rows, with their HSV coordinates (float64 numpy, shape [n, 3])."""

    rgb: np.ndarray
    hsv: np.ndarray

    @property
    def vibrancy(self) -> np.ndarray:
        return self.hsv[:, 1] * self.hsv[:, 2]

    def __len__(self) -> int:
        return len(self.rgb)


def hsv_to_rgb(hsv: np.ndarray) -> np.ndarray:
    h, s, v = (hsv[..., i] for i in range(3))
    i = np.floor(h * 6.0) % 6
    f = h * 6.0 - np.floor(h * 6.0)
    p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    table = [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)]
    out = np.zeros(hsv.shape, dtype=np.float64)
    for k, channels in enumerate(table):
        mask = i == k
        for c in range(3):
            out[..., c][mask] = channels[c][mask]
    return out


def rgb_to_hsv(rgb: np.ndarray) -> np.ndarray:
    r, g, b = (rgb[..., i] for i in range(3))
    mx, mn = rgb.max(-1), rgb.min(-1)
    delta = mx - mn
    safe = np.where(delta > 0, delta, 1.0)
    h = np.where(mx == r, ((g - b) / safe) % 6, np.where(mx == g, (b - r) / safe + 2, (r - g) / safe + 4))
    h = np.where(delta > 0, h / 6.0, 0.0)
    s = np.where(mx > 0, delta / np.where(mx > 0, mx, 1.0), 0.0)
    return np.stack([h, s, mx], axis=-1)


def hsv_cube(hue_step: float = 10 / 360, n_saturation: int = 10, n_value: int = 10) -> ColorSet:
    """Hues arange(0, 1, step) mod 1 × S, V linspace(0, 1, n): the training cube (3600 colors)."""
    h = np.arange(0.0, 1.0, hue_step) % 1.0
    s = np.linspace(0, 1, n_saturation)
    v = np.linspace(0, 1, n_value)
    hsv = np.stack(np.meshgrid(h, s, v, indexing="ij"), axis=-1).reshape(-1, 3)
    return ColorSet(hsv_to_rgb(hsv), hsv)


def rgb_cube(n: int = 8) -> ColorSet:
    """linspace(0, 1, n)³ in RGB: the evaluation grid."""
    axis = np.linspace(0, 1, n)
    rgb = np.stack(np.meshgrid(axis, axis, axis, indexing="ij"), axis=-1).reshape(-1, 3)
    return ColorSet(rgb, rgb_to_hsv(rgb))


def pure_hues(hue_step: float = 10 / 360) -> ColorSet:
    """Fully saturated, fully bright hues (S = V = 1), in hue order."""
    h = np.arange(0.0, 1.0, hue_step) % 1.0
    hsv = np.stack([h, np.ones_like(h), np.ones_like(h)], axis=-1)
    return ColorSet(hsv_to_rgb(hsv), hsv)


def primaries() -> ColorSet:
    """The six primary and secondary colors: red, yellow, green, cyan, blue, magenta."""
    return pure_hues(1 / 6)


def sampling_bias(colors: ColorSet, n_hues: int, n_saturation: int) -> np.ndarray:
    """Counter the HSV cube's over-representation of dark and desaturated colors.

    bias = w_black·(1−V) + w_white·(1−S)·V + S·V, w_black = 1/(n_s·n_h), w_white = 1/n_h:
    the many HSV points that collapse onto black (V=0) or onto grays (S=0) share one weight.
    """
    _, s, v = colors.hsv.T
    w_black, w_white = 1.0 / (n_saturation * n_hues), 1.0 / n_hues
    return w_black * (1 - v) + w_white * (1 - s) * v + s * v


def levels(x: torch.Tensor, in_low, out_low, in_high: float = 1.0, out_high: float = 1.0) -> torch.Tensor:
    """Photoshop-style levels: [in_low, in_high] → [out_low, out_high], clamped (bounds broadcast)."""
    alpha = ((x - in_low) / (in_high - in_low)).clamp(0.0, 1.0)
    return out_low + alpha * (out_high - out_low)


def fraction_levels(fraction: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The 1.5 `data-fraction` f → (in_low, out_low): 0 keeps only the most vibrant colors,
    0.5 leaves the weights unchanged, 1 weights every color equally (piecewise linear, clamped)."""
    return 0.99 * (1 - fraction.clamp(0.0, 0.5) / 0.5), (fraction.clamp(0.5, 1.0) - 0.5) / 0.5


def concept_probability(rgb: torch.Tensor, kind: str, reference: tuple[float, ...] | None, exponent: float):
    """Label probability per color, before the label's scale.

    `color`: proximity to a corner `c` of the RGB cube, Π_{c_k=1} x_k · (1 − mean_{c_j=0} x_j),
    so red (1,0,0) gives r·(1 − g/2 − b/2). `vibrant`: vibrancy S·V. Both raised to `exponent`.
    """
    if kind == "vibrant":
        mx, mn = rgb.max(dim=-1).values, rgb.min(dim=-1).values
        base = mx - mn  # S·V = (max−min)/max · max
    else:
        ref = torch.tensor(reference, dtype=rgb.dtype, device=rgb.device)
        on, off = ref > 0.5, ref <= 0.5
        base = torch.prod(rgb[:, on], dim=-1)
        if off.any():
            base = base * (1 - rgb[:, off].mean(dim=-1))
    return base.clamp(0, 1) ** exponent
