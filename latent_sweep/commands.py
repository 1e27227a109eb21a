"""The commands that run without the tune layer, as `latent_sweep.cli` dispatches them: `train`,
`table`, `compare`, `importance` and `plot`. The library returns data (tables, a trial's final
scores, the files it wrote); these print it: tables in each `--format` (`print_listing`), a
trained trial's members (`print_members`), training progress (`train_progress`)."""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

import pandas as pd
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from latent_sweep.analysis.compare import compare_groups, trials_table
from latent_sweep.analysis.tables import Listing, render, terminal_table, write_output, write_parquet
from latent_sweep.engine import local
from latent_sweep.engine.local import OnReport, TrainStart
from latent_sweep.errors import UserError
from latent_sweep.spec import experiment
from latent_sweep.store import layout

PROGRESS_SCORES = 3  # of the experiment's key scores, beside the progress bar


# ---------------------------------------------------------------------------------------
# Commands


def train(config: str, **options: Any) -> int:
    """`local.train` with `options` (overrides, seed, seeds, steps, out, threads), showing its
    progress, then the members' final scores."""
    started: list[TrainStart] = []

    def watch(start: TrainStart) -> AbstractContextManager[OnReport]:
        started.append(start)
        return train_progress(start)

    trial_dir, final = local.train(config, watch=watch, **options)
    print_members(final, started[0].key_scores)
    print(f"trial directory: {trial_dir}")
    return 0


def table(
    results_dirs: Sequence[str],
    *,
    fmt: str = "table",
    out: str | None = None,
    where: str | None = None,
    sort: str | None = None,
    top: int | None = None,
    columns: Sequence[str] | None = None,
) -> int:
    if fmt == "parquet" and not out:
        raise UserError(f"--format parquet writes a binary file: give --out FILE, e.g. --out {layout.TRIALS}")
    print_listing(trials_table(results_dirs, where=where, sort=sort, top=top, columns=columns), fmt, out)
    return 0


def compare(results_dirs: Sequence[str], *, fmt: str = "table", **options: Any) -> int:
    """`compare_groups` with `options` (by, scores, pareto, paired, baseline, bins, success)."""
    # csv: a column per statistic, for reading back
    listing = compare_groups(results_dirs, formatted=fmt != "csv", **options)
    print_listing(listing, fmt)
    return 0


def importance(results_dirs: Sequence[str], *, fmt: str = "table", **options: Any) -> int:
    """`importance_table` with `options` (score, where, success)."""
    # Optuna takes ~0.2 s to import; only this command and `plot --kind importance` use it.
    from latent_sweep.analysis.importance import importance_table

    print_listing(importance_table(results_dirs, **options), fmt)
    return 0


def plot(
    results_dir: str,
    trial: str | None = None,
    *,
    member: int | None = None,
    kind: str = "latent",
    score: str | None = None,
    out: str | None = None,
) -> int:
    # matplotlib (and Optuna) take ~0.4 s to import; only this command draws.
    from latent_sweep.analysis.plots_trial import draw

    for path in draw(results_dir, trial, member=member, kind=kind, score=score, out=out):
        print(path)
    return 0


# ---------------------------------------------------------------------------------------
# Printing


def print_listing(listing: Listing, fmt: str, out: str | Path | None = None) -> None:
    """Print `listing` as a table, csv or markdown, or write it to `out` (also as parquet);
    its note follows (not in csv). On a terminal a table fits its width (`terminal_table`); off
    one it is as wide as it is."""
    if fmt == "parquet":
        assert out is not None  # `table` requires --out first
        write_parquet(listing.frame, Path(out))
        print(f"wrote {out}")
        return
    if fmt == "table" and not out and sys.stdout.isatty():
        console = Console()  # in the terminal's colors, as wide as it is
        table, text = terminal_table(listing, console.width)
        console.print(table)
    else:
        text = render(listing, fmt)
    if out:
        write_output(Path(out), lambda tmp: tmp.write_text(text))
        print(f"wrote {out}")
    else:
        sys.stdout.write(text)


def print_members(final: pd.DataFrame, key_scores: Sequence[str] = ()) -> None:
    """One model: every final score. A population: a row per member of the experiment's key
    scores (`*` matches any part of a name), mean ± std of each over the members that did not
    diverge, and how many ended with an ordered hue wheel where there are hue scores."""
    scores = [c for c in final.columns if c not in ("member", "seed", "diverged_at")]
    if len(final) == 1:
        width = max(map(len, scores), default=0)
        for name in scores:
            print(f"{name:<{width}}  {final[name].iloc[0]:.6g}")
        return
    shown = experiment.key_columns(key_scores, scores) or scores[:6]
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


@contextmanager
def train_progress(start: TrainStart) -> Iterator[OnReport]:
    """`train`'s progress (its `watch`): where it resumes and trains, then a live bar on a
    terminal, plain flushed lines in logs and pipes (one per evaluation), each checkpoint."""
    if start.resumed is not None:
        print(f"resuming from step {start.resumed} (the last checkpoint in {start.out})", flush=True)
    live = sys.stdout.isatty()
    columns = [
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
    ]
    with Progress(*columns, TextColumn("{task.fields[scores]}"), disable=not live) as progress:
        task = progress.add_task(start.name, total=start.total, scores="", device=None)

        def on_report(metrics: dict, checkpoint: Path | None) -> None:
            if progress.tasks[task].fields.get("device") is None:  # the first report says where
                progress.update(task, device=metrics.get("device"))
                progress.console.print(f"training {start.name} on {metrics.get('device')}", soft_wrap=True)
            shown = experiment.key_columns(start.key_scores, metrics)
            text = "  ".join(f"{k}={metrics[k]:.4g}" for k in shown[:PROGRESS_SCORES])
            progress.update(task, completed=metrics["step"], scores=text)
            if not live:
                print(f"step {metrics['step']}/{start.total}  {text}", flush=True)
            if checkpoint is not None:
                progress.console.print(f"checkpoint: step {metrics['step']} → {checkpoint}", soft_wrap=True)
                sys.stdout.flush()

        yield on_report
