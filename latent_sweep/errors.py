"""User-facing errors: one paragraph naming the file, the field path and what was expected."""

from __future__ import annotations

from pathlib import Path


class UserError(ValueError):
    """Bad input from the user. The CLI prints the message alone (no traceback) and exits 2.

    Build messages as: where (file, row, field path), then what was expected and the value
    actually found, e.g. "sweeps/a.yaml: `schedule.keyframes[2].step` must be ≥ 0, but got -5".
    """


def where(file: str | Path | None, path: str | None = None, row: int | None = None) -> str:
    """Format a location prefix: 'FILE, row N, `path`: ' (parts omitted when unknown)."""
    parts = []
    if file is not None:
        parts.append(str(file))
    if row is not None:
        parts.append(f"row {row}")
    if path:
        parts.append(f"`{path}`")
    return (", ".join(parts) + ": ") if parts else ""


class TrialDiverged(RuntimeError):
    """Every member's training produced non-finite values; the trial stops with this reason."""
