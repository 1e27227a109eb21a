"""Incremental Parquet histories: one part file per checkpoint interval, read back as one table.

A trial writes `history/` (one row per logged step) and `evals/` (one row per evaluation)
as part files named by the first step they hold: `part-000001000.parquet`. Parts appear
whole (temp name, then rename) and readers ignore temporaries. On resume, parts that start
at or after the checkpoint's step are dropped first, so the continued run rewrites exactly
the rows an uninterrupted run would have — no duplicates, no gaps.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.fs
import pyarrow.parquet as pq

from latent_sweep.errors import UserError
from latent_sweep.store import atomic, layout
from latent_sweep.store.remote import is_uri

PART_PREFIX = layout.PART_PREFIX
TRIAL_DIR_PREFIX = layout.TRIAL_DIR_PREFIX  # a sweep's trial directories: `trial_<Ray trial id>`


def trial_id_of(trial_dir: str | Path) -> str:
    """The `trial_id` a trial's files carry: its directory's name less the sweep's `trial_`
    prefix, so it equals the trial's `trial_id` in trials.parquet (a `train` directory's name
    stays as it is). With it in every row, a query over many trials needs no path parsing."""
    name = Path(trial_dir).name
    return name.removeprefix(TRIAL_DIR_PREFIX) or name


def part_name(first_step: int) -> str:
    return layout.part_name(first_step)


def _part_step(path: Path) -> int:
    return layout.part_step(path.name)


def list_parts(directory: str | Path) -> list[Path]:
    directory = Path(directory)
    if not directory.is_dir():
        return []
    parts = [p for p in directory.iterdir() if layout.is_part(p.name)]
    return sorted(parts, key=_part_step)


def write_part(directory: str | Path, first_step: int, table: pa.Table) -> Path:
    """Write one part atomically; an existing part for the same first step is replaced."""
    final = Path(directory) / part_name(first_step)
    atomic.write_whole(final, lambda tmp: pq.write_table(table, tmp))
    return final


def truncate(directory: str | Path, from_step: int) -> None:
    """Remove parts whose first step is ≥ `from_step` (written after the checkpoint we resume)."""
    for part in list_parts(directory):
        if _part_step(part) >= from_step:
            part.unlink()


def read_table(directory: str | Path, columns: Sequence[str] | None = None) -> pd.DataFrame:
    """The part files (`part-<step>.parquet`) of a directory, local or a URI (s3://, gs://, file://),
    as one table sorted by step; empty when there are none. `columns`: those of them a part has."""
    directory = str(directory)
    if is_uri(directory):
        fs, root = pyarrow.fs.FileSystem.from_uri(directory)
    else:
        fs, root = pyarrow.fs.LocalFileSystem(), str(Path(directory).absolute())
    found = fs.get_file_info(pyarrow.fs.FileSelector(root, allow_not_found=True))
    parts = sorted(  # zero-padded first steps: names sort in step order; temporaries start with "."
        i.path for i in found if i.type == pyarrow.fs.FileType.File and layout.is_part(i.base_name)
    )
    if not parts:
        return pd.DataFrame({"step": pd.Series([], dtype="int64")})
    tables = [read_part(fs, part, columns) for part in parts]
    table = pa.concat_tables(tables, promote_options="default")
    return table.to_pandas().sort_values("step", kind="stable").reset_index(drop=True)


PART_REMEDY = (
    f"remove it to read the rest, or re-run the trial with `latent-sweep train <trial>/{layout.CONFIG}`"
)


def read_part(
    fs: pyarrow.fs.FileSystem, part: str, columns: Sequence[str] | None = None, remedy: str = PART_REMEDY
) -> pa.Table:
    """One Parquet file (`columns`: those of them it has); a damaged one is a UserError naming
    it and `remedy`."""
    try:
        with fs.open_input_file(part) as f:
            names = None if columns is None else [c for c in columns if c in pq.read_schema(f).names]
            return pq.read_table(f, columns=names)
    except (pa.ArrowInvalid, OSError) as err:
        raise UserError(
            f"{part}: not a readable Parquet file ({err}). Files here are written whole, so it was "
            f"damaged afterwards (a full disk, a power cut, a copy cut short): {remedy}"
        ) from None


def read_local(path: Path, remedy: str = PART_REMEDY) -> pd.DataFrame:
    """A local Parquet file as a DataFrame, a damaged one a UserError (see `read_part`)."""
    return read_part(pyarrow.fs.LocalFileSystem(), str(path.absolute()), remedy=remedy).to_pandas()
