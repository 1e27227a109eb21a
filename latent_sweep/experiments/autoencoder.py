"""The color autoencoder experiment: one training loop, driven by a dense schedule."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from latent_sweep import colors, scores
from latent_sweep.errors import UserError
from latent_sweep.experiments.ae_config import AutoencoderConfig
from latent_sweep.experiments.recording import Recorder, due, pick_device, resume, training_state
from latent_sweep.models import ColorAutoencoder
from latent_sweep.neighbors import neighbor_scores
from latent_sweep.objectives import Anchor, Pin, TermSet, loss_fn
from latent_sweep.optim import Adam
from latent_sweep.session import Session
from latent_sweep.timeline import Timeline

__all__ = ["AutoencoderConfig", "train"]


@dataclass
class ColorData:
    """Tensors the loop and the evaluation need, built once on the trial's device."""

    train: torch.Tensor  # [n, 3] the HSV cube as RGB
    bias: np.ndarray  # [n] sampling bias (ones when disabled)
    vibrancy: np.ndarray  # [n]
    label_probs: torch.Tensor  # [n, n_labels] probability of each label per training color
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

        train, prim = t(cube.rgb), t(colors.primaries().rgb)
        return cls(
            train=train,
            bias=bias,
            vibrancy=cube.vibrancy,
            label_probs=label_probabilities(cfg, train),
            hues=hues,
            hues_t=t(hues.rgb),
            primaries=prim,
            primary_probs=label_probabilities(cfg, prim),
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
    """The training batch of each step: its phase's training set, sampled with replacement in
    proportion to the sampling bias — reweighted by `data-fraction` when the schedule has it
    (1.5) — and its label probabilities, drawn as fresh 0/1 labels in hard mode."""

    def __init__(
        self, cfg: AutoencoderConfig, data: ColorData, timeline: Timeline, total: int, gen: torch.Generator
    ) -> None:
        names = [p.name for p in timeline.phases]
        for name in cfg.data.phases:
            if name not in names:
                raise UserError(
                    f"`data.phases` names phase `{name}`, which the schedule does not have: {names}"
                )
        self.sets = [cfg.data.phases.get(name, "hsv") for name in names]
        self.phase = timeline.phase_index[np.minimum(np.arange(total), len(timeline) - 1)]
        prop = cfg.data.fraction_property
        self.fractions = timeline.dense(prop, total, math.nan) if prop in timeline.props else None
        self.cfg, self.data, self.gen = cfg, data, gen
        self.hues = torch.nonzero(torch.tensor(data.vibrancy >= 1 - 1e-9, device=data.train.device)).flatten()
        self._weights: tuple[float | None, torch.Tensor | None] = (None, None)  # (fraction, weights)

    def __call__(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        data, size = self.data, self.cfg.data.batch_size
        kind = self.sets[self.phase[step]] if self.phase[step] >= 0 else "hsv"
        if kind == "primaries":
            x, probs = data.primaries, data.primary_probs
        else:
            if kind == "hues":
                pick = torch.randint(len(self.hues), (size,), generator=self.gen, device=self.hues.device)
                idx = self.hues[pick]
            else:
                idx = torch.multinomial(self.weights(step), size, replacement=True, generator=self.gen)
            x, probs = data.train[idx], data.label_probs[idx]
        if self.cfg.labels.mode == "hard":
            probs = torch.bernoulli(probs, generator=self.gen)  # fresh 0/1 labels every batch
        return x, probs

    def weights(self, step: int) -> torch.Tensor:
        """Sampling weights, rebuilt only when the data fraction changes."""
        f = None if self.fractions is None else float(self.fractions[step])
        if self._weights[1] is None or self._weights[0] != f:
            p = self.data.bias
            if f is not None:
                in_low, out_low = colors.fraction_levels(f)
                p = colors.levels(self.data.vibrancy, float(in_low), float(out_low)) * self.data.bias
            self._weights = (f, torch.tensor(p, dtype=torch.float32, device=self.data.train.device))
        return self._weights[1]


def dense_weights(cfg: AutoencoderConfig, timeline: Timeline, total: int) -> dict[str, np.ndarray]:
    """Per-step weights for recon and every term. Explicit defaults: a term whose property is
    absent from the schedule has weight 0 (off); reconstruction has weight 1."""
    out = {"recon": timeline.dense(cfg.recon_property, total, 1.0), "lr": timeline.dense("lr", total, 0.0)}
    out.update({t.name: timeline.dense(t.name, total, 0.0) for t in cfg.terms})
    return out


def train(cfg: AutoencoderConfig, session: Session) -> dict[str, float]:
    """Train the color autoencoder under its schedule; report scores and checkpoints."""
    from latent_sweep.experiments import TrialDiverged

    device = pick_device(cfg.device)
    timeline, total = cfg.timeline()
    w = dense_weights(cfg, timeline, total)
    actions = timeline.actions

    data = ColorData.build(cfg, device)
    model = ColorAutoencoder(cfg.model.hidden, cfg.model.latent_dim, cfg.model.normalize).to(device)
    optimizer = Adam(model.parameters())
    batch_terms = TermSet(cfg.terms, list(cfg.labels.concepts), device)
    anchors = [t for t in cfg.terms if isinstance(t, Anchor)]
    anchor_loss = [loss_fn(t, device) for t in anchors]
    names = ["recon", *[t.name for t in batch_terms.terms], *[t.name for t in anchors]]
    w_dev = torch.tensor(np.stack([w[n] for n in names], axis=1), dtype=torch.float32, device=device)
    # Per step, whether each distinct batch-term function has any nonzero weight (host bools).
    active = np.zeros((total, len(batch_terms.fns)), dtype=bool)
    for term, col in zip(batch_terms.terms, batch_terms.columns, strict=True):
        active[:, col] |= w[term.name] != 0.0
    zero = torch.zeros(1, device=device)
    gen = torch.Generator(device=device)
    gen.manual_seed(cfg.seed)
    batches = Batches(cfg, data, timeline, total, gen)
    recorded: dict[str, torch.Tensor] = {}  # anchor term name → reference latents

    # Continue from the session's checkpoint, dropping history written after it.
    state = session.restore()
    start, elapsed, result = resume(state, model, optimizer, gen)
    if state is not None:
        recorded = {k: v.to(device) for k, v in state["anchors"].items()}
    rec = Recorder(
        session.trial_dir,
        timeline,
        names,
        cfg.checkpoint_every + 1,
        start,
        elapsed,
        device,
    )

    for step in range(start, total):
        # Events at this step: actions (e.g. record anchor latents) before training on it.
        for action in actions.get(step, []):
            with torch.no_grad():
                for term in cfg.terms:
                    if isinstance(term, Anchor) and term.action == action:
                        recorded[term.name] = model.encode(data.primaries).detach()

        x, probs = batches(step)  # this step's phase's training set, with label probabilities

        # Objective: recon + Σ w_t(step)·term_t, all terms as one vector [1 + n_terms].
        out, z = model(x)
        parts = [((out - x) ** 2).mean().reshape(1), batch_terms(z, probs, active[step].tolist())]
        for term, fn in zip(anchors, anchor_loss, strict=True):
            if term.name in recorded and w[term.name][step] != 0.0:
                parts.append(fn(model.encode(data.primaries), recorded[term.name]).mean().reshape(1))
            else:
                parts.append(zero)
        raw_t = torch.cat(parts)
        # A non-finite term is recorded (NaN in history) but not summed into the loss.
        weighted = torch.nan_to_num(raw_t * w_dev[step], nan=0.0, posinf=0.0, neginf=0.0)
        loss = weighted.sum()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step(lr=float(w["lr"][step]))

        rec.log(raw_t, weighted, loss)

        done = step + 1
        evaluate_now, snapshot_now, checkpoint_now = due(cfg, done, total)
        if evaluate_now:
            if not rec.finite():  # one host sync per evaluation
                raise TrialDiverged(f"the loss became non-finite by step {step}")
            result = evaluate(cfg, model, data, recorded)
            if snapshot_now:
                rec.snapshot(done, model.encode(data.grid_t), rgb=data.grid.rgb)
            state = None
            if checkpoint_now:
                state = training_state(model, optimizer, gen)
                state["anchors"] = {k: v.cpu() for k, v in recorded.items()}
            rec.report(session, done, total, result, state)
    return result


@torch.no_grad()
def evaluate(cfg, model, data: ColorData, recorded) -> dict[str, float]:
    """Scores of the latent space on the fixed evaluation sets (SPEC §4)."""
    out, z = model(data.grid_t)
    hue_z = model.encode(data.hues_t)
    plane = cfg.scores.hue_plane
    result = scores.recon_errors(data.grid.rgb, out, data.grid.hsv)
    result.update(scores.hue_scores(hue_z, data.hues.hsv[:, 0], plane))
    result["planarity_vibrant"] = scores.planarity(hue_z, plane)
    result["norm_error"] = scores.norm_error(z)
    for term in cfg.terms:
        if isinstance(term, Pin):
            for label in term.affinities or {}:
                concept = cfg.labels.concepts[label]
                if concept.kind == "color":
                    ref = torch.tensor([concept.rgb], dtype=torch.float32, device=z.device)
                    result[f"anchor_error_{label}"] = scores.anchor_error(model.encode(ref), term.point)
    # Neighbor preservation between input colors and their latents on the evaluation grid.
    result.update(neighbor_scores(data.grid_t, z, cfg.scores.neighbors_k))
    return result
