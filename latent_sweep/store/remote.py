"""Results directories given as URIs (s3://, gs://, file://, anything `pyarrow.fs` opens): the
one place the reading commands (`table`, `compare`, `plot`, the `load_*` functions) resolve
where results are.

`local_dir(where)` returns a local path as it is; a URI is mirrored through `pyarrow.fs` into a
local cache (`$LATENT_SWEEP_CACHE`, default `~/.cache/latent-sweep/remote`), one directory per
URI named like the URI's last part, and that directory is returned. Only what the readers use
comes over: checkpoints (`checkpoint_*/`) are left out. A second read of the same URI copies
only files whose size or modification time changed, and drops files that storage no longer
holds (a trial's part files rewritten on resume), so the mirror is what storage holds now.
Files appear whole (a temporary name, then a rename).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pyarrow.fs

from latent_sweep.errors import UserError
from latent_sweep.store import atomic, layout

CACHE_ENV = "LATENT_SWEEP_CACHE"


def is_uri(where: str | Path) -> bool:
    """Whether `where` is a URI (s3://, gs://, file://, …) rather than a local path: the one test
    of it."""
    return "://" in str(where)


def cache_root() -> Path:
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "latent-sweep" / "remote")


def local_dir(where: str | Path) -> Path:
    """A local directory holding what `where` (a path or a URI) holds."""
    if not is_uri(where):
        return Path(where)
    uri = str(where).rstrip("/")
    try:
        fs, root = pyarrow.fs.FileSystem.from_uri(uri)
        info = fs.get_file_info(root)
    except (pyarrow.ArrowInvalid, OSError) as err:
        raise UserError(f"cannot open `{uri}`: {err}") from None
    if info.type != pyarrow.fs.FileType.Directory:
        raise UserError(f"results directory `{uri}` does not exist")
    digest = hashlib.sha256(uri.encode()).hexdigest()[:16]
    mirror = cache_root() / digest / (uri.rsplit("/", 1)[-1] or "results")
    _sync(fs, root.rstrip("/"), mirror)
    return mirror


def _sync(fs: pyarrow.fs.FileSystem, root: str, mirror: Path) -> None:
    """Make `mirror` hold the files under `root` (less checkpoints), copying changed ones only."""
    wanted: set[Path] = set()
    selector = pyarrow.fs.FileSelector(root, recursive=True)
    for info in fs.get_file_info(selector):
        rel = info.path[len(root) :].lstrip("/")
        parts = rel.split("/")
        if info.type != pyarrow.fs.FileType.File or any(layout.is_checkpoint(p) for p in parts[:-1]):
            continue
        local = mirror / rel
        wanted.add(local)
        mtime = info.mtime.timestamp() if info.mtime else None
        stat = local.stat() if local.exists() else None
        if stat and stat.st_size == info.size and mtime is not None and stat.st_mtime == mtime:
            continue
        atomic.write_whole(local, lambda tmp, path=info.path, mtime=mtime: _download(fs, path, tmp, mtime))
    if mirror.exists():
        for local in mirror.rglob("*"):
            if local.is_file() and local not in wanted:
                local.unlink()


def _download(fs: pyarrow.fs.FileSystem, path: str, tmp: Path, mtime: float | None) -> None:
    with fs.open_input_stream(path) as src, open(tmp, "wb") as dst:
        while chunk := src.read(1 << 20):
            dst.write(chunk)
    if mtime is not None:  # the mirror's copy is up to date while storage's is unchanged
        os.utime(tmp, (mtime, mtime))
