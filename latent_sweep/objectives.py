"""Per-sample loss terms, the one label-affinity weighting rule, and the term registry.

A term is configured by name in the sweep file: `name` is the schedule property holding its
weight, `kind` picks the function below, the rest are its parameters and label affinities.
Every function maps latents [B, E] to a loss per sample [B]; `weigh` turns that into one
number with the affinities a_i = clamp(Σ_k label_k,i · affinity_k, 0, 1).
"""

from __future__ import annotations

from typing import Annotated, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field

EPS = 1e-8


class _Term(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    affinities: dict[str, float] | None = None


class Unitarity(_Term):
    """(‖z‖ − 1)²: pushes latents onto the unit sphere."""

    kind: Literal["unitarity"]


class Planarity(_Term):
    """Σ of z_d² over the dims outside `plane`: pushes latents into the hue plane."""

    kind: Literal["planarity"]
    plane: tuple[int, int] = (0, 1)


class Pin(_Term):
    """‖z − point‖²: pins labeled samples to a point (1.7 `reg-polar`: red → (1,0,0,0))."""

    kind: Literal["pin"]
    point: list[float]


class Separate(_Term):
    """Angular repulsion: e = z/‖z‖ over `channels`, c = e·eᵀ with self/duplicates zeroed,
    optionally shifted to [0, 1]; loss_i = Σ_j c_ij^power (1.7: power 10, no shift)."""

    kind: Literal["separate"]
    power: float = 1.0
    shift: bool = True
    channels: list[int] | None = None


class SeparateEuclidean(_Term):
    """The 1.5 repulsion: mean over other samples of 1/(‖z_i − z_j‖² + 1e-6) in `channels`."""

    kind: Literal["separate_euclidean"]
    channels: list[int] | None = None


class Anchor(_Term):
    """At `action`, record the latents of the six primary/secondary colors; afterwards
    loss_i = ‖z_i(now) − z_i(recorded)‖² over that reference set (affinities don't apply)."""

    kind: Literal["anchor"]
    action: str = "anchor"


TermConfig = Annotated[
    Unitarity | Planarity | Pin | Separate | SeparateEuclidean | Anchor, Field(discriminator="kind")
]


def _channels(z: torch.Tensor, channels: list[int] | None) -> torch.Tensor:
    return z if channels is None else z[:, channels]


def per_sample(term: TermConfig, z: torch.Tensor, recorded: torch.Tensor | None = None) -> torch.Tensor:
    """Loss per sample [B] for `term` on latents `z` (for anchors, the reference latents)."""
    match term:
        case Unitarity():
            return (z.norm(dim=-1) - 1.0) ** 2
        case Planarity(plane=plane):
            keep = torch.ones(z.shape[1], dtype=torch.bool, device=z.device)
            keep[list(plane)] = False
            return (z[:, keep] ** 2).sum(dim=-1)
        case Pin():
            point = torch.as_tensor(term.point, dtype=z.dtype, device=z.device)
            return ((z - point) ** 2).sum(dim=-1)
        case Separate():
            e = _channels(z, term.channels)
            e = e / (e.norm(dim=-1, keepdim=True) + EPS)
            c = e @ e.T
            # Not torch.eye: batches drawn with replacement hold duplicates, which also
            # have c = 1 and must not repel themselves.
            c = c.masked_fill(c >= 1.0 - 1e-5, 0.0)
            if term.shift:
                c = (c + 1.0) / 2.0
            return (c**term.power).sum(dim=-1)
        case SeparateEuclidean():
            p = _channels(z, term.channels)
            inv = 1.0 / (torch.cdist(p, p) ** 2 + 1e-6)
            inv = inv * (1 - torch.eye(len(p), dtype=p.dtype, device=p.device))
            return inv.sum(dim=-1) / max(len(p) - 1, 1)
        case Anchor():
            assert recorded is not None
            return ((z - recorded) ** 2).sum(dim=-1)
    raise AssertionError(term)


def affinity_matrix(cfg, device) -> tuple[torch.Tensor, torch.Tensor]:
    """Affinities as a [n_labels, n_terms] matrix and a [n_terms] mask of terms that have any.

    a_i = clamp(Σ_k label_k,i · affinity_k, 0, 1) for all terms at once is then
    `where(mask, (labels @ matrix).clamp(0, 1), 1)`: a term without affinities counts every sample.
    """
    names = list(cfg.labels.concepts)
    matrix = torch.zeros(len(names), len(cfg.terms), device=device)
    for j, term in enumerate(cfg.terms):
        for label, strength in (term.affinities or {}).items():
            matrix[names.index(label), j] = strength
    mask = torch.tensor([bool(t.affinities) for t in cfg.terms], device=device)
    return matrix, mask


def weigh(loss: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """Σ_i loss_i·a_i / (Σ_i a_i + 1e-8): the mean over the samples the term applies to.

    With all a_i = 0 this is exactly 0, so the loop needs no host sync to skip such a term.
    """
    return (loss * a).sum() / (a.sum() + EPS)
