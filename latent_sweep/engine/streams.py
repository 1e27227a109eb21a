"""Random numbers per population member, computed from (member seed, step, index) by a hash.

Every step needs a few uniforms per member (batch indices, hard labels, negatives). They are
a counter-based stream: uniform i of member k at step t is a hash of (k's seed, t, i) in a
handful of int32 tensor ops — no generator state, no host call per member. So a member draws
the same numbers alone or in a population of any size and position, on CPU and CUDA alike
(integer ops are exact, and a 24-bit integer times 2⁻²⁴ is exact in float32); a resumed
trial recomputes them from the step alone; and a step that reads them can be captured as a
CUDA graph, its step counter a device tensor.

The hash: per member two 32-bit keys from its seed; per (member, step) two words mixed from
the keys and the step; per number x = mix(((i ^ w₁)·C) + w₂), whose top 24 bits make the
uniform. `mix` is a 32-bit integer finalizer (xor-shift, multiply; Wellons' "lowbias32"),
a bijection: within one (member, step) the numbers never repeat, and two (member, step)
pairs share a sequence only by a 32-bit coincidence of both words.
"""

from __future__ import annotations

import math

import numpy as np
import torch

# Numbers drawn at once on the eager path: a small population draws several steps per set of
# kernels (CPU kernels cost a few µs each whatever their size); a large one draws step by step
# (a chunk much larger than the CPU's cache is slower per number).
CHUNK_NUMBERS = 2**16
MASK16, MASK17, MASK24 = 0xFFFF, 0x1FFFF, 0xFFFFFF
# lowbias32's multipliers as int32 (two's complement: int32 products wrap modulo 2³²).
M1, M2 = 0x7FEB352D, 0x846CA68B - 2**32
SPREAD = 0x2C1B3C6D  # odd: i ↦ i·SPREAD is a bijection that spreads neighbouring indices
STEP_SALT = 0x68E31DA4  # keeps the two per-step words apart


def mix(x: torch.Tensor) -> torch.Tensor:
    """lowbias32 on int32 tensors (shifts masked to act as logical shifts); a new tensor."""
    x = x ^ ((x >> 16) & MASK16)
    x = x * M1
    x = x ^ ((x >> 15) & MASK17)
    x = x * M2
    return x ^ ((x >> 16) & MASK16)


def member_keys(seeds: list[int], stream: int) -> np.ndarray:
    """Two int32 keys [K, 2] per member from its seed and the stream's number."""
    words = [np.random.SeedSequence([seed, stream]).generate_state(2, np.uint32) for seed in seeds]
    return np.stack(words).view(np.int32)


class MemberStreams:
    """Named uniforms in [0, 1): `at(t)[name]` has shape [K, *shapes[name]] for step `t`."""

    def __init__(
        self, seeds: list[int], stream: int, shapes: dict[str, tuple[int, ...]], device: torch.device
    ) -> None:
        self.keys = torch.tensor(member_keys(seeds, stream), device=device)  # [K, 2]
        self.shapes = shapes
        self.sizes = [math.prod(shape) for shape in shapes.values()]
        self.index = torch.arange(sum(self.sizes), dtype=torch.int32, device=device)
        self.chunk = max(1, CHUNK_NUMBERS // max(1, len(seeds) * sum(self.sizes)))
        self.start: int | None = None  # first step of the chunk in `buf`
        self.buf: dict[str, torch.Tensor] = {}

    def draw(self, t: torch.Tensor) -> dict[str, torch.Tensor]:
        """The uniforms of steps `t` (an int64 tensor [S]): name → [K, S, *shape]; pure tensor ops."""
        k = len(self.keys)
        step = t.to(torch.int32)  # steps < 2³¹ (MAX_STEP is 10⁷)
        w1 = mix(mix(step ^ STEP_SALT) ^ self.keys[:, :1])  # [K, S]
        w2 = mix(mix(step) + self.keys[:, 1:])
        x = mix((self.index ^ w1.unsqueeze(2)) * SPREAD + w2.unsqueeze(2))  # [K, S, n]
        u = ((x >> 8) & MASK24).float().mul_(2.0**-24)
        parts = u.split(self.sizes, dim=2)
        return {
            name: p.reshape(k, len(t), *shape)
            for (name, shape), p in zip(self.shapes.items(), parts, strict=True)
        }

    def at(self, t: torch.Tensor, step: int | None = None) -> dict[str, torch.Tensor]:
        """The uniforms of step `t` (a 0-d int64 tensor). Given `step`, the host's copy of it,
        they come from a chunk drawn for several steps at once — the same numbers."""
        if step is None:
            return {name: u[:, 0] for name, u in self.draw(t.view(1)).items()}
        first = step - step % self.chunk
        if first != self.start:
            steps = torch.arange(first, first + self.chunk, device=self.keys.device)
            self.buf, self.start = self.draw(steps), first
        return {name: u[:, step - first] for name, u in self.buf.items()}
