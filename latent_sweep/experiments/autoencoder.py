"""The color autoencoder experiment: a population of autoencoders under dense schedules.

Each step every member draws its own batch (its phase's training set, sampled with
replacement in proportion to the sampling bias, reweighted by `data-fraction` when the
schedule has it) and, in hard mode, fresh 0/1 labels — from its own random stream — and
all members' losses are computed in a few batched kernels.
"""

from __future__ import annotations

import math
from collections.abc import Hashable
from dataclasses import dataclass

import numpy as np
import torch

from latent_sweep.engine import loop
from latent_sweep.engine.models import STREAM_BATCHES, ColorAutoencoders
from latent_sweep.engine.streams import MemberStreams
from latent_sweep.experiments import colors
from latent_sweep.experiments.ae_config import AutoencoderConfig
from latent_sweep.experiments.objectives import Anchor, Pin, Separate, TermSet, loss_fn
from latent_sweep.scores import geometry
from latent_sweep.scores.declarations import Score
from latent_sweep.scores.neighbors import neighbor_scores_members
from latent_sweep.spec.experiment import Experiment
from latent_sweep.spec.population import Members
from latent_sweep.spec.timeline import Timeline

__all__ = ["EXPERIMENT", "AutoencoderConfig", "Autoencoders"]


@dataclass
class ColorData:
    """Tensors the loop and the evaluation need, built once on the trial's device and shared
    by all members."""

    train: torch.Tensor  # [n, 3] the HSV cube as RGB
    bias: torch.Tensor  # [n] sampling bias (ones when disabled)
    vibrancy: torch.Tensor  # [n]
    label_probs: torch.Tensor  # [n, n_labels + 1] probability of each label per training color
    hue_rows: torch.Tensor  # rows of `train` that are pure hues (S = V = 1)
    hues: colors.ColorSet
    hues_t: torch.Tensor
    primaries: torch.Tensor
    primary_probs: torch.Tensor
    grid: colors.ColorSet
    grid_t: torch.Tensor

    @classmethod
    def build(cls, cfg: AutoencoderConfig, device: torch.device) -> ColorData:
        d = cfg.data
        step = d.hue_step_deg / 360
        cube = colors.hsv_cube(step, d.n_saturation, d.n_value)
        hues = colors.pure_hues(step)
        bias = colors.sampling_bias(cube, len(hues), d.n_saturation) if d.bias else np.ones(len(cube))
        grid = colors.rgb_cube(d.eval_grid)

        def t(a: np.ndarray) -> torch.Tensor:
            return torch.tensor(a, dtype=torch.float32, device=device)

        primaries = colors.primaries().rgb
        # Label probabilities are computed on the CPU: hard labels (u < p) are then the same
        # on every device.
        cpu_probs = [
            label_probabilities(cfg, torch.tensor(c, dtype=torch.float32)) for c in (cube.rgb, primaries)
        ]
        return cls(
            train=t(cube.rgb),
            bias=t(bias),
            vibrancy=t(cube.vibrancy),
            label_probs=cpu_probs[0].to(device),
            hue_rows=torch.nonzero(torch.tensor(cube.vibrancy >= 1 - 1e-9, device=device)).flatten(),
            hues=hues,
            hues_t=t(hues.rgb),
            primaries=t(primaries),
            primary_probs=cpu_probs[1].to(device),
            grid=grid,
            grid_t=t(grid.rgb),
        )


def label_probabilities(cfg: AutoencoderConfig, rgb: torch.Tensor) -> torch.Tensor:
    """Per color, each concept's label probability (scale applied), columns in config order,
    then a constant 1: the "everyone" label of terms without affinities (see `TermSet`)."""
    cols = [
        colors.concept_probability(rgb, c.kind, c.rgb, c.exponent) * c.scale
        for c in cfg.labels.concepts.values()
    ]
    return torch.stack([*cols, torch.ones(len(rgb), device=rgb.device)], dim=1)


class Batches:
    """Every member's training batch of a step, from its own uniforms: indices by inverse CDF
    of the sampling weights (one `searchsorted` for all members), hard labels as u < p."""

    def __init__(self, members: Members, data: ColorData, device: torch.device) -> None:
        cfg: AutoencoderConfig = members.cfg
        timeline, total = members.timelines[0], members.total
        names = [p.name for p in timeline.phases]
        sets = [cfg.data.phases.get(name, "hsv") for name in names]
        self.sets = [sets[i] if i >= 0 else "hsv" for i in timeline.phase_indices(total)]  # per step
        self.size, self.hard, self.data = cfg.data.batch_size, cfg.labels.mode == "hard", data
        self.labelled = bool(cfg.labels.concepts)  # without concepts every term weighs all samples
        shapes = {"pick": (self.size,)}
        if self.hard:  # enough for a training batch or the six primaries
            shapes["labels"] = (max(self.size, len(data.primaries)), data.label_probs.shape[1])
        self.streams = MemberStreams(members.seeds, STREAM_BATCHES, shapes, device)
        # Cumulative sampling weights: one row for all members, or one per member once their
        # configs' data fractions differ. Summed in float64 and stored in float32, so CPU and
        # CUDA (whose sums run in another order) hold the same numbers and pick the same rows.
        prop = cfg.data.fraction_property
        self.fractions, rows = None, 1
        if prop in timeline.props:
            self.fractions = loop.curves(members, lambda c, t: t.dense(prop, total, math.nan), device)
            values = self.fractions.values.cpu().numpy()  # [total, D], for the host's shapes
            same = (values[1:] == values[:-1]) | (np.isnan(values[1:]) & np.isnan(values[:-1]))
            self.changes = np.r_[True, ~same.all(axis=1)]  # steps whose fractions differ
            rows = 1 if self.fractions.index is None else len(members)
        cdf = cumulative(data.bias)  # rewritten in place where the fractions change
        self.cdf = cdf if rows == 1 else cdf.expand(rows, -1).clone()
        self.built = False  # whether `cdf` holds the fractions of the last step shaped
        self.k = len(members)

    def shape(self, step: int) -> tuple[str, bool]:
        """(the step's training set, whether it rebuilds the sampling weights)."""
        rebuild = self.fractions is not None and (not self.built or bool(self.changes[step]))
        self.built = True
        return self.sets[step], rebuild

    def restart(self) -> None:
        """The next step shaped rebuilds the weights (after a restore)."""
        self.built = False

    def __call__(
        self, t: torch.Tensor, shape: tuple[str, bool], step: int | None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Inputs [K, B, 3] and label probabilities (0/1 in hard mode) [K, B, n_labels + 1] of
        step `t`; None for a config without concepts (hard mode's uniforms are still drawn,
        so the stream does not depend on whether labels exist)."""
        data, u = self.data, self.streams.at(t, step)
        kind, rebuild = shape
        if rebuild:
            self.rebuild(t, step)
        idx = self.pick(kind, u["pick"])
        flat = None if idx is None else idx.flatten()
        if flat is None:  # the six primaries, all of them, every step
            x = data.primaries.expand(self.k, -1, -1)
        else:
            x = data.train.index_select(0, flat).view(*idx.shape, 3)
        if not self.labelled:
            return x, None
        if flat is None:
            probs = data.primary_probs.expand(self.k, -1, -1)
        else:
            probs = data.label_probs.index_select(0, flat).view(*idx.shape, -1)
        if self.hard:  # fresh 0/1 labels every batch
            probs = (u["labels"][:, : probs.shape[1]] < probs).float()
        return x, probs

    def pick(self, kind: str, u: torch.Tensor) -> torch.Tensor | None:
        """Training-set rows [K, B] of a batch of set `kind` from uniforms `u` [K, B]; None
        when the set is the primaries."""
        if kind == "primaries":
            return None
        if kind == "hues":
            n = len(self.data.hue_rows)
            return self.data.hue_rows[(u * n).long().clamp_max(n - 1)]
        cdf = self.cdf
        return torch.searchsorted(cdf, u * cdf[..., -1:], right=True).clamp_max(cdf.shape[-1] - 1)

    def rebuild(self, t: torch.Tensor, step: int | None = None) -> None:
        """The sampling weights at step `t`'s data fractions, into `cdf` in place."""
        assert self.fractions is not None
        # A row per distinct config [D, n], not per member: members share their config's.
        in_low, out_low = colors.fraction_levels(self.fractions.distinct(t, step).unsqueeze(1))
        cdf = cumulative(colors.levels(self.data.vibrancy, in_low, out_low) * self.data.bias)
        index = self.fractions.index  # None when all members share one config (D = 1)
        self.cdf.copy_(cdf[0] if index is None else cdf.index_select(0, index))


def cumulative(weights: torch.Tensor) -> torch.Tensor:
    """Cumulative sums along the last axis, summed in float64, returned in float32."""
    return torch.cumsum(weights.double(), -1).float()


def pinned_concepts(cfg: AutoencoderConfig) -> list[str]:
    """Color concepts a `pin` term pulls toward its point: each has an anchor error."""
    pins = [t for t in cfg.terms if isinstance(t, Pin)]
    labels = (label for t in pins for label in t.affinities or {})
    return list(dict.fromkeys(x for x in labels if cfg.labels.concepts[x].kind == "color"))


def _ks(cfg: AutoencoderConfig) -> list[int]:
    return cfg.scores.neighbors_k


# The scores `evaluate` returns (definitions: docs/scores.md).
SCORES = (
    Score("recon_mse", "min"),
    Score("recon_mse_vibrant", "min"),
    Score("recon_mse_dark", "min"),
    Score("recon_mse_desaturated", "min"),
    Score("hue_corr", "max"),
    Score("hue_order", "max"),
    Score("hue_winding", "max"),  # ±1 is a wheel; max ranks +1 (the default orientation) first
    Score("planarity_vibrant", "min"),
    Score("norm_error", "min"),
    Score("anchor_error_{concept}", "min", each=pinned_concepts),
    Score("trustworthiness_k{k}", "max", each=_ks),
    Score("continuity_k{k}", "max", each=_ks),
    Score("knn_recall_k{k}", "max", each=_ks),
)


class Autoencoders:
    """The autoencoder population the loop trains (see `loop.Population`)."""

    def __init__(self, members: Members, device: torch.device) -> None:
        cfg: AutoencoderConfig = members.cfg
        total = members.total
        self.cfg, self.k = cfg, len(members)
        self.data = data = ColorData.build(cfg, device)
        self.model = ColorAutoencoders(
            cfg.model.hidden, cfg.model.latent_dim, cfg.model.normalize, members.seeds, device
        )
        self.params, self.weight_decay, self.decoupled = self.model.params, 0.0, True
        self.batches = Batches(members, data, device)
        self.batch_terms = TermSet(
            cfg.terms, list(cfg.labels.concepts), device, member_powers(members, device)
        )
        self.anchors = [t for t in cfg.terms if isinstance(t, Anchor)]
        self.anchor_loss = [loss_fn(t, device) for t in self.anchors]
        self.terms = ["recon", *[t.name for t in self.batch_terms.terms], *[t.name for t in self.anchors]]
        # Weights: reconstruction defaults to 1 when the schedule lacks its property, terms to 0.
        props = [cfg.recon_property, *self.terms[1:]]

        def weights(_: AutoencoderConfig, t: Timeline) -> np.ndarray:
            return np.stack([t.dense(p, total, 0.0 if j else 1.0) for j, p in enumerate(props)], 1)

        self.w = loop.curves(members, weights, device)  # [K, n_terms] per step
        self.lr = loop.curves(members, lambda c, t: t.dense("lr", total, 0.0), device)
        # Per step, whether any member weighs each batch-term function or anchor (host bools).
        nonzero = (self.w.values != 0).any(dim=1).cpu().numpy()  # [total, n_terms]
        n_batch = len(self.batch_terms.terms)
        self.active = np.zeros((total, len(self.batch_terms.fns)), dtype=bool)
        for j, col in enumerate(self.batch_terms.columns):
            self.active[:, col] |= nonzero[:, 1 + j]
        self.anchor_active = nonzero[:, 1 + n_batch :]
        self.actions = members.timelines[0].actions
        self.objective = loop.compiled(self._objective, cfg.compile)
        # Anchor term name → reference latents [K, 6, E], written in place when recorded.
        latent = (self.k, len(data.primaries), cfg.model.latent_dim)
        self.recorded = {t.name: torch.zeros(latent, device=device) for t in self.anchors}
        self.has_recorded: set[str] = set()
        self.grid_neighbors: dict = {}  # the evaluation grid's own neighbor data, computed once
        # A member's evaluation holds a few activations [grid, widest layer] at once.
        self.eval_bytes = 8 * 4 * len(data.grid_t) * max(*cfg.model.hidden, 3, cfg.model.latent_dim)

    @torch.no_grad()
    def act(self, step: int) -> None:
        for action in self.actions.get(step, []):
            for term in self.anchors:
                if term.action == action:
                    self.recorded[term.name].copy_(self.model.encode(self.data.primaries))
                    self.has_recorded.add(term.name)

    def shape(self, step: int) -> Hashable:
        """The batch's set and weight rebuild, the active term functions, the anchors on."""
        on = self.anchor_active[step]
        anchors = tuple(a.name in self.has_recorded and bool(on[j]) for j, a in enumerate(self.anchors))
        return self.batches.shape(step), tuple(self.active[step].tolist()), anchors

    def losses(self, t: torch.Tensor, shape: Hashable, step: int | None) -> tuple[torch.Tensor, torch.Tensor]:
        batch, active, anchors_on = shape
        x, probs = self.batches(t, batch, step)
        anchors = tuple(
            self.recorded[a.name] if on else None for a, on in zip(self.anchors, anchors_on, strict=True)
        )
        return self.objective(x, probs, self.w.at(t, step), active, anchors)

    def _objective(
        self,
        x: torch.Tensor,
        probs: torch.Tensor | None,
        w: torch.Tensor,
        active: tuple[bool, ...],
        anchors: tuple[torch.Tensor | None, ...],
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """recon + Σ w_t(step)·term_t for all members, the terms as one matrix [K, 1 + n_terms]
        (anchor terms take their recorded latents, None while off)."""
        out, z = self.model(x)
        parts = [((out - x) ** 2).mean(dim=(1, 2)).unsqueeze(1), self.batch_terms(z, probs, list(active))]
        for fn, recorded in zip(self.anchor_loss, anchors, strict=True):
            if recorded is None:
                parts.append(z.new_zeros(self.k, 1))
            else:
                z_now = self.model.encode(self.data.primaries)
                parts.append(fn(z_now, recorded).mean(dim=1, keepdim=True))
        raw = torch.cat(parts, dim=1)
        # A term with weight 0 contributes 0 even where it is not finite (0·inf would be NaN).
        return raw, torch.where(w != 0, raw * w, 0.0)

    @torch.no_grad()
    def evaluate(self, rows: slice) -> dict[str, np.ndarray]:
        """Scores of the latent spaces of members `rows` on the fixed evaluation sets."""
        cfg, data, model = self.cfg, self.data, self.model.block(rows)
        out, z = model(data.grid_t)
        hue_z = model.encode(data.hues_t)
        plane = cfg.scores.hue_plane
        result = geometry.recon_errors_members(data.grid_t, out, data.grid.hsv)
        result.update(geometry.hue_scores_members(hue_z, data.hues.hsv[:, 0], plane))
        result["planarity_vibrant"] = geometry.planarity_members(hue_z, plane)
        result["norm_error"] = geometry.norm_error_members(z)
        for term in cfg.terms:
            if isinstance(term, Pin):
                for label in term.affinities or {}:
                    concept = cfg.labels.concepts[label]
                    if concept.kind == "color":
                        ref = torch.tensor([concept.rgb], dtype=torch.float32, device=z.device)
                        result[f"anchor_error_{label}"] = geometry.anchor_error_members(
                            model.encode(ref), term.point
                        )
        # Neighbor preservation between input colors and their latents on the evaluation grid.
        ks = cfg.scores.neighbors_k
        result.update(neighbor_scores_members(data.grid_t, z, ks, cache=self.grid_neighbors))
        return result

    @torch.no_grad()
    def snapshot(self) -> tuple[torch.Tensor, dict[str, np.ndarray]]:
        rgb = self.data.grid.rgb
        return self.model.encode(self.data.grid_t), {c: rgb[:, i] for i, c in enumerate("rgb")}

    def state_dict(self, next_step: int) -> dict:
        # The batches need no state: a step's draws are a function of the step (`streams`).
        return {"anchors": {k: self.recorded[k].detach().clone() for k in sorted(self.has_recorded)}}

    def load_state_dict(self, state: dict) -> None:
        for name, latents in state["anchors"].items():
            self.recorded[name].copy_(latents)
        self.has_recorded = set(state["anchors"])
        self.batches.restart()


def member_powers(members: Members, device: torch.device) -> dict[str, torch.Tensor]:
    """Per-member powers [K] of `separate` terms whose power differs between members."""
    out = {}
    for i, term in enumerate(members.cfg.terms):
        if isinstance(term, Separate):
            powers = [c.terms[i].power for c in members.configs]
            if len(set(powers)) > 1:
                out[term.name] = torch.tensor(powers, device=device)[
                    torch.tensor(members.index, device=device)
                ]
    return out


EXPERIMENT = Experiment(
    name="autoencoder",
    config=AutoencoderConfig,
    scores=SCORES,
    population=Autoencoders,
    # A `separate` term's power: the batched loss takes it per member (`member_powers`).
    vectorizable=(r"terms\[\d+\]\.power",),
    key_scores=("hue_corr", "hue_order", "recon_mse", "anchor_error_*", "trustworthiness_k10"),
)
