"""The one training loop every experiment runs, population-first (a single run is K = 1).

An experiment supplies a `Population`: its stacked parameters, the loss terms of a step for
all members, its evaluation, snapshot and extra checkpoint state. The loop owns the order of
things — resume, step, record, evaluate, snapshot, checkpoint, report — divergence per member
and the session.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import pandas as pd
import torch

from latent_sweep import population
from latent_sweep.errors import TrialDiverged, UserError
from latent_sweep.experiments import shards
from latent_sweep.experiments.base import TrialConfig
from latent_sweep.experiments.recording import Recorder, due, history_every
from latent_sweep.models import Stack
from latent_sweep.session import Session
from latent_sweep.timeline import Timeline


@dataclass
class Members:
    """A trial's members: their distinct configs (members that differ only in the seed share
    one), each member's config index and seed, and the schedules realized once per config."""

    configs: list[Any]  # typed configs, one per distinct member config
    index: np.ndarray  # [K] member → config
    seeds: list[int]
    timelines: list[Timeline]
    total: int  # steps to train, the same for every member

    @property
    def cfg(self) -> Any:
        """Member 0's config: what all members share (shapes, data, intervals, device)."""
        return self.configs[0]

    def __len__(self) -> int:
        return len(self.seeds)

    def subset(self, lo: int, hi: int) -> Members:
        """Members lo…hi−1 (the same configs and schedules)."""
        return Members(self.configs, self.index[lo:hi], self.seeds[lo:hi], self.timelines, self.total)

    def curves(self, fn: Callable[[Any, Timeline], np.ndarray], device: torch.device) -> MemberCurves:
        """Per-step values [total, …] of each distinct config (`fn(cfg, timeline)`), per member."""
        stacked = np.stack([fn(c, t) for c, t in zip(self.configs, self.timelines, strict=True)], axis=1)
        return MemberCurves(torch.tensor(stacked, dtype=torch.float32, device=device), self.index)


class MemberCurves:
    """Dense per-step values [total, D, …] of D distinct configs; `at(step)` gives [K, …]."""

    def __init__(self, values: torch.Tensor, index: np.ndarray) -> None:
        self.values, self.k = values, len(index)
        self.index = None if values.shape[1] == 1 else torch.tensor(index, device=values.device)

    def at(self, step: int) -> torch.Tensor:
        row = self.values[step]
        return row.expand(self.k, *row.shape[1:]) if self.index is None else row.index_select(0, self.index)


def build_members(trial_raw: dict, source: str | None = None) -> Members:
    """Validate every member's config, check they can train as one batched model, realize
    each distinct config's schedule once."""
    from latent_sweep.config import validate

    raws = population.member_raws(trial_raw, source)
    population.check_vectorizable(raws, source)
    # Members whose configs differ only in the seed share one config (and one schedule).
    keys = [json.dumps({**r, "seed": None}, sort_keys=True, default=str) for r in raws]
    first = {key: i for i, key in reversed(list(enumerate(keys)))}
    order = list(dict.fromkeys(keys))
    configs: list[TrialConfig] = [validate(raws[first[key]], source) for key in order]
    timelines = [c.timeline(source) for c in configs]
    lengths = {total for _, total in timelines}
    for j, (timeline, _) in enumerate(timelines[1:], start=1):
        ref = timelines[0][0]
        same = (
            len(timeline) == len(ref)
            and np.array_equal(timeline.phase_index, ref.phase_index)
            and timeline.actions == ref.actions
            and len(lengths) == 1
        )
        if not same:
            member = keys.index(order[j])
            raise UserError(
                f"{source or 'config'}: members 0 and {member} have schedules of different length, phases "
                f"or actions; keyframe STEPs may vary within a population only where they move values, "
                f"not the end of the schedule, a phase boundary or an action"
            )
    return Members(
        configs=configs,
        index=np.array([order.index(key) for key in keys], dtype=np.int64),
        seeds=[int(r.get("seed", 0)) for r in raws],
        timelines=[t for t, _ in timelines],
        total=lengths.pop(),
    )


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
        """Schedule actions at `step`, before training on it (e.g. record anchor latents)."""

    def losses(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Unweighted and weighted loss terms [K, n_terms] of this step's batch."""

    def evaluate(self) -> dict[str, np.ndarray]:
        """Scores [K] per score name."""

    def snapshot(self) -> tuple[torch.Tensor, dict[str, np.ndarray]]:
        """Evaluation-set latents [K, n, E] and per-point display columns ([n] each)."""

    def state_dict(self, next_step: int) -> dict:
        """Extra checkpoint state: tensors with a leading member axis and lists are per member
        (shards' states are concatenated, see `shards.take`), other values shared by all."""

    def load_state_dict(self, state: dict) -> None: ...


def train(
    build: Callable[[Members], Population],
    members: Members,
    session: Session,
    success: str | None = None,
    device: torch.device | None = None,
) -> pd.DataFrame:
    """Train all members together under their schedules; report statistics over them and
    checkpoints; returns each member's final scores (member, seed, scores…, diverged_at).
    `build` makes the population of some members; on CPU the members are split into one shard
    per torch thread (see `shards`)."""
    cfg, total, k = members.cfg, members.total, len(members)
    device = device or torch.device("cpu")
    parts = shards.bounds(k, shards.count(device, k, cfg.compile))
    shard = [shards.Shard(build(members.subset(lo, hi)), lo, hi) for lo, hi in parts]
    terms = shard[0].pop.terms

    # Continue from the session's checkpoint, dropping history written after it.
    state = session.restore()
    start, elapsed, result = 0, 0.0, pd.DataFrame()
    if state is not None:
        for s in shard:
            s.restore(state)
        start, elapsed = int(state["step"]), float(state["wall_time"])
        result = pd.DataFrame(state["scores"]).astype({"diverged_at": "Int64"})
    every = history_every(cfg.history_every, k, total, 2 * len(terms) + 1)
    rec = Recorder(
        session.trial_dir,
        members.seeds,
        phase_names(members.timelines[0], total),
        {
            p: np.stack([t.dense(p, total, np.nan) for t in members.timelines], 1)
            for p in members.timelines[0].props
        },
        members.index,
        terms,
        -(-cfg.checkpoint_every // every) + 1,
        start,
        elapsed,
        device,
    )

    with shards.Workers(len(shard)) as workers:
        # Shards train on their own up to the next step that records, evaluates or checkpoints.
        for begin, done in segments(cfg, start, total):
            workers.run(shards.Shard.advance, shard, begin, done, every, workers.stop)
            for rows in zip(*(s.logs for s in shard), strict=True):
                step, wall = rows[0][0], max(r[1] for r in rows)
                rec.log(step, *(torch.cat([r[i] for r in rows]) for i in (2, 3, 4)), wall)
            for s in shard:
                s.logs.clear()

            evaluate_now, snapshot_now, checkpoint_now = due(cfg, done, total)
            if snapshot_now:  # also between evaluations
                snaps = workers.run(lambda s: s.pop.snapshot(), shard)
                rec.snapshot(done, torch.cat([z for z, _ in snaps]), snaps[0][1])
            if not evaluate_now:
                continue
            alive = torch.cat([s.alive for s in shard])
            diverged_at = torch.cat([s.diverged_at for s in shard])
            if not bool(alive.any()):  # one host sync per evaluation
                first = int(diverged_at.min())
                raise TrialDiverged(f"every member's loss became non-finite (the first at step {first})")
            scores = workers.run(lambda s: s.pop.evaluate(), shard)
            merged = {name: np.concatenate([sc[name] for sc in scores]) for name in scores[0]}
            result = member_scores(members, merged, alive, diverged_at)
            state = shards.join([s.state(done) for s in shard]) if checkpoint_now else None
            names = [c for c in result.columns if c not in ("member", "seed", "diverged_at")]
            rec.report(session, done, total, result, population.summarize(result, names, success), state)
    return result


def segments(cfg: TrialConfig, start: int, total: int) -> Iterator[tuple[int, int]]:
    """Step ranges [begin, done) that end where something is due (see `recording.due`)."""
    begin = start
    for done in range(start + 1, total + 1):
        if any(due(cfg, done, total)):
            yield begin, done
            begin = done


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
