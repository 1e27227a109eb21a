"""The parametric projection experiment : an MLP f: R^D → R^2 trained so that output
neighborhoods match the input's kNN graph, under a schedule of lr, exaggeration and repulsion.

Loss at step t: λ(t)·mean over kNN pairs of −log q_ij + ρ(t)·mean over sampled negatives of
−log(1 − q_ij), with the Student-t similarity q_ij = 1/(1 + ‖y_i − y_j‖²). Each step takes a
minibatch of anchors, all their k neighbors and `n_negatives` random points per neighbor pair,
and embeds just the distinct points among them, so a step costs O(batch), never O(n).
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass
from typing import Annotated, Literal

import numpy as np
import torch
from pydantic import Field

from latent_sweep.engine import loop
from latent_sweep.engine.models import STREAM_BATCHES, Projections
from latent_sweep.engine.streams import MemberStreams
from latent_sweep.errors import UserError
from latent_sweep.experiments import colors, proj_data
from latent_sweep.experiments.proj_data import ProjDataConfig
from latent_sweep.scores import geometry
from latent_sweep.scores.declarations import Score
from latent_sweep.scores.neighbors import neighbor_scores_members
from latent_sweep.spec.experiment import Experiment
from latent_sweep.spec.population import Members
from latent_sweep.spec.trial import Strict, TrialConfig

__all__ = ["EXPERIMENT", "ProjectionConfig", "Projectors"]

TERMS = ("attraction", "repulsion")
HUE_SCORES = ("hue_corr", "hue_order", "hue_winding")
# Schedule property weighting each term; a schedule without the property weighs the term by 1.
TERM_PROPERTIES = {"attraction": "exaggeration", "repulsion": "repulsion"}
# Floor of ‖y_i − y_j‖² in −log(1 − q) = log(1 + d²) − log d², which is unbounded as d → 0.
MIN_SQ_DIST = 1e-3
# Elements of a kNN distance block (rows × n) and of an embedding pass's widest activations.
CHUNK_ELEMENTS = 2**24
EMBED_ELEMENTS = 2**24

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
    # Score a fixed random subset (drawn with `data.seed`) of inputs larger than this.
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


def loss_terms(
    model: Projections, x: torch.Tensor, knn: torch.Tensor, cfg: LossConfig, u: dict[str, torch.Tensor]
) -> torch.Tensor:
    """[K, 2]: attraction and repulsion of each member on its own minibatch of anchors with
    their neighbors and negatives, indexed from the member's uniforms `u`."""
    n, k = knn.shape
    anchors = (u["anchors"] * n).long().clamp_max(n - 1)  # [K, B]
    pos = knn[anchors]  # [K, B, k]
    neg = (u["negatives"] * n).long().clamp_max(n - 1)  # [K, B, k·n_negatives]
    # Negatives that hit the anchor (or, optionally, its neighbors) drop out of the mean, which
    # is sampling uniformly from the remaining points.
    valid = neg != anchors[..., None]
    if cfg.exclude_neighbors:
        valid &= ~(neg[..., None] == pos[:, :, None, :]).any(dim=-1)
    rows = torch.cat([anchors, pos.flatten(1), neg.flatten(1)], dim=1)  # [K, R]
    # Embed every point once when that is cheaper than embedding the batch's rows (small
    # inputs), else just the rows — either way no data-dependent shapes, so no device sync.
    if n <= rows.shape[1]:
        y_all = model(x)
        y = torch.gather(y_all, 1, rows.unsqueeze(-1).expand(-1, -1, y_all.shape[-1]))
    else:
        y = model(x[rows])
    b, p = cfg.batch_size, pos.shape[1] * k
    ya = y[:, :b, None]
    d2_pos = (ya - y[:, b : b + p].unflatten(1, (b, k))).square().sum(-1)
    d2_neg = (ya - y[:, b + p :].unflatten(1, (b, -1))).square().sum(-1)
    attraction = torch.log1p(d2_pos).mean(dim=(1, 2))
    rep = torch.log1p(d2_neg) - torch.log(d2_neg.clamp_min(MIN_SQ_DIST))
    repulsion = (rep * valid).sum(dim=(1, 2)) / valid.sum(dim=(1, 2)).clamp_min(1)
    return torch.stack([attraction, repulsion], dim=1)


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
            rng = np.random.default_rng(cfg.data.seed)
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
def embed(model: Projections, x: torch.Tensor) -> torch.Tensor:
    """Every member's embedding [K, n, out] of all points, in blocks of rows that bound the
    hidden activations to EMBED_ELEMENTS."""
    widest = max(b for _, b in model.net.shapes)
    rows = max(1, EMBED_ELEMENTS // (len(model.params) * widest))
    return torch.cat([model(x[s : s + rows]) for s in range(0, len(x), rows)], dim=1)


def load_inputs(cfg: ProjectionConfig, device: torch.device) -> tuple[proj_data.Inputs, Evaluation]:
    """The input points and the evaluation set, checked against the config's neighborhood
    sizes; `latent-sweep validate` runs this too, so a bad input fails before any trial."""
    inputs = proj_data.load(cfg.data)
    n = len(inputs.features)
    if cfg.knn.k_neighbors >= n / 2:
        k = cfg.knn.k_neighbors
        raise UserError(f"`knn.k_neighbors` must be < n/2 (n = {n} input points), but got {k}")
    return inputs, Evaluation.build(cfg, inputs, device)


def preflight(members: Members) -> None:
    """What a trial would trip over before its first step: the inputs and their sizes."""
    load_inputs(members.cfg, torch.device("cpu"))


def _ks(cfg: ProjectionConfig) -> list[int]:
    return cfg.scores.ks


# The scores `evaluate` returns (definitions: docs/scores.md): kNN accuracy for labeled inputs,
# the hue wheel for inputs that are colors.
SCORES = (
    Score("trustworthiness_k{k}", "max", each=_ks),
    Score("continuity_k{k}", "max", each=_ks),
    Score("knn_recall_k{k}", "max", each=_ks),
    Score("knn_accuracy_k{k}", "max", each=_ks, when=lambda cfg: proj_data.labeled(cfg.data)),
    *(Score(name, "max", when=lambda cfg: proj_data.is_color(cfg.data)) for name in HUE_SCORES),
)


class Projectors:
    """The projection population the loop trains (see `loop.Population`): members share the
    input data and its kNN graph on the device and differ in seed and schedule values."""

    def __init__(self, members: Members, device: torch.device) -> None:
        cfg: ProjectionConfig = members.cfg
        self.cfg, total = cfg, members.total
        inputs, self.ev = load_inputs(cfg, device)
        self.scored_neighbors: dict = {}  # the scored points' own neighbor data, computed once
        self.inputs = inputs
        x = torch.tensor(inputs.features, dtype=torch.float32, device=device)
        self.knn = knn_graph(x, cfg.knn.k_neighbors, cfg.knn.metric)
        if cfg.data.standardize:
            std = x.std(dim=0)
            x = (x - x.mean(dim=0)) / torch.where(std > 0, std, 1.0)  # constant features stay 0
        self.x = x
        self.model = Projections(x.shape[1], cfg.model.hidden, cfg.model.out_dim, members.seeds, device)
        self.params = self.model.params
        # A member's evaluation holds its embedding of every point twice (all, then the scored
        # rows); `embed` bounds the hidden activations and the neighbor scores their distances.
        self.eval_bytes = 2 * 4 * len(x) * cfg.model.out_dim
        # torch's Adam adds weight decay to the gradient; AdamW decays the weights directly.
        self.weight_decay = cfg.optimizer.weight_decay
        self.decoupled = cfg.optimizer.name == "adamw"
        self.terms = list(TERMS)
        self.w = loop.curves(
            members,
            lambda _, t: np.stack([t.dense(TERM_PROPERTIES[n], total, 1.0) for n in TERMS], 1),
            device,
        )
        self.lr = loop.curves(members, lambda _, t: t.dense("lr", total, 0.0), device)
        b, k = cfg.loss.batch_size, cfg.knn.k_neighbors
        shapes = {"anchors": (b,), "negatives": (b, k * cfg.loss.n_negatives)}
        self.streams = MemberStreams(members.seeds, STREAM_BATCHES, shapes, device)
        self.objective = loop.compiled(self._objective, cfg.compile)

    def act(self, step: int) -> None:
        pass  # the projection's schedules have no actions

    def shape(self, step: int) -> Hashable:
        return ()  # every step runs the same kernels

    def losses(self, t: torch.Tensor, shape: Hashable, step: int | None) -> tuple[torch.Tensor, torch.Tensor]:
        return self.objective(self.streams.at(t, step), self.w.at(t, step))

    def _objective(self, u: dict[str, torch.Tensor], w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raw = loss_terms(self.model, self.x, self.knn, self.cfg.loss, u)
        return raw, raw * w

    def evaluate(self, rows: slice) -> dict[str, np.ndarray]:
        """Neighbor scores of the scored points, and the hue wheel of color inputs, of members
        `rows`."""
        y, ev = embed(self.model.block(rows), self.x), self.ev
        result = neighbor_scores_members(
            ev.features,
            y[:, ev.rows],
            self.cfg.scores.ks,
            labels=ev.labels,
            temperature=self.cfg.scores.temperature,
            device=y.device,
            cache=self.scored_neighbors,
        )
        if ev.hue_rows is not None:
            # Angles about the hues' own centroid: a projection has no meaningful origin.
            yh = y[:, ev.hue_rows]
            result.update(geometry.hue_scores_members(yh - yh.mean(dim=1, keepdim=True), ev.hues))
        return result

    def snapshot(self) -> tuple[torch.Tensor, dict[str, np.ndarray]]:
        extra: dict[str, np.ndarray] = {}
        if self.inputs.rgb is not None:
            extra.update({c: self.inputs.rgb[:, i] for i, c in enumerate("rgb")})
        if self.inputs.labels is not None:
            extra["label"] = self.inputs.labels
        return embed(self.model, self.x), extra

    def state_dict(self, next_step: int) -> dict:
        return {}  # a step's draws are a function of the step (`streams`)

    def load_state_dict(self, state: dict) -> None:
        pass


EXPERIMENT = Experiment(
    name="projection",
    config=ProjectionConfig,
    scores=SCORES,
    population=Projectors,
    preflight=preflight,
    key_scores=("trustworthiness_k10", "continuity_k10", "knn_accuracy_k10", "hue_corr"),
)
