"""The search and scheduler of a sweep: Ray's BasicVariantGenerator, or Optuna with one objective or several
(a Pareto search), its study kept in the results directory and optionally warm-started from an
earlier sweep; and the Pareto front of a multi-objective sweep's configs.

* `sampler: tpe` (the default) or `nsga2`: Optuna's TPE handles one or several objectives;
  `startup_trials` is TPE's random start-up trials, or NSGA-II's generation size.
* A sweep with a local results directory keeps its Optuna study there, in Optuna's journal
  storage (`optuna.log`, one study named after the sweep): `optuna-dashboard <results>/optuna.log`
  shows it live, `optuna.load_study` reads it, and `resume` makes it agree with Tune's experiment
  state, then goes on appending to it (`latent_sweep.tune.study`). With URI
  storage (s3://, gs://) the study lives in Ray's searcher state only.
* `warm_start: RESULTS_DIR` adds the configs an earlier sweep evaluated, with their values of
  this sweep's metric(s) recomputed from its member rows, to the new study as completed trials
  before the first suggestion. Configs with a value outside this sweep's space, of a trial that
  did not finish, or without a finite metric are left out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from latent_sweep.errors import UserError
from latent_sweep.spec import population
from latent_sweep.spec.sweep_block import PARAMS, SCALE_PREFIX, Asha, Pbt, SampledSeed, field_error, is_score

if TYPE_CHECKING:
    from latent_sweep.analysis.results import Sweep
    from latent_sweep.spec.sweep_block import Leaf, SweepSpec

# Ray flattens the Tune config {"params": {path: value}} into Optuna parameter names "params/<path>".
OPTUNA_PREFIX = "params/"


# ---------------------------------------------------------------------------------------
# Checks


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
    if b.warm_start is not None:
        warm_start(spec)


def _listing(value: str | list[str]) -> str:
    return f"[{', '.join(value)}]" if isinstance(value, list) else f"`{value}`"


# ---------------------------------------------------------------------------------------
# Search algorithms


def search_alg(spec: SweepSpec, results_dir: str | None = None):
    """The search algorithm, with the concurrency limit applied (Tune ignores
    `max_concurrent_trials` for a BasicVariantGenerator, so it is set here for both kinds)."""
    from ray.tune.search import BasicVariantGenerator, ConcurrencyLimiter, Repeater

    b = spec.block
    if b.search != "optuna":
        # Random values stay fixed across grid variants, so a config repeats over seeds as is.
        return BasicVariantGenerator(
            constant_grid_search=True, random_state=b.search_seed, max_concurrent=b.max_concurrent or 0
        )
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # one INFO line per trial otherwise
    from latent_sweep.tune import study

    if b.sampler == "nsga2":
        size = {} if b.startup_trials is None else {"population_size": b.startup_trials}
        sampler = study.SeededNSGAIISampler(seed=b.search_seed, **size)
    else:
        startup = {} if b.startup_trials is None else {"n_startup_trials": b.startup_trials}
        sampler = study.SeededTPESampler(seed=b.search_seed, **startup)
    storage = None if results_dir is None else study.journal_storage(f"{results_dir}/{study.JOURNAL_FILE}")
    from latent_sweep.tune.trainable import StudySearch

    searcher = StudySearch(
        sampler=sampler,
        metric=b.metric,
        mode=b.mode,
        storage=storage,
        study_name=b.name or spec.cfg.name,
        warm=warm_start(spec).trials if b.warm_start else [],
    )
    if spec.uses_repeater:
        searcher = Repeater(searcher, repeat=spec.seed_repeats, set_index=True)
    return ConcurrencyLimiter(searcher, b.max_concurrent) if b.max_concurrent else searcher


def scheduler(spec: SweepSpec):
    """ASHA, PBT (mutating the space's `schedule.scale.*` leaves) or FIFO."""
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, PopulationBasedTraining

    b = spec.block
    if b.scheduler == "asha":
        asha = b.asha or Asha()
        # max_t only bounds the rungs; trials end at their own schedule's length.
        return ASHAScheduler(
            time_attr="step",
            metric=b.metric,
            mode=b.mode,
            max_t=10**9,
            grace_period=asha.grace_period or spec.cfg.eval_every,
            reduction_factor=asha.reduction_factor,
        )
    if b.scheduler == "pbt":
        pbt = b.pbt or Pbt()
        mutations = {p: leaf.domain() for p, leaf in spec.space.items() if p.startswith(SCALE_PREFIX)}
        return PopulationBasedTraining(
            time_attr="step",
            metric=b.metric,
            mode=b.mode,
            perturbation_interval=spec.pbt_interval,
            quantile_fraction=pbt.quantile_fraction,
            resample_probability=pbt.resample_probability,
            hyperparam_mutations={PARAMS: mutations},
        )
    return FIFOScheduler()


# ---------------------------------------------------------------------------------------
# Warm start


@dataclass(frozen=True)
class WarmStart:
    trials: list[tuple[dict, list[float]]]  # (Optuna params "params/<path>", metric values) per config
    configs: int  # configs the earlier sweep holds
    source: str


def warm_start(spec: SweepSpec) -> WarmStart:
    """The earlier sweep's configs inside this sweep's space, with this sweep's metric values;
    a UserError when the directory is not a sweep's, its parameters differ, or none is usable."""
    from latent_sweep.analysis.results import load_sweeps

    src, where = spec.source, spec.block.warm_start
    loc = "sweep.warm_start"
    try:
        df, (earlier,) = load_sweeps([where])
    except UserError as err:
        raise UserError(f"{src}: `{loc}` names `{where}`, which is not a readable sweep: {err}") from None
    if not (earlier.path / "trials.parquet").is_file():
        raise UserError(
            f"{src}: `{loc}` names `{where}`, which has no trials.parquet; expected the results "
            "directory of a finished (or resumed) `latent-sweep run`"
        )
    wanted = sorted(spec.space) + (["seed"] if isinstance(spec.block.seeds, SampledSeed) else [])
    # The earlier sweep's columns name keyframes by its schedule's STEPs; a space may name them by row.
    column = {p: earlier.keyframes.column(p) for p in wanted}
    if sorted(earlier.params) != sorted(column[p] for p in spec.space):
        raise UserError(
            f"{src}: `{loc}` names `{where}`, whose sampled parameters ({', '.join(sorted(earlier.params))}) "
            f"differ from this sweep's space ({', '.join(sorted(spec.space))}); warm start needs the same "
            "parameters"
        )
    scores = [c for c in df.select_dtypes("number").columns if is_score(c)]
    trials = []
    configs = df.groupby("trial_id", sort=True)
    for _, group in configs:
        first = group.iloc[0]
        values = _metric_values(spec, group, scores) if (group["status"] == "TERMINATED").all() else None
        params = {p: _plain(first.get(f"config.{column[p]}")) for p in wanted}
        if values is None or not all(_inside(spec.space[p], v) for p, v in params.items() if p in spec.space):
            continue
        trials.append(({OPTUNA_PREFIX + p: v for p, v in params.items()}, values))
    if not trials:
        raise UserError(
            f"{src}: `{loc}` names `{where}`, but none of its {configs.ngroups} configs lies inside this "
            f"sweep's space, finished, with a finite {', '.join(spec.metrics)}; widen the space or drop "
            "`warm_start`"
        )
    return WarmStart(trials, configs.ngroups, str(where))


def _metric_values(spec: SweepSpec, group: pd.DataFrame, scores: list[str]) -> list[float] | None:
    """This sweep's metric(s) over a config's member rows, as its trial would report them;
    None when one is missing or not finite."""
    stats = _summarize(group, scores, spec.block.success)
    values = [stats.get(m) for m in spec.metrics]
    return values if all(v is not None and math.isfinite(v) for v in values) else None


def _summarize(group: pd.DataFrame, scores: list[str], success: str | None) -> dict[str, float]:
    """What a trial reported over these member rows (tables from before populations have no
    `diverged_at`: none diverged)."""
    if "diverged_at" not in group:
        group = group.assign(diverged_at=None)
    return population.summarize(group, scores, success)


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _inside(leaf: Leaf, value: Any) -> bool:
    """Whether Optuna's version of `leaf` can hold `value` (a value from an earlier sweep)."""
    if leaf.kind == "choice":
        return value in leaf.args
    if not isinstance(value, int | float) or isinstance(value, bool):
        return False
    lo, hi = leaf.args[0], leaf.args[1]
    if leaf.kind == "randint":
        return float(value).is_integer() and lo <= value < hi
    if leaf.kind == "quniform":
        q = leaf.args[2]
        return lo <= value <= hi and math.isclose((value - lo) / q, round((value - lo) / q), abs_tol=1e-9)
    return lo <= value <= hi


# ---------------------------------------------------------------------------------------
# Pareto fronts


def front_mask(table: pd.DataFrame, metrics: list[str], modes: list[str]) -> np.ndarray:
    """The rows of `table` (one per config) that no other row beats on every metric at once."""
    from latent_sweep.analysis.compare import pareto_front

    return pareto_front(table[metrics].to_numpy(dtype=float), [m == "max" for m in modes])


def mark_front(df: pd.DataFrame, sweeps: list[Sweep]) -> pd.DataFrame:
    """Member rows with a `pareto` column (★ for the rows of a config on its multi-objective
    sweep's front, over the statistics its trial reported) when a sweep searched several
    objectives; `df` as it is otherwise."""
    out = []
    parts = [df] if "sweep" not in df else [df[df["sweep"] == name] for name in df["sweep"].unique()]
    for part, sweep in zip(parts, sweeps, strict=True):
        part = part.copy()
        metrics = [m for m, _ in sweep.objectives]
        if len(metrics) > 1:
            scores = [c for c in part.select_dtypes("number").columns if is_score(c)]
            stats = pd.DataFrame(
                {tid: _summarize(g, scores, sweep.success) for tid, g in part.groupby("trial_id")}
            ).T
            if all(m in stats for m in metrics):
                on_front = stats.index[front_mask(stats, metrics, [d for _, d in sweep.objectives])]
                part["pareto"] = np.where(part["trial_id"].isin(on_front), "★", "")
        out.append(part)
    marked = pd.concat(out)
    return marked.fillna({"pareto": ""}) if "pareto" in marked else marked
