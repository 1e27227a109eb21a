"""What an experiment declares about its scores: their names and whether higher or lower is
better. Every list of scores and every "best" direction comes from these declarations (each
`Experiment` holds its own; `spec.experiment` looks them up by config): the columns of
`trials.parquet`, `best_<score>`, what `sweep.metric` and `sweep.success` may name, how tables
sort. Definitions of the scores: docs/scores.md.

An experiment declares `scores`, a tuple of `Score`s, next to its evaluation. A name may
hold one `{field}` filled from the config (`trustworthiness_k{k}` for each k in the config's
list), and a score may apply only to some configs (`knn_accuracy_k{k}` when the data has
labels). What an evaluation returns must be exactly what its config declares: a score returned
but not declared, or declared but not returned, stops the trial (`check_returned`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from latent_sweep.errors import UserError

Goal = Literal["max", "min"]
_FIELD = re.compile(r"\{(\w+)\}")


@dataclass(frozen=True)
class Score:
    """A declared score: `name` (with at most one `{field}`), `goal` (max: higher is better), the
    values `each` fills the field with for a config, and `when` it applies to a config."""

    name: str
    goal: Goal
    each: Callable[[Any], Iterable[object]] | None = None
    when: Callable[[Any], bool] | None = None

    def names(self, cfg: Any) -> list[str]:
        """The concrete score names this declaration gives a (typed) trial config."""
        if self.when is not None and not self.when(cfg):
            return []
        if self.each is None:
            return [self.name]
        return [_FIELD.sub(str(value), self.name) for value in self.each(cfg)]

    @property
    def pattern(self) -> re.Pattern:
        """Names of this score for any config (a field matches a word: digits, a concept label)."""
        parts = _FIELD.split(self.name)
        return re.compile("".join(re.escape(p) if i % 2 == 0 else r"\w+" for i, p in enumerate(parts)))


class ScoreMismatch(UserError):
    """An evaluation returned scores other than its experiment declares for the config."""


def check_returned(experiment: str, declared_goals: Mapping[str, Goal], returned: Iterable[str]) -> None:
    """The scores an evaluation returned are exactly the declared ones: none dropped, none added."""
    names = list(returned)
    extra = [n for n in names if n not in declared_goals]
    missing = [n for n in declared_goals if n not in names]
    if extra or missing:
        problems = []
        if extra:
            problems.append(f"returned {', '.join(extra)}, which it does not declare")
        if missing:
            problems.append(f"declared {', '.join(missing)}, which it did not return")
        raise ScoreMismatch(
            f"experiment `{experiment}` {' and '.join(problems)} for this config (declared: "
            f"{', '.join(declared_goals) or 'none'}); its `Experiment.scores` must list every score its "
            f"evaluation returns (latent_sweep.scores.declarations)"
        )
