"""Checking a sweep before it runs: the sweep file's own checks (`spec.checks`) and what only
the tune layer can check, an earlier sweep to warm-start from (`warm_start`); and
`latent-sweep validate`, which runs them all without running anything. Imports no Ray, so
`validate` stays quick."""

from __future__ import annotations

from pathlib import Path

from latent_sweep.spec import config
from latent_sweep.spec.checks import load_spec
from latent_sweep.spec.population import build_members, preflight
from latent_sweep.spec.sweep_block import SweepSpec
from latent_sweep.tune.warm_start import warm_start


def load_sweep(raw: dict, source: str | Path) -> SweepSpec:
    """A sweep file's dict validated and checked, its warm start included: everything `run`
    would trip over before the first trial, as a one-paragraph UserError."""
    spec = load_spec(raw, source)
    if spec.block.warm_start is not None:
        warm_start(spec)
    return spec


def validate(source: str | Path, overrides: config.Overrides = None) -> str:
    """Check a sweep file (or trial config), with `overrides` set as `run` sets them, and the
    schedules and inputs it names without running anything; a one-line summary."""
    raw = config.apply_overrides(config.load_file(source), config.as_overrides(overrides))
    trial, sweep_block = config.split_sweep(raw)
    # Every member's config, and whether the members can train as one batched model.
    members = build_members(trial, str(source))
    trials = ""
    if sweep_block is not None:
        # Space paths, search, scheduler, pack, every probe's config, the inputs.
        trials = f"; {load_sweep(raw, source).describe()}"
    else:
        preflight(members, str(source))  # input files and their sizes
        trials = f"; {len(members)} members" if len(members) > 1 else ""
    phases = ", ".join(f"{p.name} [{p.start}–{p.end}]" for p in members.timelines[0].phases) or "none"
    return f"{source}: ok — {members.cfg.experiment}, {members.total} steps, phases: {phases}{trials}"
