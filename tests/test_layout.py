"""The results layout (`latent_sweep.store.layout`) names every file and folder of a results
directory and of a trial directory: real runs hold exactly the names it declares, no other module
spells them, and sweep.yaml is read through the validated sweep model."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pandas as pd
import pytest
import yaml
from fixtures_results import make_results
from test_corrupt import finished  # a finished Ray sweep (one population trial), built once per module
from test_trial_files import two_trials  # two real in-process trials, sweep-style directory names

from latent_sweep.analysis.results import load_trials
from latent_sweep.errors import UserError
from latent_sweep.spec.sweep_block import read_written_sweep
from latent_sweep.store import layout
from latent_sweep.store.history import trial_id_of

PACKAGE = Path(__file__).resolve().parent.parent / "latent_sweep"
# The names only the layout may spell; `checkpoint_` but not the config key `checkpoint_every`.
SPELLED = re.compile(r"trials\.parquet|sweep\.yaml|checkpoint_(?![a-z])")

__all__ = ["finished", "two_trials"]  # fixtures, used by name


def code_strings(tree: ast.Module) -> list[ast.Constant]:
    """String literals of a module other than docstrings (which describe the layout to readers)."""
    docs = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                docs.add(id(first.value))
    strings = (n for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str))
    return [n for n in strings if id(n) not in docs]


def test_no_module_but_the_layout_spells_a_results_name():
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path == PACKAGE / "store" / "layout.py":
            continue
        for node in code_strings(ast.parse(path.read_text(), str(path))):
            if SPELLED.search(node.value):
                found.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno}: {node.value!r}")
    assert not found, "spell these through latent_sweep.store.layout:\n" + "\n".join(found)


def test_the_layout_is_ground():
    tree = ast.parse((PACKAGE / "store" / "layout.py").read_text())
    imported = [n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    imported += [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    assert [m for m in imported if m and m.startswith("latent_sweep")] == []


def test_names_and_their_inverses():
    assert layout.part_name(1000) == "part-000001000.parquet"
    assert layout.part_step(layout.part_name(1000)) == 1000
    assert layout.is_part("part-000001000.parquet") and not layout.is_part(".part-000001000.parquet.tmp")
    assert layout.snapshot_name(10001) == "step-000010001.parquet"
    assert layout.snapshot_step("step-000010001.parquet") == 10001
    assert layout.snapshot_step("step-x.parquet") is None
    assert layout.checkpoint_dir(2500) == "checkpoint_000002500"
    assert layout.checkpoint_number("checkpoint_000003") == 3  # Ray's, by index
    assert layout.is_checkpoint("checkpoint_000003") and not layout.is_checkpoint(layout.LOCAL_CHECKPOINTS)
    assert layout.trial_dirname("5f3a2_00001") == "trial_5f3a2_00001"
    assert trial_id_of(layout.trial_dirname("5f3a2_00001")) == "5f3a2_00001"
    assert layout.journal_lock(layout.OPTUNA_JOURNAL) == "optuna.log.lock"


def assert_trial_layout(trial_dir: Path) -> None:
    """Every entry of a trial directory is one the layout names, the required ones are there, and
    the files inside its folders are named as the layout names them."""
    names = sorted(p.name for p in trial_dir.iterdir())
    assert [n for n in names if not layout.declared_in_trial(n)] == [], trial_dir
    assert set(layout.REQUIRED_IN_TRIAL) <= set(names), trial_dir
    for sub in layout.PARTS:
        parts = [p.name for p in (trial_dir / sub).iterdir()]
        assert parts and all(layout.is_part(n) for n in parts), (trial_dir, sub, parts)
    snapshots = [p.name for p in (trial_dir / layout.LATENTS).iterdir()]
    assert snapshots and all(layout.snapshot_step(n) is not None for n in snapshots), snapshots
    local = trial_dir / layout.LOCAL_CHECKPOINTS
    entries = [*trial_dir.iterdir(), *(local.iterdir() if local.is_dir() else [])]
    checkpoints = [p for p in entries if layout.is_checkpoint(p.name)]
    assert checkpoints, trial_dir
    for checkpoint in checkpoints:
        assert [p.name for p in checkpoint.iterdir()] == [layout.CHECKPOINT_STATE], checkpoint


def test_real_trial_directories_hold_the_layouts_names(two_trials):
    trial_dirs = sorted(two_trials.iterdir())
    assert [d.name for d in trial_dirs] == ["trial_aaa01", "trial_bbb02"]
    for trial_dir in trial_dirs:
        assert_trial_layout(trial_dir)
        local = [p.name for p in (trial_dir / layout.LOCAL_CHECKPOINTS).iterdir()]
        assert local and all(layout.checkpoint_number(n) % 10 == 0 for n in local), local  # by step


@pytest.mark.slow
def test_a_finished_sweeps_results_directory_holds_the_layouts_names(finished):
    names = sorted(p.name for p in finished.iterdir())
    assert [n for n in names if not layout.declared_in_results(n)] == []
    assert set(layout.REQUIRED_IN_RESULTS) <= set(names)
    assert any(n.startswith(layout.EXPERIMENT_STATE_PREFIX) for n in names)
    trial_dirs = sorted(p for p in finished.iterdir() if layout.is_trial_dirname(p.name))
    assert len(trial_dirs) == 1
    for trial_dir in trial_dirs:
        assert_trial_layout(trial_dir)
        assert set(layout.RAY_TRIAL_FILES) <= {p.name for p in trial_dir.iterdir()}
    table = pd.read_parquet(finished / layout.TRIALS)
    assert set(table["trial_dir"]) == {d.name for d in trial_dirs}
    written = read_written_sweep(finished)
    assert written is not None and written.block.name == "dmg" and written.block.seeds == 2


def test_sweep_yaml_is_read_through_the_validated_block(tmp_path):
    alpha, _ = make_results(tmp_path)
    written = read_written_sweep(alpha)
    assert written is not None and written.block.metric == "hue_corr" and written.block.mode == "max"
    assert set(written.block.space) == {"labels.mode", "schedule.scale.reg-polar"}
    assert read_written_sweep(tmp_path) is None  # no sweep.yaml: nothing to read
    assert list(load_trials(alpha)["trial_id"]) == ["a0", "a1", "a2", "a3"]
    # A block that does not validate is one error naming the file and the field, not a guess.
    doc = yaml.safe_load((alpha / layout.SWEEP_FILE).read_text())
    doc["sweep"]["mode"] = "maximize"
    (alpha / layout.SWEEP_FILE).write_text(yaml.safe_dump(doc))
    with pytest.raises(UserError, match=re.escape(f"{alpha / layout.SWEEP_FILE}: `sweep.mode`")):
        load_trials(alpha)
    (alpha / layout.SWEEP_FILE).write_text("sweep: [unclosed")
    with pytest.raises(UserError, match=re.escape(f"{alpha / layout.SWEEP_FILE}: not valid YAML")):
        load_trials(alpha)
