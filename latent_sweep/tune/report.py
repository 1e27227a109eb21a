"""What a sweep prints: a line per finished trial and first checkpoint, a status line now and then
(instead of Ray's tables), and the leaderboard at the end.

The leaderboard has one row per sampled config (a trial, or one config of a packed trial) with
the statistics its trial reported over its seeds, recomputed from the member rows
(`summary.summarize`), best first by the sweep's metric (a Pareto search: its front first).
"""

from __future__ import annotations

import os
import sys
import time

import numpy as np
import pandas as pd
from ray import cloudpickle, tune

from latent_sweep.analysis.results import KEY_COLUMNS, META_COLUMNS
from latent_sweep.analysis.tables import Listing, render, terminal_width
from latent_sweep.scores import summary
from latent_sweep.scores.pareto import front_mask
from latent_sweep.spec import experiment
from latent_sweep.spec.columns import Keyframes
from latent_sweep.spec.sweep_block import SampledSeed, SweepSpec
from latent_sweep.store import layout
from latent_sweep.tune import trials as trials_parquet

STATUS_EVERY_S = 30.0
LEADERBOARD_ROWS = 10
LEADING_SCORES = 3  # of the experiment's key scores, beside the metric, in the leaderboard


def print_leaderboard(
    rows: list[dict], spec: SweepSpec, results: str = "RESULTS", width: int | None = None
) -> None:
    """The trials' statuses, then the best LEADERBOARD_ROWS configs (a Pareto search: its whole
    front) within `width` columns (by default the terminal's, `terminal_width`) under short
    labels, saying when configs or columns were left out and that `latent-sweep table results`
    shows them."""
    if not rows:
        print("no trials ran")
        return
    df = pd.DataFrame(rows)
    trials = df.drop_duplicates("trial_id")
    counts = trials["status"].value_counts().to_dict()
    members = f" ({len(df)} members)" if len(df) > len(trials) else ""
    print("trials: " + ", ".join(f"{n} {status}" for status, n in sorted(counts.items())) + members)
    table = config_summaries(df, spec)
    metric, rows = spec.metrics[0], LEADERBOARD_ROWS
    if metric in table:
        table = table.sort_values(metric, ascending=spec.modes[0] == "min", na_position="last", kind="stable")
    if spec.multi_objective and set(spec.metrics) <= set(table.columns):
        # The search's Pareto front first, whole; then the rest by the first objective.
        on_front = front_mask(table, spec.metrics, spec.modes)
        table.insert(2, "pareto", np.where(on_front, "★", ""))
        table = table.iloc[np.argsort(~on_front, kind="stable")]
        rows = max(rows, int(on_front.sum()))
        senses = ", ".join(f"{m}:{d}" for m, d in zip(spec.metrics, spec.modes, strict=True))
        print(f"Pareto front ({senses}): {int(on_front.sum())} of {len(table)} configs")
    shown = table[[c for c in table.columns if table[c].notna().any()]].head(rows)
    cut = f"top {len(shown)} of {len(table)} configs (latent-sweep table {results} for all)"
    listing = Listing(
        shown.reset_index(drop=True),
        title="",
        note=cut if len(shown) < len(table) else "",
        optional=leaderboard_optional(shown, spec),
        restore=f"latent-sweep table {results} for every column",
    )
    sys.stdout.write(render(listing, "table", terminal_width() if width is None else width, boxed=False))


def leaderboard_optional(table: pd.DataFrame, spec: SweepSpec) -> tuple[str, ...]:
    """What a narrow terminal leaves out of the leaderboard, the least wanted first: `status`
    and `seeds` where every config has the same, `steps`, the key scores from the last, the
    success rate (when not the metric), `error`. Never the configs' names (trial_id, the
    sampled values), the metrics or the Pareto mark."""
    same = [c for c in ("status", "seeds") if c in table and table[c].astype(str).nunique() == 1]
    scores = [
        c for c in table.columns if c not in ("trial_id", "status", "pareto", "seeds", "steps", "error")
    ]
    scores = [c for c in scores if not c.startswith("config.") and c not in spec.metrics]
    order = [*same, "steps", *reversed([c for c in scores if c != "success_rate"]), "success_rate", "error"]
    return tuple(c for c in dict.fromkeys(order) if c in table)


def config_summaries(df, spec: SweepSpec):
    """One row per sampled config (its trial and sampled values): its seeds and, over them, the
    statistics its trial reported (`summary.summarize`): the sweep's metric, then the means
    of the experiment's first key scores."""
    b = spec.block
    keyframes = Keyframes.of(spec.base)
    params = [f"config.{keyframes.column(p)}" for p in spec.space]
    if isinstance(b.seeds, SampledSeed) or not spec.seed_population:
        params.append("config.seed")  # one seed per config: show it
    params = [c for c in dict.fromkeys(params) if c in df]
    scores = [
        c
        for c in df.columns
        if c not in (*META_COLUMNS, *KEY_COLUMNS) and not c.startswith(("config.", "best_"))
    ]
    # The experiment's first key scores (`Experiment.key_scores`), as this sweep names them.
    patterns = experiment.get(spec.cfg.experiment).key_scores
    key = experiment.key_columns(patterns, scores)
    out = []
    for _, group in df.groupby(["trial_id", *params], sort=False, dropna=False):
        first = group.iloc[0]
        row = {c: first[c] for c in ["trial_id", "status", *params]}
        row["seeds"] = len(group)
        stats = summary.summarize(group, scores, b.success) if scores else {}
        picked = [*spec.metrics, "success_rate", *key[:LEADING_SCORES]]
        row.update({k: stats[k] for k in dict.fromkeys(picked) if k in stats})
        row.update({c: first[c] for c in ("steps", "error")})
        out.append(row)
    table = pd.DataFrame(out)
    return table if (table["seeds"] > 1).any() else table.drop(columns="seeds")


class Progress(tune.Callback):
    """One line per finished trial and per first checkpoint, and a status line every STATUS_EVERY_S,
    instead of Ray's tables; a resumed sweep starts with a status line, where it stands. The best
    score a status line names is a finished trial's final one (what trials.parquet holds), never a
    running trial's latest report."""

    def __init__(self, metric: str, mode: str) -> None:
        self.metric, self.mode = metric, mode
        self.last_status: float | None = None  # None: no step yet in this process

    def setup(self, **info) -> None:
        # Each `fit`, `resume`'s too: `resume` restores this object from `run`'s snapshot, whose clock
        # is another process's.
        self.last_status = None

    def on_checkpoint(self, iteration, trials, trial, checkpoint, **info) -> None:
        # Tune calls this before it records the checkpoint: a trial without one is at its first, from
        # where an interrupted sweep resumes it mid-way. A resumed trial had its first before.
        if trial.checkpoint is None:
            print(f"  saved {trial.trial_id}  first checkpoint (resumable from here)", flush=True)

    def on_trial_complete(self, iteration, trials, trial, **info) -> None:
        last = trial.last_result or {}
        reason = last.get(trials_parquet.FAILED)
        if reason:
            print(f"  ERROR {trial.trial_id}  {reason}  (not retried: a retry would fail alike)", flush=True)
            return
        value = last.get(self.metric)
        shown = f"{self.metric}={value:.4g}" if isinstance(value, float) else ""
        print(f"  done  {trial.trial_id}  step {last.get('step', 0)}  {shown}", flush=True)

    def on_trial_error(self, iteration, trials, trial, **info) -> None:
        # Ray has written the error on the driver, not yet in storage.
        pickled = trial.pickled_error_file
        err = None
        if pickled and os.path.exists(pickled):
            with open(pickled, "rb") as f:
                err = cloudpickle.load(f)
        reason = trials_parquet.error_reason(err)
        traceback = f"{trial.path}/{layout.ERROR_FILE}"
        print(f"  ERROR {trial.trial_id}  {reason}  (traceback: {traceback})", flush=True)

    def on_step_end(self, iteration, trials, **info) -> None:
        now = time.monotonic()
        if self.last_status is None:  # the first step: a resumed sweep's trials have results already
            self.last_status = now
            if not any(self.metric in (t.last_result or {}) for t in trials):
                return
        elif now - self.last_status < STATUS_EVERY_S:
            return
        self.last_status = now
        counts: dict[str, int] = {}
        for t in trials:
            counts[t.status] = counts.get(t.status, 0) + 1
        finished = [
            t
            for t in trials
            if t.status == "TERMINATED"
            and self.metric in (t.last_result or {})
            and not t.last_result.get(trials_parquet.FAILED)
        ]
        pick = max if self.mode == "max" else min
        best = pick(finished, key=lambda t: t.last_result[self.metric], default=None)
        lead = f"; best {self.metric}={best.last_result[self.metric]:.4g} ({best.trial_id})" if best else ""
        print("  " + ", ".join(f"{n} {s.lower()}" for s, n in sorted(counts.items())) + lead, flush=True)
