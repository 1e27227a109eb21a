"""Trial configs: load YAML, address values by path, validate into typed objects once.

A sweep file is a trial config plus an optional `sweep:` block (read by `latent_sweep.tune.sweep`).
Everything a trial needs is in its config dict: `load_file` inlines the schedule CSV as
`schedule.keyframes` records, so a trial's `config.yaml` reproduces it on its own.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pydantic
import yaml

from latent_sweep.errors import UserError, where
from latent_sweep.spec import experiment, paths
from latent_sweep.spec.schedule import Dopesheet

# ---------------------------------------------------------------------------------------
# Overrides: `--set path=value`, an `overrides` dict


def parse_overrides(items: list[str]) -> list[tuple[str, Any]]:
    """`--set path=value` → (path, YAML-parsed value)."""
    out = []
    for item in items:
        path, sep, text = item.partition("=")
        if not sep or not path:
            raise UserError(f"--set expects PATH=VALUE, e.g. `labels.mode=soft`, but got `{item}`")
        parts = paths.split_path(path)
        try:
            value, duplicate = _load_yaml(text, yaml.SafeLoader, parts) if text else ("", None)
        except yaml.YAMLError as err:
            why = " ".join(str(err).split())
            raise UserError(f"--set {path}: value `{text}` is not valid YAML ({why})") from None
        if duplicate:
            raise _duplicate_error(f"--set {path}", duplicate, f" of the value `{text}`")
        out.append((path, value))
    return out


Overrides = Mapping[str, Any] | Sequence[str] | None


def as_overrides(items: Overrides) -> list[tuple[str, Any]]:
    """Overrides as (path, value) pairs, from `{path: value}` (Python API) or `PATH=VALUE` strings
    (`--set`, values parsed as YAML)."""
    if items is None:
        return []
    if isinstance(items, Mapping):
        for path in items:
            paths.split_path(str(path))
        return [(str(path), value) for path, value in items.items()]
    return parse_overrides([items] if isinstance(items, str) else list(items))


def apply_overrides(raw: dict, overrides: list[tuple[str, Any]]) -> dict:
    raw = copy.deepcopy(raw)
    paths.set_paths(raw, overrides)
    return raw


# ---------------------------------------------------------------------------------------
# Files


class _Loader(yaml.SafeLoader):
    """YAML with one trap closed: `+50` would silently load as the number 50 (`_load_yaml`
    closes the other: a key written twice would silently keep its last value)."""


def _int(loader: _Loader, node: yaml.ScalarNode) -> int:
    if node.value.startswith("+"):
        raise UserError(
            f"line {node.start_mark.line + 1}: `{node.value}` reads in YAML as the number "
            f"{node.value[1:]}, not as a relative STEP; quote it ('{node.value}') for a step counted "
            "from the anchor above, or drop the '+'"
        )
    return loader.construct_yaml_int(node)


_Loader.add_constructor("tag:yaml.org,2002:int", _int)


Duplicate = tuple[str, list[int]]  # a key's path and the lines (1-based) that write it


def _load_yaml(
    text: str, loader_cls: type[yaml.SafeLoader], prefix: Sequence[paths.Part] = ()
) -> tuple[Any, Duplicate | None]:
    """`yaml.load`, or the first key written twice in one mapping (YAML would keep the last
    silently), its path starting with `prefix`. Checked on the node tree before construction:
    lines are known there, and `<<` merges are not yet flattened into the mappings they merge into."""
    loader = loader_cls(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, None
        if duplicate := _duplicate_key(loader, node, list(prefix), set()):
            return None, duplicate
        return loader.construct_document(node), None
    finally:
        loader.dispose()


def _duplicate_key(
    loader: yaml.SafeLoader, node: yaml.Node, parts: list[paths.Part], seen: set[int]
) -> Duplicate | None:
    if id(node) in seen:  # an alias: its anchor was checked already
        return None
    seen.add(id(node))
    children: list[tuple[list[paths.Part], yaml.Node]] = []
    if isinstance(node, yaml.SequenceNode):
        children = [([*parts, i], item) for i, item in enumerate(node.value)]
    elif isinstance(node, yaml.MappingNode):
        lines: dict[Any, list[int]] = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *base` then `seed: 2` overrides by design
                children.append((parts, value_node))
            elif isinstance(key_node, yaml.ScalarNode):  # other keys are unhashable: YAML refuses them
                key = loader.construct_object(key_node)  # as YAML compares them: `true` is `True`
                lines.setdefault(key, []).append(key_node.start_mark.line + 1)
                children.append(([*parts, str(key)], value_node))
        for key, at in lines.items():
            if len(at) > 1:
                return paths.join_path([*parts, str(key)]), at
    for child_parts, child in children:
        if found := _duplicate_key(loader, child, child_parts, seen):
            return found
    return None


def _duplicate_error(where: str, duplicate: Duplicate, in_value: str = "") -> UserError:
    key, lines = duplicate
    times = "twice" if len(lines) == 2 else f"{len(lines)} times"
    at = (
        f"line {lines[0]}"
        if len(set(lines)) == 1
        else f"lines {', '.join(map(str, lines[:-1]))} and {lines[-1]}"
    )
    return UserError(
        f"{where}: key `{key}` appears {times} ({at}{in_value}); YAML keeps only the last, so one of "
        "them is a mistake: remove or rename one"
    )


def read_yaml(path: str | Path) -> dict:
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as err:
        raise UserError(f"{path}: cannot read the file ({err.strerror})") from None
    try:
        raw, duplicate = _load_yaml(text, _Loader)
    except yaml.YAMLError as err:
        raise UserError(f"{path}: not valid YAML: {' '.join(str(err).split())}") from None
    except UserError as err:
        raise UserError(f"{path}, {err}") from None
    if duplicate:
        raise _duplicate_error(str(path), duplicate)
    if not isinstance(raw, dict):
        raise UserError(f"{path}: expected a mapping of config keys at the top level, but got {raw!r:.60}")
    return raw


DICT_SOURCE = "<config dict>"  # how errors name a config given as a dict (Python API)


def load(source: str | Path | dict) -> tuple[dict, str]:
    """A sweep or trial config from a file, or from a dict (the Python API), with `load_file`'s
    resolution; relative paths in a dict are relative to the current directory. Returns the
    config and the name errors use for it."""
    if isinstance(source, dict):
        return resolve(copy.deepcopy(source), Path.cwd(), DICT_SOURCE), DICT_SOURCE
    return load_file(source), str(source)


def load_file(path: str | Path) -> dict:
    """Read a sweep or trial config; inline `schedule.csv` (relative to the file) as keyframes.

    `base: other.yaml` (relative to the file) starts from another file's trial config and
    overrides it: mappings merge key by key, anything else (lists included) is replaced. The
    base's `sweep:` block is not inherited — a base supplies the experiment, not the search.
    """
    path = Path(path)
    return resolve(read_yaml(path), path.parent, path)


def resolve(raw: dict, directory: Path, source: str | Path, _chain: tuple[Path, ...] = ()) -> dict:
    """`load_file` on a config already read: files it names are relative to `directory`, errors
    name `source`."""
    schedule = raw.get("schedule")
    if isinstance(schedule, dict) and "csv" in schedule:
        if "keyframes" in schedule:
            raise UserError(f"{where(source, 'schedule')}give either `csv` or `keyframes`, not both")
        csv = Path(str(schedule.pop("csv")))
        csv = csv if csv.is_absolute() else directory / csv
        sheet = Dopesheet.from_csv(csv)
        sheet.require(["lr"])  # every experiment's optimizer reads its learning rate here
        schedule["keyframes"] = sheet.to_records()
    data = raw.get("data")
    if isinstance(data, dict) and isinstance(data.get("path"), str) and not Path(data["path"]).is_absolute():
        # An input file or trial directory, like `csv:` and `base:`, is relative to this file.
        data["path"] = str(directory / data["path"])
    if "base" not in raw:
        return raw
    base = raw.pop("base")
    if not isinstance(base, str):
        raise UserError(f"{where(source, 'base')}expected the path of another config file, but got {base!r}")
    base_path = Path(base) if Path(base).is_absolute() else directory / base
    chain = (*_chain, Path(source).resolve())
    if base_path.resolve() in chain:
        raise UserError(f"{where(source, 'base')}`{base}` leads back to this file; bases cannot form a cycle")
    if not base_path.is_file():
        raise UserError(f"{where(source, 'base')}no config file at {base_path}")
    inherited = resolve(read_yaml(base_path), base_path.parent, base_path, chain)
    inherited.pop("sweep", None)
    return _merge(inherited, raw)


def _merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for key, value in over.items():
        both = isinstance(value, dict) and isinstance(out.get(key), dict)
        out[key] = _merge(out[key], value) if both else value
    return out


def split_sweep(raw: dict) -> tuple[dict, dict | None]:
    trial = {k: v for k, v in raw.items() if k != "sweep"}
    return copy.deepcopy(trial), copy.deepcopy(raw.get("sweep"))


# ---------------------------------------------------------------------------------------
# Validation


def format_validation_error(
    err: pydantic.ValidationError, source: str | Path | None, prefix: str = ""
) -> str:
    """Pydantic errors → one paragraph: file, `field.path`, what was expected, value got."""
    messages = []
    for e in err.errors()[:3]:
        loc = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in e["loc"]).lstrip(".")
        loc = f"{prefix}.{loc}" if prefix and loc else (prefix or loc)
        kind = e["type"]
        got = e.get("input")
        if kind == "extra_forbidden":
            msg = f"`{loc}` is not a known key"
        elif kind == "missing":
            msg = f"`{loc}` is required but missing"
        elif kind == "union_tag_invalid":
            tags = e.get("ctx", {}).get("expected_tags", "")
            tag = e.get("ctx", {}).get("tag", got)
            msg = f"`{loc}` has unknown kind `{tag}`; expected one of {tags}"
        elif kind == "union_tag_not_found":
            msg = f"`{loc}` needs a `kind`"
        elif kind == "value_error" and not loc:
            msg = e["msg"].removeprefix("Value error, ")  # a cross-field check names its own fields
        else:
            text = e["msg"].removeprefix("Value error, ")
            msg = f"`{loc}` {text[0].lower()}{text[1:]}, but got {got!r:.80}"
        messages.append(msg)
    more = f" (and {len(err.errors()) - 3} more problems)" if len(err.errors()) > 3 else ""
    head = f"{source}: " if source else ""
    return head + "; ".join(messages) + more


def validate(trial_raw: dict, source: str | Path | None = None):
    """Validate a trial config dict into its experiment's typed config."""
    cls = experiment.get(experiment.kind_of(trial_raw), source).config
    try:
        return cls.model_validate(trial_raw)
    except pydantic.ValidationError as err:
        raise UserError(format_validation_error(err, source)) from None
