"""A population split into shards that step in parallel threads, so a trial uses its CPU share.

These models are tiny: a step is some sixty small kernels, each too small for intra-op
threads to help (two threads per kernel are slower than one). Members are independent, so a
trial with N CPUs splits its members into N shards, each stepped by its own thread (torch
releases the GIL inside kernels), meeting only where the loop records, evaluates or
checkpoints. A member's results do not depend on the sharding (it draws from its own
streams), and checkpoints hold the whole population in member order, so a trial resumes
under any shard count. On a GPU, or with `compile: true` (dynamo is not thread-safe), a
population is one shard.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import pairwise
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import torch

from latent_sweep.optim import PopulationAdam

if TYPE_CHECKING:
    from latent_sweep.experiments.loop import Population

T = TypeVar("T")
# One logged step of a shard: step, wall clock, unweighted and weighted terms, totals.
LogRow = tuple[int, float, torch.Tensor, torch.Tensor, torch.Tensor]


def count(device: torch.device, members: int, compile: bool) -> int:
    """Shards for a population of `members` on `device`: one per torch thread on CPU."""
    if device.type != "cpu" or compile:
        return 1
    return max(1, min(torch.get_num_threads(), members))


def bounds(members: int, shards: int) -> list[tuple[int, int]]:
    """Contiguous member ranges [lo, hi) of near-equal size."""
    edges = np.linspace(0, members, shards + 1).round().astype(int)
    return [(int(a), int(b)) for a, b in pairwise(edges)]


def take(state: Any, lo: int, hi: int) -> Any:
    """Members lo…hi−1 of a population state: tensors with a leading member axis and lists
    are per member; anything else (a step count, a chunk start) is shared by all members."""
    if isinstance(state, dict):
        return {key: take(value, lo, hi) for key, value in state.items()}
    if isinstance(state, list) or (isinstance(state, torch.Tensor) and state.dim() > 0):
        return state[lo:hi]
    return state


def join(states: list[Any]) -> Any:
    """The inverse of `take`: shards' states, concatenated in member order."""
    first = states[0]
    if isinstance(first, dict):
        return {key: join([s[key] for s in states]) for key in first}
    if isinstance(first, list):
        return [item for s in states for item in s]
    if isinstance(first, torch.Tensor) and first.dim() > 0:
        return torch.cat(states)
    return first


@dataclass
class Shard:
    """Members lo…hi−1 of a trial: their population, optimizer and divergence state, and the
    history rows logged since the loop last collected them."""

    pop: Population
    lo: int
    hi: int
    optimizer: PopulationAdam = field(init=False)
    alive: torch.Tensor = field(init=False)
    diverged_at: torch.Tensor = field(init=False)
    logs: list[LogRow] = field(default_factory=list)

    def __post_init__(self) -> None:
        pop, device = self.pop, self.pop.params.device
        self.optimizer = PopulationAdam(pop.params, weight_decay=pop.weight_decay, decoupled=pop.decoupled)
        self.alive = torch.ones(self.hi - self.lo, dtype=torch.bool, device=device)
        self.diverged_at = torch.full((self.hi - self.lo,), -1, dtype=torch.int64, device=device)

    def advance(self, start: int, end: int, every: int, stop: threading.Event) -> None:
        """Train steps start…end−1: one batched step for all the shard's members."""
        pop = self.pop
        for step in range(start, end):
            if stop.is_set():  # another shard failed, or Ctrl-C: the trial is ending
                return
            pop.act(step)
            raw, weighted = pop.losses(step)
            loss = weighted.sum(dim=1)  # [K]: members are independent, so one backward serves all
            # A member whose loss is no longer finite is frozen from here on (its scores become NaN).
            finite = torch.isfinite(loss)
            self.diverged_at = torch.where(self.alive & ~finite, step, self.diverged_at)
            self.alive = self.alive & finite
            loss.sum().backward()
            self.optimizer.step(pop.model.take_grad(), pop.lr.at(step), self.alive)
            if step % every == 0:
                self.logs.append((step, time.perf_counter(), raw.detach(), weighted.detach(), loss.detach()))

    def state(self, next_step: int) -> dict:
        """The shard's part of a checkpoint (see `take`)."""
        return {
            "params": self.pop.params.detach().clone(),
            "adam": self.optimizer.state_dict(),
            "alive": self.alive.clone(),
            "diverged_at": self.diverged_at.clone(),
            "experiment": self.pop.state_dict(next_step),
        }

    def restore(self, state: dict) -> None:
        """Continue from a whole population's checkpoint: this shard's members of it."""
        part = take(state, self.lo, self.hi)
        with torch.no_grad():
            self.pop.params.copy_(part["params"])
        self.optimizer.load_state_dict(part["adam"])  # copy_ moves a CPU checkpoint onto the device
        self.alive.copy_(part["alive"])
        self.diverged_at.copy_(part["diverged_at"])
        self.pop.load_state_dict(part["experiment"])


def _thread_setup() -> None:
    # Powers like 1.7's c¹⁰ underflow into denormal floats, which CPUs multiply tens of times
    # slower; flushing them to zero changes no loss by a representable amount. A per-thread
    # setting: every thread that runs a step sets it.
    torch.set_flush_denormal(True)


class Workers:
    """Runs a function on every shard, on n threads when n > 1 (torch's intra-op threads set to
    1 meanwhile: the shards use the CPUs). Leaving the `with` block — at the end, on a failure
    or on Ctrl-C — stops every shard at its next step (`stop`) and waits for them."""

    def __init__(self, n: int) -> None:
        self.stop = threading.Event()
        self.pool = ThreadPoolExecutor(n, initializer=_thread_setup) if n > 1 else None
        self.threads = torch.get_num_threads()

    def __enter__(self) -> Workers:
        _thread_setup()
        if self.pool is not None:
            torch.set_num_threads(1)
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        if self.pool is not None:
            self.pool.shutdown(wait=True)
            torch.set_num_threads(self.threads)
        torch.set_flush_denormal(False)

    def run(self, fn: Callable[..., T], shards: list[Shard], *args: Any) -> list[T]:
        """[fn(shard, *args) for shard in shards], in parallel."""
        if self.pool is None:
            return [fn(s, *args) for s in shards]
        futures = [self.pool.submit(fn, s, *args) for s in shards]
        return [f.result() for f in futures]
