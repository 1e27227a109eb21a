"""Populations: the members one trial trains together, and the statistics it reports over them.

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

import ast
import copy
import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from latent_sweep.errors import UserError
from latent_sweep.spec import config, experiment
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
STATS = ("mean", "std", "min", "max")
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
            config.set_paths(shared[key], rest)
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


SUCCESS_EXAMPLE = "hue_order >= 0.999 and abs(hue_winding) == 1"
# What a success expression may hold: comparisons and arithmetic over score names, `abs`, numbers.
SUCCESS_NODES = (
    ast.Expression, ast.BoolOp, ast.And, ast.Or, ast.UnaryOp, ast.Not, ast.USub, ast.UAdd,
    ast.BinOp, ast.Add, ast.Sub, ast.Mult, ast.Div, ast.Compare, ast.Eq, ast.NotEq,
    ast.Lt, ast.LtE, ast.Gt, ast.GtE, ast.Call, ast.Name, ast.Load, ast.Constant,
)  # fmt: skip


def success_problem(expr: str, scores: Sequence[str]) -> str | None:
    """What is wrong with a success expression over members' `scores`, to follow the place it
    was given (`sweep.success`, `--success`); None when it can be evaluated."""
    hint = (
        "expected comparisons of score names, joined with `and`/`or`/`not`, with numbers, arithmetic "
        f"and `abs(...)`, e.g. `{SUCCESS_EXAMPLE}`"
    )
    try:
        tree = ast.parse(expr.strip(), mode="eval")
    except SyntaxError as err:
        return f"is not a valid expression ({err.msg}): `{expr}`; {hint}"
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id != "abs" and node.id not in scores:
            return (
                f"names `{node.id}`, which is not a score of this sweep's trials; the expression is "
                f"evaluated on each member's final scores ({', '.join(scores)}); {hint}"
            )
        called = isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "abs"
        constant = isinstance(node, ast.Constant) and isinstance(node.value, int | float)
        if not isinstance(node, SUCCESS_NODES) or (isinstance(node, ast.Call) and not called):
            # An operator node (`>>`) unparses to nothing: name its kind instead.
            return f"uses `{ast.unparse(node) or type(node).__name__}` in `{expr}`; {hint}"
        if isinstance(node, ast.Constant) and not constant:
            return f"compares with `{node.value!r}`; {hint}"
    names = sorted({n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and n.id != "abs"})
    try:
        success_mask(pd.DataFrame({n: [0.0] for n in names}), expr)
    except Exception as err:  # pandas raises many kinds here; all mean the expression is bad
        return f"cannot be evaluated ({err}); {hint}"
    return None


def success_mask(scores: pd.DataFrame, expr: str) -> np.ndarray:
    """Whether each member (row) satisfies `expr`, an expression over score names."""
    ok = scores.eval(expr, engine="python")
    return np.asarray(ok, dtype=bool)


def summarize(scores: pd.DataFrame, names: list[str], success: str | None = None) -> dict[str, float]:
    """What a trial reports: per score `<score>` (mean over members that did not diverge),
    `<score>_std`, `_min`, `_max`; `diverged_rate`; `success_rate` when `success` is given
    (a diverged member counts as a failure)."""
    out: dict[str, float] = {}
    for name in names:
        v = scores[name].to_numpy(dtype=np.float64)
        v = v[np.isfinite(v)]
        stats = (v.mean(), v.std(), v.min(), v.max()) if len(v) else (math.nan,) * 4
        out[name] = float(stats[0])
        out.update({f"{name}_{s}": float(x) for s, x in zip(STATS[1:], stats[1:], strict=True)})
    diverged = scores["diverged_at"].notna().to_numpy()
    out["diverged_rate"] = float(diverged.mean())
    if success is not None:
        out["success_rate"] = float((success_mask(scores, success) & ~diverged).mean())
    return out
