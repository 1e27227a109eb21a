"""Experiments: one training loop each, all driven through a `Session`, none aware of Ray."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from latent_sweep.errors import UserError
from latent_sweep.session import Session


class TrialDiverged(RuntimeError):
    """Training produced non-finite values; the trial stops with this reason."""


def _registry() -> dict[str, tuple[type, Any]]:
    from latent_sweep.experiments import autoencoder, projection

    return {
        "autoencoder": (autoencoder.AutoencoderConfig, autoencoder.train),
        "projection": (projection.ProjectionConfig, projection.train),
    }


def config_class(kind: str, source: str | Path | None = None) -> type:
    registry = _registry()
    if kind not in registry:
        head = f"{source}: " if source else ""
        raise UserError(f"{head}`experiment` must be one of {', '.join(registry)}, but got {kind!r}")
    return registry[kind][0]


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def write_config(trial_raw: dict, trial_dir: Path) -> None:
    """The trial's full resolved config, written whole; `train config.yaml` reproduces the trial."""
    trial_dir.mkdir(parents=True, exist_ok=True)
    tmp = trial_dir / ".config.yaml.tmp"
    tmp.write_text(yaml.safe_dump(trial_raw, sort_keys=False))
    tmp.replace(trial_dir / "config.yaml")


def run_trial(trial_raw: dict, session: Session, *, source: str | None = None) -> dict[str, float]:
    """Validate a trial config, seed everything from it, run its experiment; final scores."""
    from latent_sweep.config import validate

    cfg = validate(trial_raw, source)
    write_config(trial_raw, Path(session.trial_dir))
    seed_everything(cfg.seed)
    return _registry()[cfg.experiment][1](cfg, session)
