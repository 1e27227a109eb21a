"""The one training loop every experiment runs, population-first (a single run is K = 1).

An experiment supplies a `Population`: its stacked parameters, the loss terms of a step for
all members, its evaluation, snapshot and extra checkpoint state. The loop owns the order of
things — resume, step, record, evaluate, snapshot, checkpoint, report — divergence per member
and the session.

The step itself is a function of device tensors: it reads the step from a device counter
`t` (schedule values, random draws: `streams`), writes parameters, optimizer state,
divergence flags and the history row in place, and never syncs with the host. Which
kernels it runs (its *shape*: phase, active terms, logging) is decided on the host from the
schedule, so on CUDA each shape is captured once as a graph and replayed (`graphs`).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any, Protocol

import numpy as np
import pandas as pd
import torch

from latent_sweep.engine.graphs import StepGraphs
from latent_sweep.engine.models import Stack
from latent_sweep.engine.optim import PopulationAdam
from latent_sweep.engine.recording import Recorder, due, history_every
from latent_sweep.engine.session import Session
from latent_sweep.errors import TrialDiverged
from latent_sweep.scores import summary
from latent_sweep.scores.declarations import check_returned
from latent_sweep.spec.experiment import declared
from latent_sweep.spec.population import Members
from latent_sweep.spec.timeline import Timeline
from latent_sweep.spec.trial import TrialConfig


def curves(members: Members, fn: Callable[[Any, Timeline], np.ndarray], device: torch.device) -> MemberCurves:
    """Per-step values [total, …] of each distinct config (`fn(cfg, timeline)`), per member."""
    stacked = np.stack([fn(c, t) for c, t in zip(members.configs, members.timelines, strict=True)], axis=1)
    return MemberCurves(torch.tensor(stacked, dtype=torch.float32, device=device), members.index)


class MemberCurves:
    """Dense per-step values [total, D, …] of D distinct configs; `at(step)` gives [K, …]."""

    def __init__(self, values: torch.Tensor, index: np.ndarray) -> None:
        self.values, self.k = values, len(index)
        self.index = None if values.shape[1] == 1 else torch.tensor(index, device=values.device)

    def distinct(self, t: torch.Tensor, step: int | None = None) -> torch.Tensor:
        """The distinct configs' values [D, …] at step `t`, a 0-d int64 tensor on their device;
        given `step`, the host's copy of `t`, a view of them (no kernel: the eager loop)."""
        return self.values[step] if step is not None else self.values.index_select(0, t.view(1))[0]

    def at(self, t: torch.Tensor, step: int | None = None) -> torch.Tensor:
        """The members' values [K, …] at step `t` (`step` as in `distinct`)."""
        row = self.distinct(t, step)
        return row.expand(self.k, *row.shape[1:]) if self.index is None else row.index_select(0, self.index)


def compiled(fn: Callable, enabled: bool) -> Callable:
    """`fn` under `torch.compile` when the config asks for it: shapes are static within a trial
    (K, the batch), so each distinct set of active terms compiles once."""
    return torch.compile(fn, dynamic=False) if enabled else fn


class Population(Protocol):
    """What an experiment hands the loop."""

    params: torch.Tensor  # [K, P], what the optimizer updates
    model: Stack  # whose leaves (views of `params`) autograd differentiates
    terms: list[str]  # loss term names, in the order of `losses` columns
    lr: MemberCurves
    weight_decay: float
    decoupled: bool  # AdamW's weight decay (True) or Adam's L2 term in the gradient

    def act(self, step: int) -> None:
        """Schedule actions at `step`, before training on it (e.g. record anchor latents into
        a buffer, in place)."""

    def shape(self, step: int) -> Hashable:
        """What decides which kernels step `step` runs (phase, active terms), from the host's
        schedule; steps of one shape run the same kernels on different values."""

    def losses(self, t: torch.Tensor, shape: Hashable, step: int | None) -> tuple[torch.Tensor, torch.Tensor]:
        """Unweighted and weighted loss terms [K, n_terms] of the batch of step `t` (a device
        counter), of shape `shape`; no host sync. `step` is the host's copy of `t` where the
        step is not captured (it may serve cached values; None under a CUDA graph)."""

    eval_bytes: int  # what one member's evaluation holds at its peak, roughly (`evaluate`)

    def evaluate(self, rows: slice) -> dict[str, np.ndarray]:
        """Scores [len(rows)] of members `rows` per score name."""

    def snapshot(self) -> tuple[torch.Tensor, dict[str, np.ndarray]]:
        """Evaluation-set latents [K, n, E] and per-point display columns ([n] each)."""

    def state_dict(self, next_step: int) -> dict: ...

    def load_state_dict(self, state: dict) -> None: ...


def train(pop: Population, members: Members, session: Session, success: str | None = None) -> pd.DataFrame:
    """Train all members together under their schedules; report statistics over them and
    checkpoints; returns each member's final scores (member, seed, scores…, diverged_at)."""
    cfg, total, k = members.cfg, members.total, len(members)
    device = pop.params.device
    optimizer = PopulationAdam(pop.params, weight_decay=pop.weight_decay, decoupled=pop.decoupled)
    t = torch.zeros((), dtype=torch.int64, device=device)  # the step counter the step reads
    alive = torch.ones(k, dtype=torch.bool, device=device)
    diverged_at = torch.full((k,), -1, dtype=torch.int64, device=device)

    # Continue from the session's checkpoint, dropping history written after it.
    state = session.restore()
    start, elapsed, result = 0, 0.0, pd.DataFrame()
    if state is not None:
        with torch.no_grad():
            pop.params.copy_(state["params"])
        optimizer.load_state_dict(state["adam"])  # copy_ moves a CPU checkpoint onto the device
        alive.copy_(state["alive"])
        diverged_at.copy_(state["diverged_at"])
        pop.load_state_dict(state["experiment"])
        start, elapsed = int(state["step"]), float(state["wall_time"])
        result = pd.DataFrame(state["scores"]).astype({"diverged_at": "Int64"})
    t.fill_(start)
    declared_goals = declared(cfg)  # members share the config paths that name scores
    every = history_every(cfg.history_every, k, total, 2 * len(pop.terms) + 1)
    rec = Recorder(
        session.trial_dir,
        members.seeds,
        phase_names(members.timelines[0], total),
        {
            p: np.stack([t.dense(p, total, np.nan) for t in members.timelines], 1)
            for p in members.timelines[0].props
        },
        members.index,
        pop.terms,
        -(-cfg.checkpoint_every // every) + 1,
        start,
        elapsed,
        device,
    )

    def train_step(shape: tuple[Hashable, bool], step: int | None) -> None:
        """One step for every member, all on the device; `step` as in `Population.losses`."""
        pop_shape, log = shape
        raw, weighted = pop.losses(t, pop_shape, step)
        loss = weighted.sum(dim=1)  # [K]: members are independent, so one backward serves all
        # A member whose loss is no longer finite is frozen from here on (its scores become NaN).
        finite = torch.isfinite(loss)
        diverged_at.copy_(torch.where(alive & ~finite, t, diverged_at))
        alive.logical_and_(finite)
        optimizer.step(pop.model.grad(loss.sum()), pop.lr.at(t, step), alive)
        if log:
            rec.log(raw.detach(), weighted.detach(), loss.detach())
        t.add_(1)

    def mutable() -> list[torch.Tensor]:
        adam = [optimizer.exp_avg, optimizer.exp_avg_sq, optimizer.steps]
        return [pop.params, *adam, t, alive, diverged_at, rec.buf, rec.slot]

    steps = StepGraphs(train_step, mutable, graphed(cfg, device))
    metrics = {"device": device_name(device)}  # reported with the scores: where the trial ran
    for step in range(start, total):
        pop.act(step)
        log = step % every == 0
        steps((pop.shape(step), log), step)
        if log:
            rec.logged(step)

        done = step + 1
        evaluate_now, snapshot_now, checkpoint_now = due(cfg, done, total)
        if snapshot_now:  # also between evaluations
            rec.snapshot(done, *pop.snapshot())
        if not evaluate_now:
            continue
        if not bool(alive.any()):  # one host sync per evaluation
            first = int(diverged_at.min())
            raise TrialDiverged(f"every member's loss became non-finite (the first at step {first})")
        scores = evaluate(pop, k, device)
        check_returned(cfg.experiment, declared_goals, scores)
        result = member_scores(members, scores, alive, diverged_at)
        state = None
        if checkpoint_now:
            state = {
                "params": pop.params.detach().clone(),
                "adam": optimizer.state_dict(),
                "alive": alive.clone(),
                "diverged_at": diverged_at.clone(),
                "experiment": pop.state_dict(done),
            }
        stats = summary.summarize(result, score_names(result), success)
        rec.report(session, done, total, result, {**stats, **metrics}, state)
    if start == total and not rec.evaluated(total):
        # A PBT trial that took over a finished trial's checkpoint ends there: its final scores
        # are the ones that checkpoint holds, evaluated at the last step like any trial's.
        stats = summary.summarize(result, score_names(result), success)
        rec.report(session, total, total, result, {**stats, **metrics}, None)
        rec.flush()
    return result


# Memory an evaluation block of members may hold (activations of the evaluation sets).
EVAL_BUDGET = {"cpu": 256 << 20, "cuda": 2 << 30}


def evaluate(pop: Population, k: int, device: torch.device) -> dict[str, np.ndarray]:
    """Every member's scores, evaluated in blocks of members whose activations fit
    `EVAL_BUDGET` (so a population of 65,536 evaluates in a bounded amount of memory)."""
    size = max(1, EVAL_BUDGET.get(device.type, EVAL_BUDGET["cuda"]) // pop.eval_bytes)
    parts = [pop.evaluate(slice(a, a + size)) for a in range(0, k, size)]
    return {name: np.concatenate([np.asarray(p[name]) for p in parts]) for name in parts[0]}


def graphed(cfg: TrialConfig, device: torch.device) -> bool:
    """Whether steps run as CUDA graphs: `cuda_graph: auto` on a CUDA device."""
    return cfg.cuda_graph == "auto" and device.type == "cuda"


def device_name(device: torch.device) -> str:
    """`cpu` or `cuda:<index>`: where a trial trains, as trials.parquet shows it."""
    if device.type == "cuda" and device.index is None:
        return f"cuda:{torch.cuda.current_device()}"
    return str(device)


def score_names(result: pd.DataFrame) -> list[str]:
    return [c for c in result.columns if c not in ("member", "seed", "diverged_at")]


def member_scores(
    members: Members, scores: dict[str, np.ndarray], alive: torch.Tensor, diverged_at: torch.Tensor
) -> pd.DataFrame:
    """One row per member: member, seed, scores (NaN for a diverged member), diverged_at."""
    dead = ~alive.cpu().numpy()
    frame = pd.DataFrame({"member": np.arange(len(members)), "seed": np.asarray(members.seeds, np.int64)})
    for name, values in scores.items():
        frame[name] = np.where(dead, np.nan, np.asarray(values, dtype=np.float64))
    at = diverged_at.cpu().numpy()
    frame["diverged_at"] = pd.Series(at, dtype="Int64").mask(at < 0)
    return frame


def phase_names(timeline: Timeline, total: int) -> np.ndarray:
    """The phase name of every step (None outside any phase), the last phase held past the end."""
    names = np.array([p.name for p in timeline.phases] + [None], dtype=object)
    return names[timeline.phase_indices(total)]
