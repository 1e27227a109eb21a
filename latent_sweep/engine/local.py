"""`latent-sweep train`: one trial in-process, without Ray."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from latent_sweep.engine import process, registry, session
from latent_sweep.errors import UserError
from latent_sweep.spec import config, experiment, population
from latent_sweep.spec.columns import flatten
from latent_sweep.spec.schedule import Dopesheet
from latent_sweep.spec.timeline import Timeline
from latent_sweep.store import atomic, layout

OnReport = Callable[[dict, Path | None], None]  # (metrics, the checkpoint directory written or None)

# torch threads a local trial trains with unless told otherwise, for `latent-sweep train` and
# `latent_sweep.train` alike: as a sweep's trial (`resources.cpu: 1`). These models are tiny: more
# threads cost more than they give (2 seeds × 2000 steps: 3 s on one thread, 19 s on torch's default).
THREADS = 1


@dataclass(frozen=True)
class TrainStart:
    """What `train` tells its `watch` before the first step."""

    name: str  # the config's name
    total: int  # steps in all
    out: Path  # the trial directory
    resumed: int | None  # the step of the checkpoint training continues from; None: from the start
    key_scores: tuple[str, ...] = ()  # the experiment's (`Experiment.key_scores`), to show first


# Entered around the training, giving the callback every report goes to (or None).
Watch = Callable[[TrainStart], AbstractContextManager[OnReport | None]]


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
    threads: int | None = THREADS,
    watch: Watch | None = None,
) -> tuple[Path, pd.DataFrame]:
    """Train one trial (the base config, no sampling) in this process, into `out` (default
    `results/train/<name>-<seeds>`), continuing from its last checkpoint when `out` holds this
    very trial; `seeds` (`0-19`, `0,2,5-7` or a list) trains them as one population; torch uses
    `threads` threads meanwhile (default THREADS, 1; None: torch's own setting). Prints
    nothing: `watch` is told where training starts and given each report (`latent_sweep.commands`
    draws progress with it). Returns the trial directory and each member's final scores."""
    if seed is not None and seeds is not None:
        raise UserError("give either --seed (one model) or --seeds (a population), not both")
    # A list goes through the same checks as the text `--seeds` gives.
    text = seeds if isinstance(seeds, str) or seeds is None else ",".join(map(str, seeds))
    seed_list = None if text is None else population.parse_seeds(text)
    trial, cfg, name = load_trial(source, seed, steps, overrides, seed_list)
    if threads is not None and threads < 1:
        raise UserError(f"--threads must be ≥ 1, but got {threads}")
    if text is not None:
        label = f"seeds{text.replace(',', '_')}"
    else:  # one seed, or the population a trial's config.yaml lists
        label = f"{len(trial['members'])}-members" if trial.get("members") else f"seed{cfg.seed}"
    # By default beside sweeps' results, never inside one (its tables would list the trial).
    out = Path(out) if out else Path(layout.STORAGE_ROOT) / layout.TRAIN_DIR / f"{cfg.name}-{label}"
    resumed = claim_out_dir(out, trial)
    total = cfg.steps or len(Timeline(Dopesheet.from_records(cfg.schedule.keyframes)))
    watching = (
        watch(TrainStart(cfg.name, total, out, resumed, experiment.get(cfg.experiment).key_scores))
        if watch
        else nullcontext()
    )
    # torch's thread count for this trial, then the caller's own again: this may be a user's process.
    with watching as on_report, process.threads(threads):
        final = registry.run_trial(trial, session.LocalSession(out, on_report=on_report), source=name)
    return out, final


def claim_out_dir(out: Path, trial: dict) -> int | None:
    """Check that `out` can hold this trial: a new directory, or one holding this very config
    (then training continues: returns the step of its last checkpoint). A directory holding a
    trial of another config or seed is refused, before anything in it is touched."""
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file; expected a directory for the trial")
    existing = out / layout.CONFIG
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
    found = (out / layout.LOCAL_CHECKPOINTS).glob(layout.CHECKPOINT_GLOB)
    steps = [layout.checkpoint_number(p.name) for p in found if p.is_dir()]
    return max(steps, default=None)
