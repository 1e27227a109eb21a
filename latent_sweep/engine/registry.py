"""Running one trial: validate its members, set up the process, hand them to their experiment
(`spec.experiment`: each supplies a population to the one training loop, `loop.train`, driven
through a `Session`; none is aware of Ray)."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import yaml

from latent_sweep.engine import loop
from latent_sweep.engine.process import trial_process
from latent_sweep.engine.recording import pick_device
from latent_sweep.engine.session import Session
from latent_sweep.errors import TrialDiverged
from latent_sweep.spec import experiment
from latent_sweep.spec.population import build_members
from latent_sweep.store import atomic, layout

__all__ = ["TrialDiverged", "run_trial", "seed_everything", "write_config"]


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def write_config(trial_raw: dict, trial_dir: Path) -> None:
    """The trial's full resolved config, written whole; `train config.yaml` reproduces the trial."""
    atomic.write_text(trial_dir / layout.CONFIG, yaml.safe_dump(trial_raw, sort_keys=False))


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
    # Denormals flushed, freed memory kept for reuse; the caller's process as it was after.
    with trial_process():
        device = pick_device(members.cfg.device)
        population = experiment.get(members.cfg.experiment).population(members, device)
        return loop.train(population, members, session, success)
