"""Plots a person would rather look at than read: a trial's latent space, its schedule, its loss
and score curves; a sweep's figures are in `latent_sweep.analysis.plots_sweep`, and `draw` makes
either kind for `latent-sweep plot`.

Figures use matplotlib's object API (`Figure`, no pyplot), so nothing here needs a display or
touches global state. PNGs appear whole (a temporary file, then a rename: `analysis.figures`).

Where they go. `plot` writes into `<RESULTS_DIR>/plots/` (the directory it was given, a sweep's
or a trial's) unless `--out DIR` says otherwise, and names every file
`<subject>-<figure>[-<score>].png`: the subject is the trial drawn (its id; `<id>_<member>` for
a member of a population) or the sweep (its directory name), the figure is the `--kind`
(`latent`, `schedule`, `curves`; `sweep` and `parallel`; `importance` and `slices`), and the
score follows for figures of one score. Drawing again replaces the file.

`plot` picks the trial to draw as: TRIAL when given (an exact trial id, else a unique prefix);
otherwise the best trial by the sweep's metric (`sweep.metric`/`sweep.mode`, else the first
key score, best first as in `latent-sweep table`). A trial directory may stand in for the sweep.
A trial that trains a population draws one member: `--member N`, else its best member by the
same rule; the latent snapshot, schedule and curves are that member's. A sweep plot draws one
point (one line) per member.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.patches import Circle

from latent_sweep.analysis import plots_sweep
from latent_sweep.analysis.figures import log_scale, safe_name, save_figure
from latent_sweep.analysis.results import (
    KEY_COLUMNS,
    Sweep,
    is_trial_dir,
    load_evals,
    load_history,
    load_sweeps,
    read_trial_config,
)
from latent_sweep.analysis.select import key_scores, sort_trials
from latent_sweep.errors import UserError
from latent_sweep.spec.population import member_raws
from latent_sweep.spec.schedule import Dopesheet
from latent_sweep.spec.timeline import Timeline
from latent_sweep.store import layout
from latent_sweep.store.history import read_local
from latent_sweep.store.remote import is_uri, local_dir

# The notebooks' look: points in their own colors over a dark unit disc on a dark ground.
GROUND, DISC, INK = "#333333", "#111111", "#dddddd"
PLOTS_DIR = layout.PLOTS_DIR  # under the results (or trial) directory, unless `out` says otherwise


# ---------------------------------------------------------------------------------------
# Latent space


def load_latents(trial_dir: str | Path, member: int = 0) -> tuple[int, pd.DataFrame]:
    """A member's latents in the trial's last snapshot (`latents/step-<step>.parquet`), and its step."""
    snapshots = (Path(trial_dir) / layout.LATENTS).glob(layout.SNAPSHOT_GLOB)
    found = [(step, p) for p in snapshots if (step := layout.snapshot_step(p.name)) is not None]
    if not found:
        raise UserError(
            f"trial directory `{trial_dir}` has no latent snapshots ({layout.SNAPSHOT_FORM}); "
            f"only trials that record latents can be drawn with --kind latent"
        )
    step, path = max(found)
    latents = read_local(path, remedy="remove it to draw the trial's previous snapshot")
    latents = latents[latents["member"] == member].reset_index(drop=True)
    if latents.empty:
        raise UserError(f"the latent snapshot `{path}` holds no points of member {member}")
    return step, latents


def latent_pairs(m: int) -> list[tuple[int, int]]:
    """(0,1), (0,2), (0,3): dim 0 against each of the next three, fewer when m is small."""
    return [(0, j) for j in range(1, min(m, 4))]


def point_colors(latents: pd.DataFrame) -> np.ndarray:
    """Each point's own display color (r, g, b), else a color per label, else one color."""
    if {"r", "g", "b"} <= set(latents.columns):
        return np.clip(latents[["r", "g", "b"]].to_numpy(dtype=float), 0.0, 1.0)
    if "label" in latents.columns:
        codes = pd.factorize(latents["label"])[0]
        return colormaps["tab10"](codes % 10)[:, :3]
    return np.tile([0.55, 0.75, 1.0], (len(latents), 1))


def plot_latent(
    latents: pd.DataFrame, pairs: Sequence[tuple[int, int]] | None = None, title: str = ""
) -> Figure:
    dims = sorted((int(c[1:]), c) for c in latents.columns if re.fullmatch(r"z\d+", c))
    if len(dims) < 2:
        raise UserError(f"latents need at least 2 dimensions (columns z0, z1, …), but found {len(dims)}")
    z = latents[[c for _, c in dims]].to_numpy(dtype=float)
    pairs = list(pairs or latent_pairs(z.shape[1]))
    bad = [p for p in pairs if max(p) >= z.shape[1]]
    if bad:
        raise UserError(f"dimension pair {bad[0]} is out of range: the latents have {z.shape[1]} dimensions")
    colors = point_colors(latents)
    lim = max(1.1, 1.05 * float(np.nanmax(np.abs(z))))  # the unit circle always in view
    size = float(np.clip(4000 / max(len(z), 1), 4, 60))
    fig = Figure(figsize=(4 * len(pairs), 4.4), facecolor=GROUND, layout="constrained")
    for ax, (i, j) in zip(fig.subplots(1, len(pairs), squeeze=False)[0], pairs, strict=True):
        ax.set_facecolor(GROUND)
        ax.add_patch(Circle((0, 0), 1, facecolor=DISC, edgecolor="#777777", linewidth=0.8, zorder=0))
        ax.scatter(z[:, i], z[:, j], c=colors, s=size, alpha=0.8, linewidths=0, zorder=1)
        ax.set(xlim=(-lim, lim), ylim=(-lim, lim), aspect="equal", xlabel=f"z{i}", ylabel=f"z{j}")
        ax.set_title(f"[{i}, {j}]", color=INK)
        ax.tick_params(colors=INK)
        ax.xaxis.label.set_color(INK)
        ax.yaxis.label.set_color(INK)
        for spine in ax.spines.values():
            spine.set_color("#666666")
    fig.suptitle(title, color=INK)
    return fig


# ---------------------------------------------------------------------------------------
# Schedule, curves


def schedule_curves(config: Mapping) -> tuple[pd.DataFrame, dict[str, list[int]], dict[int, list[str]]]:
    """A trial config's realized schedule (scaled), each property's keyframe steps, the actions."""
    schedule = config.get("schedule") if isinstance(config.get("schedule"), Mapping) else {}
    if not schedule.get("keyframes"):
        raise UserError("the trial config has no `schedule.keyframes` to draw")
    sheet = Dopesheet.from_records(schedule["keyframes"], source=layout.CONFIG)
    timeline = Timeline(sheet, scale=schedule.get("scale"))
    keys = {p: [k.step for k in sheet.keyframes if p in k.values] for p in sheet.props}
    return timeline.table(), keys, timeline.actions


def plot_schedule(
    table: pd.DataFrame,
    keys: Mapping[str, Sequence[int]],
    actions: Mapping[int, Sequence[str]] | None = None,
    title: str = "",
) -> Figure:
    """Property curves with their keyframes dotted; lr on its own log axis; phases shaded."""
    props = [c for c in table.columns if c not in ("STEP", "PHASE")]
    groups = [g for g in ([p for p in props if p == "lr"], [p for p in props if p != "lr"]) if g]
    steps = table["STEP"].to_numpy()
    fig = Figure(figsize=(10, 1 + 2.6 * len(groups)), layout="constrained")
    axes = fig.subplots(len(groups), 1, sharex=True, squeeze=False)[:, 0]
    all_keys = sorted({s for p in props for s in keys.get(p, [])})
    for ax, names in zip(axes, groups, strict=True):
        for name in names:
            y = table[name].to_numpy(dtype=float)
            (line,) = ax.plot(steps, y, label=name)
            at = np.array([s for s in keys.get(name, []) if 0 <= s < len(y)], dtype=int)
            ax.plot(steps[at], y[at], "o", color=line.get_color(), markersize=4)
        values = table[names].to_numpy(dtype=float)
        if log_scale(values, spread=1.0 if names == ["lr"] else 100.0):
            ax.set_yscale("log")
        for s in all_keys:
            ax.axvline(s, color="0.85", linewidth=0.6, zorder=0)
        for step, names_at in (actions or {}).items():
            ax.axvline(step, color="tab:red", linestyle="--", linewidth=0.8)
            ax.text(step, 0.02, ", ".join(names_at), color="tab:red", transform=ax.get_xaxis_transform())
        _shade_phases(ax, table)
        ax.set_ylabel("lr" if names == ["lr"] else "weight")
        ax.legend(loc="upper right", fontsize="small")
    axes[-1].set_xlabel("step")
    fig.suptitle(title)
    return fig


def _shade_phases(ax, table: pd.DataFrame) -> None:
    phase = table["PHASE"].astype(object).to_numpy()
    starts = [i for i in range(len(phase)) if i == 0 or phase[i] != phase[i - 1]]
    for n, (a, b) in enumerate(zip(starts, [*starts[1:], len(phase)], strict=True)):
        if phase[a] is None or (isinstance(phase[a], float) and np.isnan(phase[a])):
            continue
        step0, step1 = table["STEP"].iloc[a], table["STEP"].iloc[b - 1]
        ax.axvspan(step0, step1, color="0.5", alpha=0.08 if n % 2 else 0.0, zorder=0)
        ax.text(step0, 0.97, f" {phase[a]}", va="top", fontsize="small", transform=ax.get_xaxis_transform())


def plot_curves(history: pd.DataFrame, evals: pd.DataFrame, title: str = "") -> Figure:
    """Total and weighted loss terms, unweighted terms (log y), then one panel per score."""
    weighted = [c for c in history.columns if c == "loss" or c.startswith("weighted.")]
    terms = [c for c in history.columns if c.startswith("term.")]
    loss_panels = [p for p in (weighted, terms) if p]
    scores = [c for c in evals.select_dtypes("number").columns if c not in KEY_COLUMNS]
    if not loss_panels and not scores:
        raise UserError("the trial has no history (loss terms) or evaluations (scores) to draw yet")
    cols = 3
    rows = len(loss_panels) + -(-len(scores) // cols)
    fig = Figure(figsize=(12, 2.8 * rows), layout="constrained")
    grid = fig.add_gridspec(rows, cols)
    for r, names in enumerate(loss_panels):
        ax = fig.add_subplot(grid[r, :])
        window = max(1, len(history) // 50)
        for name in names:
            y = history[name].where(history[name] > 0)  # log y: zeros (skipped terms) drop out
            (raw,) = ax.plot(history["step"], y, linewidth=0.6, alpha=0.35)
            # Per-batch terms are noisy; a rolling mean shows the trend, as in the notebooks.
            smooth = y.rolling(window, min_periods=1).mean()
            ax.plot(history["step"], smooth, color=raw.get_color(), label=name)
        ax.set_yscale("log")
        ax.set_ylabel("weighted loss" if names is weighted else "unweighted term")
        ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize="small")
    for n, score in enumerate(scores):
        ax = fig.add_subplot(grid[len(loss_panels) + n // cols, n % cols])
        ax.plot(evals["step"], evals[score], marker="o", markersize=3)
        ax.set_title(score, fontsize="medium")
    fig.supxlabel("step")
    fig.suptitle(title)
    return fig


# ---------------------------------------------------------------------------------------
# What `plot` draws


def draw(
    results_dir: str | Path,
    trial: str | None = None,
    *,
    member: int | None = None,
    kind: str = "latent",
    score: str | None = None,
    out: str | Path | None = None,
) -> list[Path]:
    """Draw `kind` (latent, schedule, curves: of one trial; sweep, importance (for `score`): of the
    whole sweep) into `out`, by default `<results_dir>/plots/` (`./plots/` for a URI); the PNG files
    written."""
    target = local_dir(results_dir)  # a URI: its local mirror, and plots go to ./plots/ by default
    out = Path(out) if out is not None else (Path(PLOTS_DIR) if is_uri(results_dir) else target / PLOTS_DIR)
    if kind == "sweep":
        return plots_sweep.sweep_plots(target, out)
    if kind == "importance":
        return plots_sweep.importance_plots(target, out, score)
    trial_dir, label, member = pick_trial(target, trial, member)
    path = out / f"{safe_name(label)}-{kind}.png"
    if kind == "latent":
        step, latents = load_latents(trial_dir, member)
        fig = plot_latent(latents, title=f"{label} — latents at step {step}")
    elif kind == "schedule":
        table, keys, actions = schedule_curves(member_raws(read_trial_config(trial_dir))[member])
        fig = plot_schedule(table, keys, actions, title=f"{label} — schedule")
    elif kind == "curves":
        history, evals = load_history(trial_dir, member), load_evals(trial_dir, member)
        fig = plot_curves(history, evals, title=f"{label} — training")
    else:
        raise UserError(f"unknown plot kind `{kind}`; expected latent, schedule, curves, sweep or importance")
    return [save_figure(fig, path)]


def pick_trial(target: Path, trial: str | None, member: int | None = None) -> tuple[Path, str, int]:
    """(trial directory, label, member): TRIAL by id or unique prefix, else the best trial; in
    it, `member` when given, else the best member."""
    if target.is_dir() and is_trial_dir(target) and trial:
        raise UserError(
            f"`{target}` is a trial directory (it holds the trial's config), so TRIAL `{trial}` "
            f"cannot select one of its trials; pass the sweep directory instead"
        )
    everything, sweeps = load_sweeps([target])
    df, ids = everything, everything["trial_id"].astype(str)
    if trial:
        hits = df[ids == trial] if (ids == trial).any() else df[ids.str.startswith(trial)]
        if hits["trial_id"].nunique() != 1:
            unique = list(dict.fromkeys(ids))
            shown = ", ".join(unique[:20]) + (" …" if len(unique) > 20 else "")
            problem = "matches no trial" if hits.empty else f"matches {hits['trial_id'].nunique()} trials"
            raise UserError(f"trial `{trial}` {problem} in `{target}`; trial ids: {shown}")
        df = hits
    if member is not None:
        chosen = df[df["member"] == member]
        if chosen.empty:
            members = sorted(int(m) for m in df["member"].unique())
            span = f"{members[0]}–{members[-1]}" if len(members) > 1 else str(members[0])
            scope = f"trial `{df['trial_id'].iloc[0]}`" if df["trial_id"].nunique() == 1 else "any trial"
            raise UserError(
                f"--member {member} is not a member of {scope} in `{target}`; members are numbered {span}"
            )
        df = chosen
    row = df.iloc[0] if len(df) == 1 else _best(df, sweeps, target)
    rel = row.get("trial_dir")
    if not isinstance(rel, str) or not rel:
        raise UserError(f"trial `{row['trial_id']}` in `{target}` has no trial_dir in {layout.TRIALS}")
    if not (target / rel).is_dir():
        raise UserError(f"the directory of trial `{row['trial_id']}` (`{target / rel}`) does not exist")
    label = str(row["trial_id"])
    if (everything["trial_id"] == row["trial_id"]).sum() > 1:  # a member of a population
        label += f"#{int(row['member'])}"
    return target / rel, label, int(row["member"])


def _best(df: pd.DataFrame, sweeps: Sequence[Sweep], target: Path) -> pd.Series:
    """The best row (member) by the sweep's metric, else the first key score."""
    metric = sweeps[0].metric if sweeps[0].metric in df.columns else None
    metric = metric or next(iter(key_scores(df, sweeps)), None)
    ranked = sort_trials(df, metric, sweeps) if metric else df.iloc[:0]
    if ranked.empty or pd.isna(ranked[metric].iloc[0]):
        first = df.iloc[0]
        if df["trial_id"].nunique() == 1:
            raise UserError(
                f"no member of trial `{first['trial_id']}` in `{target}` has a score to rank by; name one "
                f"with --member, e.g. --member {first['member']}"
            )
        raise UserError(
            f"no trial in `{target}` has a score to rank by; name one: TRIAL, e.g. {first['trial_id']}"
        )
    return ranked.iloc[0]
