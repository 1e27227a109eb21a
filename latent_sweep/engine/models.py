"""Models as populations: K MLPs of one shape whose parameters live in one tensor [K, P].

Member k's weights are the slices of row k, so one batched matmul (`baddbmm`) runs a layer
for every member, and one optimizer update over [K, P] covers the whole population. A member's initial
weights come from its own seed alone (PyTorch's `nn.Linear` init: U(±1/√fan_in) for weights
and biases), so they do not depend on K or on the member's position.
"""

from __future__ import annotations

import copy
import math
from itertools import pairwise

import numpy as np
import torch
import torch.nn.functional as F

# Independent random streams per member, derived from its seed (see `member_generator`).
STREAM_INIT, STREAM_BATCHES = 0, 1


def stream_seed(seed: int, stream: int) -> int:
    """A seed for one of a member's streams: distinct streams from one seed stay uncorrelated."""
    return int(np.random.SeedSequence([seed, stream]).generate_state(1, np.uint64)[0] >> 1)


def member_generator(seed: int, stream: int, device: torch.device | str = "cpu") -> torch.Generator:
    gen = torch.Generator(device=device)
    gen.manual_seed(stream_seed(seed, stream))
    return gen


class MLP:
    """One MLP's layout inside a population's parameter rows: per layer, the weights as
    [out, in] row-major, then the biases [out]."""

    def __init__(self, widths: list[int], offset: int = 0) -> None:
        self.shapes = list(pairwise(widths))
        self.offset = offset
        self.size = sum(a * b + b for a, b in self.shapes)
        self.layers: list[tuple[torch.Tensor, torch.Tensor]] = []

    def init(self, gen: torch.Generator) -> torch.Tensor:
        """One member's initial parameters [size], drawn from `gen` layer by layer."""
        parts = []
        for a, b in self.shapes:
            bound = 1 / math.sqrt(a)
            parts.append((torch.rand(a * b + b, generator=gen) * 2 - 1) * bound)
        return torch.cat(parts)

    def bind(self, params: torch.Tensor) -> list[torch.Tensor]:
        """Make each layer's weights [K, out, in] and biases [K, out, 1] views into `params`
        that are autograd leaves: the forward pass then needs no slicing, and the backward
        pass no scatter of slice gradients into [K, P] zeros. Returns the leaves."""
        self.layers, at = [], self.offset
        for a, b in self.shapes:
            w = params[:, at : at + a * b].unflatten(1, (b, a)).requires_grad_()
            bias = params[:, at + a * b : at + a * b + b].unsqueeze(2).requires_grad_()
            self.layers.append((w, bias))
            at += a * b + b
        return [t for layer in self.layers for t in layer]

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """x [K, B, in] → [K, B, out]; GELU between layers, none after the last."""
        # Activations run feature-major [K, features, B]: batched GEMMs whose long axis is
        # last are several times faster on CPU for these narrow layers (forward and backward).
        h = x.mT
        for i, (w, bias) in enumerate(self.layers):
            h = torch.baddbmm(bias, w, h)
            if i < len(self.layers) - 1:
                h = F.gelu(h)
        return h.mT.contiguous()  # row-major for the per-sample terms (norms over features)


class Stack:
    """K members' parameters [K, P] (`params`, updated in place by the optimizer) and the
    per-layer leaves autograd differentiates, which are views into it."""

    def __init__(self, nets: list[MLP], seeds: list[int], device: torch.device) -> None:
        rows = []
        for seed in seeds:
            gen = member_generator(seed, STREAM_INIT)
            rows.append(torch.cat([net.init(gen) for net in nets]))
        self.params = torch.stack(rows).to(device)
        self.leaves = [leaf for net in nets for leaf in net.bind(self.params)]

    def block(self, rows: slice) -> Stack:
        """The same model over members `rows` only, as views (no copy): a population's
        evaluation runs in blocks of members so that its activations fit in memory."""
        view = copy.copy(self)
        view.params = self.params[rows]
        for name, net in vars(self).items():  # the subclass's MLPs (encoder, decoder, net)
            if isinstance(net, MLP):
                part = copy.copy(net)
                part.layers = [(w[rows], b[rows]) for w, b in net.layers]
                setattr(view, name, part)
        return view

    def grad(self, loss: torch.Tensor) -> torch.Tensor:
        """The gradient of `loss` (a scalar: the members' losses summed) as one [K, P] tensor,
        in the parameters' layout; functional, so nothing is left in the leaves' `.grad`."""
        grads = torch.autograd.grad(loss, self.leaves)
        return torch.cat([g.flatten(1) for g in grads], dim=1)


class ColorAutoencoders(Stack):
    """3 → hidden… → E (bottleneck) → …hidden → 3 → sigmoid, for K members at once; the
    bottleneck optionally unit-normalized."""

    def __init__(
        self, hidden: list[int], latent_dim: int, normalize: bool, seeds: list[int], device: torch.device
    ) -> None:
        self.encoder = MLP([3, *hidden, latent_dim])
        self.decoder = MLP([latent_dim, *reversed(hidden), 3], offset=self.encoder.size)
        self.normalize = normalize
        super().__init__([self.encoder, self.decoder], seeds, device)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """x [K, B, 3] (or [B, 3], shared by all members) → latents [K, B, E]."""
        if x.dim() == 2:
            x = x.expand(len(self.params), *x.shape)
        z = self.encoder(x)
        if self.normalize:
            z = z / (z.norm(dim=-1, keepdim=True) + 1e-8)
        return z

    def __call__(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = self.encode(x)
        return torch.sigmoid(self.decoder(z)), z


class Projections(Stack):
    """D → hidden… → out_dim (2 for a scatter plot), for K members at once."""

    def __init__(self, in_dim: int, hidden: list[int], out_dim: int, seeds: list[int], device) -> None:
        self.net = MLP([in_dim, *hidden, out_dim])
        super().__init__([self.net], seeds, device)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """x [K, B, D] (or [B, D], shared by all members) → [K, B, out_dim]."""
        if x.dim() == 2:
            x = x.expand(len(self.params), *x.shape)
        return self.net(x)
