"""Every `latent-sweep` command the docs show still works: README.md, docs/*.md and the sweep
files' comments (found by scripts/doc_commands.py). `--help`, `validate` and the analysis
commands (`table`, `compare`, `importance`) run in-process, on a small results fixture standing
in for each results directory they name; `run`, `resume`, `train` and `plot` are parsed by the
command's own parser, so a renamed or removed flag fails here. The README's Commands table lists
exactly the options each parser has, and the Python example of docs/recipes.md runs."""

from __future__ import annotations

import argparse
import importlib.util
import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from fixtures_results import write_sweep

from latent_sweep import cli
from latent_sweep.errors import UserError
from latent_sweep.spec import config, experiment, paths

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("doc_commands", ROOT / "scripts" / "doc_commands.py")
doc_commands = importlib.util.module_from_spec(_spec)
sys.modules["doc_commands"] = doc_commands  # dataclasses look their module up
_spec.loader.exec_module(doc_commands)

RUN_HERE = {"validate", "table", "compare", "importance"}  # light: no Ray, no training
PARSE_ONLY = {"run", "resume", "train", "plot"}
# Placeholders the prose uses for "a results directory".
PLACEHOLDERS = {"RESULTS", "RESULTS_DIR", "DIR"}
# The sweep block of every fixture: what the docs' commands ask of a results directory.
SPACE = {
    "labels.mode": {"choice": ["soft", "hard"]},
    "schedule.keyframes[@0].reg-polar": {"loguniform": [2e-05, 0.06]},
    "schedule.keyframes[@0].reg-separate": {"loguniform": [0.0001, 0.2]},
    "schedule.scale.reg-separate": {"uniform": [0.5, 2.0]},
}
SUCCESS = "hue_order >= 0.999 and abs(hue_winding) == 1"


def subcommands() -> dict[str, argparse.ArgumentParser]:
    (action,) = [a for a in cli.build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(action.choices)


def all_commands() -> list:
    return [c for path in doc_commands.doc_files() for c in doc_commands.commands_in(path)]


def checked(command) -> bool:
    """Commands to parse or run: every one in code; in prose, those with more than a name."""
    return command.where == "code" or (command.where == "inline" and len(command.argv) > 1)


COMMANDS = [c for c in all_commands() if checked(c)]


def test_the_docs_show_commands_of_every_kind():
    verbs = {c.argv[0] for c in COMMANDS}
    assert set(subcommands()) <= verbs | {"--help"}, set(subcommands()) - verbs
    assert len(COMMANDS) >= 60, len(COMMANDS)
    sources = {c.source for c in COMMANDS}
    assert {"README.md", "docs/analysis.md", "docs/recipes.md", "sweeps/ex17_knobs.yaml"} <= sources


def test_every_command_named_in_prose_exists():
    names = {c.argv[0] for c in all_commands() if c.where != "table"}
    assert names <= set(subcommands()) | {"-h", "--help"}, names - set(subcommands())


def fixture_rows(name: str) -> list[dict]:
    """4 configs × 8 seeds (as ex17_knobs'): labels.mode alternates, the other sampled values
    follow the config pair, so that `--by labels.mode --paired` pairs soft with hard; scores vary
    with both."""
    rng = np.random.default_rng(0)
    rows = []
    for c in range(4):
        pair = c // 2
        for seed in range(8):
            tangled = (c, seed) in ((3, 2), (1, 5))
            rows.append(
                {
                    "trial_id": f"t{c}",
                    "seed": seed,
                    "status": "TERMINATED",
                    "config.name": name,
                    "config.seed": seed,
                    "config.labels.mode": ("soft", "hard")[c % 2],
                    "config.schedule.keyframes[@0].reg-polar": (0.001, 0.01)[pair],
                    "config.schedule.keyframes[@0].reg-separate": (0.002, 0.02)[pair],
                    "config.schedule.scale.reg-separate": (0.8, 1.6)[pair],
                    "hue_corr": 0.9 + 0.02 * c + 0.01 * rng.normal(),
                    "hue_order": 0.5 if tangled else 1.0,
                    "hue_winding": 0 if tangled else 1,
                    "recon_mse": 0.001 * (1 + c + rng.uniform()),
                    "anchor_error_red": 0.2 + 0.05 * pair + 0.02 * rng.normal(),
                    "trustworthiness_k10": 0.99 - 0.01 * c + 0.001 * rng.normal(),
                    "continuity_k10": 0.99 - 0.005 * c + 0.001 * rng.normal(),
                    "diverged_at": None,
                    "steps": 100,
                }
            )
    return rows


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """A results directory per name, made on first use: `path(name)`."""
    root = tmp_path_factory.mktemp("doc-results")
    made: dict[str, Path] = {}

    def path(name: str) -> Path:
        if name not in made:
            made[name] = write_sweep(root / name, fixture_rows(name), space=SPACE)
            sweep_file = made[name] / "sweep.yaml"
            raw = yaml.safe_load(sweep_file.read_text())
            raw["sweep"]["success"] = SUCCESS
            sweep_file.write_text(yaml.safe_dump(raw))
        return made[name]

    return path


def stand_in(argument: str, results) -> str:
    """The fixture for a results directory the docs name: `results/<name>`, a URI or absolute path
    ending in a name (a `file://` URI of the fixture), or a placeholder."""
    if argument in PLACEHOLDERS:
        return str(results("sweep"))
    name = argument.rstrip("/").rsplit("/", 1)[-1]
    if "://" in argument or argument.startswith("/"):
        return results(name).as_uri()
    return str(results(name))


def run_cli(argv: list[str], capsys) -> tuple[int, str]:
    try:
        code = cli.main(argv)
    except SystemExit as exited:  # --help
        code = exited.code
    captured = capsys.readouterr()
    return code, captured.err


@pytest.mark.parametrize("command", COMMANDS, ids=[f"{c.source}: {c}" for c in COMMANDS])
def test_doc_command(command, results, capsys, monkeypatch, tmp_path):
    argv = list(command.argv)
    if "--help" in argv or "-h" in argv:
        assert run_cli(argv, capsys)[0] == 0
        return
    parser = cli.build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit:
        pytest.fail(
            f"{command.source} ({command.heading}): `{command}` does not parse: {capsys.readouterr().err}"
        )
    verb = args.command
    assert verb in RUN_HERE | PARSE_ONLY, verb
    if verb in PARSE_ONLY:
        return
    monkeypatch.chdir(ROOT)
    if verb == "validate":
        if not (ROOT / args.sweep).is_file():
            return  # a file the reader writes (docs/experiments.md's tinyreg.yaml): parsed only
        code, err = run_cli(argv, capsys)
        assert code == 0, f"{command.source}: `{command}` → {err}"
        return
    monkeypatch.setenv("LATENT_SWEEP_CACHE", str(tmp_path / "cache"))  # where URIs are mirrored
    dirs = {d: stand_in(d, results) for d in args.results_dirs}
    argv = [dirs.get(a, a) for a in argv]
    code, err = run_cli(argv, capsys)
    if code == 2 and (missing := re.search(r"unknown score or column `([^`]+)`", err)):
        # The fixture has the columns most commands ask for, not every sweep's own: a column it
        # lacks must be one the named sweep file samples or sets, or a score its experiment declares.
        assert names_a_column_of_its_sweep(missing.group(1), args.results_dirs), (
            f"{command.source} ({command.heading}): `{shlex.join(argv)}` → {err}"
        )
        return
    assert code == 0, f"{command.source} ({command.heading}): `{shlex.join(argv)}` → {err}"


def names_a_column_of_its_sweep(column: str, results_dirs: list[str]) -> bool:
    """Whether `column` is a config path of `sweeps/<name>.yaml` (sampled or set) or a score its
    experiment declares, for a results directory `results/<name>` the docs name."""
    for results_dir in results_dirs:
        sweep_file = ROOT / "sweeps" / f"{Path(results_dir).name}.yaml"
        if not sweep_file.is_file():
            continue
        raw = config.load_file(sweep_file)
        path = column.removeprefix("config.")
        if path in (raw.get("sweep") or {}).get("space", {}) or experiment.goal_of(column) is not None:
            return True
        try:
            paths.get_path(raw, path)
            return True
        except UserError:
            continue
    return False


def commands_table() -> dict[str, str]:
    """The README's Commands table: command → its synopsis."""
    text = doc_commands.section((ROOT / "README.md").read_text(), "Commands")
    rows = re.findall(r"^\| `latent-sweep (\w+) (.*?)` \|", text, re.M)
    return dict(rows)


def test_the_commands_table_lists_every_command_and_option():
    table = commands_table()
    parsers = subcommands()
    assert sorted(table) == sorted(parsers)
    for name, parser in parsers.items():
        options = {s for a in parser._actions for s in a.option_strings if s.startswith("--")} - {"--help"}
        shown = set(re.findall(r"--[a-z][a-z-]*", table[name]))
        assert shown == options, (name, "missing", options - shown, "unknown", shown - options)
        for action in parser._actions:  # the choices of an option, as the table spells them
            if action.choices and action.option_strings:
                assert "\\|".join(action.choices) in table[name], (name, action.dest)


def python_blocks(page: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", (ROOT / "docs" / page).read_text(), re.S)


@pytest.fixture
def repo_like(tmp_path, monkeypatch) -> Path:
    """A working directory with the repository's sweeps and schedules, results written inside."""
    for name in ("sweeps", "schedules"):
        (tmp_path / name).symlink_to(ROOT / name)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_the_python_example_in_recipes_runs(repo_like, capsys):
    example = python_blocks("recipes.md")[0]
    assert "ls.train(" in example and "ls.load_trials(" in example
    exec(compile(example, "docs/recipes.md", "exec"), {})
    out = capsys.readouterr().out
    assert "hue_corr" in out and (repo_like / "results" / "train" / "api-example" / "config.yaml").is_file()
    exec(compile(example, "docs/recipes.md", "exec"), {})  # again: continues from the checkpoint


@pytest.mark.slow
def test_the_python_sweep_example_in_recipes_runs(repo_like, capsys):
    example = python_blocks("recipes.md")[1]
    assert "ls.run_sweep(" in example and "ls.param_importance(" in example
    exec(compile(example, "docs/recipes.md", "exec"), {})
    assert "schedule.scale.reg-separate" in capsys.readouterr().out  # a row of the importance table
    assert (repo_like / "results" / "quick-api" / "trials.parquet").is_file()


def test_results_sh_lists_the_readme_results_commands():
    done = subprocess.run(
        ["bash", str(ROOT / "scripts" / "results.sh"), "--dry-run"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (done.returncode, done.stderr) == (0, ""), done.stderr
    listed = [line for line in done.stdout.splitlines() if line.startswith("latent-sweep ")]
    results = [i for i in doc_commands.results_items(ROOT / "README.md") if not i.startswith("# ")]
    assert listed == results and any(c.startswith("latent-sweep run sweeps/") for c in listed)
    for command in listed:  # the sweeps it would run are there
        argv = shlex.split(command)[1:]
        if argv[0] == "run":
            assert (ROOT / argv[1]).is_file(), command


# A measured number: a time, a size, a ratio or a percentage, or a decimal with 2+ digits after the
# point (a score). Defaults and limits (`gpu: 0.25`, "up to 8 workers") are neither.
MEASURED = re.compile(
    r"(?<![\w.@\[/-])\d[\d,]*(?:\.\d+)?(?:\s?[–-]\s?\d[\d,.]*)?\s?(?:s|ms|h|minutes?|MB|GB|×|x|%|steps/s)(?!\w)"
    r"|(?<![\w.@\[/-])\d*\.\d{2,}(?![\w.\]])"
)
TIME = re.compile(r"(?<![\w.@\[/-])\d[\d,]*(?:\.\d+)?(?:\s?[–-]\s?\d[\d,.]*)?\s?(?:s|ms|h|minutes?)(?!\w)")
DATE = re.compile(r"20\d\d-\d\d-\d\d")
SHOWS_COMMAND = re.compile(r"`[^`]*(?:latent-sweep |bench/|scripts/|python |pytest|du )[^`]*`")
# Paragraph starts (their first 40 characters) whose numbers need no command, and why.
NUMBERS_ALLOWED: dict[str, str] = {}


def readme_paragraphs() -> list[tuple[str, str]]:
    """(section heading, text) of README.md's paragraphs and tables, code left out; a section's
    code blocks count as one paragraph of it, "```code```"."""
    out, heading, lines, fence = [], "", [], False
    for line in (ROOT / "README.md").read_text().splitlines():
        if line.startswith("```") or fence:
            if line.startswith("```"):
                fence = not fence
            if fence or line.startswith("```"):
                out.append((heading, "```code```" + line))
            continue
        if line.startswith("    ") and not lines:  # an indented code block
            out.append((heading, "```code```" + line))
            continue
        if line.startswith("#") or not line.strip():
            if lines:
                out.append((heading, "\n".join(lines)))
            lines = []
            heading = line.lstrip("# ") if line.startswith("#") else heading
            continue
        lines.append(line)
    if lines:
        out.append((heading, "\n".join(lines)))
    return out


def test_readme_numbers_come_with_the_command_and_date_that_produced_them():
    """Every measured number outside code sits in a paragraph that shows a command, right after
    one (a table), or under a heading whose code blocks show the commands; a time also has a
    date in its paragraph or section."""
    paragraphs = readme_paragraphs()
    code = {h for h, p in paragraphs if p.startswith("```code```") and "latent-sweep " in p}
    dated = {h for h, p in paragraphs if DATE.search(p)}
    bare, undated = [], []
    previous = ("", "")  # a table may follow the paragraph that shows its command
    for heading, text in paragraphs:
        if text.startswith("```code```"):
            continue
        prose = re.sub(r"`[^`]*`", "", text)
        allowed = any(text.startswith(start) for start in NUMBERS_ALLOWED)
        if MEASURED.search(prose) and not allowed:
            after = SHOWS_COMMAND.search(previous[1]) and previous[0] == heading and text.startswith("|")
            if not (SHOWS_COMMAND.search(text) or after or heading in code):
                bare.append((heading, MEASURED.findall(prose), text[:80]))
        if TIME.search(prose) and not allowed and not (DATE.search(text) or heading in dated):
            undated.append((heading, TIME.findall(prose), text[:80]))
        previous = (heading, text)
    assert bare == [], bare
    assert undated == [], undated
