"""Tables that fit the terminal (issue 19): `table`, `compare` and the leaderboard at the end of
`run`, at 80 and 120 columns: no line wider, the sampled parameters under short labels with a
legend, numbers never cut, a note naming the columns left out, `top 10 of 16` when cut."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fixtures_results import write_sweep
from rich.cells import cell_len

from latent_sweep.analysis.compare import compare_groups, trials_table
from latent_sweep.analysis.fit import short_labels
from latent_sweep.analysis.tables import Listing, format_cell, render
from latent_sweep.cli import main
from latent_sweep.spec.checks import load_spec
from latent_sweep.spec.config import load_file
from latent_sweep.tune.report import print_leaderboard

ROOT = Path(__file__).resolve().parent.parent
WIDTHS = (80, 120)
POLAR, STEP = "schedule.keyframes[@5000].reg-polar", "schedule.keyframes[@5000].STEP"
SEPARATE, MODE = "schedule.scale.reg-separate", "labels.mode"
# The sampled parameters of sweeps/quick.yaml (and labels.mode) → their labels in a table.
LABELS = {POLAR: "reg-polar@5000", STEP: "STEP@5000", SEPARATE: "scale.reg-separate", MODE: "labels.mode"}
SPACE = {
    POLAR: {"loguniform": [0.001, 0.03]},
    STEP: {"randint": [3000, 7001]},
    SEPARATE: {"uniform": [0.5, 2.0]},
    MODE: {"choice": ["soft", "hard"]},
}
CONFIGS = 16


@pytest.fixture(scope="module")
def quick(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A quick.yaml-like sweep of 16 configs with one seed each, scores down to 1e-5 (which a
    cut column shows as `0.000…`)."""
    rng = np.random.default_rng(19)
    rows = [
        {
            "trial_id": f"5f3a1_{i:05d}",
            "seed": i,
            "status": "TERMINATED",
            "config.seed": i,
            f"config.{POLAR}": float(np.exp(rng.uniform(np.log(0.001), np.log(0.03)))),
            f"config.{STEP}": int(rng.integers(3000, 7001)),
            f"config.{SEPARATE}": float(rng.uniform(0.5, 2.0)),
            f"config.{MODE}": ["soft", "hard"][i % 2],
            "hue_corr": float(rng.uniform(0.5, 1.0)),
            "hue_order": float(rng.uniform(0.5, 1.0)),
            "recon_mse": float(rng.uniform(1e-4, 9e-4)),
            "anchor_error_red": float(rng.uniform(1e-5, 9e-5)),
            "trustworthiness_k10": float(rng.uniform(0.8, 1.0)),
            "diverged_at": None,
            "steps": 10000,
            "error": None,
        }
        for i in range(CONFIGS)
    ]
    return write_sweep(tmp_path_factory.mktemp("width") / "quick", rows, SPACE)


def assert_fits(text: str, width: int) -> None:
    widest = max(text.splitlines(), key=cell_len)
    assert cell_len(widest) <= width, widest
    assert "…" not in text  # nothing ellipsized, numbers least of all


def cells(text: str) -> set[str]:
    """The table's cells, one piece each (its lines' text between the borders)."""
    return {c.strip() for line in text.splitlines() for c in re.split(r"[│┃]", line)}


def headers(text: str) -> list[str]:
    """The table's column headers, each put together from its lines: between `┏` and `┡` in a
    boxed table; in the leaderboard (no borders) its lines down to `trial_id`, cut where every
    line of the table has a space."""
    lines = text.splitlines()
    if any(line.startswith("┏") for line in lines):
        top = next(i for i, line in enumerate(lines) if line.startswith("┏"))
        bottom = next(i for i, line in enumerate(lines) if line.startswith("┡"))
        parts = [line.split("┃")[1:-1] for line in lines[top + 1 : bottom]]
        return ["".join(p[i].strip() for p in parts) for i in range(len(parts[0]))]
    last = next(i for i, line in enumerate(lines) if line.startswith("trial_id"))
    block = lines[1 : last + 11]
    width = max(map(len, block))
    block = [line.ljust(width) for line in block]
    gap = [all(line[x] == " " for line in block) for x in range(width)]
    starts = [x for x in range(width) if not gap[x] and (x == 0 or gap[x - 1])]
    ends = [x + 1 for x in range(width) if not gap[x] and (x == width - 1 or gap[x + 1])]
    return ["".join(line[a:b].strip() for line in block[:last]) for a, b in zip(starts, ends, strict=True)]


def assert_labelled(text: str, params: list[str]) -> None:
    """Each sampled parameter under its short label, which the legend maps to its column."""
    legend = "\n".join(line for line in text.splitlines() if " = config." in line)
    shown = headers(text)
    for param in params:
        label = LABELS[param]
        assert f"{label} = config.{param}" in legend
        assert label in shown, (label, shown)


def left_out(text: str) -> list[str]:
    """The columns the note names as left out (`name (all value)` → name)."""
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith("left out to fit")), None)
    if start is None:
        return []
    note = " ".join(lines[start:]).split(": ", 1)[1].split(";")[0]
    return [name.split(" (")[0] for name in note.split(", ")]


def test_labels_are_short_and_distinct():
    columns = [f"config.{p}" for p in LABELS] + [
        "seed",
        "config.seed",
        "config.scale.lr",
        "config.schedule.scale.lr",
    ]
    labels = short_labels(columns)
    assert [labels[f"config.{p}"] for p in LABELS] == list(LABELS.values())
    assert labels["seed"] == "seed" and labels["config.seed"] == "config.seed"  # `seed` is taken
    # `scale.lr` would name two columns: both say more
    assert (labels["config.scale.lr"], labels["config.schedule.scale.lr"]) == (
        "config.scale.lr",
        "schedule.scale.lr",
    )


@pytest.mark.parametrize("width", WIDTHS)
def test_table_fits_the_width(quick, width):
    listing = trials_table([quick])
    text = render(listing, "table", width)
    assert_fits(text, width)
    assert_labelled(text, [POLAR, STEP, SEPARATE, MODE])
    shown = cells(text)
    for column in [*(f"config.{p}" for p in LABELS), "trial_id", "hue_corr"]:  # never left out
        assert {format_cell(v) for v in listing.frame[column]} <= shown, column
    dropped = left_out(text)
    whole = render(listing, "table", None)
    assert max(map(cell_len, whole.splitlines())) > 120 and "left out" not in whole
    # The least wanted first: a status every row shares, steps, then key scores from the last.
    assert dropped[:3] == ["status", "steps", "trustworthiness_k10"]
    assert f"left out to fit {width} columns: status (all TERMINATED), steps (all 10000)" in text
    for column in dropped:
        assert not {format_cell(v) for v in listing.frame[column]} <= shown or column == "status"
    if width == 80:
        assert "recon_mse" in dropped  # less room: more left out
    assert "--format markdown" in text


def test_the_table_command_fits_the_terminal_and_markdown_keeps_the_names(quick, capsys, monkeypatch):
    # A terminal of 80 columns (as rich and shutil read it), without colors
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    monkeypatch.setenv("COLUMNS", "80")
    monkeypatch.setenv("TERM", "dumb")
    assert main(["table", str(quick)]) == 0
    out = capsys.readouterr().out
    assert_fits(out, 80)
    assert_labelled(out, [POLAR, STEP, SEPARATE, MODE])
    assert "left out to fit 80 columns: status (all TERMINATED)" in out
    assert main(["table", str(quick), "--format", "markdown"]) == 0
    header = capsys.readouterr().out.splitlines()[0]
    assert all(f"| config.{p} |" in header for p in LABELS) and "reg-polar@5000" not in header
    monkeypatch.undo()  # off a terminal (a pipe, a file): the whole table
    assert main(["table", str(quick)]) == 0
    assert "left out" not in capsys.readouterr().out


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("by", [POLAR, MODE])
def test_compare_fits_the_width(quick, width, by):
    listing = compare_groups([quick], by=by, formatted=True)
    text = render(listing, "table", width)
    assert_fits(text, width)
    assert_labelled(text, [by])
    shown = cells(text)
    # every group's value (a bin `[lo, hi]` of a float) and the first score's mean ± std whole
    assert {str(v) for v in listing.frame[f"config.{by}"]} <= shown
    for value in listing.frame["hue_corr"]:  # on one line, or its interval on the next
        assert value in shown or any(value.split(" [")[0] == cell for cell in shown), value
    dropped = left_out(text)
    assert "hue_corr" not in dropped
    if dropped:
        assert dropped[0] == "trustworthiness_k10" and "--scores" in text


def leaderboard(quick: Path, capsys, width: int) -> str:
    raw = load_file(ROOT / "sweeps" / "quick.yaml")
    spec = load_spec(raw, "sweeps/quick.yaml")
    rows = pd.read_parquet(quick / "trials.parquet").to_dict("records")
    print_leaderboard(rows, spec, results="results/quick", width=width)
    return capsys.readouterr().out


@pytest.mark.parametrize("width", WIDTHS)
def test_the_leaderboard_fits_and_says_it_is_cut(quick, capsys, width):
    out = leaderboard(quick, capsys, width)
    assert_fits(out, width)
    lines = out.splitlines()
    assert lines[0] == "trials: 16 TERMINATED"
    assert_labelled(out, [POLAR, STEP, SEPARATE])
    assert "top 10 of 16 configs (latent-sweep table results/quick for all)" in " ".join(lines)
    header = next(i for i, line in enumerate(lines) if line.startswith("trial_id"))
    rows = [line.split() for line in lines[header + 1 : header + 11]]
    assert [r[0] for r in rows] == sorted([r[0] for r in rows], key=lambda t: -hue(quick, t))
    if left_out(out):
        assert left_out(out)[0] == "status" and "latent-sweep table results/quick" in out


def hue(quick: Path, trial_id: str) -> float:
    table = pd.read_parquet(quick / "trials.parquet").set_index("trial_id")
    return float(table.loc[trial_id, "hue_corr"])


def test_a_table_too_wide_even_so_is_cut_at_the_edge_and_says_so():
    params = {
        f"config.schedule.keyframes[@{s}].reg-polar": [0.00034731, 0.0123] for s in range(1000, 9000, 1000)
    }
    frame = pd.DataFrame({"trial_id": ["a_00001", "a_00002"], **params, "steps": [10, 10]})
    text = render(Listing(frame, "wide", optional=("steps",)), "table", 80)
    assert_fits(text, 80)
    note = " ".join(text.splitlines()[-2:])
    assert note.startswith(
        "left out to fit 80 columns: steps (all 10); the table is wider than 80 columns even so"
    )
    row = next(line for line in text.splitlines() if line.startswith("│ a_00001"))
    whole = [c.strip() for c in row.split("│")[1:-1]]  # the columns within the width: not narrowed
    assert whole == ["a_00001"] + ["0.0003473"] * (len(whole) - 1) and len(whole) == 6
