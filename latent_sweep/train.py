"""`latent-sweep train` and `latent-sweep validate`: one trial in-process, or a dry check."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from latent_sweep import config, population
from latent_sweep.errors import UserError


def load_trial(
    path: str,
    seed: int | None = None,
    steps: int | None = None,
    sets: list[str] | None = None,
    seeds: list[int] | None = None,
):
    """A sweep file's base config (or a trial's config.yaml) with CLI overrides applied;
    `seeds` makes it a population of those seeds."""
    trial, _ = config.split_sweep(config.load_file(path))
    overrides = config.parse_overrides(sets or [])
    if seed is not None:
        overrides.append(("seed", seed))
    if steps is not None:
        overrides.append(("steps", steps))
    trial = config.apply_overrides(trial, overrides)
    if seeds is not None:
        trial["members"] = [{"seed": s} for s in seeds]
    elif seed is not None:
        trial.pop("members", None)
    return trial, config.validate(trial, path)


def train_command(args: argparse.Namespace) -> int:
    import torch
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from latent_sweep.experiments import run_trial
    from latent_sweep.schedule import Dopesheet
    from latent_sweep.session import LocalSession
    from latent_sweep.timeline import Timeline

    if args.seed is not None and args.seeds is not None:
        raise UserError("give either --seed (one model) or --seeds (a population), not both")
    seeds = None if args.seeds is None else population.parse_seeds(args.seeds)
    trial, cfg = load_trial(args.config, args.seed, args.steps, args.set, seeds)
    if args.threads < 1:
        raise UserError(f"--threads must be ≥ 1, but got {args.threads}")
    torch.set_num_threads(args.threads)
    if seeds is not None:
        label = f"seeds{args.seeds.replace(',', '_')}"
    else:  # one seed, or the population a trial's config.yaml lists
        label = f"{len(trial['members'])}-members" if trial.get("members") else f"seed{cfg.seed}"
    # By default beside sweeps' results, never inside one (its tables would list the trial).
    out = Path(args.out) if args.out else Path("results") / "train" / f"{cfg.name}-{label}"
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
        task = progress.add_task(cfg.name, total=total, scores="")

        def on_report(metrics: dict, checkpoint: Path | None) -> None:
            shown = {k: metrics[k] for k in ("hue_corr", "recon_mse", "trustworthiness_k10") if k in metrics}
            text = "  ".join(f"{k}={v:.4g}" for k, v in shown.items())
            progress.update(task, completed=metrics["step"], scores=text)
            if not live:
                print(f"step {metrics['step']}/{total}  {text}", flush=True)
            if checkpoint is not None:
                progress.console.print(f"checkpoint: step {metrics['step']} → {checkpoint}", soft_wrap=True)
                sys.stdout.flush()

        final = run_trial(trial, LocalSession(out, on_report=on_report), source=args.config)
    print_members(final)
    print(f"trial directory: {out}")
    return 0


def claim_out_dir(out: Path, trial: dict) -> int | None:
    """Check that `out` can hold this trial: a new directory, or one holding this very config
    (then training continues: returns the step of its last checkpoint). A directory holding a
    trial of another config or seed is refused, before anything in it is touched."""
    from latent_sweep.results import flatten

    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file; expected a directory for the trial")
    existing = out / "config.yaml"
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


def validate_command(args: argparse.Namespace) -> int:
    from latent_sweep.experiments import preflight
    from latent_sweep.experiments.loop import build_members

    raw = config.load_file(args.sweep)
    trial, sweep_block = config.split_sweep(raw)
    # Every member's config, and whether the members can train as one batched model.
    members = build_members(trial, args.sweep)
    trials = ""
    if sweep_block is not None:
        from latent_sweep.sweep_spec import load_spec

        # Space paths, search, scheduler, pack, every probe's config, the inputs.
        trials = f"; {load_spec(raw, args.sweep).describe()}"
    else:
        preflight(members, args.sweep)  # input files and their sizes
        trials = f"; {len(members)} members" if len(members) > 1 else ""
    phases = ", ".join(f"{p.name} [{p.start}–{p.end}]" for p in members.timelines[0].phases) or "none"
    print(f"{args.sweep}: ok — {members.cfg.experiment}, {members.total} steps, phases: {phases}{trials}")
    return 0
