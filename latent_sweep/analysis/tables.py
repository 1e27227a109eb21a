"""Trial tables as text and files: rich tables fitted to the terminal (`latent_sweep.analysis.fit`),
CSV, Markdown (rendered here: pandas' `to_markdown` needs tabulate) and Parquet. Files appear
whole (a temporary, then a rename)."""

from __future__ import annotations

import io
import shutil
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from latent_sweep.analysis import fit
from latent_sweep.errors import UserError
from latent_sweep.store import atomic


def format_cell(value: Any) -> str:
    if pd.api.types.is_scalar(value) and pd.isna(value):
        return ""
    if isinstance(value, float | np.floating):
        return f"{value:.4g}"
    return str(value)


def render_markdown(df: pd.DataFrame) -> str:
    """A GitHub-flavored Markdown table; numeric columns right-aligned."""
    numeric = [pd.api.types.is_numeric_dtype(df[c]) and not pd.api.types.is_bool_dtype(df[c]) for c in df]

    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

    rows = [line([str(c) for c in df.columns]), line(["---:" if n else "---" for n in numeric])]
    rows += [line([format_cell(v) for v in values]) for values in df.itertuples(index=False)]
    return "\n".join(rows) + "\n"


def is_number_column(column: pd.Series) -> bool:
    """Numbers right-aligned and never broken: a numeric column, or one of numbers and gaps."""
    if pd.api.types.is_bool_dtype(column):
        return False
    if pd.api.types.is_numeric_dtype(column):
        return True
    values = column.dropna()
    return len(values) > 0 and all(isinstance(v, int | float | np.number) for v in values)


@dataclass(frozen=True)
class Listing:
    """A table as a command shows it: its rows, the title of a rich table and a note that
    follows the table (not in CSV, which stays machine-readable). Where a terminal is narrower
    than the table, the `optional` columns may be left out, the first first, and a note says
    which, and `restore`: how to see them."""

    frame: pd.DataFrame
    title: str
    note: str = ""
    optional: tuple[str, ...] = ()
    restore: str = "--format markdown shows every column"


def terminal_table(listing: Listing, width: int | None, boxed: bool = True) -> tuple[Table, str]:
    """`listing` as a rich table within `width` columns (None: as wide as it is) under short
    column labels (`latent_sweep.analysis.fit`), and the text that follows it: a legend of the
    labels, the columns left out, the listing's note, each within the width. `boxed` False: no
    borders, as the leaderboard of a run prints in a log."""
    df = listing.frame
    names = [str(c) for c in df.columns]
    labels = fit.short_labels(names)
    columns = [
        fit.Column(
            name, labels[name], [format_cell(v) for v in df.iloc[:, i]], is_number_column(df.iloc[:, i])
        )
        for i, name in enumerate(names)
    ]

    def extra(n: int) -> int:  # borders and padding (0, 1): `Table._extra_width` and the padding
        return 3 * n + 1 if boxed else 2 * max(n - 1, 0)

    layout = fit.lay_out(columns, listing.optional, width, extra)
    title = Text(listing.title) if listing.title else None  # Text: `[@5000]` is not markup
    # Too wide even so: as wide as its columns (rich would narrow them all, cutting numbers), and
    # the terminal cuts it at its edge.
    wide = sum(layout.widths) + extra(len(layout.widths)) if layout.too_wide else None
    table = Table(title=title, box=box.HEAVY_HEAD if boxed else None, pad_edge=boxed, width=wide)
    for column, header, w in zip(layout.columns, layout.headers(), layout.widths, strict=True):
        # The width is set, every line within it: rich neither wraps nor ellipsizes a cell.
        justify = "right" if column.numeric else "left"
        table.add_column(Text(header), justify=justify, width=w, no_wrap=True, overflow="fold")
    for row in layout.rows():
        table.add_row(*map(Text, row))  # Text: `[lo, hi]` is not markup
    dropped = fit.dropped_note(layout, width, listing.restore)
    notes = [*fit.legend_lines(layout, width), *fit.wrap(dropped, width), *fit.wrap(listing.note, width)]
    return table, "".join(f"{line}\n" for line in notes)


def terminal_width() -> int | None:
    """The width tables fit: the terminal's (`COLUMNS` where it is set); off a terminal none: a
    pipe, a file or a log keeps whole tables (rich would wrap them at 80 columns)."""
    return shutil.get_terminal_size().columns if sys.stdout.isatty() else None


def render(listing: Listing, fmt: str, width: int | None = None, boxed: bool = True) -> str:
    """The text of `listing` as a table (rich, within `width`, see `terminal_table`), csv or
    markdown (whole, under the columns' names: scripts read them), its note after it."""
    df = listing.frame
    if fmt == "table":
        table, notes = terminal_table(listing, width, boxed)
        # Off a terminal rich would wrap at 80 columns; the table's widths are set already.
        buffer = io.StringIO()
        Console(file=buffer, width=width or 10_000).print(table)
        lines = buffer.getvalue().splitlines()
        return "".join(f"{line.rstrip()}\n" for line in lines) + notes
    if fmt == "csv":
        return df.to_csv(index=False)
    text = render_markdown(df) + ("\n" if listing.note else "")
    return text + (f"{listing.note}\n" if listing.note else "")


def write_parquet(df: pd.DataFrame, path: Path) -> None:
    """`df` as a user-named Parquet file (`--out`), written whole."""
    write_output(path, lambda tmp: pq.write_table(arrow_table(df), tmp))


def write_output(path: Path, write: Callable[[Path], object]) -> None:
    """A user-named output file (`--out`), written whole; a path that cannot be one is a UserError."""
    if path.is_dir():
        raise UserError(f"cannot write `{path}`: it is a directory; give a file name")
    if any(p.exists() and not p.is_dir() for p in path.parents):
        raise UserError(f"cannot write `{path}`: a file stands where its directory would go")
    try:
        atomic.write_whole(path, write)
    except PermissionError as err:
        raise UserError(f"cannot write `{path}`: {err.strerror}") from None


def arrow_table(df: pd.DataFrame) -> pa.Table:
    """Mixed-type object columns (e.g. a config value that is a number in one trial, text in
    another) cannot be one Arrow type; write those as text."""
    df = df.copy()
    for c in [c for c in df.columns if pd.api.types.is_object_dtype(df[c])]:
        try:
            pa.array(df[c], from_pandas=True)
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            df[c] = df[c].map(lambda v: None if v is None else str(v))
    return pa.Table.from_pandas(df, preserve_index=False)
