"""Inputs of the projection experiment: their config and loading, checked once at the boundary.

Every source becomes `Inputs`: raw float64 features (the metric space of the kNN graph and of
the scores), optional integer class labels and optional display colors.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import pyarrow as pa
from pydantic import Field, model_validator

from latent_sweep.errors import UserError
from latent_sweep.experiments import colors
from latent_sweep.experiments.ae_config import Strict
from latent_sweep.store import layout

Source = Literal["digits", "swiss_roll", "s_curve", "color_cube", "trial", "file"]
LATENT_COLUMN = re.compile(r"z\d+")


class ProjDataConfig(Strict):
    source: Source = "digits"
    # swiss_roll / s_curve: points generated with `seed`, Gaussian noise of this std. The data
    # seed is not the trial's: a population's members share one data set.
    seed: int = Field(0, ge=0)
    n_samples: int = Field(1500, ge=4)
    noise: float = Field(0.0, ge=0)
    # color_cube: the distinct RGB colors of the autoencoder's HSV cube (10° hues × 10 S × 10 V),
    # or a `grid`³ RGB grid.
    cube: Literal["hsv", "rgb"] = "hsv"
    grid: int = Field(12, ge=2, le=64)
    # trial: a finished autoencoder trial directory (`member`: which of its population's members);
    # file: a .npy or .parquet feature file.
    path: str | None = None
    member: int = Field(0, ge=0)
    label_column: str | None = None
    feature_columns: list[str] | None = Field(None, min_length=1)
    # Rescale each feature of the network's input to zero mean and unit variance. The kNN graph
    # and the scores keep the features as given, so this changes conditioning, not the target.
    standardize: bool = True

    @model_validator(mode="after")
    def _paths(self) -> ProjDataConfig:
        if self.source in ("trial", "file") and not self.path:
            raise ValueError(f"source `{self.source}` needs `path`")
        if self.source != "file" and (self.label_column or self.feature_columns):
            raise ValueError("`label_column` and `feature_columns` apply to source `file` only")
        return self


def labeled(cfg: ProjDataConfig) -> bool:
    """Whether the inputs come with class labels (digits; a file with `label_column`)."""
    return cfg.source == "digits" or (cfg.source == "file" and cfg.label_column is not None)


def is_color(cfg: ProjDataConfig) -> bool:
    """Whether the inputs are the very colors projected (the color cube; a trial's latents)."""
    return cfg.source in ("color_cube", "trial")


@dataclass(frozen=True)
class Inputs:
    features: np.ndarray  # [n, d] float64, finite
    labels: np.ndarray | None  # [n] int64 classes 0…C−1
    rgb: np.ndarray | None  # [n, 3] display colors
    is_color: bool  # the rgb are the very colors projected (hue scores apply)


def load(cfg: ProjDataConfig) -> Inputs:
    from sklearn import datasets  # here, not at import: it costs every command ~2 s

    if cfg.source == "digits":
        x, y = datasets.load_digits(return_X_y=True)
        return Inputs(x.astype(np.float64), y.astype(np.int64), None, False)
    if cfg.source in ("swiss_roll", "s_curve"):
        make = datasets.make_swiss_roll if cfg.source == "swiss_roll" else datasets.make_s_curve
        x, t = make(cfg.n_samples, noise=cfg.noise, random_state=cfg.seed % 2**32)
        # Color by position along the manifold: red → violet.
        h = 0.8 * (t - t.min()) / (np.ptp(t) or 1.0)
        rgb = colors.hsv_to_rgb(np.stack([h, np.ones_like(h), np.ones_like(h)], axis=1))
        return Inputs(x, None, rgb, False)
    if cfg.source == "color_cube":
        cube = colors.hsv_cube() if cfg.cube == "hsv" else colors.rgb_cube(cfg.grid)
        # The HSV cube maps many points onto one color (all of V = 0 is black); duplicates would
        # be each other's neighbors at distance 0.
        rgb = np.unique(np.round(cube.rgb, 12), axis=0)
        return Inputs(rgb, None, rgb, True)
    path = Path(cfg.path or "")
    if cfg.source == "trial":
        return _trial(path, cfg.member)
    return _file(path, cfg.feature_columns, cfg.label_column)


def _trial(directory: Path, member: int) -> Inputs:
    """The latest latent snapshot of an autoencoder trial's member: latents z0…z{m−1} and their
    colors (a snapshot without a `member` column holds one model: member 0)."""
    if not directory.is_dir():
        what = "is not a directory" if directory.exists() else "does not exist"
        raise UserError(f"`data.path`: {directory} {what}; expected a finished autoencoder trial directory")
    snaps = sorted((directory / layout.LATENTS).glob(layout.SNAPSHOT_GLOB))
    if not snaps:
        raise UserError(
            f"`data.path`: {directory} has no latent snapshots ({layout.LATENTS}/{layout.SNAPSHOT_GLOB}); "
            "expected a finished autoencoder trial directory"
        )
    df = _read_parquet(snaps[-1])
    if "member" in df.columns or member:
        members = sorted(df["member"].unique()) if "member" in df.columns else [0]
        if member not in members:
            raise UserError(
                f"`data.member`: {snaps[-1]} holds members {members[0]}…{members[-1]}, but got {member}"
            )
        df = df[df["member"] == member]
    z = sorted((c for c in df.columns if LATENT_COLUMN.fullmatch(c)), key=lambda c: int(c[1:]))
    missing = [c for c in "rgb" if c not in df.columns]
    if not z or missing:
        raise UserError(
            f"`data.path`: {snaps[-1]} must have latent columns z0, z1, … and colors r, g, b, "
            f"but its columns are {list(df.columns)}"
        )
    rgb = _finite(df[list("rgb")].to_numpy(np.float64), snaps[-1], "colors")
    return Inputs(_finite(df[z].to_numpy(np.float64), snaps[-1], "latents"), None, rgb, True)


def _file(path: Path, feature_columns: list[str] | None, label_column: str | None) -> Inputs:
    if not path.is_file():
        what = "is not a file" if path.exists() else "does not exist"
        raise UserError(f"`data.path`: {path} {what}; expected a .npy or .parquet feature file")
    if path.suffix == ".npy":
        if label_column:
            raise UserError(
                f"`data.label_column`: {path} is a .npy array, which has no columns; put features "
                f"and labels in a .parquet file, or leave out the label column, but got {label_column!r}"
            )
        return Inputs(_npy(path), None, None, False)
    if path.suffix != ".parquet":
        raise UserError(f"`data.path`: expected a .npy or .parquet feature file, but got {path}")
    df = _read_parquet(path)
    for col, field in [(c, "feature_columns") for c in feature_columns or []] + [
        (label_column, "label_column")
    ]:
        if col is not None and col not in df.columns:
            raise UserError(
                f"`data.{field}`: {path} has no column {col!r}; its columns are {list(df.columns)}"
            )
    numeric = [c for c in df.columns if c != label_column and pd.api.types.is_numeric_dtype(df[c])]
    cols = feature_columns or [c for c in numeric if not pd.api.types.is_bool_dtype(df[c])]
    bad = [c for c in cols if c not in numeric or pd.api.types.is_bool_dtype(df[c])]
    if not cols or bad:
        raise UserError(
            f"`data.feature_columns`: {path} must have numeric feature columns, but got "
            f"{'no numeric column' if not cols else 'non-numeric ' + repr(bad)}"
        )
    labels = None
    if label_column is not None:
        values = df[label_column]
        if values.isna().any():
            raise UserError(
                f"`data.label_column`: {path} column {label_column!r} must have a label on every row, "
                f"but {int(values.isna().sum())} rows have none"
            )
        labels = pd.factorize(values, sort=True)[0].astype(np.int64)
    return Inputs(_finite(df[cols].to_numpy(np.float64), path, "features"), labels, None, False)


def _npy(path: Path) -> np.ndarray:
    try:
        x = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as err:
        raise UserError(f"`data.path`: {path} is not a readable .npy array ({err})") from None
    if not isinstance(x, np.ndarray) or x.dtype.kind not in "fiu" or x.ndim != 2 or 0 in x.shape:
        raise UserError(
            f"`data.path`: {path} must hold a 2-D numeric array (points × features), but got "
            f"shape {getattr(x, 'shape', None)} of dtype {getattr(x, 'dtype', type(x).__name__)}"
        )
    return _finite(x.astype(np.float64), path, "features")


def _read_parquet(path: Path) -> pd.DataFrame:
    try:
        return pd.read_parquet(path)
    except (pa.ArrowException, OSError, ValueError) as err:
        raise UserError(f"`data.path`: {path} is not a readable Parquet file ({err})") from None


def _finite(x: np.ndarray, path: Path, what: str) -> np.ndarray:
    bad = ~np.isfinite(x)
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raise UserError(
            f"`data.path`: {path} {what} must be finite, but got {int(bad.sum())} NaN or infinite "
            f"values (the first at row {row}, column {col})"
        )
    return x
