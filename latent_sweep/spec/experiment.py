"""Experiments as objects, and the one registry that finds them.

An `Experiment` is everything the framework knows about one kind of trial: its config class,
the scores it declares, the population the training loop trains, which config paths may differ
between the members of one population, the scores tables show first and its preflight checks.
The built-in experiments and a user's own are found the same way, by name (docs/experiments.md):

* a built-in name (`autoencoder`, `projection`);
* a name another installed package registers under the entry point group
  `latent_sweep.experiments` (`myexp = "mypkg.exp:EXPERIMENT"` in its pyproject.toml);
* a `module:attribute` path in the config itself (`experiment: mypkg.exp:EXPERIMENT`).

The registry holds import paths and loads an experiment's module on first use: experiments
import the engine (and torch), which this layer must not import.
"""

from __future__ import annotations

import fnmatch
import importlib
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from latent_sweep.errors import UserError
from latent_sweep.scores.declarations import Goal, Score

ENTRY_POINTS = "latent_sweep.experiments"
DEFAULT = "autoencoder"  # what a config without `experiment:` trains
BUILTIN = {
    "autoencoder": "latent_sweep.experiments.autoencoder:EXPERIMENT",
    "projection": "latent_sweep.experiments.projection:EXPERIMENT",
}
_PATH = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*")


def _no_preflight(members: Any) -> None:
    """Nothing to check beyond the config: the experiment reads no input files."""


@dataclass(frozen=True)
class Experiment:
    """What an experiment hands the framework.

    `population(members, device)` builds what the engine's loop trains (`engine.loop.Population`)
    from the trial's members (`spec.population.Members`: the validated configs, seeds and
    schedules) on a torch device. `scores` must list every score its evaluation returns.
    `vectorizable` are regular expressions of config paths whose values may differ between
    members of one population trial (beyond the seed and the schedule's values, which always
    may). `key_scores` are the scores tables show first (`*` matches any part of a name:
    `anchor_error_*`). `preflight(members)` raises a `UserError` for what would stop a trial
    before its first step (input files, their sizes).
    """

    name: str
    config: type  # a pydantic model deriving from spec.trial.TrialConfig
    scores: tuple[Score, ...]
    population: Callable[..., Any]  # (members, device) → an engine.loop.Population
    preflight: Callable[[Any], None] = _no_preflight
    vectorizable: tuple[str, ...] = ()
    key_scores: tuple[str, ...] = field(default=())


def key_columns(patterns: Iterable[str], names: Iterable[str]) -> list[str]:
    """The `names` that key-score `patterns` pick, pattern by pattern (`*` matches any part of
    a name: `anchor_error_*`), each once."""
    names = [str(n) for n in names]
    return list(dict.fromkeys(n for p in patterns for n in sorted(fnmatch.filter(names, p))))


def kind_of(trial_raw: dict) -> str:
    """The experiment a trial config names (the default when it names none)."""
    return trial_raw.get("experiment", DEFAULT)


def get(kind: Any, source: str | Path | None = None) -> Experiment:
    """The experiment a config's `experiment:` names, loaded; a UserError naming `source` and
    the known names when there is none."""
    if isinstance(kind, str):
        experiment = _load(kind)
        if experiment is not None:
            return experiment
    head = f"{source}: " if source else ""
    raise UserError(
        f"{head}`experiment` must be one of {', '.join(known())} or a `module:attribute` path to an "
        f"Experiment (docs/experiments.md), but got {kind!r}"
    )


def known() -> list[str]:
    """Names an `experiment:` may take: built-ins, then installed entry points."""
    return list(dict.fromkeys([*BUILTIN, *(ep.name for ep in entry_points(group=ENTRY_POINTS))]))


def everywhere() -> list[Experiment]:
    """Every named experiment and every one loaded by its path so far, loaded."""
    named = [experiment for name in known() if (experiment := _load(name)) is not None]
    return list(dict.fromkeys([*named, *_LOADED.values()]))


_LOADED: dict[str, Experiment] = {}  # every experiment loaded in this process, by what named it


def _load(kind: str) -> Experiment | None:
    if kind in _LOADED:
        return _LOADED[kind]
    if kind in BUILTIN:
        path = BUILTIN[kind]
    elif found := [ep.value for ep in entry_points(group=ENTRY_POINTS, name=kind)]:
        path = found[0]
    elif _PATH.fullmatch(kind):
        path = kind
    else:
        return None
    module, _, attribute = path.partition(":")
    try:
        experiment = getattr(importlib.import_module(module), attribute)
    except (ImportError, AttributeError) as err:
        raise UserError(f"experiment `{kind}`: cannot load {path}: {err}") from None
    if not isinstance(experiment, Experiment):
        raise UserError(f"experiment `{kind}`: {path} is a {type(experiment).__name__}, not an Experiment")
    _LOADED[kind] = experiment
    return experiment


# ---------------------------------------------------------------------------------------
# Scores by experiment (the declarations themselves: scores.declarations)


def declared(cfg: Any) -> dict[str, Goal]:
    """Score name → goal, in declaration order, for a typed trial config."""
    return {name: s.goal for s in get(cfg.experiment).scores for name in s.names(cfg)}


def goal_of(name: str) -> Goal | None:
    """The goal of a score by its name alone (any experiment loaded, any config); None for a
    name no experiment declares."""
    patterns = ((s.pattern, s.goal) for experiment in everywhere() for s in experiment.scores)
    return next((goal for pattern, goal in patterns if pattern.fullmatch(name)), None)


def listing() -> str:
    """Every named experiment's declared score names, for messages: `recon_mse, …,
    trustworthiness_k{k}`."""
    return ", ".join(dict.fromkeys(s.name for experiment in everywhere() for s in experiment.scores))
