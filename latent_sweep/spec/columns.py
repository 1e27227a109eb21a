"""Config columns of result tables: a member's config flattened in the sweep's path syntax
(`config.labels.mode`, `config.terms[1].power`), each schedule keyframe named as sweep spaces,
`members:` and `--set` address it: by its STEP (`config.schedule.keyframes[@5000].reg-polar`).

The STEP is the one the *sweep's* schedule writes (before anything is sampled), so a trial whose
`schedule.keyframes[@5000].STEP` was sampled to 6000 keeps its row under `[@5000]` (with 6000 in
`config.schedule.keyframes[@5000].STEP`) and every trial of a sweep has the same columns. A row
that shares its STEP with another is `[row@STEP]`, a row without a STEP `[row]`
(docs/reliability.md). Names given on input (`compare --by`, `table --columns/--sort/--where`,
space keys) may address a keyframe in any form a config path can: `Keyframes.column` maps them.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from latent_sweep.errors import UserError
from latent_sweep.spec.paths import StepRef, resolve_path, step_addresses

PREFIX = "config."
KEYFRAMES = "schedule.keyframes"
_BY_ROW = re.compile(r"(config\.)?schedule\.keyframes\[(\d+)\]")
_QUOTED = re.compile(r"`([^`]+)`")  # a name in a pandas query


def flatten(value: Any, prefix: str) -> dict[str, Any]:
    """Nested config → `prefix.a.b` / `prefix.list[3].c` keys, the sweep's config path syntax
    (list elements by position)."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(flatten(v, f"{prefix}.{k}"))
        return out
    if isinstance(value, list):
        out = {}
        for i, v in enumerate(value):
            out.update(flatten(v, f"{prefix}[{i}]"))
        return out
    return {prefix: value}


@dataclass(frozen=True)
class Keyframes:
    """The STEPs of a schedule's keyframe rows as written: what names the rows in columns."""

    steps: tuple[Any, ...] = ()

    @classmethod
    def of(cls, raw: Mapping[str, Any]) -> Keyframes:
        """A config's keyframe rows (none when it holds no `schedule.keyframes` list)."""
        schedule = raw.get("schedule")
        rows = schedule.get("keyframes") if isinstance(schedule, Mapping) else None
        if not isinstance(rows, list):
            return cls()
        return cls(tuple(r.get("STEP") if isinstance(r, Mapping) else None for r in rows))

    @cached_property
    def labels(self) -> tuple[str, ...]:
        """Row index → its label: `[@5000]`, `[3@5000]` when rows share STEP 5000, `[3]` without one."""
        addresses = step_addresses([{"STEP": s} for s in self.steps])
        counts = Counter(addresses)
        return tuple(
            f"[{i}]" if a is None else str(StepRef(a, None if counts[a] == 1 else i))
            for i, a in enumerate(addresses)
        )

    def label(self, path: str) -> str:
        """A path or column naming a keyframe by row (`schedule.keyframes[5].lr`, with or without
        `config.`) → the same by its label (`schedule.keyframes[@5000].lr`); others unchanged."""
        m = _BY_ROW.match(path)
        if m is None or int(m[2]) >= len(self.labels):
            return path
        return f"{m[1] or ''}{KEYFRAMES}{self.labels[int(m[2])]}{path[m.end() :]}"

    def columns(self, raw: dict) -> dict[str, Any]:
        """A member's config as `config.<path>` columns, its keyframes by label."""
        return {self.label(k): v for k, v in flatten(raw, "config").items()}

    def column(self, path: str) -> str:
        """A path addressing a keyframe in any form (`[@5000]`, `[5@5000]`, `[5]`) → its column
        path (`[@5000]`); a path this schedule cannot resolve is returned as given (it names no
        column, like any unknown name)."""
        bare = path.removeprefix(PREFIX)
        try:
            by_row = resolve_path({"schedule": {"keyframes": [{"STEP": s} for s in self.steps]}}, bare)
        except UserError:
            return path
        return path[: len(path) - len(bare)] + self.label(by_row)


def config_column(
    name: str, columns: Collection[str], schedules: Sequence[Keyframes], option: str
) -> str | None:
    """The config column `name` (with or without `config.`) means in a table of `columns`, its
    keyframe mapped to its label in each sweep's schedule; None when it names none. A keyframe by
    row that is a different keyframe in different sweeps is an error."""
    path = PREFIX + name.removeprefix(PREFIX)
    found = sorted({k.column(path) for k in schedules} & set(columns))
    if len(found) > 1:
        raise UserError(
            f"{option} `{name}` names different keyframes in the sweeps given ({', '.join(found)}): "
            "their schedules differ; name the keyframe by its STEP, e.g. `schedule.keyframes[@5000].lr`"
        )
    return found[0] if found else None


def query_columns(expr: str, columns: Collection[str], schedules: Sequence[Keyframes], option: str) -> str:
    """A pandas query (`table --where`) with each backticked name that is no column but names a
    config column (`config_column`) replaced by that column."""

    def named(m: re.Match) -> str:
        if m[1] in columns:
            return m[0]
        return f"`{config_column(m[1], columns, schedules, option) or m[1]}`"

    return _QUOTED.sub(named, expr)
