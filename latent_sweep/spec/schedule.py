"""Schedules: the dopesheet of keyframes, read from CSV or YAML records.
`latent_sweep.spec.timeline.Timeline` realizes it once into dense per-step arrays.

Choices made here (docs/dopesheet.md describes the format for users):
* Error rows for CSV are file line numbers (the header is row 1, as in a spreadsheet or
  editor); for records the location is the field path, e.g. `schedule.keyframes[2].STEP`.
* Rows are sorted by resolved step, stably; where two rows set a PHASE at the same step, the
  later row in the file wins. Two rows keying one property at the same step must agree.
* Absolute STEPs may not decrease down the sheet (a row out of order is an error, not a
  silent re-sort), and no STEP may exceed MAX_STEP.
* Steps before the first PHASE row belong to no phase (PHASE missing in the table, phase index -1).
  A PHASE row that repeats the current phase's name continues that phase.
* In records, None, "" and NaN all mean "no key" (NaN is how pandas writes a blank).
"""

from __future__ import annotations

import bisect
import contextlib
import csv
import io
import math
import numbers
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from latent_sweep.errors import UserError, where

Space = Literal["linear", "log"]
Interp = Literal["minjerk", "linear", "step"]

RESERVED = ("STEP", "PHASE", "ACTION")
SPACES: tuple[Space, ...] = ("linear", "log")
INTERPS: tuple[Interp, ...] = ("minjerk", "linear", "step")
LOG_FLOOR = 1e-10
# A dense schedule holds one float64 per step and property: ten million steps is 80 MB each.
MAX_STEP = 10_000_000
HEADER_FORMS = "name, name:space, name::interp or name:space:interp"
STEP_FORMS = (
    "a non-negative integer anchor, +N/-N (N ≥ 1 steps after the previous or before the "
    "next anchor) or +F/-F (0 < F < 1, a fraction of the interval between the surrounding anchors)"
)
YAML_STEP_HINT = " (in YAML, quote relative steps, e.g. '+0.5' or '-10')"

_ANCHOR = re.compile(r"\d+")
_OFFSET = re.compile(r"([+-])(\d+)")
_FRACTION = re.compile(r"([+-])(\d*\.\d+|\d+\.\d*)")

# (row position, column) -> location prefix for an error message
Locate = Callable[[int, str], str]


@dataclass(frozen=True)
class Property:
    """One property column: its name, interpolation space and curve shape."""

    name: str
    space: Space
    interp: Interp
    header: str


@dataclass(frozen=True)
class Keyframe:
    """One dopesheet row. `step_text` is the STEP as written (an int anchor or a relative string)."""

    index: int
    step: int
    step_text: int | str
    phase: str | None
    actions: tuple[str, ...]
    values: Mapping[str, float]


@dataclass(frozen=True)
class _StepSpec:
    sign: int  # 0 for an anchor
    amount: int | float  # a float is a fraction of the interval between anchors
    text: int | str


class Dopesheet:
    """Keyframes with their properties; `keyframes` are sorted by resolved step (stable)."""

    def __init__(self, properties: dict[str, Property], keyframes: list[Keyframe], source: str | None):
        self.properties = properties
        self.keyframes = keyframes
        self.source = source

    @property
    def props(self) -> list[str]:
        """Property names (headers without their `:space:interp` suffix), in column order."""
        return list(self.properties)

    @property
    def resolved_steps(self) -> list[int]:
        return [k.step for k in self.keyframes]

    @classmethod
    def from_csv(cls, path: str | Path) -> Dopesheet:
        source = str(path)
        try:
            # utf-8-sig: spreadsheet exports often start with a byte-order mark.
            text = Path(path).read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError) as e:
            raise UserError(f"{source}: cannot read the schedule file ({e}).") from None
        reader = csv.reader(io.StringIO(text))
        lines: list[int] = []
        table: list[list[str]] = []
        for cells in reader:
            if any(c.strip() for c in cells):
                lines.append(reader.line_num)
                table.append([c.strip() for c in cells])
        if not table:
            raise UserError(f"{source}: the schedule is empty; expected a header row and keyframe rows.")
        header, line_of_header = table[0], lines[0]
        rows: list[dict[str, object]] = []
        for cells, line in zip(table[1:], lines[1:], strict=True):
            if any(cells[len(header) :]):
                raise UserError(
                    f"{where(source, row=line)}the row has {len(cells)} cells, but the header has "
                    f"{len(header)} columns."
                )
            rows.append(dict(zip(header, cells, strict=False)))
        data_lines = lines[1:]
        return _build(
            source,
            [(h, where(source, h, line_of_header)) for h in header],
            rows,
            lambda i, col: where(source, col, data_lines[i]),
        )

    @classmethod
    def from_records(
        cls,
        records: Sequence[Mapping[str, object]],
        source: str | None = None,
        path_prefix: str = "schedule.keyframes",
    ) -> Dopesheet:
        """The YAML form: one mapping per row, keyed by the same headers as the CSV."""
        if not isinstance(records, Sequence) or isinstance(records, str):
            raise UserError(
                f"{where(source, path_prefix)}expected a list of keyframes (mappings of column → value), "
                f"but got {records!r}."
            )
        headers: dict[str, str] = {}
        rows: list[dict[str, object]] = []
        for i, record in enumerate(records):
            if not isinstance(record, Mapping):
                raise UserError(
                    f"{where(source, f'{path_prefix}[{i}]')}each keyframe must be a mapping of column → "
                    f"value, but got {record!r}."
                )
            row = {str(k).strip(): v for k, v in record.items()}
            for h in row:
                headers.setdefault(h, where(source, f"{path_prefix}[{i}].{h}"))
            rows.append(row)
        return _build(
            source,
            list(headers.items()),
            rows,
            lambda i, col: where(source, f"{path_prefix}[{i}].{col}"),
        )

    def to_records(self) -> list[dict[str, object]]:
        """Rows in source order with STEP as written, so relative steps survive a round-trip."""
        records = []
        for k in sorted(self.keyframes, key=lambda k: k.index):
            record: dict[str, object] = {"STEP": k.step_text}
            if k.phase is not None:
                record["PHASE"] = k.phase
            if k.actions:
                record["ACTION"] = ", ".join(k.actions)
            for name, prop in self.properties.items():
                if name in k.values:
                    record[prop.header] = k.values[name]
            records.append(record)
        return records

    def require(self, props: Sequence[str]) -> None:
        """Raise a UserError naming the schedule unless it defines every one of `props`."""
        missing = [p for p in props if p not in self.properties]
        if missing:
            names = ", ".join(repr(p) for p in missing)
            have = ", ".join(self.props) or "none"
            raise UserError(
                f"{where(self.source)}the schedule must define {names} (a column per property), "
                f"but its properties are: {have}."
            )


def _build(
    source: str | None, headers: list[tuple[str, str]], rows: list[dict[str, object]], locate: Locate
) -> Dopesheet:
    properties = _parse_headers(headers)
    if not rows:
        raise UserError(f"{where(source)}the schedule has no keyframe rows; expected at least one.")
    if "STEP" not in (h for h, _ in headers):
        columns = ", ".join(h for h, _ in headers)
        raise UserError(f"{where(source)}the schedule needs a STEP column, but its columns are: {columns}.")
    specs = [_parse_step(row.get("STEP"), locate(i, "STEP")) for i, row in enumerate(rows)]
    _check_anchor_order(specs, locate)
    steps = _resolve(specs, locate)
    keyframes = []
    keyed: dict[tuple[str, int], float] = {}  # (property, step) → value
    for i, row in enumerate(rows):
        values = {
            p.name: _number(row[p.header], locate(i, p.header))
            for p in properties.values()
            if not _is_blank(row.get(p.header))
        }
        for p in properties.values():
            if p.name not in values:
                continue
            value, loc = values[p.name], locate(i, p.header)
            if p.space == "log" and value < 0:
                raise UserError(
                    f"{loc}`{p.name}` is in log space, so its keys must be ≥ 0 (0 stands for "
                    f"{LOG_FLOOR:g}), but got {value:g}."
                )
            earlier = keyed.setdefault((p.name, steps[i]), value)
            if earlier != value:
                raise UserError(
                    f"{loc}`{p.name}` is keyed twice at step {steps[i]}, as {earlier:g} and {value:g}; "
                    "a property takes one value per step (a relative STEP that resolves onto another "
                    "key's step counts too)."
                )
        phase = None if _is_blank(row.get("PHASE")) else str(row["PHASE"]).strip()
        actions = _actions(row.get("ACTION"))
        keyframes.append(Keyframe(i, steps[i], specs[i].text, phase, actions, values))
    header_loc = dict(headers)  # headers are unique once _parse_headers has passed
    for p in properties.values():
        if not any(p.name in k.values for k in keyframes):
            raise UserError(
                f"{header_loc[p.header]}the property column has no keyframe values; expected at least "
                "one number."
            )
    keyframes.sort(key=lambda k: k.step)
    return Dopesheet(properties, keyframes, source)


def _parse_headers(headers: list[tuple[str, str]]) -> dict[str, Property]:
    taken: dict[str, str] = {}  # property or reserved name -> the header that defined it
    properties: dict[str, Property] = {}
    for header, loc in headers:
        prop = None if header in RESERVED else _parse_header(header, loc)
        name = header if prop is None else prop.name
        if name in taken:
            raise UserError(
                f"{loc}column {header!r} defines {name!r} again (already defined by column "
                f"{taken[name]!r}); each property may have one column."
            )
        taken[name] = header
        if prop is not None:
            properties[name] = prop
    return properties


def _parse_header(header: str, loc: str) -> Property:
    parts = [part.strip() for part in header.split(":")]
    if not parts[0] or len(parts) > 3:
        raise UserError(f"{loc}a property header must be {HEADER_FORMS}, but got {header!r}.")
    name, space, interp = parts + [""] * (3 - len(parts))
    space, interp = space.lower() or "linear", interp.lower() or "minjerk"
    if space not in SPACES:
        raise UserError(f"{loc}the space in header {header!r} must be linear or log, but got {space!r}.")
    if interp not in INTERPS:
        raise UserError(
            f"{loc}the interpolation in header {header!r} must be minjerk, linear or step, "
            f"but got {interp!r}."
        )
    return Property(name, space, interp, header)


def _is_blank(value: object) -> bool:
    if isinstance(value, str):
        return not value.strip()
    return value is None or (isinstance(value, float) and math.isnan(value))


def _number(value: object, loc: str) -> float:
    number = math.nan
    if isinstance(value, numbers.Real | str) and not isinstance(value, bool):
        with contextlib.suppress(ValueError):
            number = float(value)
    if not math.isfinite(number):
        raise UserError(
            f"{loc}a keyframe value must be a finite number (an empty cell means no key), but got {value!r}."
        )
    return number


def _actions(value: object) -> tuple[str, ...]:
    if _is_blank(value):
        return ()
    items = value if isinstance(value, list | tuple) else str(value).split(",")
    return tuple(s for s in (str(item).strip() for item in items) if s)


def _parse_step(value: object, loc: str) -> _StepSpec:
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        if float(value).is_integer() and value >= 0:
            return _StepSpec(0, int(value), int(value))
        raise UserError(f"{loc}STEP must be {STEP_FORMS}{YAML_STEP_HINT}, but got {value!r}.")
    text = value.strip() if isinstance(value, str) else ""
    if _ANCHOR.fullmatch(text):
        return _StepSpec(0, int(text), int(text))
    if (m := _OFFSET.fullmatch(text)) and int(m[2]) >= 1:
        return _StepSpec(1 if m[1] == "+" else -1, int(m[2]), text)
    if (m := _FRACTION.fullmatch(text)) and 0.0 < float(m[2]) < 1.0:
        return _StepSpec(1 if m[1] == "+" else -1, float(m[2]), text)
    raise UserError(f"{loc}STEP must be {STEP_FORMS}, but got {value!r}.")


def _check_anchor_order(specs: list[_StepSpec], locate: Locate) -> None:
    """Absolute STEPs must not decrease down the sheet: relative steps count from them."""
    last: tuple[int, int] | None = None  # (row, step) of the previous anchor
    for i, spec in enumerate(specs):
        if spec.sign != 0:
            continue
        if last is not None and spec.amount < last[1]:
            raise UserError(
                f"{locate(i, 'STEP')}STEP {int(spec.amount)} comes after STEP {last[1]} further up; "
                "absolute STEPs must not decrease down the sheet."
            )
        last = (i, int(spec.amount))


def _resolve(specs: list[_StepSpec], locate: Locate) -> list[int]:
    """Resolve relative steps against the nearest anchors above/below in source order."""
    anchors = [i for i, spec in enumerate(specs) if spec.sign == 0]
    steps = []
    for i, spec in enumerate(specs):
        if spec.sign == 0:
            steps.append(int(spec.amount))
            continue
        pos = bisect.bisect(anchors, i)
        prev = int(specs[anchors[pos - 1]].amount) if pos > 0 else None
        nxt = int(specs[anchors[pos]].amount) if pos < len(anchors) else None
        fraction = isinstance(spec.amount, float)
        missing_above = prev is None and (spec.sign > 0 or fraction)
        if missing_above or (nxt is None and (spec.sign < 0 or fraction)):
            side = "above" if missing_above else "below"
            raise UserError(
                f"{locate(i, 'STEP')}STEP {spec.text!r} counts from the anchor {side} it (the nearest "
                "row with a plain step number), but there is none."
            )
        if not fraction:
            step = prev + int(spec.amount) if spec.sign > 0 else nxt - int(spec.amount)
        elif spec.sign > 0:
            step = round(prev + spec.amount * (nxt - prev))
        else:
            step = round(nxt - spec.amount * (nxt - prev))
        steps.append(max(0, step))
    for i, step in enumerate(steps):
        if step > MAX_STEP:
            raise UserError(
                f"{locate(i, 'STEP')}STEP resolves to {step:,}, but a schedule may be at most "
                f"{MAX_STEP:,} steps long (it is realized as one value per step and property)."
            )
    return steps
