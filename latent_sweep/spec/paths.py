"""Config paths: a value of a config addressed by `schedule.keyframes[5].reg-polar`, a keyframe
by its STEP (`schedule.keyframes[@5000].lr`, `[@0+10]` for one 10 steps after it); reading and
setting values by path (overrides are parsed in `config`)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from latent_sweep.errors import UserError

_TOKEN = re.compile(r"([^.\[\]@]+)|\[(\d*)(?:@([^\[\]]+))?\]")
ANCHOR_TEXT = re.compile(r"\d+")


# ---------------------------------------------------------------------------------------
# Paths: "schedule.keyframes[5].reg-polar", and keyframes by STEP: "schedule.keyframes[@5000].lr"


@dataclass(frozen=True)
class StepRef:
    """A keyframe addressed by its STEP as the sheet writes it: `[@5000]` (an anchor),
    `[@5000+0.5]` / `[@10000-10]` (a relative STEP with the anchor it counts from). `[5@5000]`
    is keyframe 5, recorded as STEP 5000: an error once it is not (the sheet changed)."""

    step: str
    index: int | None = None

    def __str__(self) -> str:
        return f"[{'' if self.index is None else self.index}@{self.step}]"


Part = str | int | StepRef


def split_path(path: str) -> list[Part]:
    parts: list[Part] = []
    pos = 0
    for m in _TOKEN.finditer(path):
        if m.start() != pos and path[pos : m.start()] != ".":
            raise UserError(f"config path `{path}` is malformed at position {pos}")
        if m.group(1) is not None:
            parts.append(m.group(1))
        elif m.group(3) is not None:
            parts.append(StepRef(_step_text(m.group(3)), int(m.group(2)) if m.group(2) else None))
        elif m.group(2):
            parts.append(int(m.group(2)))
        else:
            raise UserError(f"config path `{path}`: `[]` names no element; expected `[3]` or `[@5000]`")
        pos = m.end()
    if not parts or pos != len(path):
        raise UserError(f"config path `{path}` is malformed; expected e.g. `terms[0].power`")
    return parts


def join_path(parts: list[Part]) -> str:
    return "".join(
        f"[{p}]" if isinstance(p, int) else str(p) if isinstance(p, StepRef) else f".{p}" for p in parts
    ).lstrip(".")


def _step_text(step: object) -> str | None:
    """A STEP as written, normalized for comparison: `5000`, `+0.5`, `-10` (None: not a STEP)."""
    if isinstance(step, bool) or not isinstance(step, int | float | str):
        return None
    if isinstance(step, float):
        return str(int(step)) if step.is_integer() else None
    text = str(step).replace(" ", "")
    return str(int(text)) if ANCHOR_TEXT.fullmatch(text) else text


def step_addresses(records: list) -> list[str | None]:
    """Each keyframe's `@` address: an anchor's STEP, or a relative STEP prefixed by the anchor it
    counts from (the one above for `+`, below for `-`)."""
    texts = [_step_text(r.get("STEP")) if isinstance(r, dict) else None for r in records]
    out: list[str | None] = []
    for i, text in enumerate(texts):
        if text is None or ANCHOR_TEXT.fullmatch(text):
            out.append(text)
            continue
        side = reversed(texts[:i]) if text.startswith("+") else texts[i + 1 :]
        anchor = next((t for t in side if t is not None and ANCHOR_TEXT.fullmatch(t)), None)
        out.append(None if anchor is None else f"{anchor}{text}")
    return out


def _find_keyframe(node: Any, ref: StepRef, prefix: str, path: str) -> int:
    if not isinstance(node, list):
        raise UserError(f"config path `{path}`: `{prefix}` addresses keyframes by STEP, but is not a list")
    addresses = step_addresses(node)
    found = [i for i, a in enumerate(addresses) if a == ref.step]
    if ref.index is not None:
        if ref.index < len(node) and addresses[ref.index] == ref.step:
            return ref.index
        now = (
            f"keyframe {ref.index} has STEP {addresses[ref.index]}"
            if ref.index < len(node)
            else (f"there is no keyframe {ref.index} (list size {len(node)})")
        )
        moved = f"; the keyframe with STEP {ref.step} is now [{found[0]}]" if len(found) == 1 else ""
        raise UserError(
            f"config path `{path}`: {now}, not STEP {ref.step} as the path records: the schedule changed "
            f"since the path was written (a row added or removed above it?){moved}; address the "
            f"keyframe by its STEP alone (`[@STEP]`) or fix the index"
        )
    if len(found) == 1:
        return found[0]
    steps = ", ".join(dict.fromkeys(a for a in addresses if a is not None))
    if not found:
        raise UserError(
            f"config path `{path}`: no keyframe of `{prefix.rsplit('[', 1)[0]}` has STEP {ref.step}; its "
            f"STEPs are {steps} (a relative STEP is written after the anchor it counts from: `@5000+0.5`)"
        )
    raise UserError(
        f"config path `{path}`: keyframes {', '.join(map(str, found))} all have STEP {ref.step}; address "
        f"one of them as `[{found[0]}@{ref.step}]`"
    )


def _walk(raw: Any, parts: list[Part], path: str, create: bool) -> Any:
    node = raw
    for i, key in enumerate(parts):
        prefix = join_path(parts[: i + 1])
        if isinstance(key, StepRef):
            node = node[_find_keyframe(node, key, prefix, path)]
        elif isinstance(key, int):
            if not isinstance(node, list) or key >= len(node):
                size = len(node) if isinstance(node, list) else "not a list"
                raise UserError(f"config path `{path}`: `{prefix}` does not exist (list size {size})")
            node = node[key]
        else:
            if not isinstance(node, dict):
                raise UserError(f"config path `{path}`: `{prefix}` is inside a value that is not a mapping")
            if key not in node:
                if not create:
                    raise UserError(f"config path `{path}`: `{prefix}` does not exist")
                node[key] = {}
            node = node[key]
    return node


def resolve_path(raw: dict, path: str) -> str:
    """`path` with every keyframe addressed by STEP replaced by its index in `raw`."""
    parts = split_path(path)
    refs = [i for i, key in enumerate(parts) if isinstance(key, StepRef)]
    if not refs:
        return path
    node: Any = raw
    for i, key in enumerate(parts[: refs[-1] + 1]):
        if isinstance(key, StepRef):
            parts[i] = key = _find_keyframe(node, key, join_path(parts[: i + 1]), path)
        node = _walk(node, [key], path, create=False)
    return join_path(parts)


def get_path(raw: dict, path: str) -> Any:
    return _walk(raw, split_path(path), path, create=False)


def set_path(raw: dict, path: str, value: Any) -> None:
    """Set a value; missing mapping keys on the way are created (lists must exist)."""
    parts = split_path(path)
    parent = _walk(raw, parts[:-1], path, create=True) if len(parts) > 1 else raw
    last = parts[-1]
    if isinstance(last, StepRef):
        raise UserError(f"config path `{path}` ends at a whole keyframe; name a column, e.g. `{path}.lr`")
    if isinstance(last, int):
        if not isinstance(parent, list) or last >= len(parent):
            raise UserError(f"config path `{path}` does not exist")
    elif not isinstance(parent, dict):
        raise UserError(f"config path `{path}`: its parent is not a mapping")
    parent[last] = value


def set_paths(raw: dict, values: dict[str, Any] | list[tuple[str, Any]]) -> None:
    """Set several paths, each addressing `raw` as it was before any is set: `[@5000].STEP` and
    `[@5000].lr` both find the keyframe written at STEP 5000, whichever is set first."""
    items = list(values.items()) if isinstance(values, dict) else list(values)
    resolved = [(resolve_path(raw, str(path)), value) for path, value in items]
    for path, value in resolved:
        set_path(raw, path, value)
