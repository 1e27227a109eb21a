"""Plots of a whole sweep: its scores against its sampled parameters (one point per member,
parallel coordinates), and the parameters' importance for a score with a slice per parameter
(`latent_sweep.analysis.importance`: one point per config, error bars one standard deviation over its
members' seeds).

Files are named `<subject>-<figure>.png` like every plot: the subject is the sweep's directory
name here, and a figure for one score names it, e.g. `quick-importance-hue_corr.png`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure

from latent_sweep.analysis.figures import log_scale, safe_name, save_figure
from latent_sweep.analysis.importance import Configs, configs_of, importance
from latent_sweep.analysis.results import load_sweeps, lower_is_better
from latent_sweep.analysis.select import key_scores
from latent_sweep.errors import UserError
from latent_sweep.store import layout


def _coordinates(column: pd.Series) -> tuple[np.ndarray, list[str] | None]:
    """Numbers as they are; anything else as category codes with their labels."""
    if pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column):
        return column.to_numpy(dtype=float), None
    codes, labels = pd.factorize(column.astype(str), sort=True)
    return codes.astype(float), list(labels)


def plot_sweep(trials: pd.DataFrame, params: Sequence[str], scores: Sequence[str], title: str = "") -> Figure:
    """One panel per (score, parameter): each trial a point; categories jittered apart."""
    fig = Figure(figsize=(3.2 * len(params), 2.6 * len(scores) + 0.6), layout="constrained")
    axes = fig.subplots(len(scores), len(params), squeeze=False)
    jitter = np.random.default_rng(0).uniform(-0.12, 0.12, len(trials))
    for c, param in enumerate(params):
        x, labels = _coordinates(trials[param])
        for r, score in enumerate(scores):
            ax = axes[r, c]
            ax.scatter(x + (jitter if labels else 0.0), trials[score], s=18, alpha=0.8)
            if labels:
                ax.set_xticks(range(len(labels)), labels)
            elif log_scale(x, spread=100.0):
                ax.set_xscale("log")
            ax.set_xlabel(param.removeprefix("config.") if r == len(scores) - 1 else "")
            ax.set_ylabel(score if c == 0 else "")
    fig.suptitle(title)
    return fig


def plot_parallel(
    trials: pd.DataFrame, params: Sequence[str], metric: str, maximize: bool, title: str = ""
) -> Figure:
    """Parallel coordinates: one line per trial across the parameters and the metric, colored
    by the metric (brighter is better); each axis spans its own range."""
    names = [*params, metric]
    fig = Figure(figsize=(2 + 1.8 * len(names), 4.5), layout="constrained")
    ax = fig.subplots()
    norm_cols = []
    for k, name in enumerate(names):
        x, labels = _coordinates(trials[name])
        seen = x[np.isfinite(x)]
        lo, hi = (float(seen.min()), float(seen.max())) if len(seen) else (0.0, 1.0)
        ends = (labels[0], labels[-1]) if labels else (f"{lo:.3g}", f"{hi:.3g}")
        if not labels and log_scale(x, spread=100.0):  # e.g. a loguniform parameter
            x, lo, hi = np.log10(x), np.log10(lo), np.log10(hi)
        norm_cols.append((x - lo) / (hi - lo) if hi > lo else np.full_like(x, 0.5))
        ax.axvline(k, color="0.3", linewidth=0.8)
        ax.text(k, -0.04, ends[0], ha="center", va="top", fontsize="small")
        ax.text(k, 1.04, ends[1], ha="center", va="bottom", fontsize="small")
    coords = np.column_stack(norm_cols)
    value = trials[metric].to_numpy(dtype=float)
    finite = value[np.isfinite(value)]
    norm = Normalize(*(finite.min(), finite.max()) if len(finite) else (0.0, 1.0))
    cmap = colormaps["viridis" if maximize else "viridis_r"]
    for row, v in zip(coords, value, strict=True):
        ax.plot(range(len(names)), row, color=cmap(norm(v)) if np.isfinite(v) else "0.7", alpha=0.8)
    ax.set_xticks(range(len(names)), [n.removeprefix("config.") for n in names], rotation=20)
    ax.set(ylim=(-0.12, 1.12), yticks=[])
    fig.colorbar(ScalarMappable(norm, cmap), ax=ax, label=metric)
    fig.suptitle(title)
    return fig


def plot_importance(shares: pd.DataFrame, title: str = "") -> Figure:
    """Horizontal bars of each parameter's importance, the most important on top."""
    fig = Figure(figsize=(7, 1.2 + 0.45 * len(shares)), layout="constrained")
    ax = fig.subplots()
    ranked = shares.iloc[::-1]
    ax.barh(ranked["parameter"], ranked["importance"], color="tab:blue")
    for y, v in enumerate(ranked["importance"]):
        ax.text(v, y, f" {v:.3f}", va="center", fontsize="small")
    ax.set(xlim=(0, 1.1), xlabel="importance (fANOVA share of the variance of config means)")
    fig.suptitle(title)
    return fig


def plot_slices(configs: Configs, order: Sequence[str], title: str = "") -> Figure:
    """One panel per parameter (`order`: config columns): each config's mean score against the
    parameter's value, error bars one standard deviation over its members; a log axis for a
    `loguniform` leaf (without a leaf: for positive values spanning 100×)."""
    cols = min(3, len(order))
    rows = -(-len(order) // cols)
    fig = Figure(figsize=(4 * cols, 3.2 * rows + 0.5), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    table = configs.table
    for ax, param in zip(axes, order, strict=False):
        x, labels = _coordinates(table[param])
        jitter = np.random.default_rng(0).uniform(-0.12, 0.12, len(x)) if labels else 0.0
        ax.errorbar(x + jitter, table["mean"], yerr=table["std"], fmt="o", markersize=4, alpha=0.8, capsize=2)
        leaf = configs.leaves.get(param)
        log = leaf[0] == "loguniform" if leaf else log_scale(x, spread=100.0)
        if labels:
            ax.set_xticks(range(len(labels)), labels)
        elif log:
            ax.set_xscale("log")
        ax.set_xlabel(param.removeprefix("config."))
        ax.set_ylabel(configs.score)
    for ax in axes[len(order) :]:
        ax.set_visible(False)
    fig.suptitle(title)
    return fig


# ---------------------------------------------------------------------------------------
# What `plot --kind sweep` and `plot --kind importance` write


def sweep_plots(target: Path, out: Path) -> list[Path]:
    df, sweeps = load_sweeps([target])
    sweep = sweeps[0]
    params = [f"config.{p}" for p in sweep.params if f"config.{p}" in df.columns]
    scores = key_scores(df, sweeps)
    if not params or not scores:
        missing = f"sampled parameters ({layout.SWEEP_FILE} `sweep.space`)" if not params else "scores"
        raise UserError(f"`{target}` has no {missing} to plot: a sweep plot draws scores against parameters")
    metric = sweep.metric if sweep.metric in df.columns else scores[0]
    maximize = sweep.mode == "max" if sweep.mode in ("max", "min") else not lower_is_better(metric)
    name = safe_name(target.resolve().name)
    trials = df["trial_id"].nunique()
    counted = f"{len(df)} members of {trials} trials" if len(df) > trials else f"{len(df)} trials"
    title = f"{target.resolve().name} — {counted}"
    return [
        save_figure(plot_sweep(df, params, scores, title), out / f"{name}-sweep.png"),
        save_figure(plot_parallel(df, params, metric, maximize, title), out / f"{name}-parallel.png"),
    ]


def importance_plots(target: Path, out: Path, score: str | None) -> list[Path]:
    df, sweeps = load_sweeps([target])
    configs = configs_of(df, sweeps, score)
    shares = importance(configs)
    name, s = safe_name(target.resolve().name), safe_name(configs.score)
    title = f"{target.resolve().name} — {configs.score}, {len(configs.table)} configs"
    order = [f"config.{p}" for p in shares["parameter"]]
    return [
        save_figure(plot_importance(shares, f"{title}: importance"), out / f"{name}-importance-{s}.png"),
        save_figure(plot_slices(configs, order, f"{title}: slices"), out / f"{name}-slices-{s}.png"),
    ]
