"""Per-sample loss terms, the one label-affinity weighting rule, and the term registry.

A term is configured by name in the sweep file: `name` is the schedule property holding its
weight, `kind` picks the function below, the rest are its parameters and label affinities.
Every function maps latents [..., B, E] to a loss per sample [..., B]; `weigh` turns that into one
number with the affinities a_i = clamp(Σ_k label_k,i · affinity_k, 0, 1).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field

EPS = 1e-8
# `separate`: pairs with cosine ≥ SAME_BELOW are the same sample (or a duplicate of it); BIG
# turns the margin below it (≥ 6e-8 in float32) into a mask that saturates at 0 and 1.
SAME_BELOW = 1.0 - 1e-5
BIG = 1e30


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


def loss_fn(
    term: TermConfig, device: torch.device | str = "cpu", power: torch.Tensor | None = None
) -> Callable[..., torch.Tensor]:
    """The per-sample loss of `term` as a function of latents [..., B, E] → [..., B] (a leading
    member axis is optional), constants prebuilt (anchors take the recorded reference latents
    as a second argument). `power` [K] overrides a `separate` term's power per member."""
    channels = getattr(term, "channels", None)
    if channels is not None and channels == list(range(channels[0], channels[0] + len(channels))):
        channels = slice(channels[0], channels[0] + len(channels))  # a view: no gather, no scatter back

    def pick(z: torch.Tensor) -> torch.Tensor:
        return z if channels is None else z[..., channels]

    match term:
        case Unitarity():
            return lambda z: (z.norm(dim=-1) - 1.0) ** 2
        case Planarity(plane=plane):
            in_plane = torch.tensor(plane, device=device)
            return lambda z: (z**2).sum(dim=-1) - (z.index_select(-1, in_plane) ** 2).sum(dim=-1)
        case Pin():
            point = torch.tensor(term.point, dtype=torch.float32, device=device)
            return lambda z: ((z - point) ** 2).sum(dim=-1)
        case Separate(shift=shift):
            exponent = term.power if power is None else power.view(-1, 1, 1)

            def separate(z: torch.Tensor) -> torch.Tensor:
                e = pick(z)
                return AngularRepulsion.apply(e / (e.norm(dim=-1, keepdim=True) + EPS), exponent, shift)

            return separate
        case SeparateEuclidean():

            def separate_euclidean(z: torch.Tensor) -> torch.Tensor:
                p = pick(z)
                b = p.shape[-2]
                inv = 1.0 / (torch.cdist(p, p) ** 2 + 1e-6)
                inv = inv * (1 - torch.eye(b, dtype=p.dtype, device=p.device))
                return inv.sum(dim=-1) / max(b - 1, 1)

            return separate_euclidean
        case Anchor():
            return lambda z, recorded: ((z - recorded) ** 2).sum(dim=-1)
    raise AssertionError(term)


class AngularRepulsion(torch.autograd.Function):
    """loss_i = Σ_j c_ij^p for unit rows e, c = e·eᵀ with self and duplicate pairs zeroed
    (optionally shifted to (c + 1)/2), with a hand-written backward.

    This term holds the step's only [K, B, B] tensors; autograd through the masked power
    would make a dozen passes over them, the explicit gradient ∂L/∂e = (G + Gᵀ)·e with
    G_ij = p·c_ij^(p−1)·∂L/∂loss_i makes four.
    """

    @staticmethod
    def forward(ctx, e: torch.Tensor, power: float | torch.Tensor, shift: bool) -> torch.Tensor:
        c = e @ e.mT
        # Not torch.eye: batches drawn with replacement hold duplicates, which also have
        # c = 1 and must not repel themselves. keep = [c < 1 − 1e-5] as exact 0/1 floats:
        # two float kernels, several times faster on CPU than a comparison and a select.
        keep = torch.add(SAME_BELOW * BIG, c, alpha=-BIG).clamp_(0.0, 1.0)
        c = c * keep
        if shift:
            c = (c + 1.0) / 2.0
        lower = raise_to(c, power - 1)  # c^(p−1), reused by the backward
        # For a whole p > 1 without shift, zeroed pairs get zero gradient from c^(p−1) = 0.
        whole = not isinstance(power, torch.Tensor) and power == int(power) and power > 1
        ctx.save_for_backward(e, lower, None if whole and not shift else keep)
        ctx.power, ctx.shift = power, shift
        return (lower * c).sum(dim=-1)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        e, lower, keep = ctx.saved_tensors
        g = lower * (grad.unsqueeze(-1) * ctx.power)  # ∂L/∂c
        if keep is not None:
            g = g * keep
        if ctx.shift:
            g = g / 2.0
        # (G + Gᵀ)·e as (eᵀG + eᵀGᵀ)ᵀ: CPU batched GEMMs are several times faster with the
        # long (batch) axis last than with a transposed sum of [K, B, B] matrices.
        et = e.mT
        return (et @ g + et @ g.mT).mT, None, None


def raise_to(c: torch.Tensor, exponent: float | torch.Tensor) -> torch.Tensor:
    """c ** exponent; a small whole exponent by repeated squaring (1.7's c⁹: 4 multiplies,
    cheaper than `pow`)."""
    if isinstance(exponent, torch.Tensor) or exponent != int(exponent) or not 0 <= exponent <= 64:
        return c**exponent
    n, out, square = int(exponent), None, c
    while n:
        if n & 1:
            out = square if out is None else out * square
        n >>= 1
        if n:
            square = square * square
    return torch.ones_like(c) if out is None else out


def per_sample(term: TermConfig, z: torch.Tensor, recorded: torch.Tensor | None = None) -> torch.Tensor:
    """Loss per sample [..., B] for `term` on latents `z` (for anchors, the reference latents)."""
    fn = loss_fn(term, z.device)
    return fn(z, recorded) if isinstance(term, Anchor) else fn(z)


class TermSet:
    """The batch terms of a config (all but anchors), evaluated together each step for all
    members.

    One per-sample column per distinct term function (1.7's two unitarity terms share one),
    one matmul for every affinity, one weighted mean per term:
    a = clamp(labels · affinities, 0, 1) with a constant "everyone" label of 1 for terms
    without affinities; term = Σ_i loss_i·a_i / (Σ_i a_i + 1e-8) — exactly 0 when all a_i = 0,
    so no host sync is needed to skip such a term. `powers` maps a `separate` term's name to
    its power per member [K] when members differ in it.
    """

    def __init__(
        self,
        terms: list[TermConfig],
        labels: list[str],
        device: torch.device | str,
        powers: dict[str, torch.Tensor] | None = None,
    ) -> None:
        powers = powers or {}
        self.terms = [t for t in terms if not isinstance(t, Anchor)]
        keys: dict[str, int] = {}
        self.fns: list[Callable[[torch.Tensor], torch.Tensor]] = []
        columns = []
        for term in self.terms:
            # A per-member power makes the term its own column.
            exclude = {"affinities"} if term.name in powers else {"name", "affinities"}
            key = term.model_dump_json(exclude=exclude)
            if key not in keys:
                keys[key] = len(self.fns)
                self.fns.append(loss_fn(term, device, powers.get(term.name)))
            columns.append(keys[key])
        self.columns = columns
        self.one_per_term = columns == list(range(len(columns)))  # no column to copy
        self.column_index = torch.tensor(columns, dtype=torch.long, device=device)
        # Rows: each label, then "everyone" (the constant last label column).
        self.affinity = torch.zeros(len(labels) + 1, len(self.terms), device=device)
        for j, term in enumerate(self.terms):
            if not term.affinities:
                self.affinity[-1, j] = 1.0
            for label, strength in (term.affinities or {}).items():
                self.affinity[labels.index(label), j] = strength

    def __call__(self, z: torch.Tensor, labels: torch.Tensor | None, active: list[bool]) -> torch.Tensor:
        """Weighted mean per term [..., n_terms] of latents [..., B, E]; `labels` [..., B,
        n_labels + 1] ends with the constant 1 column, or is None when the config has no labels
        (every a_i = 1: the plain mean); functions whose terms all have weight 0 (`active`
        False) are not evaluated."""
        if not self.fns:
            return z.new_zeros(*z.shape[:-2], 0)
        zero = z.new_zeros(z.shape[:-1])
        losses = torch.stack([fn(z) if on else zero for fn, on in zip(self.fns, active, strict=True)], -1)
        if not self.one_per_term:
            losses = losses.index_select(-1, self.column_index)  # [..., B, n_terms]
        if labels is None:  # the same numbers as the general rule with a ≡ 1, in fewer kernels
            return losses.sum(dim=-2) / (losses.shape[-2] + EPS)
        a = (labels @ self.affinity).clamp(0.0, 1.0)
        return (losses * a).sum(dim=-2) / (a.sum(dim=-2) + EPS)
