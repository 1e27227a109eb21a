"""Files appear whole: everything latent-sweep writes goes to a hidden temporary beside its target
(`.NAME.tmp`) and is renamed into place, so a kill, a full disk or a power cut leaves the old
file or the new one, never half of one. Readers skip names that start with ".".
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow.fs

from latent_sweep.errors import UserError


def temp_name(path: str | Path) -> str:
    """The temporary a write of `path` goes through: `.NAME.tmp` in the same directory."""
    parent, _, name = str(path).rpartition("/")
    return f"{parent}/.{name}.tmp" if parent else f".{name}.tmp"


def write_whole(
    path: str | Path, write: Callable[[Any], object], fs: pyarrow.fs.FileSystem | None = None
) -> None:
    """`write(tmp)` writes the temporary (a file, or a directory built whole), then it replaces
    `path`. Local paths: `tmp` is a Path. On a pyarrow filesystem `fs` (a URI's storage): `tmp` is
    that filesystem's path string, and the move is the filesystem's (on object stores a copy)."""
    tmp = temp_name(path)
    if fs is not None:
        fs.create_dir(str(path).rpartition("/")[0], recursive=True)
        write(tmp)
        fs.move(tmp, str(path))
        return
    path, tmp = Path(path), Path(tmp)
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove(tmp)  # left by an earlier write that was killed
    write(tmp)
    if tmp.is_dir():  # a directory cannot replace a non-empty one
        _remove(path)
    os.replace(tmp, path)


def write_text(path: str | Path, text: str) -> None:
    write_whole(path, lambda tmp: Path(tmp).write_text(text))


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def check_dir(path: Path, what: str) -> None:
    """`path` is, or is made, a directory this process can write into; otherwise a UserError
    naming `what` (the option or field that gave it)."""
    if path.exists() and not path.is_dir():
        raise UserError(f"{what} {path} is a file; expected a directory")
    blocked = next((p for p in path.parents if p.exists() and not p.is_dir()), None)
    if blocked is not None:
        raise UserError(f"{what} {path}: {blocked} is a file, so no directory can be made there")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UserError(f"{what} {path}: cannot make the directory ({err.strerror})") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise UserError(f"{what} {path}: the directory is not writable")
