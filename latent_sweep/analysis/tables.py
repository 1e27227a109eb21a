"""Trial tables as text and files: rich tables, CSV, Markdown (rendered here: pandas'
`to_markdown` needs tabulate) and Parquet. Files appear whole (a temporary, then a rename)."""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from rich.console import Console
from rich.markup import escape
from rich.table import Table

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


def rich_table(df: pd.DataFrame, title: str) -> Table:
    table = Table(title=title)
    for c in df.columns:
        table.add_column(str(c), justify="right" if pd.api.types.is_numeric_dtype(df[c]) else "left")
    for values in df.itertuples(index=False):
        table.add_row(*(escape(format_cell(v)) for v in values))  # `[lo, hi]` is not markup
    return table


@dataclass(frozen=True)
class Listing:
    """A table as a command shows it: its rows, the title of a rich table and a note that
    follows the table (not in CSV, which stays machine-readable)."""

    frame: pd.DataFrame
    title: str
    note: str = ""


def render(listing: Listing, fmt: str) -> str:
    """The text of `listing` as a table (rich, wide), csv or markdown, its note after it."""
    df = listing.frame
    if fmt == "table":
        # Off a terminal (a pipe, a file) rich would wrap at 80 columns; give wide tables room.
        buffer = io.StringIO()
        Console(file=buffer, width=1000).print(rich_table(df, listing.title))
        text = buffer.getvalue()
    elif fmt == "csv":
        return df.to_csv(index=False)
    else:
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
