"""The package's layers hold (docs/architecture.md): the import contracts in `.importlinter`, no
import circle between modules, and few imports inside functions, each for a heavy or optional
dependency and saying so."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "latent_sweep"
MAX_FUNCTION_IMPORTS = 10


def test_the_import_contracts_hold():
    lint = Path(sys.executable).with_name("lint-imports")
    done = subprocess.run([str(lint)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "0 broken" in done.stdout


def cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """Strongly connected groups of more than one module (imports at any depth of a module)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph.find_modules_directly_imported_by(v):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = stack[stack.index(v) :]
            del stack[stack.index(v) :]
            if len(group) > 1:
                found.append(sorted(group))

    for module in sorted(graph.modules):
        if module not in index:
            visit(module)
    return found


def test_no_module_imports_back_into_a_circle():
    assert cycles(grimp.build_graph("latent_sweep")) == []


def function_imports() -> list[tuple[str, int, str]]:
    """(file, line, the comment that gives its reason) of every import inside a function."""
    out = []
    for path in sorted(PACKAGE.rglob("*.py")):
        lines = path.read_text().splitlines()
        tree = ast.parse("\n".join(lines))
        for node in ast.walk(tree):
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            for inner in ast.walk(node):
                if isinstance(inner, ast.Import | ast.ImportFrom):
                    here = lines[inner.lineno - 1]
                    above = lines[inner.lineno - 2].strip()
                    reason = here.partition("#")[2] or (above[1:] if above.startswith("#") else "")
                    out.append((str(path.relative_to(ROOT)), inner.lineno, reason.strip()))
    return out


def test_imports_inside_functions_are_few_and_say_why():
    found = function_imports()
    assert len(found) <= MAX_FUNCTION_IMPORTS, "\n".join(f"{f}:{n}" for f, n, _ in found)
    unexplained = [f"{f}:{n}" for f, n, reason in found if not reason]
    assert not unexplained, f"imports inside functions without a comment giving the reason: {unexplained}"
