"""Populations: the members one trial trains together (what it reports over them: `scores.summary`).

A trial config may hold `members:`, a list of mappings from config paths to values (`seed`
included) that each member sets on top of the rest of the config:

    members:
      - {seed: 0}
      - {seed: 1, "schedule.keyframes[@5000].reg-polar": 0.01}

Without `members` the trial is a population of one (its own `seed`). Members train as one
batched model, so they may differ only where a value is a number per step or per member
(docs/populations.md): the seed, schedule keyframe values and STEPs, `schedule.scale.*`, and
the experiment's scalar term parameters. Anything else (widths, batch size, data, label mode,
phases) is a shape the members share; a population that differs there is a validation error.
"""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from latent_sweep.errors import UserError
from latent_sweep.spec import config, experiment, paths
from latent_sweep.spec.columns import flatten
from latent_sweep.spec.timeline import Timeline
from latent_sweep.spec.trial import TrialConfig

MEMBERS = "members"
# Paths members of every experiment may differ in (flattened config syntax, see `columns.flatten`).
SHARED_VECTORIZABLE = (
    r"seed",
    r"schedule\.keyframes\[(\d+|\d*@[^\[\]]+)\]\.[^.\[\]]+",  # by index or by STEP
    r"schedule\.scale\.[^.\[\]]+",
)
# Members of one trial: one batched model. A GPU trains tens of thousands of these tiny models
# per step (the population benchmark goes to 16,384); the bound keeps a typo from building a
# million member configs.
MAX_MEMBERS = 65536


def overrides(trial_raw: dict) -> list[dict[str, Any]]:
    """Each member's config values (path → value); one member, the trial's own seed, by default."""
    members = trial_raw.get(MEMBERS)
    if members is None:
        return [{"seed": trial_raw.get("seed", 0)}]
    return [dict(m) for m in members]


def member_raws(trial_raw: dict, source: str | None = None) -> list[dict]:
    """Every member's full config (the trial config without `members`, the member's values set)."""
    members = trial_raw.get(MEMBERS)
    if members is not None and (not isinstance(members, list) or not members):
        raise UserError(
            f"{source or 'config'}: `members` must be a non-empty list of mappings, got {members!r:.60}"
        )
    if members is not None and len(members) > MAX_MEMBERS:
        raise UserError(
            f"{source or 'config'}: a trial of {len(members)} members (seeds × packed configs), but one "
            f"trial trains at most {MAX_MEMBERS} as one batched model; use fewer seeds or a smaller "
            f"`pack`, or `population: none` (one trial per seed)"
        )
    base = {k: v for k, v in trial_raw.items() if k != MEMBERS}
    out = []
    # Members that differ only in the seed share one copy of the rest (thousands of seeds would
    # otherwise be thousands of deep copies): the configs returned are read-only.
    shared: dict[str, dict] = {}
    for i, member in enumerate(overrides(trial_raw)):
        if not isinstance(member, dict):
            raise UserError(f"{source or 'config'}: `members[{i}]` must map config paths to values")
        rest = {path: value for path, value in member.items() if path != "seed"}
        key = json.dumps(rest, sort_keys=True, default=str)
        if key not in shared:
            shared[key] = copy.deepcopy(base)
            paths.set_paths(shared[key], rest)
        out.append({**shared[key], **({"seed": member["seed"]} if "seed" in member else {})})
    return out


@dataclass
class Members:
    """A trial's members: their distinct configs (members that differ only in the seed share
    one), each member's config index and seed, and the schedules realized once per config."""

    configs: list[Any]  # typed configs, one per distinct member config
    index: np.ndarray  # [K] member → config
    seeds: list[int]
    timelines: list[Timeline]
    total: int  # steps to train, the same for every member

    @property
    def cfg(self) -> Any:
        """Member 0's config: what all members share (shapes, data, intervals, device)."""
        return self.configs[0]

    def __len__(self) -> int:
        return len(self.seeds)


def build_members(trial_raw: dict, source: str | None = None) -> Members:
    """Validate every member's config, check they can train as one batched model, realize
    each distinct config's schedule once."""
    raws = member_raws(trial_raw, source)
    check_vectorizable(raws, source)
    # Members whose configs differ only in the seed share one config (and one schedule).
    keys = [json.dumps({**r, "seed": None}, sort_keys=True, default=str) for r in raws]
    first = {key: i for i, key in reversed(list(enumerate(keys)))}
    order = list(dict.fromkeys(keys))
    configs: list[TrialConfig] = [config.validate(raws[first[key]], source) for key in order]
    timelines = [c.timeline(source) for c in configs]
    lengths = {total for _, total in timelines}
    for j, (timeline, _) in enumerate(timelines[1:], start=1):
        ref = timelines[0][0]
        same = (
            len(timeline) == len(ref)
            and np.array_equal(timeline.phase_index, ref.phase_index)
            and timeline.actions == ref.actions
            and len(lengths) == 1
        )
        if not same:
            member = keys.index(order[j])
            raise UserError(
                f"{source or 'config'}: members 0 and {member} have schedules of different length, phases "
                f"or actions; keyframe STEPs may vary within a population only where they move values, "
                f"not the end of the schedule, a phase boundary or an action"
            )
    return Members(
        configs=configs,
        index=np.array([order.index(key) for key in keys], dtype=np.int64),
        seeds=[int(r.get("seed", 0)) for r in raws],
        timelines=[t for t, _ in timelines],
        total=lengths.pop(),
    )


def preflight(members: Members, source: str | None = None) -> None:
    """Everything a trial would check before its first step beyond the config itself (input
    files, their sizes: `Experiment.preflight`), as a one-paragraph UserError naming `source`."""
    try:
        experiment.get(members.cfg.experiment).preflight(members)
    except UserError as err:
        raise UserError(f"{source}: {err}" if source else str(err)) from None


def declared_for(trial_raw: dict) -> dict[str, str] | None:
    """`experiment.declared` for a trial config dict (members share the paths that name
    scores); None when the config does not validate: such a trial stopped before its first
    evaluation."""
    try:
        return experiment.declared(config.validate(member_raws(trial_raw)[0]))
    except UserError:
        return None


def vectorizable(kind: str, source: str | None = None) -> re.Pattern:
    """The config paths members of experiment `kind` may differ in (matched whole): the shared
    ones and the experiment's own (`Experiment.vectorizable`: scalar term parameters its
    batched loss takes per member)."""
    return re.compile("|".join((*SHARED_VECTORIZABLE, *experiment.get(kind, source).vectorizable)))


def check_vectorizable(raws: list[dict], source: str | None = None) -> None:
    """Members must share every config value outside their experiment's vectorizable paths."""
    allowed = vectorizable(experiment.kind_of(raws[0]), source)
    first = flatten(raws[0], "")
    # Members built from one shared config (see `member_raws`) differ only in the seed.
    checked = {_shared(raws[0])}
    for i, raw in enumerate(raws[1:], start=1):
        if _shared(raw) in checked:
            continue
        checked.add(_shared(raw))
        other = flatten(raw, "")
        for key in sorted(set(first) | set(other)):
            path = key.lstrip(".")
            if first.get(key) != other.get(key) and not allowed.fullmatch(path):
                raise UserError(
                    f"{source or 'config'}: members 0 and {i} differ in `{path}` ({first.get(key)!r} vs "
                    f"{other.get(key)!r}), which cannot vary within a population: members train as one "
                    f"batched model and share its shapes, data and labels; only the seed, schedule "
                    f"keyframes, `schedule.scale.*` and scalar term parameters may differ"
                )


def _shared(raw: dict) -> tuple:
    """What a member config holds besides its seed, by object identity."""
    return tuple((key, id(value)) for key, value in raw.items() if key != "seed")


def parse_seeds(text: str) -> list[int]:
    """`0-19`, `3`, `0,2,5-7` → seeds."""
    seeds: list[int] = []
    for part in text.split(","):
        lo, dash, hi = part.strip().partition("-")
        try:
            seeds += list(range(int(lo), int(hi) + 1)) if dash else [int(lo)]
        except ValueError:
            raise UserError(f"--seeds expects e.g. `0-19` or `0,2,5-7`, but got `{text}`") from None
    if not seeds or len(set(seeds)) < len(seeds) or min(seeds) < 0:
        raise UserError(f"--seeds must name distinct seeds ≥ 0, but got `{text}`")
    return seeds
