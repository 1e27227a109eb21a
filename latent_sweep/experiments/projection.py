"""The parametric projection experiment (SPEC §3): an MLP f: R^D → R^2 trained so that output
neighborhoods match the input's kNN graph, under a schedule of lr, exaggeration and repulsion.

Loss at step t: λ(t)·mean over kNN pairs of −log q_ij + ρ(t)·mean over sampled negatives of
−log(1 − q_ij), with the Student-t similarity q_ij = 1/(1 + ‖y_i − y_j‖²). Each step takes a
minibatch of anchors, all their k neighbors and `n_negatives` random points per neighbor pair,
and embeds just the distinct points among them, so a step costs O(batch), never O(n).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

import numpy as np
import torch
from pydantic import Field

from latent_sweep import colors, scores
from latent_sweep.errors import UserError
from latent_sweep.experiments import proj_data
from latent_sweep.experiments.base import Strict, TrialConfig
from latent_sweep.experiments.proj_data import ProjDataConfig
from latent_sweep.experiments.recording import Recorder, due, pick_device, resume, training_state
from latent_sweep.models import ProjectionMLP
from latent_sweep.neighbors import neighbor_scores
from latent_sweep.session import Session
from latent_sweep.timeline import Timeline

__all__ = ["ProjectionConfig", "train"]

TERMS = ("attraction", "repulsion")
# Schedule property weighting each term; a schedule without the property weighs the term by 1.
TERM_PROPERTIES = {"attraction": "exaggeration", "repulsion": "repulsion"}
# Floor of ‖y_i − y_j‖² in −log(1 − q) = log(1 + d²) − log d², which is unbounded as d → 0.
MIN_SQ_DIST = 1e-3
# Rows per distance block of the kNN search (block × n floats) and per embedding pass.
CHUNK_ELEMENTS = 2**24
EMBED_ROWS = 8192

Positive = Annotated[int, Field(ge=1)]


class ProjModelConfig(Strict):
    hidden: list[Positive] = Field([256, 256], min_length=1)
    out_dim: int = Field(2, ge=2)


class KnnConfig(Strict):
    k_neighbors: int = Field(15, ge=1)
    metric: Literal["euclidean", "cosine"] = "euclidean"


class LossConfig(Strict):
    batch_size: int = Field(256, ge=1, description="anchors per step")
    n_negatives: int = Field(5, ge=1, description="negatives per kNN pair")
    exclude_neighbors: bool = True


class OptimizerConfig(Strict):
    name: Literal["adamw", "adam"] = "adamw"
    weight_decay: float = Field(1e-2, ge=0)


class ProjScoresConfig(Strict):
    ks: list[Positive] = Field([5, 10, 15], min_length=1)
    temperature: float = Field(0.07, gt=0)
    # Score a fixed random subset (drawn with the seed) of inputs larger than this.
    eval_samples: int | None = Field(5000, ge=4)


class ProjectionConfig(TrialConfig):
    """Schedule properties: `lr` (required), `exaggeration` λ and `repulsion` ρ (each 1 when absent)."""

    experiment: Literal["projection"] = "projection"
    name: str = "projection"
    data: ProjDataConfig = ProjDataConfig()
    model: ProjModelConfig = ProjModelConfig()
    knn: KnnConfig = KnnConfig()
    loss: LossConfig = LossConfig()
    optimizer: OptimizerConfig = OptimizerConfig()
    scores: ProjScoresConfig = ProjScoresConfig()


def knn_graph(x: torch.Tensor, k: int, metric: str) -> torch.Tensor:
    """Indices [n, k] of each point's k nearest other points, one block of rows at a time."""
    if metric == "cosine":  # cosine order = euclidean order of unit vectors
        x = x / x.norm(dim=1, keepdim=True).clamp_min(1e-12)
    x = x - x.mean(dim=0)  # keeps ‖a‖² + ‖b‖² − 2a·b accurate
    sq = x.square().sum(dim=1)
    n = len(x)
    rows = max(1, CHUNK_ELEMENTS // n)
    out = torch.empty(n, k, dtype=torch.int64, device=x.device)
    for s in range(0, n, rows):
        d2 = torch.addmm(sq[s : s + rows, None] + sq[None], x[s : s + rows], x.T, alpha=-2.0)
        d2.diagonal(offset=s).fill_(torch.inf)
        out[s : s + rows] = d2.topk(k, dim=1, largest=False).indices
    return out


def schedule_curves(timeline: Timeline, total: int) -> dict[str, np.ndarray]:
    """Per-step lr and term weights, the last value held past the schedule's end."""
    out = {"lr": timeline.dense("lr", total, 0.0)}
    out.update({term: timeline.dense(prop, total, 1.0) for term, prop in TERM_PROPERTIES.items()})
    return out


def loss_terms(
    model: ProjectionMLP,
    x: torch.Tensor,
    knn: torch.Tensor,
    cfg: LossConfig,
    gen: torch.Generator,
) -> torch.Tensor:
    """[attraction, repulsion] on one minibatch of anchors with their neighbors and negatives."""
    n, k = knn.shape
    anchors = torch.randint(n, (cfg.batch_size,), generator=gen, device=x.device)
    pos = knn[anchors]  # [B, k]
    neg = torch.randint(n, (cfg.batch_size, k * cfg.n_negatives), generator=gen, device=x.device)
    # Negatives that hit the anchor (or, optionally, its neighbors) drop out of the mean, which
    # is sampling uniformly from the remaining points.
    valid = neg != anchors[:, None]
    if cfg.exclude_neighbors:
        valid &= ~(neg[:, :, None] == pos[:, None, :]).any(dim=2)
    rows = torch.cat([anchors, pos.flatten(), neg.flatten()])
    # Embed every point once when that is cheaper than embedding the batch's rows (small
    # inputs), else just the rows — either way no data-dependent shapes, so no device sync.
    y = model(x)[rows] if n <= len(rows) else model(x[rows])
    b = cfg.batch_size
    ya = y[:b, None]
    d2_pos = (ya - y[b : b + pos.numel()].view(b, k, -1)).square().sum(-1)
    d2_neg = (ya - y[b + pos.numel() :].view(b, neg.shape[1], -1)).square().sum(-1)
    attraction = torch.log1p(d2_pos).mean()
    rep = torch.log1p(d2_neg) - torch.log(d2_neg.clamp_min(MIN_SQ_DIST))
    repulsion = (rep * valid).sum() / valid.sum().clamp_min(1)
    return torch.stack([attraction, repulsion])


@dataclass
class Evaluation:
    """The fixed evaluation set: which rows are scored, against which features, labels and hues."""

    rows: torch.Tensor  # indices of the scored points
    features: torch.Tensor  # [len(rows), d] raw float64
    labels: torch.Tensor | None
    hue_rows: torch.Tensor | None  # pure hues (S = V = 1) among all points, when the input is color
    hues: np.ndarray | None

    @classmethod
    def build(cls, cfg: ProjectionConfig, inputs: proj_data.Inputs, device: torch.device) -> Evaluation:
        n = len(inputs.features)
        rows = np.arange(n)
        if cfg.scores.eval_samples is not None and n > cfg.scores.eval_samples:
            rng = np.random.default_rng(cfg.seed)
            rows = np.sort(rng.choice(n, cfg.scores.eval_samples, replace=False))
        too_big = [k for k in cfg.scores.ks if k >= len(rows) / 2]
        if too_big:
            raise UserError(
                f"`scores.ks` must be < n/2 (n = {len(rows)} scored points), but got {too_big[0]}"
            )
        hue_rows, hues = None, None
        if inputs.is_color:
            hsv = colors.rgb_to_hsv(inputs.rgb)
            pure = np.flatnonzero(hsv[:, 1] * hsv[:, 2] >= 1 - 1e-6)
            if len(pure) >= 3:
                hue_rows, hues = torch.tensor(pure, device=device), hsv[pure, 0]
        labels = inputs.labels
        return cls(
            rows=torch.tensor(rows, device=device),
            features=torch.tensor(inputs.features[rows], dtype=torch.float64, device=device),
            labels=None if labels is None else torch.tensor(labels[rows], device=device),
            hue_rows=hue_rows,
            hues=hues,
        )


@torch.no_grad()
def embed(model: ProjectionMLP, x: torch.Tensor) -> torch.Tensor:
    return torch.cat([model(x[s : s + EMBED_ROWS]) for s in range(0, len(x), EMBED_ROWS)])


def evaluate(cfg: ProjectionConfig, y: torch.Tensor, ev: Evaluation) -> dict[str, float]:
    """Neighbor scores of the scored points (SPEC §4), and the hue wheel of color inputs."""
    result = neighbor_scores(
        ev.features,
        y[ev.rows],
        cfg.scores.ks,
        labels=ev.labels,
        temperature=cfg.scores.temperature,
        device=y.device,
    )
    if ev.hue_rows is not None:
        # Angles about the hues' own centroid: a projection has no meaningful origin.
        yh = y[ev.hue_rows]
        result.update(scores.hue_scores(yh - yh.mean(dim=0), ev.hues))
    return result


def train(cfg: ProjectionConfig, session: Session) -> dict[str, float]:
    """Train the projection under its schedule; report scores and checkpoints."""
    from latent_sweep.experiments import TrialDiverged

    device = pick_device(cfg.device)
    timeline, total = cfg.timeline()
    curves = schedule_curves(timeline, total)

    inputs = proj_data.load(cfg.data, cfg.seed)
    n = len(inputs.features)
    if cfg.knn.k_neighbors >= n / 2:
        raise UserError(
            f"`knn.k_neighbors` must be < n/2 (n = {n} input points), but got {cfg.knn.k_neighbors}"
        )
    ev = Evaluation.build(cfg, inputs, device)
    x = torch.tensor(inputs.features, dtype=torch.float32, device=device)
    knn = knn_graph(x, cfg.knn.k_neighbors, cfg.knn.metric)
    if cfg.data.standardize:
        std = x.std(dim=0)
        x = (x - x.mean(dim=0)) / torch.where(std > 0, std, 1.0)  # constant features stay 0

    model = ProjectionMLP(x.shape[1], cfg.model.hidden, cfg.model.out_dim).to(device)
    opt_class = torch.optim.AdamW if cfg.optimizer.name == "adamw" else torch.optim.Adam
    optimizer = opt_class(model.parameters(), lr=0.0, weight_decay=cfg.optimizer.weight_decay)
    weights = torch.tensor(
        np.stack([curves[t] for t in TERMS], axis=1), dtype=torch.float32, device=device
    )  # [total, 2]
    gen = torch.Generator(device=device)
    gen.manual_seed(cfg.seed)

    start, elapsed, result = resume(session.restore(), model, optimizer, gen)
    rec = Recorder(session.trial_dir, timeline, list(TERMS), cfg.checkpoint_every + 1, start, elapsed, device)

    for step in range(start, total):
        for group in optimizer.param_groups:
            group["lr"] = float(curves["lr"][step])
        raw = loss_terms(model, x, knn, cfg.loss, gen)
        weighted = raw * weights[step]
        loss = weighted.sum()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        rec.log(raw, weighted, loss)

        done = step + 1
        evaluate_now, snapshot_now, checkpoint_now = due(cfg, done, total)
        if evaluate_now:
            if not rec.finite():
                raise TrialDiverged(f"the loss became non-finite by step {step}")
            y = embed(model, x)
            result = evaluate(cfg, y, ev)
            if snapshot_now:
                rec.snapshot(done, y, rgb=inputs.rgb, labels=inputs.labels)
            state = training_state(model, optimizer, gen) if checkpoint_now else None
            rec.report(session, done, total, result, state)
    return result
