"""`scripts/kill_anywhere.py` as a module for the tests (scripts/ is not a package): the kill
harness, and its helpers for the processes a killed sweep leaves (Ray's workers)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

_spec = importlib.util.spec_from_file_location(
    "kill_anywhere", Path(__file__).resolve().parent.parent / "scripts" / "kill_anywhere.py"
)
kill_anywhere = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = kill_anywhere  # its dataclasses look their module up there
_spec.loader.exec_module(kill_anywhere)
