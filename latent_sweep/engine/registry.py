"""Experiments: each supplies a population to the one training loop (`loop.train`), driven
through a `Session`; none is aware of Ray."""

from __future__ import annotations

import ctypes
import random
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import yaml

from latent_sweep.engine.loop import Members, build_members
from latent_sweep.engine.session import Session
from latent_sweep.errors import TrialDiverged, UserError
from latent_sweep.store import atomic

__all__ = [
    "TrialDiverged",
    "config_class",
    "preflight",
    "run_trial",
    "score_declarations",
    "seed_everything",
    "write_config",
]


def _registry() -> dict[str, tuple[type, Any]]:
    """Experiment name → (its config class, its module: `train` and `preflight`)."""
    from latent_sweep.experiments import autoencoder, projection

    return {
        "autoencoder": (autoencoder.AutoencoderConfig, autoencoder),
        "projection": (projection.ProjectionConfig, projection),
    }


def config_class(kind: str, source: str | Path | None = None) -> type:
    registry = _registry()
    if not isinstance(kind, str) or kind not in registry:
        head = f"{source}: " if source else ""
        raise UserError(f"{head}`experiment` must be one of {', '.join(registry)}, but got {kind!r}")
    return registry[kind][0]


def score_declarations() -> dict[str, tuple]:
    """Experiment name → the scores it declares (its module's `SCORES`)."""
    return {name: module.SCORES for name, (_, module) in _registry().items()}


def preflight(members: Members, source: str | None = None) -> None:
    """Everything a trial would check before its first step beyond the config itself (input
    files, their sizes), as a one-paragraph UserError naming `source`."""
    try:
        _registry()[members.cfg.experiment][1].preflight(members)
    except UserError as err:
        raise UserError(f"{source}: {err}" if source else str(err)) from None


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def reuse_freed_memory() -> None:
    """Let glibc keep freed blocks for reuse. By default it hands blocks over 128 KiB back to the
    OS at once (its adaptive threshold does not reliably adapt), so each step's [K, B, B]
    temporaries are page-faulted in anew: measured ~1,000 faults and +2 ms per step at K = 64,
    more than the arithmetic. Linux/glibc only; elsewhere a no-op."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return
    mmap_threshold, trim_threshold = -3, -1  # mallopt parameter numbers (malloc.h)
    libc.mallopt(mmap_threshold, 256 * 2**20)
    libc.mallopt(trim_threshold, 1024 * 2**20)


def write_config(trial_raw: dict, trial_dir: Path) -> None:
    """The trial's full resolved config, written whole; `train config.yaml` reproduces the trial."""
    atomic.write_text(trial_dir / "config.yaml", yaml.safe_dump(trial_raw, sort_keys=False))


def run_trial(
    trial_raw: dict, session: Session, *, source: str | None = None, success: str | None = None
) -> pd.DataFrame:
    """Validate a trial config and its members, run its experiment; each member's final scores
    (member, seed, scores…, diverged_at). `success` (an expression over scores) adds
    `success_rate` to the reported statistics."""
    members = build_members(trial_raw, source)
    write_config(trial_raw, Path(session.trial_dir))
    # Members draw from their own generators; global state is seeded for anything else.
    seed_everything(members.seeds[0])
    # Powers like 1.7's c¹⁰ underflow into denormal floats, which CPUs multiply tens of times
    # slower; flushing them to zero changes no loss by a representable amount.
    torch.set_flush_denormal(True)
    reuse_freed_memory()
    try:
        return _registry()[members.cfg.experiment][1].train(members, session, success)
    finally:
        torch.set_flush_denormal(False)
