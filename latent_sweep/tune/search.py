"""The search and scheduler of a sweep: Ray's BasicVariantGenerator, or Optuna with one objective or several
(a Pareto search), its study kept in the results directory and optionally warm-started from an
earlier sweep.

* `sampler: tpe` (the default) or `nsga2`: Optuna's TPE handles one or several objectives;
  `startup_trials` is TPE's random start-up trials, or NSGA-II's generation size.
* A sweep with a local results directory keeps its Optuna study there, in Optuna's journal
  storage (`optuna.log`, one study named after the sweep): `optuna-dashboard <results>/optuna.log`
  shows it live, `optuna.load_study` reads it, and `resume` makes it agree with Tune's experiment
  state, then goes on appending to it (`latent_sweep.tune.study`). With URI
  storage (s3://, gs://) the study lives in Ray's searcher state only.
* `warm_start: RESULTS_DIR` adds the configs an earlier sweep evaluated to the new study as
  completed trials before the first suggestion (`latent_sweep.tune.warm_start`).
"""

from __future__ import annotations

from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, PopulationBasedTraining
from ray.tune.search import BasicVariantGenerator, ConcurrencyLimiter, Repeater

from latent_sweep.spec.sweep_block import PARAMS, SCALE_PREFIX, Asha, Pbt, SweepSpec
from latent_sweep.store import layout
from latent_sweep.tune import study
from latent_sweep.tune.space import domain
from latent_sweep.tune.trainable import StudySearch
from latent_sweep.tune.warm_start import OPTUNA_PREFIX, warm_start

__all__ = ["OPTUNA_PREFIX", "scheduler", "search_alg", "warm_start"]


# ---------------------------------------------------------------------------------------
# Search algorithms


def search_alg(spec: SweepSpec, results_dir: str | None = None):
    """The search algorithm, with the concurrency limit applied (Tune ignores
    `max_concurrent_trials` for a BasicVariantGenerator, so it is set here for both kinds)."""
    b = spec.block
    if b.search != "optuna":
        # Random values stay fixed across grid variants, so a config repeats over seeds as is.
        return BasicVariantGenerator(
            constant_grid_search=True, random_state=b.search_seed, max_concurrent=b.max_concurrent or 0
        )
    if b.sampler == "nsga2":
        size = {} if b.startup_trials is None else {"population_size": b.startup_trials}
        sampler = study.SeededNSGAIISampler(seed=b.search_seed, **size)
    else:
        startup = {} if b.startup_trials is None else {"n_startup_trials": b.startup_trials}
        sampler = study.SeededTPESampler(seed=b.search_seed, **startup)
    storage = None if results_dir is None else study.journal_storage(f"{results_dir}/{layout.OPTUNA_JOURNAL}")
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
        mutations = {p: domain(leaf) for p, leaf in spec.space.items() if p.startswith(SCALE_PREFIX)}
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
