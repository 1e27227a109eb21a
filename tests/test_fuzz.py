"""Bad-input fuzzing: dopesheet CSV text, sweep YAML documents (mutations of the shipped sweeps) and
`--set` expressions, each through `latent-sweep validate`. Every input validates or exits 2 with
one paragraph: never a traceback, never a hang.

Examples are derandomized (the same inputs on every run); FUZZ_EXAMPLES=N tries N per test, and
FUZZ_LOG=FILE records each input with its outcome (tests/cli_outcome.py)."""

from __future__ import annotations

import copy
import csv
import io
import os
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from cli_outcome import outcome
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from latent_sweep.spec import config

ROOT = Path(__file__).resolve().parent.parent
EX17 = ROOT / "sweeps" / "ex17.yaml"
SHIPPED = ["quick", "labels_soft_vs_hard", "constant_vs_schedule", "projection_colors"]


def fuzz(examples: int):
    return settings(
        max_examples=int(os.environ.get("FUZZ_EXAMPLES", examples)),
        derandomize=True,
        database=None,
        deadline=None,  # a loaded CI machine; the timeout mark bounds the whole test instead
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )


# ---------------------------------------------------------------------------------------
# Dopesheet CSV text

HEADERS = ["STEP", "STEP", "PHASE", "ACTION", "lr", "lr", "reg-polar", "reg-separate", "lr:log",
           "reg-norm:lin:step", "reg-planar::smooth", "x:bogus", "", "step", "data-fraction",
           "lr:log:ease"]  # fmt: skip
CELL_WORDS = ["", "", "0", "10", "+10", "-10", "+0.5", "-0.5", "+1.5", "5000", "1e12", "+1e12",
              "10000001", "-1", "nan", "inf", "-inf", "abc", "anchor", "0.0", "1e-10", "+0", "+-1",
              "1,5", '"', "12.5", "+50", "-0", "0x10", "1_000", " 7 ", "Train", "anchor,anchor"]  # fmt: skip
CELLS = st.one_of(
    st.sampled_from(CELL_WORDS),
    st.integers(-(10**5), 10**5).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.text(max_size=5),
)


@st.composite
def dopesheets(draw) -> str:
    if draw(st.integers(0, 9)) == 0:
        return draw(st.text(max_size=60))  # anything at all
    header = ["STEP", *draw(st.lists(st.sampled_from(HEADERS), max_size=5))]
    if draw(st.booleans()):
        header = draw(st.permutations(header))
    rows = draw(st.lists(st.lists(CELLS, min_size=0, max_size=len(header) + 1), max_size=8))
    buffer = io.StringIO()
    csv.writer(buffer).writerows([header, *rows])
    return buffer.getvalue()


@pytest.mark.timeout(120)
@fuzz(60)
@given(text=dopesheets())
def test_dopesheet_csv_validates_or_is_one_paragraph(text):
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "sheet.csv").write_text(text)
        (Path(tmp) / "c.yaml").write_text(f"base: {EX17}\nschedule: {{csv: sheet.csv}}\n")
        outcome(["validate", Path(tmp) / "c.yaml"], label=text)


# ---------------------------------------------------------------------------------------
# Sweep YAML documents: the shipped sweeps with values deleted, replaced or added

VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**12), 10**12),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
    st.lists(st.integers(-5, 5), max_size=3),
    st.dictionaries(st.sampled_from(["uniform", "choice", "grid", "kind"]), st.integers(-3, 3), max_size=2),
    st.sampled_from(
        [-1, 0, 1, 2, 10**9, "soft", "hard", "+50", "cuda", "auto", "optuna", "grid", "asha", "pbt", "none",
         {"uniform": [0, 1]}, {"loguniform": [-1, 1]}, {"randint": [5, 1]}, {"choice": []}, {"grid": [1, 2]},
         {"uniform": [1, 1e15]}, {"quniform": [0, 1, 0]}, [0, 0], [1, 9], [-1, 2], [[0, 1]], "nope.csv"]
    ),
)  # fmt: skip


def _paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    """Every key and list index in a document, as a tuple of keys."""
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else []
    out = []
    for key, value in items:
        out.append((*prefix, key))
        out += _paths(value, (*prefix, key))
    return out


DOCS = {name: config.load_file(ROOT / "sweeps" / f"{name}.yaml") for name in SHIPPED}
PATHS = {name: _paths(doc) for name, doc in DOCS.items()}


@st.composite
def sweep_documents(draw) -> dict:
    name = draw(st.sampled_from(SHIPPED))
    doc = copy.deepcopy(DOCS[name])
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(PATHS[name]))
        parent = doc
        try:
            for key in path[:-1]:
                parent = parent[key]
            op = draw(st.sampled_from(["set", "set", "delete", "add"]))
            if op == "delete":
                del parent[path[-1]]
            elif op == "set":
                parent[path[-1]] = draw(VALUES)
            elif isinstance(parent, dict):
                parent[draw(st.sampled_from(["extra", "sweep", "steps", "seed", "members", "STEP"]))] = draw(
                    VALUES
                )
        except (KeyError, IndexError, TypeError):
            continue  # an earlier mutation removed the way there
    return doc


@pytest.mark.timeout(120)
@fuzz(30)
@given(doc=sweep_documents())
def test_mutated_sweep_documents_validate_or_are_one_paragraph(doc):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "sweep.yaml"
        path.write_text(yaml.safe_dump(doc, sort_keys=False))
        outcome(["validate", path], label=doc)


# ---------------------------------------------------------------------------------------
# --set expressions on the quick sweep

SET_PATHS = st.one_of(
    st.sampled_from(
        ["steps", "seed", "labels.mode", "model.latent_dim", "model.hidden", "model.hidden[0]",
         "terms[0].power", "terms[9].power", "schedule.keyframes[@5000].reg-polar",
         "schedule.keyframes[5@5000].lr",
         "schedule.keyframes[5@4000].lr", "schedule.keyframes[@5000].STEP", "schedule.keyframes[99].lr",
         "schedule.scale.lr", "schedule.scale.nope", "sweep.num_samples", "sweep.space", "sweep.metric",
         "sweep.seeds", "sweep.max_failures", "data.path", "device", "eval_every", "checkpoint_every",
         "a..b", "[0]", "x[", "schedule.keyframes[]", "schedule.keyframes[@]", "@", ""]
    ),
    st.text(max_size=12),
)  # fmt: skip
SET_VALUES = st.one_of(
    st.sampled_from(["0", "-1", "1e12", "+50", "'+50'", "[1, 2]", "{a: 1}", "soft", "nan", ".inf", "null",
                     "[", "{", "'", "7.5", "true", "cuda", "- 1", "!!python/object:os.system ls"]),
    st.integers(-(10**13), 10**13).map(str),
    st.text(max_size=12),
)  # fmt: skip


@pytest.mark.timeout(120)
@fuzz(40)
@given(path=SET_PATHS, value=SET_VALUES, sep=st.sampled_from(["=", "=", "=", ":", "=="]))
def test_set_expressions_validate_or_are_one_paragraph(path, value, sep):
    expr = f"{path}{sep}{value}"
    outcome(["validate", ROOT / "sweeps" / "quick.yaml", f"--set={expr}"], label=expr)  # even "-…"
