"""The user reference in docs/ covers what the code declares: every score of every experiment,
every key of a trial config and of the `sweep:` block, every loss-term kind; the README links it."""

from __future__ import annotations

import re
import typing
from pathlib import Path

import pytest
from pydantic import BaseModel

from latent_sweep.experiments.ae_config import AutoencoderConfig
from latent_sweep.experiments.objectives import TermConfig
from latent_sweep.experiments.projection import ProjectionConfig
from latent_sweep.spec import experiment
from latent_sweep.spec.sweep_block import SweepBlock

ROOT = Path(__file__).resolve().parent.parent
PAGES = ("dopesheet.md", "scores.md", "sweep-file.md", "populations.md")
# Documented in another form: `seeds: {sample: true}`.
OTHER_FORM = {"seeds.sample"}


def doc(name: str) -> str:
    return (ROOT / "docs" / name).read_text()


def key_paths(model: type[BaseModel], prefix: str = "") -> list[str]:
    """Every key of a config model as a dotted path; a mapping of user-chosen names reads
    `<name>` (`labels.concepts.<name>.kind`). Lists (terms, members) are documented by item."""
    out = []
    for name, field in model.model_fields.items():
        path = f"{prefix}{name}"
        out.append(path)
        annotation = field.annotation
        if typing.get_origin(annotation) is dict:
            value = typing.get_args(annotation)[1]
            if isinstance(value, type) and issubclass(value, BaseModel):
                out += key_paths(value, f"{path}.<name>.")
            continue
        for arg in (annotation, *typing.get_args(annotation)):
            if isinstance(arg, type) and issubclass(arg, BaseModel):
                out += key_paths(arg, f"{path}.")
    return out


def undocumented(paths: list[str], page: str) -> list[str]:
    """Paths the page does not name in backticks; a mapping is covered by its keys."""
    text = doc(page)
    leaves = [p for p in dict.fromkeys(paths) if not any(q.startswith(f"{p}.") for q in paths)]
    return [p for p in leaves if f"`{p}`" not in text and p not in OTHER_FORM]


def test_every_declared_score_is_defined_in_scores_md():
    names = [s.name for e in experiment.everywhere() for s in e.scores]
    shown = [re.sub(r"\{(\w+)\}", r"<\1>", n) for n in names]
    assert undocumented(shown, "scores.md") == []


@pytest.mark.parametrize("model", [AutoencoderConfig, ProjectionConfig, SweepBlock])
def test_every_config_key_is_in_sweep_file_md(model):
    assert undocumented(key_paths(model), "sweep-file.md") == []


def test_every_term_kind_is_in_sweep_file_md():
    union = typing.get_args(typing.get_args(TermConfig)[0])
    kinds = [typing.get_args(cls.model_fields["kind"].annotation)[0] for cls in union]
    assert len(kinds) == 6 and undocumented(kinds, "sweep-file.md") == []


def test_readme_links_every_page_and_links_resolve():
    readme = (ROOT / "README.md").read_text()
    pages = sorted(p.name for p in (ROOT / "docs").glob("*.md"))
    assert set(PAGES) <= set(pages)
    assert [p for p in pages if f"(docs/{p})" not in readme] == []
    for page in pages:  # links between the pages resolve
        for target in re.findall(r"\]\(([\w-]+\.md)\)", doc(page)):
            assert (ROOT / "docs" / target).is_file(), (page, target)
