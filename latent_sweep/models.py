"""Models as populations: K MLPs of one shape whose parameters live in one tensor [K, P].

Member k's weights are the slices of row k, so one batched matmul (`baddbmm`) runs a layer
for every member, and one optimizer update covers the whole population. A member's initial
weights come from its own seed alone (PyTorch's `nn.Linear` init: U(±1/√fan_in) for weights
and biases), so they do not depend on K or on the member's position.
"""

from __future__ import annotations

import math
from itertools import pairwise

import numpy as np
import torch
import torch.nn.functional as F

# Independent random streams per member, derived from its seed (see `member_generator`).
STREAM_INIT, STREAM_BATCHES, STREAM_SUBSET = 0, 1, 2


def stream_seed(seed: int, stream: int) -> int:
    """A seed for one of a member's streams: distinct streams from one seed stay uncorrelated."""
    return int(np.random.SeedSequence([seed, stream]).generate_state(1, np.uint64)[0] >> 1)


def member_generator(seed: int, stream: int, device: torch.device | str = "cpu") -> torch.Generator:
    gen = torch.Generator(device=device)
    gen.manual_seed(stream_seed(seed, stream))
    return gen


class MLP:
    """The layout of one MLP (widths) inside a population's parameter rows."""

    def __init__(self, widths: list[int], offset: int = 0) -> None:
        self.shapes = list(pairwise(widths))
        self.offset = offset
        self.size = sum(a * b + b for a, b in self.shapes)

    def init(self, gen: torch.Generator) -> torch.Tensor:
        """One member's initial parameters [size], drawn from `gen` layer by layer."""
        parts = []
        for a, b in self.shapes:
            bound = 1 / math.sqrt(a)
            parts.append((torch.rand(a * b + b, generator=gen) * 2 - 1) * bound)
        return torch.cat(parts)

    def __call__(self, params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """x [K, B, in] → [K, B, out]; GELU between layers, none after the last."""
        # Activations run feature-major [K, features, B]: batched GEMMs whose long axis is
        # last are several times faster on CPU for these narrow layers (forward and backward).
        h, at = x.mT, self.offset
        for i, (a, b) in enumerate(self.shapes):
            w = params[:, at : at + a * b].unflatten(1, (a, b))
            bias = params[:, at + a * b : at + a * b + b].unsqueeze(2)
            at += a * b + b
            h = torch.baddbmm(bias, w.mT, h)
            if i < len(self.shapes) - 1:
                h = F.gelu(h)
        return h.mT.contiguous()  # row-major for the per-sample terms (norms over features)


def init_params(nets: list[MLP], seeds: list[int], device: torch.device) -> torch.Tensor:
    """The population's parameters [K, P] (a leaf that requires grad), member k from seeds[k]."""
    rows = []
    for seed in seeds:
        gen = member_generator(seed, STREAM_INIT)
        rows.append(torch.cat([net.init(gen) for net in nets]))
    return torch.stack(rows).to(device).requires_grad_()


class ColorAutoencoders:
    """3 → hidden… → E (bottleneck) → …hidden → 3 → sigmoid, for K members at once; the
    bottleneck optionally unit-normalized."""

    def __init__(
        self, hidden: list[int], latent_dim: int, normalize: bool, seeds: list[int], device: torch.device
    ) -> None:
        self.encoder = MLP([3, *hidden, latent_dim])
        self.decoder = MLP([latent_dim, *reversed(hidden), 3], offset=self.encoder.size)
        self.normalize = normalize
        self.params = init_params([self.encoder, self.decoder], seeds, device)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """x [K, B, 3] (or [B, 3], shared by all members) → latents [K, B, E]."""
        if x.dim() == 2:
            x = x.expand(len(self.params), *x.shape)
        z = self.encoder(self.params, x)
        if self.normalize:
            z = z / (z.norm(dim=-1, keepdim=True) + 1e-8)
        return z

    def __call__(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = self.encode(x)
        return torch.sigmoid(self.decoder(self.params, z)), z


class Projections:
    """D → hidden… → out_dim (2 for a scatter plot), for K members at once."""

    def __init__(self, in_dim: int, hidden: list[int], out_dim: int, seeds: list[int], device) -> None:
        self.net = MLP([in_dim, *hidden, out_dim])
        self.params = init_params([self.net], seeds, device)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """x [K, B, D] (or [B, D], shared by all members) → [K, B, out_dim]."""
        if x.dim() == 2:
            x = x.expand(len(self.params), *x.shape)
        return self.net(self.params, x)
