"""Incremental Parquet histories: one part file per checkpoint interval, read back as one table.

A trial writes `history/` (one row per logged step) and `evals/` (one row per evaluation)
as part files named by the first step they hold: `part-000001000.parquet`. Parts appear
whole (temp name, then rename) and readers ignore temporaries. On resume, parts that start
at or after the checkpoint's step are dropped first, so the continued run rewrites exactly
the rows an uninterrupted run would have — no duplicates, no gaps.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

PART_PREFIX = "part-"


def part_name(first_step: int) -> str:
    return f"{PART_PREFIX}{first_step:09d}.parquet"


def _part_step(path: Path) -> int:
    return int(path.name[len(PART_PREFIX) : -len(".parquet")])


def list_parts(directory: str | Path) -> list[Path]:
    directory = Path(directory)
    if not directory.is_dir():
        return []
    parts = [p for p in directory.iterdir() if p.name.startswith(PART_PREFIX) and p.suffix == ".parquet"]
    return sorted(parts, key=_part_step)


def write_part(directory: str | Path, first_step: int, table: pa.Table) -> Path:
    """Write one part atomically; an existing part for the same first step is replaced."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    final = directory / part_name(first_step)
    tmp = directory / f".{final.name}.tmp"
    pq.write_table(table, tmp)
    os.replace(tmp, final)
    return final


def truncate(directory: str | Path, from_step: int) -> None:
    """Remove parts whose first step is ≥ `from_step` (written after the checkpoint we resume)."""
    for part in list_parts(directory):
        if _part_step(part) >= from_step:
            part.unlink()


def read_table(directory: str | Path) -> pd.DataFrame:
    """All parts of a history directory as one DataFrame sorted by step (empty if none)."""
    parts = list_parts(directory)
    if not parts:
        return pd.DataFrame({"step": pd.Series([], dtype="int64")})
    table = pa.concat_tables([pq.read_table(p) for p in parts], promote_options="default")
    return table.to_pandas().sort_values("step", kind="stable").reset_index(drop=True)


def records_to_table(columns: dict[str, list], schema: pa.Schema) -> pa.Table:
    """Columns → Arrow table with an explicit schema (no type inference from Python values)."""
    return pa.table({f.name: pa.array(columns[f.name], type=f.type) for f in schema}, schema=schema)
