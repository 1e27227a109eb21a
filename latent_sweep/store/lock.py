"""A lock on a local results directory, so two `run`/`resume` processes never write one sweep."""

from __future__ import annotations

import os
import socket
from pathlib import Path

from latent_sweep.errors import UserError
from latent_sweep.store import layout
from latent_sweep.store.remote import is_uri

LOCK_FILE = layout.LOCK_FILE


class ResultsLock:
    """A pid lock file in a local results directory; a lock left by a dead process is taken over."""

    def __init__(self, path: str) -> None:
        self.file = None if is_uri(path) else Path(path) / LOCK_FILE
        self.path = path

    def __enter__(self) -> ResultsLock:
        if self.file is None:
            return self
        self.file.parent.mkdir(parents=True, exist_ok=True)
        # Written under a private name, then linked into place: the lock never exists half-written.
        mine = self.file.with_name(layout.lock_claim(os.getpid()))
        mine.write_text(f"{socket.gethostname()} {os.getpid()}")
        try:
            while True:
                try:
                    os.link(mine, self.file)
                    return self
                except FileExistsError:
                    holder = self._holder()
                    if holder is not None:
                        raise UserError(
                            f"{self.path} is in use by latent-sweep process {holder} (lock file "
                            f"{self.file}); wait for it to finish, or run into another directory with "
                            f"--name or --storage"
                        ) from None
                    self.file.unlink(missing_ok=True)  # stale: its process is gone
        finally:
            mine.unlink()

    def _holder(self) -> str | None:
        """`pid` of a live holder, or None when the lock is stale (or vanished meanwhile)."""
        try:
            host, pid = self.file.read_text().split()
        except FileNotFoundError:
            return None
        if host != socket.gethostname():
            return f"{pid} on {host}"  # cannot check another machine's processes: assume alive
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass
        return pid

    def __exit__(self, *exc) -> None:
        if self.file is not None:
            self.file.unlink(missing_ok=True)
