"""Reading a sweep block: validated (`sweep_block.parse_spec`), then checked against its base
config before any trial starts — space paths, the metric and the success expression, search,
scheduler and packing combinations, loggers' extras, and every `choice`/`grid` option validated
as a trial config. (A warm start's earlier results are checked where they are read:
`tune.warm_start`.)"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from latent_sweep.errors import UserError
from latent_sweep.scores import summary
from latent_sweep.spec import paths, population
from latent_sweep.spec.experiment import declared
from latent_sweep.spec.population import build_members, preflight
from latent_sweep.spec.schedule import Dopesheet
from latent_sweep.spec.sweep_block import (
    PARAMS,
    SCALE_PREFIX,
    SampledSeed,
    SweepSpec,
    field_error,
    parse_spec,
    statistic_of,
    trial_config,
)

RATES = ("success_rate", "diverged_rate")


def load_spec(raw: dict, source: str | Path) -> SweepSpec:
    """A sweep file's dict (schedule CSV already inlined), validated and checked."""
    spec = parse_spec(raw, source)
    check(spec)
    return spec


def check(spec: SweepSpec) -> None:
    """Everything `run` would trip over before the first trial: a one-paragraph UserError."""
    _check_space(spec)
    check_search(spec)  # objectives, sampler
    check_loggers(spec)
    for metric in spec.metrics:
        _check_metric(spec, metric)
    _check_search(spec)
    _check_scheduler(spec)
    _check_pack(spec)
    if spec.cfg.device == "cuda" and spec.block.resources.gpu == 0:
        raise field_error(spec.source, "sweep.resources.gpu", "is 0, but the config asks for `device: cuda`")
    for probe in _probes(spec):
        build_members(probe, spec.source)  # the config, and its schedule realized
    preflight(build_members(spec.base, spec.source), spec.source)  # input files and their sizes


def _check_space(spec: SweepSpec) -> None:
    """Every space path names a base config value, or a schedule property for `schedule.scale.*`."""
    src = spec.source
    props = Dopesheet.from_records(spec.cfg.schedule.keyframes, source=src).props
    for path in spec.space:
        loc = f"sweep.space.{path}"
        if path.startswith(SCALE_PREFIX):
            prop = path.removeprefix(SCALE_PREFIX)
            if prop not in props:
                raise field_error(
                    src, loc, f"scales `{prop}`, which is not a schedule property: {', '.join(props)}"
                )
        elif path == "seed":
            if spec.block.seeds is not None:
                raise field_error(src, loc, "is also set by `sweep.seeds`; sample the seed in one place")
        else:
            try:
                paths.get_path(spec.base, path)
            except UserError as err:
                why = str(err).removeprefix(f"config path `{path}`: ")
                raise field_error(src, loc, f"does not name a value in the base config: {why}") from None


def _check_metric(spec: SweepSpec, metric: str) -> None:
    """A metric is a score (the mean over members), a statistic over members or a rate;
    `success` is an expression over score names that pandas can evaluate."""
    b, src = spec.block, spec.source
    # The scores the base config's experiment declares for it (docs/scores.md).
    scores = declared(spec.cfg)
    listed = ", ".join(scores)
    if statistic_of(metric) not in scores and metric not in RATES:
        raise field_error(
            src,
            "sweep.metric",
            f"must be a score this sweep's trials report ({listed}; the mean over a trial's members), "
            f"a score with `_std`, `_min` or `_max` (that statistic over the members), `success_rate` "
            f"(with `sweep.success`) or `diverged_rate`, but got `{metric}`",
        )
    score = statistic_of(metric)
    if score != metric and score is not None and len(population.overrides(spec.base)) * b.pack == 1:
        became = "0" if metric.endswith("_std") else f"`{score}` itself"
        raise field_error(
            src,
            "sweep.metric",
            f"is `{metric}`, a statistic over a trial's members, but every trial of this sweep trains one "
            f"member, so it would be {became}; set `sweep.seeds: N` (with `population: seeds`, the default) "
            f"to train N seeds in each trial, or use `{score}`",
        )
    if b.success is None:
        if metric == "success_rate":
            raise field_error(
                src,
                "sweep.metric",
                "is `success_rate`, but the sweep defines no `sweep.success` expression to count "
                f"successful members with; add one, e.g. `success: {summary.SUCCESS_EXAMPLE}`",
            )
        return
    problem = summary.success_problem(b.success, scores)
    if problem:
        raise field_error(src, "sweep.success", problem)


def _check_search(spec: SweepSpec) -> None:
    b, src = spec.block, spec.source
    grids = [p for p, leaf in spec.space.items() if leaf.kind == "grid"]
    if b.search == "grid":
        others = [p for p in spec.space if p not in grids]
        if others:
            kind = spec.space[others[0]].kind
            raise field_error(
                src,
                f"sweep.space.{others[0]}",
                f"is `{kind}`, but `sweep.search` is `grid`, which only enumerates `grid` leaves; "
                "use `grid: [...]` or `search: random`",
            )
        if isinstance(b.seeds, SampledSeed):
            raise field_error(src, "sweep.seeds", "cannot be sampled in a grid search; use `seeds: N`")
    if b.search == "optuna":
        if grids:
            raise field_error(
                src,
                f"sweep.space.{grids[0]}",
                "is a `grid`, which Optuna cannot sample; use `choice: [...]`, or `search: random`",
            )
        if not spec.space and not isinstance(b.seeds, SampledSeed):
            raise field_error(
                src, "sweep.space", "is empty, so Optuna has nothing to search; use `search: random`"
            )
    elif b.startup_trials is not None:
        raise field_error(src, "sweep.startup_trials", f"applies to `search: optuna` only, not `{b.search}`")


def _check_scheduler(spec: SweepSpec) -> None:
    b, src = spec.block, spec.source
    for name in ("asha", "pbt"):
        if getattr(b, name) is not None and b.scheduler != name:
            raise field_error(
                src, f"sweep.{name}", f"sets {name} parameters, but `sweep.scheduler` is `{b.scheduler}`"
            )
    if b.scheduler == "asha" and not spec.seed_population and spec.seed_repeats > 1:
        raise field_error(
            src,
            "sweep.scheduler",
            f"is `asha`, but with `sweep.population: none` each of the {spec.seed_repeats} seeds of a config "
            "is its own trial, and early stopping would cut some seeds of a config and not others, biasing "
            "its statistics; use `population: seeds` (the default: one trial trains all seeds of a config "
            "and reports statistics over them) or `scheduler: fifo`",
        )
    if b.scheduler != "pbt":
        return
    if b.search != "random":
        raise field_error(
            src,
            "sweep.scheduler",
            f"is `pbt`, which mutates configs itself and cannot be combined with search algorithm "
            f"`{b.search}`; use `search: random` with pbt",
        )
    scales = [p for p in spec.space if p.startswith(SCALE_PREFIX)]
    if not scales:
        raise field_error(
            src,
            "sweep.space",
            "has no `schedule.scale.<property>` leaf, but pbt mutates schedule multipliers and needs one",
        )
    for path in scales:
        if spec.space[path].kind == "grid":
            raise field_error(
                src, f"sweep.space.{path}", "is a `grid`, which pbt cannot mutate; use `choice` or a range"
            )
    if spec.pbt_interval % spec.cfg.checkpoint_every:
        raise field_error(
            src,
            "sweep.pbt.perturbation_interval",
            f"must be a multiple of the checkpoint interval ({spec.cfg.checkpoint_every}) so that exploiting "
            f"trials copy a fresh checkpoint, but got {spec.pbt_interval}",
        )


def _check_pack(spec: SweepSpec) -> None:
    """Packing needs configs known up front, trials judged whole, and space paths members can vary in."""
    b, src = spec.block, spec.source
    if b.pack == 1:
        return
    head = f"is {b.pack}, but"
    if not spec.seed_population:
        raise field_error(
            src,
            "sweep.pack",
            f"{head} `sweep.population` is `none` (one seed per trial), and packing puts several configs "
            "into one population trial; use `population: seeds` (the default) or `pack: 1`",
        )
    if b.search == "optuna":
        raise field_error(
            src,
            "sweep.pack",
            f"{head} `sweep.search` is `optuna`, which suggests each config from the results of the ones "
            "before it and so cannot draw configs ahead to pack them into one trial; use `search: random` "
            "or `grid` to pack configs, or `pack: 1`",
        )
    if b.scheduler != "fifo":
        does = {
            "asha": "stops whole trials early by their reported metric",
            "pbt": "replaces whole trials' configs with mutated copies of better trials",
        }[b.scheduler]
        raise field_error(
            src,
            "sweep.pack",
            f"{head} `sweep.scheduler` is `{b.scheduler}`, which {does}, and a packed trial holds up to "
            f"{b.pack} unrelated configs that must be judged one by one; use `scheduler: fifo` to pack "
            "configs, or `pack: 1`",
        )
    allowed = population.vectorizable(spec.cfg.experiment)
    for path in spec.space:
        if not allowed.fullmatch(path):
            raise field_error(
                src,
                f"sweep.space.{path}",
                f"cannot differ between the members of one trial, and with `sweep.pack` {b.pack} every "
                "sampled path does: members train as one batched model and share its shapes, data and "
                "labels; only the seed, schedule keyframe values and STEPs, `schedule.scale.*` and scalar "
                f"term parameters can be packed (paths matching `{allowed.pattern}`); use `pack: 1` to "
                "sample this path",
            )


def _probes(spec: SweepSpec) -> list[dict]:
    """Member configs with leaves at representative values (every option of a choice or grid,
    the ends and an inside value of a range), so a value the experiment would reject fails
    here, before any trial starts."""
    first = {p: leaf.probes()[0] for p, leaf in spec.space.items()}
    variants = [first] + [
        {**first, p: value} for p, leaf in spec.space.items() for value in leaf.probes()[1:]
    ]
    # The members of a config differ only in their seed: its first member stands for all.
    return [population.member_raws(trial_config(spec.base, {PARAMS: v}))[0] for v in variants]


# Loggers: each needs its extra installed; name → (module, pip extra, title).
EXTRAS = {
    "tensorboard": ("tensorboardX", "tensorboard", "tensorboardX"),
    "mlflow": ("mlflow", "mlflow", "MLflow"),
    "wandb": ("wandb", "wandb", "Weights & Biases (wandb)"),
}


def installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ValueError:  # a module set to None in sys.modules: as good as absent
        return False


def check_loggers(spec: SweepSpec) -> None:
    """Each logger's extra is installed, else a one-paragraph error naming the install command."""
    for name in spec.block.loggers:
        module, extra, title = EXTRAS[name]
        if not installed(module):
            raise UserError(
                f"{spec.source}: `sweep.loggers` lists `{name}`, but {title} is not installed; install it "
                f"with `pip install 'latent-sweep[{extra}]'` (or `pip install {module}`), or remove `{name}`"
            )


def check_search(spec: SweepSpec) -> None:
    """Objectives, sampler and warm start, against the search, scheduler and packing."""
    b, src = spec.block, spec.source
    metrics, modes = spec.metrics, spec.modes
    if isinstance(b.mode, list) != spec.multi_objective or len(metrics) != len(modes):
        raise field_error(
            src,
            "sweep.mode",
            f"must give one direction per metric, but `sweep.metric` is {_listing(b.metric)} and "
            f"`sweep.mode` is {_listing(b.mode)}; e.g. `metric: [hue_corr, anchor_error_red]` with "
            "`mode: [max, min]`",
        )
    if spec.multi_objective:
        objectives = f"lists {len(metrics)} objectives ({', '.join(metrics)})"
        if len(set(metrics)) != len(metrics) or len(metrics) < 2:
            raise field_error(
                src, "sweep.metric", f"{objectives}; a Pareto search needs two or more different metrics"
            )
        if b.search != "optuna":
            raise field_error(
                src,
                "sweep.metric",
                f"{objectives}, a Pareto search, which only `search: optuna` runs (sampler tpe or nsga2); "
                f"`{b.search}` search samples configs without looking at results; use `search: optuna`",
            )
        if b.scheduler != "fifo":
            does = {
                "asha": "stops trials early by ranking them on one metric",
                "pbt": "replaces the configs of trials ranked low on one metric with copies of better ones",
            }[b.scheduler]
            raise field_error(
                src,
                "sweep.scheduler",
                f"is `{b.scheduler}`, which {does}, but `sweep.metric` {objectives}: a Pareto search has no "
                "single ranking (a trial behind on one objective may be on the front by another); use "
                "`scheduler: fifo`, or a single metric",
            )
        if spec.uses_repeater:
            raise field_error(
                src,
                "sweep.population",
                f"is `none` with {spec.seed_repeats} seeds, so each seed of a config is its own trial "
                f"and Ray averages their metric over the seeds, one metric only, but `sweep.metric` "
                f"{objectives}; use `population: seeds` (the default: one trial trains all seeds of a "
                "config)",
            )
        if b.pack > 1:
            raise field_error(
                src,
                "sweep.pack",
                f"is {b.pack}, but `sweep.metric` {objectives}: the Pareto search suggests each config from "
                "the front so far and cannot draw configs ahead to pack them into one trial; use `pack: 1`",
            )
    for key in ("sampler", "warm_start"):
        if getattr(b, key) is not None and b.search != "optuna":
            raise field_error(src, f"sweep.{key}", f"applies to `search: optuna` only, not `{b.search}`")


def _listing(value: str | list[str]) -> str:
    return f"[{', '.join(value)}]" if isinstance(value, list) else f"`{value}`"
