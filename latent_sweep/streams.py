"""Random numbers per population member, drawn in chunks from each member's own generator.

Every step needs a few uniforms per member (batch indices, hard labels, negatives). Drawing
them member by member each step would be K host calls per step; drawing them for all members
from one generator would make a member's batches depend on K and its position. So each member
has its own generator, seeded from its seed alone, and draws `chunk` steps' worth of uniforms
at a time; the step then selects its slice for all members in one indexing call. The chunk
length depends only on how many uniforms a step takes (the config), never on K, so member k
of a population draws exactly the numbers it would draw alone.
"""

from __future__ import annotations

import math

import torch

from latent_sweep.models import member_generator

# Uniforms per member per chunk: bounds the chunk buffer to K × 64 KiB.
CHUNK_NUMBERS = 2**14


class MemberStreams:
    """Named uniforms in [0, 1) per step: `at(step)[name]` has shape [K, *shapes[name]]."""

    def __init__(
        self, seeds: list[int], stream: int, shapes: dict[str, tuple[int, ...]], device: torch.device
    ) -> None:
        self.gens = [member_generator(s, stream, device) for s in seeds]
        self.shapes, self.device = shapes, device
        self.sizes = [math.prod(shape) for shape in shapes.values()]
        self.chunk = max(1, CHUNK_NUMBERS // max(1, sum(self.sizes)))
        self.start: int | None = None  # first step of the chunk in `buf`
        self.states: list[torch.Tensor] = []  # generator states at that chunk's start
        self.buf: dict[str, torch.Tensor] = {}

    def at(self, step: int) -> dict[str, torch.Tensor]:
        first = step - step % self.chunk
        if first != self.start:
            self._draw(first)
        i = step - first
        return {name: b[:, i] for name, b in self.buf.items()}

    def _draw(self, first: int) -> None:
        # Chunks are drawn in order; a resumed stream restarts at its saved chunk (`load_state_dict`).
        expected = 0 if self.start is None else self.start + self.chunk
        assert first == expected, (first, expected)
        self.states = [g.get_state() for g in self.gens]
        n = self.chunk * sum(self.sizes)
        u = torch.stack([torch.rand(n, generator=g, device=self.device) for g in self.gens])
        parts = u.view(len(self.gens), self.chunk, -1).split(self.sizes, dim=2)
        self.buf = {
            name: p.reshape(len(self.gens), self.chunk, *shape)
            for (name, shape), p in zip(self.shapes.items(), parts, strict=True)
        }
        self.start = first

    def state_dict(self, next_step: int) -> dict:
        """What restarts the streams at `next_step`: the chunk holding it and the states before it."""
        if self.start is not None and next_step < self.start + self.chunk:
            return {"start": self.start, "states": [s.clone() for s in self.states]}
        start = 0 if self.start is None else self.start + self.chunk
        return {"start": start, "states": [g.get_state() for g in self.gens]}

    def load_state_dict(self, state: dict) -> None:
        for g, s in zip(self.gens, state["states"], strict=True):
            g.set_state(s.to(g.get_state().device))
        # The next draw is the saved chunk: pretend the one before it is loaded.
        self.start = int(state["start"]) - self.chunk
        self.buf = {}
