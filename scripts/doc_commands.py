"""The `latent-sweep …` commands the docs show, found in their code.

Used by `scripts/results.sh` (the README's Results commands, re-run) and by
`tests/test_docs_commands.py` (every command in README.md, docs/*.md and the sweep files'
comments, parsed or run). Code is a fenced block, an indented block, an inline code span that
starts with `latent-sweep `, or, in a YAML file, a comment line; a line ending in `\\` goes on
in the next one. A command ends at a comment or a shell operator (`&&`, `|`, `;`, `&`).

    python scripts/doc_commands.py results README.md     # "# <heading>" lines and the commands
    python scripts/doc_commands.py all                   # every command: file, heading, command
"""

from __future__ import annotations

import re
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROGRAM = "latent-sweep"
OPERATORS = {"&&", "||", "|", ";", "&"}
FENCE = re.compile(r"^(\s*)```")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*$")
INLINE = re.compile(r"`(?:\.venv/bin/)?(latent-sweep [^`]+)`")


@dataclass(frozen=True)
class Command:
    source: str  # the file, relative to the repository
    heading: str  # the heading it sits under ("" before the first)
    argv: tuple[str, ...]  # the arguments after `latent-sweep`
    where: str  # "code" (a block or a YAML comment), "inline" (a span in prose) or "table"

    def __str__(self) -> str:
        return shlex.join([PROGRAM, *self.argv])


def join_continued(lines: list[str]) -> list[str]:
    """Lines with a trailing backslash joined to the next one."""
    out: list[str] = []
    carry = ""
    for line in lines:
        if line.rstrip().endswith("\\"):
            carry += line.rstrip()[:-1] + " "
            continue
        out.append(carry + line)
        carry = ""
    if carry:
        out.append(carry)
    return out


def invocations(line: str) -> list[tuple[str, ...]]:
    """The `latent-sweep` commands of one shell line, as argument tuples."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars="&|;")
    lexer.whitespace_split = True
    lexer.commenters = "#"
    try:
        tokens = list(lexer)
    except ValueError:  # an unbalanced quote: prose, not a command
        return []
    found, current = [], None
    for token in tokens:
        if token in OPERATORS:
            if current is not None:
                found.append(tuple(current))
            current = None
        elif current is not None:
            current.append(token)
        elif token == PROGRAM or token.endswith(f"/{PROGRAM}"):
            current = []
    if current is not None:
        found.append(tuple(current))
    return [argv for argv in found if argv]


def markdown_code(text: str) -> list[tuple[str, str, str, str]]:
    """(heading, kind, language, line) for every code line of a Markdown text: kind is "fenced",
    "indented", "inline" (the text of a span) or "table" (a span in a table row: a synopsis
    such as `latent-sweep table DIR… [--top N]`); continuation lines are joined."""
    out: list[tuple[str, str, str, str]] = []
    heading, fence, language, block, prose_before = "", None, "", [], True
    lines = text.splitlines()
    indented: list[str] = []

    def flush_indented() -> None:
        out.extend((heading, "indented", "", line) for line in join_continued(indented))
        indented.clear()

    for line in lines:
        if fence is not None:
            if FENCE.match(line) and line.strip() == "```":
                out.extend((heading, "fenced", language, code) for code in join_continued(block))
                fence, block = None, []
            else:
                block.append(line)
            continue
        opening = FENCE.match(line)
        if opening:
            flush_indented()
            fence, language, block = opening.group(1), line.strip()[3:].strip(), []
            continue
        if line.startswith("    ") and line.strip() and (indented or prose_before):
            indented.append(line)
            continue
        flush_indented()
        prose_before = not line.strip()
        match = HEADING.match(line)
        if match:
            heading = match.group(2)
            continue
        kind = "table" if line.lstrip().startswith("|") else "inline"  # a table row: a synopsis
        out.extend((heading, kind, "", span) for span in INLINE.findall(line))
    flush_indented()
    return out


def commands_in(path: Path) -> list[Command]:
    """Every `latent-sweep` command a Markdown file's code or a YAML file's comments show."""
    source = str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)
    text = path.read_text()
    found: list[Command] = []
    if path.suffix in (".yaml", ".yml"):
        comments = [
            re.sub(r"^\s*#\s?", "", line) for line in text.splitlines() if line.lstrip().startswith("#")
        ]
        for line in join_continued(comments):
            found += [Command(source, "", argv, "code") for argv in invocations(line)]
        return found
    for heading, kind, _, line in markdown_code(text):
        where = kind if kind in ("inline", "table") else "code"
        found += [Command(source, heading, argv, where) for argv in invocations(line)]
    return found


def doc_files() -> list[Path]:
    return [
        ROOT / "README.md",
        *sorted((ROOT / "docs").glob("*.md")),
        *sorted((ROOT / "sweeps").glob("*.yaml")),
    ]


def section(text: str, title: str) -> str:
    """The part of a Markdown text under `## <title>`, up to the next `## ` heading."""
    match = re.search(rf"^## {re.escape(title)}\s*$(.*?)(?=^## |\Z)", text, re.M | re.S)
    return match.group(1) if match else ""


def results_items(readme: Path) -> list[str]:
    """The README's Results: for each heading with commands, "# <heading>" and then its
    commands from ```bash blocks, in order."""
    items, last = [], None
    for heading, kind, language, line in markdown_code(section(readme.read_text(), "Results")):
        if kind != "fenced" or language not in ("bash", "sh", "shell"):
            continue
        for argv in invocations(line):
            if heading != last:
                items.append(f"# {heading}")
                last = heading
            items.append(shlex.join([PROGRAM, *argv]))
    return items


def main(argv: list[str]) -> int:
    if argv[:1] == ["results"]:
        readme = Path(argv[1]) if len(argv) > 1 else ROOT / "README.md"
        print("\n".join(results_items(readme)))
        return 0
    if argv[:1] == ["all"]:
        for path in doc_files():
            for command in commands_in(path):
                print(f"{command.source}\t{command.heading}\t{command}")
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
