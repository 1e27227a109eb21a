"""Sweeps interrupted again and again (SIGKILL of the process group, or SIGINT to it as Ctrl-C
sends it), at start-up, at checkpoints, at any moment and at the end, `resume` interrupted too,
then resumed to the end: the CI-sized part of `scripts/kill_anywhere.py` (which runs every search
and scheduler at 20 points per signal). Real Ray, real Optuna; the moments are drawn from a seeded
random generator, and the checks hold wherever they land."""

from __future__ import annotations

import importlib.util
import random
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("kill_anywhere", ROOT / "scripts" / "kill_anywhere.py")
kill_anywhere = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = kill_anywhere  # its dataclasses look their module up there
spec.loader.exec_module(kill_anywhere)


@pytest.mark.slow
@pytest.mark.parametrize(("search", "sig", "seed"), [("optuna", "kill", 1), ("random", "int", 2)])
def test_a_sweep_interrupted_anywhere_resumes_to_what_an_uninterrupted_run_gives(tmp_path, search, sig, seed):
    sweep = kill_anywhere.sweep_file(tmp_path, search)
    span, reference = kill_anywhere.reference_run(sweep, tmp_path)
    events, results, problems = kill_anywhere.chain(
        search, sig, sweep, tmp_path, "chain", random.Random(seed), span, 3, reference["trial_id"].nunique()
    )
    assert not problems
    assert events  # at least one interruption landed before the sweep ended
    assert kill_anywhere.check(search, results, reference, kill_anywhere.SEARCHES[search]) == []
