"""What every plot shares (`plots_trial`, `plots_sweep`): PNG files written whole, file names,
log axes."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from latent_sweep.analysis.tables import write_output


def save_figure(fig: Figure, path: Path) -> Path:
    """`fig` as a PNG at `path` (a temporary file, then a rename); returns `path`."""
    write_output(path, lambda tmp: fig.savefig(tmp, format="png", dpi=100, facecolor=fig.get_facecolor()))
    return path


def safe_name(name: str) -> str:
    """`name` as part of a file name: runs of other characters become `_`."""
    return re.sub(r"[^A-Za-z0-9._=-]+", "_", name)


def log_scale(values: np.ndarray, spread: float) -> bool:
    """Log axis for positive values spanning more than `spread` (×) — e.g. an lr decay."""
    finite = values[np.isfinite(values)]
    return bool(len(finite)) and finite.min() > 0 and finite.max() / finite.min() >= spread
