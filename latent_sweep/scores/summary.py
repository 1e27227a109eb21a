"""What a trial reports over its members: each score's mean, std, min and max over the members
that did not diverge, the rate that diverged, and the success rate of an expression over
scores (`sweep.success`, `--success`), which this module also checks."""

from __future__ import annotations

import ast
import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

STATS = ("mean", "std", "min", "max")


SUCCESS_EXAMPLE = "hue_order >= 0.999 and abs(hue_winding) == 1"
# What a success expression may hold: comparisons and arithmetic over score names, `abs`, numbers.
SUCCESS_NODES = (
    ast.Expression, ast.BoolOp, ast.And, ast.Or, ast.UnaryOp, ast.Not, ast.USub, ast.UAdd,
    ast.BinOp, ast.Add, ast.Sub, ast.Mult, ast.Div, ast.Compare, ast.Eq, ast.NotEq,
    ast.Lt, ast.LtE, ast.Gt, ast.GtE, ast.Call, ast.Name, ast.Load, ast.Constant,
)  # fmt: skip


def success_problem(expr: str, scores: Sequence[str]) -> str | None:
    """What is wrong with a success expression over members' `scores`, to follow the place it
    was given (`sweep.success`, `--success`); None when it can be evaluated."""
    hint = (
        "expected comparisons of score names, joined with `and`/`or`/`not`, with numbers, arithmetic "
        f"and `abs(...)`, e.g. `{SUCCESS_EXAMPLE}`"
    )
    try:
        tree = ast.parse(expr.strip(), mode="eval")
    except SyntaxError as err:
        return f"is not a valid expression ({err.msg}): `{expr}`; {hint}"
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id != "abs" and node.id not in scores:
            return (
                f"names `{node.id}`, which is not a score of this sweep's trials; the expression is "
                f"evaluated on each member's final scores ({', '.join(scores)}); {hint}"
            )
        called = isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "abs"
        constant = isinstance(node, ast.Constant) and isinstance(node.value, int | float)
        if not isinstance(node, SUCCESS_NODES) or (isinstance(node, ast.Call) and not called):
            # An operator node (`>>`) unparses to nothing: name its kind instead.
            return f"uses `{ast.unparse(node) or type(node).__name__}` in `{expr}`; {hint}"
        if isinstance(node, ast.Constant) and not constant:
            return f"compares with `{node.value!r}`; {hint}"
    names = sorted({n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and n.id != "abs"})
    try:
        success_mask(pd.DataFrame({n: [0.0] for n in names}), expr)
    except Exception as err:  # pandas raises many kinds here; all mean the expression is bad
        return f"cannot be evaluated ({err}); {hint}"
    return None


def success_mask(scores: pd.DataFrame, expr: str) -> np.ndarray:
    """Whether each member (row) satisfies `expr`, an expression over score names."""
    ok = scores.eval(expr, engine="python")
    return np.asarray(ok, dtype=bool)


def summarize(scores: pd.DataFrame, names: list[str], success: str | None = None) -> dict[str, float]:
    """What a trial reports: per score `<score>` (mean over members that did not diverge),
    `<score>_std`, `_min`, `_max`; `diverged_rate`; `success_rate` when `success` is given
    (a diverged member counts as a failure)."""
    out: dict[str, float] = {}
    for name in names:
        v = scores[name].to_numpy(dtype=np.float64)
        v = v[np.isfinite(v)]
        stats = (v.mean(), v.std(), v.min(), v.max()) if len(v) else (math.nan,) * 4
        out[name] = float(stats[0])
        out.update({f"{name}_{s}": float(x) for s, x in zip(STATS[1:], stats[1:], strict=True)})
    diverged = scores["diverged_at"].notna().to_numpy()
    out["diverged_rate"] = float(diverged.mean())
    if success is not None:
        out["success_rate"] = float((success_mask(scores, success) & ~diverged).mean())
    return out
