"""`latent-sweep train` and `latent-sweep validate`: one trial in-process, without Ray, or a dry check."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from latent_sweep.errors import UserError
from latent_sweep.spec import config, population
from latent_sweep.spec.columns import flatten
from latent_sweep.store import atomic


def load_trial(
    source: str | Path | dict,
    seed: int | None = None,
    steps: int | None = None,
    overrides: config.Overrides = None,
    seeds: list[int] | None = None,
):
    """A sweep file's base config (or a trial's config.yaml, or a config dict) with overrides
    applied; `seeds` makes it a population of those seeds. Returns (trial, typed config, the
    name errors use for the source)."""
    raw, name = config.load(source)
    trial, _ = config.split_sweep(raw)
    pairs = config.as_overrides(overrides)
    if seed is not None:
        pairs.append(("seed", seed))
    if steps is not None:
        pairs.append(("steps", steps))
    trial = config.apply_overrides(trial, pairs)
    if seeds is not None:
        trial["members"] = [{"seed": s} for s in seeds]
    elif seed is not None:
        trial.pop("members", None)
    return trial, config.validate(trial, name), name


def train(
    source: str | Path | dict,
    *,
    seed: int | None = None,
    seeds: str | Sequence[int] | None = None,
    steps: int | None = None,
    overrides: config.Overrides = None,
    out: str | Path | None = None,
    threads: int | None = None,
) -> tuple[Path, pd.DataFrame]:
    """Train one trial (the base config, no sampling) in this process, into `out` (default
    `results/train/<name>-<seeds>`), continuing from its last checkpoint when `out` holds this
    very trial; `seeds` (`0-19`, `0,2,5-7` or a list) trains them as one population. Prints
    progress; returns the trial directory and each member's final scores."""
    import torch
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from latent_sweep.engine.registry import run_trial
    from latent_sweep.engine.session import LocalSession
    from latent_sweep.spec.schedule import Dopesheet
    from latent_sweep.spec.timeline import Timeline

    if seed is not None and seeds is not None:
        raise UserError("give either --seed (one model) or --seeds (a population), not both")
    # A list goes through the same checks as the text `--seeds` gives.
    text = seeds if isinstance(seeds, str) or seeds is None else ",".join(map(str, seeds))
    seed_list = None if text is None else population.parse_seeds(text)
    trial, cfg, name = load_trial(source, seed, steps, overrides, seed_list)
    if threads is not None:
        if threads < 1:
            raise UserError(f"--threads must be ≥ 1, but got {threads}")
        torch.set_num_threads(threads)
    if text is not None:
        label = f"seeds{text.replace(',', '_')}"
    else:  # one seed, or the population a trial's config.yaml lists
        label = f"{len(trial['members'])}-members" if trial.get("members") else f"seed{cfg.seed}"
    # By default beside sweeps' results, never inside one (its tables would list the trial).
    out = Path(out) if out else Path("results") / "train" / f"{cfg.name}-{label}"
    resumed = claim_out_dir(out, trial)
    if resumed is not None:
        print(f"resuming from step {resumed} (the last checkpoint in {out})", flush=True)
    total = cfg.steps or len(Timeline(Dopesheet.from_records(cfg.schedule.keyframes)))
    # A live bar on a terminal; plain, flushed lines in logs and pipes (one per evaluation).
    live = sys.stdout.isatty()
    columns = [
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
    ]
    with Progress(*columns, TextColumn("{task.fields[scores]}"), disable=not live) as progress:
        task = progress.add_task(cfg.name, total=total, scores="", device=None)

        def on_report(metrics: dict, checkpoint: Path | None) -> None:
            if progress.tasks[task].fields.get("device") is None:  # the first report says where
                progress.update(task, device=metrics.get("device"))
                progress.console.print(f"training {cfg.name} on {metrics.get('device')}", soft_wrap=True)
            shown = {k: metrics[k] for k in ("hue_corr", "recon_mse", "trustworthiness_k10") if k in metrics}
            text = "  ".join(f"{k}={v:.4g}" for k, v in shown.items())
            progress.update(task, completed=metrics["step"], scores=text)
            if not live:
                print(f"step {metrics['step']}/{total}  {text}", flush=True)
            if checkpoint is not None:
                progress.console.print(f"checkpoint: step {metrics['step']} → {checkpoint}", soft_wrap=True)
                sys.stdout.flush()

        final = run_trial(trial, LocalSession(out, on_report=on_report), source=name)
    return out, final


def claim_out_dir(out: Path, trial: dict) -> int | None:
    """Check that `out` can hold this trial: a new directory, or one holding this very config
    (then training continues: returns the step of its last checkpoint). A directory holding a
    trial of another config or seed is refused, before anything in it is touched."""
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file; expected a directory for the trial")
    existing = out / "config.yaml"
    if not existing.is_file():
        atomic.check_dir(out, "--out")  # a new trial: the directory must be one it can write
    if existing.is_file():
        theirs, mine = flatten(config.read_yaml(existing), ""), flatten(trial, "")
        differ = sorted(k for k in set(theirs) | set(mine) if theirs.get(k) != mine.get(k))
        if differ:
            shown = "; ".join(
                f"`{k[1:]}` is {theirs.get(k)!r} there, {mine.get(k)!r} here" for k in differ[:3]
            )
            more = f" (and {len(differ) - 3} more)" if len(differ) > 3 else ""
            raise UserError(
                f"{out} holds a trial of another config ({shown}{more}); train into another "
                f"directory with --out, or remove {out} to start over"
            )
    steps = [int(p.name.split("_")[1]) for p in (out / "checkpoints").glob("checkpoint_*") if p.is_dir()]
    return max(steps, default=None)


SUMMARY_SCORES = (
    "hue_corr",
    "hue_order",
    "hue_winding",
    "recon_mse",
    "anchor_error_red",
    "trustworthiness_k10",
)


def print_members(final) -> None:
    """One model: every final score. A population: a row per member, mean ± std per score over
    the members that did not diverge, and how many ended with an ordered hue wheel."""
    scores = [c for c in final.columns if c not in ("member", "seed", "diverged_at")]
    if len(final) == 1:
        width = max(map(len, scores), default=0)
        for name in scores:
            print(f"{name:<{width}}  {final[name].iloc[0]:.6g}")
        return
    shown = [c for c in SUMMARY_SCORES if c in scores] or scores[:6]
    print(
        final[["member", "seed", *shown, "diverged_at"]].to_string(index=False, float_format="{:.4g}".format)
    )
    alive = final[final["diverged_at"].isna()]
    for name in shown:
        print(f"{name}: {alive[name].mean():.4g} ± {alive[name].std(ddof=0):.2g}")
    if {"hue_order", "hue_winding"} <= set(scores):
        ordered = int(((final["hue_order"] == 1) & (final["hue_winding"].abs() == 1)).sum())
        print(f"ordered wheels (hue_order = 1, |hue_winding| = 1): {ordered}/{len(final)}")
    diverged = len(final) - len(alive)
    if diverged:
        print(f"diverged: {diverged}/{len(final)}")


def validate(source: str | Path, overrides: config.Overrides = None) -> str:
    """Check a sweep file (or trial config), with `overrides` set as `run` sets them, and the
    schedules and inputs it names without running anything; a one-line summary."""
    from latent_sweep.engine.loop import build_members
    from latent_sweep.engine.registry import preflight

    raw = config.apply_overrides(config.load_file(source), config.as_overrides(overrides))
    trial, sweep_block = config.split_sweep(raw)
    # Every member's config, and whether the members can train as one batched model.
    members = build_members(trial, str(source))
    trials = ""
    if sweep_block is not None:
        from latent_sweep.spec.sweep_block import load_spec

        # Space paths, search, scheduler, pack, every probe's config, the inputs.
        trials = f"; {load_spec(raw, source).describe()}"
    else:
        preflight(members, str(source))  # input files and their sizes
        trials = f"; {len(members)} members" if len(members) > 1 else ""
    phases = ", ".join(f"{p.name} [{p.start}–{p.end}]" for p in members.timelines[0].phases) or "none"
    return f"{source}: ok — {members.cfg.experiment}, {members.total} steps, phases: {phases}{trials}"
