"""The session: how an experiment loop talks to whatever runs it.

The loop knows nothing of Ray. It asks its session for a checkpoint to continue from and
hands it metrics (every evaluation) and checkpoints (plain dicts, every checkpoint interval).
`LocalSession` keeps checkpoints on disk for `latent-sweep train`, tests and benchmarks;
the Ray adapter (`latent_sweep.tune.trainable`) implements the same protocol with Tune.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, Protocol

import torch

from latent_sweep.store import atomic, layout

CHECKPOINT_FILE = layout.CHECKPOINT_STATE


class Session(Protocol):
    trial_dir: Path

    def restore(self) -> dict[str, Any] | None:
        """The latest checkpoint dict, or None for a fresh start."""

    def report(self, metrics: dict[str, float | str], checkpoint: dict[str, Any] | None = None) -> None:
        """Publish metrics, with a checkpoint when one is due (written whole before it counts)."""


def save_state(state: dict[str, Any], directory: Path) -> None:
    """Write a checkpoint dict into `directory`, whole."""
    atomic.write_whole(directory / CHECKPOINT_FILE, lambda tmp: torch.save(state, tmp))


def load_state(directory: Path) -> dict[str, Any]:
    return torch.load(directory / CHECKPOINT_FILE, map_location="cpu", weights_only=False)


class LocalSession:
    """In-process session: checkpoints live in `<trial_dir>/checkpoints/checkpoint_<step>/`.

    A checkpoint directory is built under a temporary name and renamed into place, so a
    kill at any moment leaves either the previous or the new checkpoint, never half of one.
    """

    def __init__(self, trial_dir: str | Path, keep: int = 2, on_report=None) -> None:
        """`on_report(metrics, checkpoint_dir or None)` is called after each report is stored."""
        self.trial_dir = Path(trial_dir)
        self.keep = keep
        self.on_report = on_report
        self.metrics: list[dict[str, float | str]] = []
        self._dir = self.trial_dir / layout.LOCAL_CHECKPOINTS

    def _existing(self) -> list[Path]:
        if not self._dir.exists():
            return []
        found = [p for p in self._dir.iterdir() if layout.is_checkpoint(p.name) and p.is_dir()]
        return sorted(found, key=lambda p: layout.checkpoint_number(p.name))

    def restore(self) -> dict[str, Any] | None:
        existing = self._existing()
        return load_state(existing[-1]) if existing else None

    def report(self, metrics: dict[str, float | str], checkpoint: dict[str, Any] | None = None) -> None:
        self.metrics.append(dict(metrics))
        final = None
        if checkpoint is not None:
            final = self._dir / layout.checkpoint_dir(int(checkpoint["step"]))
            atomic.write_whole(final, lambda tmp: save_state(checkpoint, tmp))
            for old in self._existing()[: -self.keep]:
                shutil.rmtree(old, ignore_errors=True)
        if self.on_report is not None:
            self.on_report(metrics, final)
