"""Models: the color autoencoder (RGB → bottleneck → RGB)."""

from __future__ import annotations

from itertools import pairwise

import torch
from torch import nn


def mlp(widths: list[int], final: nn.Module | None = None) -> nn.Sequential:
    """Linear layers with GELU between them (none after the last)."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(pairwise(widths)):
        layers.append(nn.Linear(a, b))
        if i < len(widths) - 2:
            layers.append(nn.GELU())
    if final is not None:
        layers.append(final)
    return nn.Sequential(*layers)


class ColorAutoencoder(nn.Module):
    """3 → hidden… → E (bottleneck) → …hidden → 3 → Sigmoid; the bottleneck optionally unit-normalized."""

    def __init__(self, hidden: list[int], latent_dim: int, normalize: bool = False) -> None:
        super().__init__()
        self.encoder = mlp([3, *hidden, latent_dim])
        self.decoder = mlp([latent_dim, *reversed(hidden), 3], final=nn.Sigmoid())
        self.normalize = normalize

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        z = self.encoder(x)
        if self.normalize:
            z = z / (z.norm(dim=-1, keepdim=True) + 1e-8)
        return z

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = self.encode(x)
        return self.decoder(z), z


class ProjectionMLP(nn.Module):
    """D → hidden… → out_dim (2 for a scatter plot): the parametric projection of SPEC §3."""

    def __init__(self, in_dim: int, hidden: list[int], out_dim: int = 2) -> None:
        super().__init__()
        self.net = mlp([in_dim, *hidden, out_dim])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)
