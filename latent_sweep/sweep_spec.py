"""The `sweep:` block of a sweep file: validated once into a `SweepSpec`, translated into Ray Tune.

A sweep file is a trial config (the *base*) plus a `sweep:` block. `space` maps config paths
(`schedule.keyframes[5].reg-polar`, `schedule.keyframes[3].STEP`, `labels.mode`, …) to one
distribution leaf each; `schedule.scale.<property>` multiplies a whole schedule curve (1 when
unset). A Tune trial's config is `{"params": {path: value}}` (plus Ray's repeat index when
seeds repeat under Optuna); `trial_config` turns it back into a full trial config, on the
driver (for `trials.parquet`) and in the trial (to run it) alike.

Seeds. `seeds: N` repeats every sampled config over seeds 0…N-1: a grid over `seed` with
random values held constant across grid variants (random/grid search), or Ray's `Repeater`
(Optuna, which then sees the mean over seeds). `seeds: {sample: true}` samples the seed.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pydantic
from pydantic import BaseModel, ConfigDict, Field, field_validator

from latent_sweep import config
from latent_sweep.errors import UserError

TRIAL_INDEX = "__trial_index__"  # ray.tune.search.repeater.TRIAL_INDEX, without importing Ray here
SCALE_PREFIX = "schedule.scale."
SEED_RANGE = 2**31 - 1
# SPEC §8 score names; a typo in `metric` would otherwise surface only after the first trial reports.
SCORE_NAME = re.compile(
    r"recon_mse(_\w+)?|hue_(corr|order|winding)|anchor_error_\w+|planarity_vibrant|norm_error"
    r"|(trustworthiness|continuity|knn_recall|knn_accuracy)_k\d+"
)
LEAF_FORMS = (
    "{uniform: [lo, hi]}, {loguniform: [lo, hi]}, {quniform: [lo, hi, q]}, {randint: [lo, hi]} "
    "(hi excluded), {choice: [a, b, …]} or {grid: [a, b, …]}"
)


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Resources(Strict):
    cpu: float = Field(1.0, gt=0)
    gpu: float = Field(0.0, ge=0)


class SampledSeed(Strict):
    sample: Literal[True]


class Asha(Strict):
    grace_period: int | None = Field(None, ge=1, description="steps; default: the evaluation interval")
    reduction_factor: float = Field(2.0, gt=1)


class Pbt(Strict):
    perturbation_interval: int | None = Field(None, ge=1, description="steps; default: checkpoint interval")
    quantile_fraction: float = Field(0.25, gt=0, le=0.5)
    resample_probability: float = Field(0.25, ge=0, le=1)


class SweepBlock(Strict):
    name: str | None = None
    space: dict[str, Any] = {}
    seeds: int | SampledSeed | None = Field(None, description="repeat over seeds 0…N-1, or sample the seed")
    metric: str
    mode: Literal["max", "min"]
    search: Literal["random", "grid", "optuna"] = "random"
    search_seed: int = 0
    startup_trials: int | None = Field(None, ge=1, description="Optuna TPE's random start-up trials")
    scheduler: Literal["fifo", "asha", "pbt"] = "fifo"
    asha: Asha | None = None
    pbt: Pbt | None = None
    num_samples: int = Field(1, ge=1)
    resources: Resources = Resources()
    max_concurrent: int | None = Field(None, ge=1)
    eval_every: int | None = Field(None, ge=1)
    checkpoint_every: int | None = Field(None, ge=1)
    storage: str | None = None

    @field_validator("seeds", mode="before")
    @classmethod
    def _seeds(cls, value: Any) -> Any:
        ok = value is None or value == {"sample": True} or (type(value) is int and value >= 1)
        if not ok:
            raise ValueError("must be a number of seeds ≥ 1 (repeat over seeds 0…N-1) or {sample: true}")
        return value


@dataclass(frozen=True)
class Leaf:
    """One distribution in `sweep.space`: kind and its arguments, already checked."""

    kind: str
    args: tuple

    def domain(self):
        from ray import tune

        if self.kind == "grid":
            return tune.grid_search(list(self.args))
        if self.kind == "choice":
            return tune.choice(list(self.args))
        return getattr(tune, self.kind)(*self.args)

    def probe(self) -> Any:
        """A representative value (the low end or first option), to validate the base with it."""
        if self.kind in ("grid", "choice"):
            return self.args[0]
        return self.args[0] if self.kind != "quniform" else round(self.args[0] / self.args[2]) * self.args[2]


@dataclass(frozen=True)
class SweepSpec:
    block: SweepBlock
    base: dict  # the trial config with the block's interval overrides applied
    cfg: Any  # the base, validated (its experiment's typed config, defaults filled in)
    space: dict[str, Leaf]
    source: str

    @property
    def seed_repeats(self) -> int:
        return self.block.seeds if isinstance(self.block.seeds, int) else 1

    @property
    def uses_repeater(self) -> bool:
        return self.block.search == "optuna" and self.seed_repeats > 1

    def total_samples(self, num_samples: int) -> int:
        """Tune's `num_samples`: a Repeater counts every repeat, a grid multiplies it by itself."""
        return num_samples * self.seed_repeats if self.uses_repeater else num_samples

    def param_space(self) -> dict:
        from ray import tune

        params = {path: leaf.domain() for path, leaf in self.space.items()}
        if isinstance(self.block.seeds, SampledSeed):
            params["seed"] = tune.randint(0, SEED_RANGE)
        elif self.seed_repeats > 1 and not self.uses_repeater:
            params["seed"] = tune.grid_search(list(range(self.seed_repeats)))
        return {"params": params}

    def search_alg(self):
        """The search algorithm, with the concurrency limit applied (Tune ignores
        `max_concurrent_trials` for a BasicVariantGenerator, so it is set here for both kinds)."""
        from ray.tune.search import BasicVariantGenerator, ConcurrencyLimiter, Repeater

        b = self.block
        if b.search != "optuna":
            # Random values stay fixed across grid variants, so a config repeats over seeds as is.
            return BasicVariantGenerator(
                constant_grid_search=True, random_state=b.search_seed, max_concurrent=b.max_concurrent or 0
            )
        import optuna
        from ray.tune.search.optuna import OptunaSearch

        optuna.logging.set_verbosity(optuna.logging.WARNING)  # one INFO line per trial otherwise
        startup = {} if b.startup_trials is None else {"n_startup_trials": b.startup_trials}
        sampler = optuna.samplers.TPESampler(seed=b.search_seed, **startup)
        searcher = OptunaSearch(sampler=sampler, metric=b.metric, mode=b.mode)
        if self.uses_repeater:
            searcher = Repeater(searcher, repeat=self.seed_repeats, set_index=True)
        return ConcurrencyLimiter(searcher, b.max_concurrent) if b.max_concurrent else searcher

    def scheduler(self):
        from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, PopulationBasedTraining

        b = self.block
        if b.scheduler == "asha":
            asha = b.asha or Asha()
            # max_t only bounds the rungs; trials end at their own schedule's length.
            return ASHAScheduler(
                time_attr="step",
                metric=b.metric,
                mode=b.mode,
                max_t=10**9,
                grace_period=asha.grace_period or self.cfg.eval_every,
                reduction_factor=asha.reduction_factor,
            )
        if b.scheduler == "pbt":
            pbt = b.pbt or Pbt()
            mutations = {p: leaf.domain() for p, leaf in self.space.items() if p.startswith(SCALE_PREFIX)}
            return PopulationBasedTraining(
                time_attr="step",
                metric=b.metric,
                mode=b.mode,
                perturbation_interval=self.pbt_interval,
                quantile_fraction=pbt.quantile_fraction,
                resample_probability=pbt.resample_probability,
                hyperparam_mutations={"params": mutations},
            )
        return FIFOScheduler()

    @property
    def pbt_interval(self) -> int:
        pbt = self.block.pbt or Pbt()
        return pbt.perturbation_interval or self.cfg.checkpoint_every


def trial_config(base: dict, tune_config: dict) -> dict:
    """A Tune trial's config → the full trial config it runs (what its `config.yaml` holds)."""
    raw = copy.deepcopy(base)
    for path, value in tune_config.get("params", {}).items():
        # Ray samples numpy scalars; the trial config must stay plain YAML.
        config.set_path(raw, path, value.item() if isinstance(value, np.generic) else value)
    if TRIAL_INDEX in tune_config:
        raw["seed"] = int(tune_config[TRIAL_INDEX])
    return raw


def load_spec(raw: dict, source: str | Path) -> SweepSpec:
    """Validate a sweep file's dict (schedule CSV already inlined) into a SweepSpec."""
    source = str(source)
    base, block_raw = config.split_sweep(raw)
    if block_raw is None:
        raise UserError(f"{source}: has no `sweep:` block; `latent-sweep run` needs one (see SPEC §6)")
    if not isinstance(block_raw, dict):
        raise _err(source, "sweep", f"must be a mapping, but got {block_raw!r:.60}")
    try:
        block = SweepBlock.model_validate(block_raw)
    except pydantic.ValidationError as err:
        raise UserError(config.format_validation_error(err, source, prefix="sweep")) from None
    for key in ("eval_every", "checkpoint_every"):
        if getattr(block, key) is not None:
            base[key] = getattr(block, key)
    space = {path: _leaf(source, path, value) for path, value in block.space.items()}
    spec = SweepSpec(block=block, base=base, cfg=config.validate(base, source), space=space, source=source)
    _check_space(spec)
    _check_search(spec)
    _check_scheduler(spec)
    if spec.cfg.device == "cuda" and block.resources.gpu == 0:
        raise _err(source, "sweep.resources.gpu", "is 0, but the config asks for `device: cuda`")
    for probe in _probes(spec):
        config.validate(probe, source)
    return spec


def _err(source: str, path: str, text: str) -> UserError:
    return UserError(f"{source}: `{path}` {text}")


def _leaf(source: str, path: str, value: Any) -> Leaf:
    loc = f"sweep.space.{path}"
    if not isinstance(value, dict) or len(value) != 1:
        raise _err(source, loc, f"must be one distribution leaf: {LEAF_FORMS}; but got {value!r:.80}")
    ((kind, args),) = value.items()
    if kind not in ("uniform", "loguniform", "quniform", "randint", "choice", "grid"):
        raise _err(source, loc, f"has unknown distribution `{kind}`; expected {LEAF_FORMS}")
    if not isinstance(args, list) or not args:
        raise _err(source, loc, f"`{kind}` takes a non-empty list, but got {args!r:.80}")
    if kind in ("choice", "grid"):
        return Leaf(kind, tuple(args))
    arity = 3 if kind == "quniform" else 2
    numeric = all(isinstance(a, int | float) and not isinstance(a, bool) for a in args)
    if len(args) != arity or not numeric:
        form = "[lo, hi, q]" if kind == "quniform" else "[lo, hi]"
        raise _err(source, loc, f"`{kind}` takes {form} (numbers), but got {args!r:.80}")
    lo, hi = args[0], args[1]
    if kind == "randint" and not all(isinstance(a, int) for a in args):
        raise _err(source, loc, f"`randint` takes integers [lo, hi] (hi excluded), but got {args}")
    if lo >= hi:
        raise _err(source, loc, f"`{kind}` needs lo < hi, but got {args}")
    if kind == "loguniform" and lo <= 0:
        raise _err(source, loc, f"`loguniform` needs 0 < lo < hi, but got {args}")
    if kind == "quniform" and args[2] <= 0:
        raise _err(source, loc, f"`quniform` needs a step q > 0, but got {args}")
    return Leaf(kind, tuple(args))


def _check_space(spec: SweepSpec) -> None:
    """Every space path names a base config value, or a schedule property for `schedule.scale.*`."""
    from latent_sweep.schedule import Dopesheet

    src = spec.source
    props = Dopesheet.from_records(spec.cfg.schedule.keyframes, source=src).props
    for path in spec.space:
        loc = f"sweep.space.{path}"
        if path.startswith(SCALE_PREFIX):
            prop = path.removeprefix(SCALE_PREFIX)
            if prop not in props:
                raise _err(src, loc, f"scales `{prop}`, which is not a schedule property: {', '.join(props)}")
        elif path == "seed":
            if spec.block.seeds is not None:
                raise _err(src, loc, "is also set by `sweep.seeds`; sample the seed in one place")
        else:
            try:
                config.get_path(spec.base, path)
            except UserError as err:
                why = str(err).removeprefix(f"config path `{path}`: ")
                raise _err(src, loc, f"does not name a value in the base config: {why}") from None
    if not SCORE_NAME.fullmatch(spec.block.metric):
        raise _err(
            src,
            "sweep.metric",
            "must be a score name (recon_mse, hue_corr, hue_order, hue_winding, anchor_error_<concept>, "
            f"planarity_vibrant, norm_error, trustworthiness_k<k>, …), but got `{spec.block.metric}`",
        )


def _check_search(spec: SweepSpec) -> None:
    b, src = spec.block, spec.source
    grids = [p for p, leaf in spec.space.items() if leaf.kind == "grid"]
    if b.search == "grid":
        others = [p for p in spec.space if p not in grids]
        if others:
            kind = spec.space[others[0]].kind
            raise _err(
                src,
                f"sweep.space.{others[0]}",
                f"is `{kind}`, but `sweep.search` is `grid`, which only enumerates `grid` leaves; "
                "use `grid: [...]` or `search: random`",
            )
        if isinstance(b.seeds, SampledSeed):
            raise _err(src, "sweep.seeds", "cannot be sampled in a grid search; use `seeds: N`")
    if b.search == "optuna":
        if grids:
            raise _err(
                src,
                f"sweep.space.{grids[0]}",
                "is a `grid`, which Optuna cannot sample; use `choice: [...]`, or `search: random`",
            )
        if not spec.space and not isinstance(b.seeds, SampledSeed):
            raise _err(src, "sweep.space", "is empty, so Optuna has nothing to search; use `search: random`")
    elif b.startup_trials is not None:
        raise _err(src, "sweep.startup_trials", f"applies to `search: optuna` only, not `{b.search}`")


def _check_scheduler(spec: SweepSpec) -> None:
    b, src = spec.block, spec.source
    for name in ("asha", "pbt"):
        if getattr(b, name) is not None and b.scheduler != name:
            raise _err(
                src, f"sweep.{name}", f"sets {name} parameters, but `sweep.scheduler` is `{b.scheduler}`"
            )
    if b.scheduler != "pbt":
        return
    if b.search != "random":
        raise _err(
            src,
            "sweep.scheduler",
            f"is `pbt`, which mutates configs itself and cannot be combined with search algorithm "
            f"`{b.search}`; use `search: random` with pbt",
        )
    scales = [p for p in spec.space if p.startswith(SCALE_PREFIX)]
    if not scales:
        raise _err(
            src,
            "sweep.space",
            "has no `schedule.scale.<property>` leaf, but pbt mutates schedule multipliers and needs one",
        )
    for path in scales:
        if spec.space[path].kind == "grid":
            raise _err(
                src, f"sweep.space.{path}", "is a `grid`, which pbt cannot mutate; use `choice` or a range"
            )
    if spec.pbt_interval % spec.cfg.checkpoint_every:
        raise _err(
            src,
            "sweep.pbt.perturbation_interval",
            f"must be a multiple of the checkpoint interval ({spec.cfg.checkpoint_every}) so that exploiting "
            f"trials copy a fresh checkpoint, but got {spec.pbt_interval}",
        )


def _probes(spec: SweepSpec) -> list[dict]:
    """Base configs with leaves at representative values (every option of a choice or grid),
    so a value the experiment would reject fails here, before any trial starts."""
    first = {p: leaf.probe() for p, leaf in spec.space.items()}
    variants = [first] + [
        {**first, p: option}
        for p, leaf in spec.space.items()
        if leaf.kind in ("choice", "grid")
        for option in leaf.args[1:]
    ]
    return [trial_config(spec.base, {"params": v}) for v in variants]
