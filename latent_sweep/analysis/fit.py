"""Fitting a table to a terminal's width, as plain text cells (`latent_sweep.analysis.tables`
draws them): short column labels with a legend, cells laid out in lines, and the columns a
listing marks as optional left out, least wanted first, when nothing else makes room.

What gives way, in this order: (1) nothing, when the whole table fits; (2) lines: a header
breaks after `.`, `_` or a space and before `@` (`reg-polar` / `@5000`), a text cell at spaces,
an interval `[lo, hi]` and a `mean ± std` staying whole; (3) the optional columns, one at a time.
A number is never broken or ellipsized: it is one piece, and no column is narrower than its
widest piece. Where even that does not fit (more sampled parameters than the terminal has room
for), the table is as narrow as it can be, the terminal cuts it at its edge and the note says so.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property

from rich.cells import cell_len

# A config column's labels, shortest first: `config.schedule.keyframes[@5000].reg-polar` →
# `reg-polar@5000`, `config.schedule.scale.reg-separate` → `scale.reg-separate`, `config.labels.mode`
# → `labels.mode`; then the path without `config.`, then the column itself.
KEYFRAME = re.compile(r"^schedule\.keyframes\[@(?P<at>[^\]]+)\]\.(?P<name>.+)$")
HEADER_BREAK = re.compile(r"(?<=[._ ])|(?=@)")
# A cell's pieces, each kept on one line: an interval, a value with its ± spread, a word.
PIECE = re.compile(r"\[[^\]]*\]|\S+ ± \S+|\S+")


def label_forms(column: str) -> list[str]:
    """The labels `column` may show under, shortest first, the column's own name last."""
    if not column.startswith("config."):
        return [column]
    path = column.removeprefix("config.")
    forms = []
    if found := KEYFRAME.match(path):
        forms.append(f"{found['name']}@{found['at']}")
    elif path.startswith("schedule."):
        forms.append(path.removeprefix("schedule."))
    return list(dict.fromkeys([*forms, path, column]))


def short_labels(columns: Sequence[str]) -> dict[str, str]:
    """A distinct label per column, each as short as its forms allow: labels that two columns
    would share are lengthened (both), until none is shared."""
    forms = {c: label_forms(c) for c in dict.fromkeys(columns)}
    level = dict.fromkeys(forms, 0)
    while True:
        labels = {c: forms[c][level[c]] for c in forms}
        owners: dict[str, list[str]] = {}
        for column, label in labels.items():
            owners.setdefault(label, []).append(column)
        shared = [c for cs in owners.values() if len(cs) > 1 for c in cs if level[c] < len(forms[c]) - 1]
        if not shared:
            return labels
        for column in shared:
            level[column] += 1


def pack(pieces: Sequence[str], width: int, sep: str) -> list[str]:
    """`pieces` joined by `sep` into lines of at most `width` cells (a longer piece: its own line)."""
    lines: list[str] = []
    for piece in pieces:
        if lines and cell_len(lines[-1] + sep + piece) <= width:
            lines[-1] += sep + piece
        else:
            lines.append(piece)
    return lines or [""]


def wrap(text: str, width: int | None) -> list[str]:
    """A note's lines within `width`, broken at spaces (a word longer than the width stands alone)."""
    out = []
    for line in text.splitlines():
        out += [line] if width is None else pack(line.split(" "), width, " ")
    return out


@dataclass(frozen=True)
class Column:
    """One column as text: its name, label, cells, whether it holds numbers; how wide it is on
    one line per cell (`natural`) and at the least (`minimum`: its widest piece)."""

    name: str
    label: str
    cells: list[str]
    numeric: bool

    def header_pieces(self) -> list[str]:
        return [p for p in HEADER_BREAK.split(self.label) if p]

    def cell_pieces(self, cell: str) -> list[list[str]]:
        if self.numeric:
            return [[cell]]
        return [PIECE.findall(line) or [""] for line in cell.splitlines() or [""]]

    @cached_property
    def natural(self) -> int:
        lines = [line for cell in self.cells for line in cell.splitlines()]
        return max(map(cell_len, [self.label, *lines]))

    @cached_property
    def minimum(self) -> int:
        pieces = [p for cell in self.cells for line in self.cell_pieces(cell) for p in line]
        return max(map(cell_len, [*self.header_pieces(), *pieces]))

    def header(self, width: int) -> str:
        if cell_len(self.label) <= width:
            return self.label
        return "\n".join(line.rstrip() for line in pack(self.header_pieces(), width, ""))

    def lines(self, width: int) -> int:
        """How many lines its tallest cell (or header) takes at `width`."""
        cells = set(self.cells) if not self.numeric else set()  # a number: one line
        tallest = [sum(len(pack(p, width, " ")) for p in self.cell_pieces(cell)) for cell in cells]
        return max([len(pack(self.header_pieces(), width, "")), *tallest])

    def fewer_lines(self, width: int, slack: float) -> int | None:
        """The least width, at most `slack` more than `width`, at which it takes fewer lines."""
        now = self.lines(width)
        wider = range(width + 1, int(min(width + slack, self.natural)) + 1)
        return next((w for w in wider if self.lines(w) < now), None)

    def cell(self, i: int, width: int) -> str:
        return "\n".join(
            line for pieces in self.cell_pieces(self.cells[i]) for line in pack(pieces, width, " ")
        )


@dataclass(frozen=True)
class Layout:
    """What a table shows at a width: its columns with their widths, the columns left out, and
    the labels that are not their column's name (label → column) for a legend."""

    columns: list[Column]
    widths: list[int]
    dropped: list[Column]
    too_wide: bool = False  # even without the optional columns

    def headers(self) -> list[str]:
        return [c.header(w) for c, w in zip(self.columns, self.widths, strict=True)]

    def rows(self) -> list[list[str]]:
        count = len(self.columns[0].cells) if self.columns else 0
        return [[c.cell(i, w) for c, w in zip(self.columns, self.widths, strict=True)] for i in range(count)]

    def legend(self) -> dict[str, str]:
        return {c.label: c.name for c in self.columns if c.label != c.name}


def widths(columns: Sequence[Column], room: float) -> list[int] | None:
    """Column widths within `room` cells: each column's natural width where they all fit; else
    from their minimums up, the room left going to whole columns first, the nearest their natural
    width first (so as few as possible wrap), then where a column takes a line less for the fewest
    cells; None where even the minimums do not fit."""
    natural = [c.natural for c in columns]
    if sum(natural) <= room:
        return natural
    out = [c.minimum for c in columns]
    slack = room - sum(out)
    if slack < 0:
        return None
    for i in sorted(range(len(out)), key=lambda i: natural[i] - out[i]):
        if natural[i] - out[i] <= slack:
            slack -= natural[i] - out[i]
            out[i] = natural[i]
    while slack > 0:
        wider = [(w - out[i], i, w) for i in range(len(out)) if (w := columns[i].fewer_lines(out[i], slack))]
        if not wider:
            break
        cost, i, out[i] = min(wider)
        slack -= cost
    return out


def lay_out(
    columns: Sequence[Column],
    optional: Sequence[str],
    width: int | None,
    extra: Callable[[int], int],
) -> Layout:
    """`columns` fitted into `width` (None: no limit), `extra(n)` being what borders and padding
    of n columns take: lines wrap first; then the `optional` columns go, in their order, until
    the rest fits."""
    shown, dropped = list(columns), []
    leave = [name for name in optional if any(c.name == name for c in columns)]
    while True:
        room = float("inf") if width is None else width - extra(len(shown))
        fitted = widths(shown, room)
        if fitted is not None:
            return Layout(shown, fitted, dropped)
        if not leave:  # the columns that always show, wider than the terminal: no narrower
            return Layout(shown, [c.minimum for c in shown], dropped, too_wide=True)
        name = leave.pop(0)
        dropped += [c for c in shown if c.name == name][:1]
        shown = [c for c in shown if c.name != name]


def dropped_note(layout: Layout, width: int | None, restore: str) -> str:
    """`left out to fit 80 columns: status (all TERMINATED), steps; <restore>`, and where the
    rest is still too wide, that the terminal cuts it; or nothing."""
    names = []
    for column in layout.dropped:  # a column of one value says it: `status (all TERMINATED)`
        values = set(column.cells)
        same = len(values) == 1 and "" not in values
        names.append(f"{column.name} (all {values.pop()})" if same else column.name)
    notes = [f"left out to fit {width} columns: {', '.join(names)}"] if names else []
    if layout.too_wide:
        notes.append(f"the table is wider than {width} columns even so, and cut at its edge")
    return "; ".join([*notes, restore] if notes and restore else notes)


def legend_lines(layout: Layout, width: int | None) -> list[str]:
    """`reg-polar@5000 = config.schedule.keyframes[@5000].reg-polar; …` for the shortened labels,
    an entry broken across lines only where it is wider than `width` alone."""
    entries = [f"{label} = {name}" for label, name in layout.legend().items()]
    if width is None:
        return ["; ".join(entries)] if entries else []
    lines = pack([f"{e};" for e in entries[:-1]] + entries[-1:], width, " ")
    return [part for line in lines for part in wrap(line, width)]
