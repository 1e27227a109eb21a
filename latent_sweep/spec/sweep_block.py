"""The `sweep:` block of a sweep file: validated once into a `SweepSpec`, translated into Ray Tune.
Every key, for users: docs/sweep-file.md.

A sweep file is a trial config (the *base*) plus a `sweep:` block. `space` maps config paths
(`schedule.keyframes[@5000].reg-polar`, `schedule.keyframes[@5000].STEP`, `labels.mode`, …) to one
distribution leaf each; `schedule.scale.<property>` multiplies a whole schedule curve (1 when
unset). `trial_config` turns a Tune trial's config back into the full trial config it runs, on
the driver (for `trials.parquet`) and in the trial (to run it) alike.

Populations. A trial trains a population of members (`members:` in its config, see
`latent_sweep.spec.population`) and reports, for every score, the mean over members and its
`_std`, `_min` and `_max`, plus `diverged_rate` and, when the sweep defines `success:`,
`success_rate`. `sweep.metric` may name any of those, so a search or a scheduler can optimize
a statistic over seeds.

* `seeds: N` with `population: seeds` (the default): one trial per sampled config trains
  seeds 0…N-1 as its members. The base carries `members: [{seed: 0}, …]`; the Tune config is
  `{"params": {path: value}}`. Optuna gets one trial per suggestion and sees the statistic
  `metric` names.
* `population: none`: one seed per trial, as a grid over `seed` with random values held
  constant across grid variants (random/grid search) or Ray's `Repeater` (Optuna, which then
  sees the mean over the repeats).
* `pack: M` (random or grid search, fifo scheduler): the sampled configs are drawn on the
  driver (seeded by `search_seed`, each random draw crossed with the grid) and packed M to a
  trial; the Tune config is `{"pack": [params_1, …]}` under a grid over the packs, and the
  members are, for each packed config c and each seed s, `{seed: s, **params_c}` (member
  index c × seeds + s). Packed paths vary between members, so they must be ones a batched
  model can vary (`population.vectorizable`).
* `seeds: {sample: true}` samples one seed per config.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pydantic
from pydantic import Field, field_validator

from latent_sweep.errors import UserError
from latent_sweep.scores import summary
from latent_sweep.spec import config, paths, population
from latent_sweep.spec.experiment import goal_of
from latent_sweep.spec.resources import Resources
from latent_sweep.spec.trial import Strict
from latent_sweep.store import layout

TRIAL_INDEX = "__trial_index__"  # ray.tune.search.repeater.TRIAL_INDEX, without importing Ray here
PARAMS = "params"  # a Tune config's sampled values: {"params": {path: value}}
PACK = "pack"  # a packed Tune config's sampled configs: {"pack": [{path: value}, …]}
SCALE_PREFIX = "schedule.scale."
SEED_RANGE = 2**31 - 1
STAT_SUFFIXES = tuple(f"_{s}" for s in summary.STATS[1:])  # _std, _min, _max over members
LEAF_FORMS = (
    "{uniform: [lo, hi]}, {loguniform: [lo, hi]}, {quniform: [lo, hi, q]}, {randint: [lo, hi]} "
    "(hi excluded), {choice: [a, b, …]} or {grid: [a, b, …]}"
)


def is_score(name: str) -> bool:
    """A member's score, as an experiment declares it (`recon_mse_vibrant`), not a statistic over
    members (`recon_mse_std`)."""
    return goal_of(name) is not None and not name.endswith(STAT_SUFFIXES)


def statistic_of(name: str) -> str | None:
    """The score a reported statistic is over (`hue_corr_std` → hue_corr, `hue_corr` → hue_corr);
    None for the rates and for anything that is not a reported metric."""
    if is_score(name):
        return name
    if name.endswith(STAT_SUFFIXES) and is_score(name[: -len(STAT_SUFFIXES[0])]):
        return name[: -len(STAT_SUFFIXES[0])]
    return None


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
    space: dict[str, Any] = Field(default_factory=dict)
    seeds: int | SampledSeed | None = Field(None, description="repeat over seeds 0…N-1, or sample the seed")
    population: Literal["seeds", "none"] = Field("seeds", description="seeds: a config's seeds in one trial")
    pack: int = Field(1, ge=1, description="sampled configs per trial (random/grid search, fifo)")
    success: str | None = Field(None, description="an expression over a member's scores")
    metric: str | list[str] = Field(description="a score to optimize, or a list (an Optuna Pareto search)")
    mode: str | list[str] = Field(description="max or min, or a list of them, one per metric")
    search: Literal["random", "grid", "optuna"] = "random"
    search_seed: int = 0
    startup_trials: int | None = Field(None, ge=1, description="TPE's random start, NSGA-II's generation")
    sampler: Literal["tpe", "nsga2"] | None = Field(None, description="Optuna's sampler (default tpe)")
    warm_start: str | None = Field(None, description="an earlier sweep's results directory seeds Optuna")
    loggers: list[Literal["tensorboard", "mlflow", "wandb"]] = Field(default_factory=list)
    scheduler: Literal["fifo", "asha", "pbt"] = "fifo"
    asha: Asha | None = None
    pbt: Pbt | None = None
    num_samples: int = Field(1, ge=1)
    resources: Resources = Resources()
    max_concurrent: int | None = Field(None, ge=1)
    eval_every: int | None = Field(None, ge=1)
    checkpoint_every: int | None = Field(None, ge=1)
    history_every: int | None = Field(None, ge=1)
    storage: str | None = None
    max_failures: int = Field(2, ge=0, description="retries of a trial whose worker or node was lost")

    @field_validator("seeds", mode="before")
    @classmethod
    def _seeds(cls, value: Any) -> Any:
        ok = value is None or value == {"sample": True} or (type(value) is int and value >= 1)
        if not ok:
            raise ValueError("must be a number of seeds ≥ 1 (repeat over seeds 0…N-1) or {sample: true}")
        return value

    @field_validator("mode", mode="before")
    @classmethod
    def _mode(cls, value: Any) -> Any:
        for mode in value if isinstance(value, list) else [value]:
            if mode not in ("max", "min"):
                raise ValueError("input should be 'max' or 'min'")
        return value


# Block keys copied into the base trial config when set.
TRIAL_KEYS = ("eval_every", "checkpoint_every", "history_every")


@dataclass(frozen=True)
class Leaf:
    """One distribution in `sweep.space`: kind and its arguments, already checked."""

    kind: str
    args: tuple

    def probes(self) -> list[Any]:
        """Values to validate the base with: every option, or both ends of a range and a value
        inside it that is not a whole number (so a float leaf on an integer field shows)."""
        if self.kind in ("grid", "choice"):
            return list(self.args)
        lo, hi = self.args[0], self.args[1]
        if self.kind == "randint":
            return [lo, hi - 1]
        if self.kind == "quniform":
            q = self.args[2]
            return [round(lo / q) * q, round(hi / q) * q]
        inside = lo * (hi / lo) ** (1 / math.e) if self.kind == "loguniform" else lo + (hi - lo) / math.e
        return [lo, inside, hi]


@dataclass(frozen=True)
class SweepSpec:
    block: SweepBlock
    base: dict  # the trial config with the block's trial keys and its seeds as `members` applied
    cfg: Any  # the base's first member, validated (its experiment's typed config, defaults filled in)
    space: dict[str, Leaf]
    source: str

    @property
    def metrics(self) -> list[str]:
        """The objectives: `metric`, as a list (one entry unless the search is multi-objective)."""
        m = self.block.metric
        return list(m) if isinstance(m, list) else [m]

    @property
    def modes(self) -> list[str]:
        m = self.block.mode
        return list(m) if isinstance(m, list) else [m]

    @property
    def multi_objective(self) -> bool:
        return isinstance(self.block.metric, list)

    @property
    def seed_repeats(self) -> int:
        return self.block.seeds if isinstance(self.block.seeds, int) else 1

    @property
    def seed_population(self) -> bool:
        """A trial trains every seed of its config(s) (rather than one seed per trial)."""
        return self.block.population == "seeds"

    @property
    def uses_repeater(self) -> bool:
        return self.block.search == "optuna" and not self.seed_population and self.seed_repeats > 1

    @property
    def grid_size(self) -> int:
        return math.prod(len(leaf.args) for leaf in self.space.values() if leaf.kind == "grid")

    @property
    def config_count(self) -> int:
        """Sampled configs: `num_samples` draws, each crossed with the grid."""
        return self.block.num_samples * self.grid_size

    @property
    def trial_count(self) -> int:
        if self.block.pack > 1:
            return -(-self.config_count // self.block.pack)
        return self.config_count * (1 if self.seed_population else self.seed_repeats)

    @property
    def members_per_trial(self) -> int:
        """Members of a trial (of the largest, packed): the base's members (its seeds with
        `population: seeds`, else its own seed) × the configs packed into it."""
        return len(population.overrides(self.base)) * min(self.block.pack, self.config_count)

    @property
    def devices(self) -> set[str]:
        """The `device` values the sweep's trials have: the base's, or the options of a `device`
        space leaf."""
        leaf = self.space.get("device")
        return {str(v) for v in leaf.args} if leaf is not None else {self.cfg.device}

    @property
    def tune_samples(self) -> int:
        """Tune's `num_samples`: a Repeater counts every repeat, a grid multiplies it by itself
        (packs are one grid)."""
        if self.block.pack > 1:
            return 1
        return self.block.num_samples * self.seed_repeats if self.uses_repeater else self.block.num_samples

    @property
    def pbt_interval(self) -> int:
        pbt = self.block.pbt or Pbt()
        return pbt.perturbation_interval or self.cfg.checkpoint_every

    def describe(self) -> str:
        """How the sweep's configs and seeds become trials, e.g. "8 sampled configs × 20 seeds
        as 8 population trials"."""
        b, n = self.block, self.config_count
        configs = f"{n} sampled config{'s' * (n != 1)}" + (" (grid)" if self.grid_size > 1 else "")
        if isinstance(b.seeds, SampledSeed):
            configs += ", a sampled seed each"
        elif self.seed_repeats > 1:
            configs += f" × {self.seed_repeats} seeds"
        t = self.trial_count
        trials = f"{t} {'population ' * self.seed_population}trial{'s' * (t != 1)}"
        if b.pack > 1:
            size = b.pack * self.seed_repeats
            return f"{configs}, packed {b.pack} to a trial: {trials} of up to {size} members"
        return f"{configs} as {trials}"


def plain_value(value: Any) -> Any:
    """Ray samples numpy scalars; a trial config must stay plain YAML."""
    return value.item() if isinstance(value, np.generic) else copy.deepcopy(value)


def trial_config(base: dict, tune_config: dict) -> dict:
    """A Tune trial's config → the full trial config it runs (what its `config.yaml` holds)."""
    raw = copy.deepcopy(base)
    paths.set_paths(raw, {path: plain_value(value) for path, value in tune_config.get(PARAMS, {}).items()})
    if TRIAL_INDEX in tune_config:
        raw["seed"] = int(tune_config[TRIAL_INDEX])
    if PACK in tune_config:
        seeds = population.overrides(raw)  # the base's members (its seeds), or its own seed
        raw[population.MEMBERS] = [
            {**seed, **{path: plain_value(v) for path, v in params.items()}}
            for params in tune_config[PACK]
            for seed in seeds
        ]
    return raw


def parse_spec(raw: dict, source: str | Path) -> SweepSpec:
    """Validate a sweep file's dict (schedule CSV already inlined) into a SweepSpec, before the
    checks against its base config (`checks.load_spec` runs both)."""
    source = str(source)
    base, block_raw = config.split_sweep(raw)
    if block_raw is None:
        raise UserError(f"{source}: has no `sweep:` block; `latent-sweep run` needs one (see README)")
    block = validate_block(block_raw, source)
    for key in TRIAL_KEYS:
        if getattr(block, key) is not None:
            base[key] = getattr(block, key)
    if population.MEMBERS in base and block.seeds is not None:
        raise field_error(
            source,
            "sweep.seeds",
            "is set, but the base config has its own `members`; give the population's seeds in one place",
        )
    if block.population == "seeds" and isinstance(block.seeds, int) and block.seeds > 1:
        base[population.MEMBERS] = [{"seed": s} for s in range(block.seeds)]
    space = {path: _leaf(source, path, value) for path, value in block.space.items()}
    cfg = config.validate(population.member_raws(base, source)[0], source)
    return SweepSpec(block=block, base=base, cfg=cfg, space=space, source=source)


def validate_block(block_raw: Any, source: str) -> SweepBlock:
    """A sweep file's `sweep:` block (`block_raw`, from `source`) validated into a SweepBlock; a
    one-paragraph UserError naming the file and field otherwise."""
    if not isinstance(block_raw, dict):
        raise field_error(source, "sweep", f"must be a mapping, but got {block_raw!r:.60}")
    try:
        return SweepBlock.model_validate(block_raw)
    except pydantic.ValidationError as err:
        raise UserError(config.format_validation_error(err, source, prefix="sweep")) from None


@dataclass(frozen=True)
class WrittenSweep:
    """The sweep file a `latent-sweep run` wrote into its results directory: its `sweep:` block,
    validated, and the base trial config beside it (whose schedule names the result columns)."""

    block: SweepBlock
    base: dict
    source: str  # the file, for messages


def read_written_sweep(results_dir: str | Path) -> WrittenSweep | None:
    """A local results directory's sweep file (`layout.SWEEP_FILE`) read through the validated
    `SweepBlock`; None when it has none (a `train` directory, results copied without it). Not valid
    YAML, without a `sweep:` block or with one that does not validate: a UserError naming the file."""
    path = Path(results_dir) / layout.SWEEP_FILE
    if not path.is_file():
        return None
    base, block_raw = config.split_sweep(config.read_yaml(path))
    if block_raw is None:
        raise UserError(f"{path}: has no `sweep:` block; expected the sweep file `latent-sweep run` wrote")
    return WrittenSweep(validate_block(block_raw, str(path)), base, str(path))


def field_error(source: str, path: str, text: str) -> UserError:
    return UserError(f"{source}: `{path}` {text}")


def _leaf(source: str, path: str, value: Any) -> Leaf:
    loc = f"sweep.space.{path}"
    if not isinstance(value, dict) or len(value) != 1:
        raise field_error(source, loc, f"must be one distribution leaf: {LEAF_FORMS}; but got {value!r:.80}")
    ((kind, args),) = value.items()
    if kind not in ("uniform", "loguniform", "quniform", "randint", "choice", "grid"):
        raise field_error(source, loc, f"has unknown distribution `{kind}`; expected {LEAF_FORMS}")
    if not isinstance(args, list) or not args:
        raise field_error(source, loc, f"`{kind}` takes a non-empty list, but got {args!r:.80}")
    if kind in ("choice", "grid"):
        return Leaf(kind, tuple(args))
    arity = 3 if kind == "quniform" else 2
    numeric = all(isinstance(a, int | float) and not isinstance(a, bool) for a in args)
    if len(args) != arity or not numeric:
        form = "[lo, hi, q]" if kind == "quniform" else "[lo, hi]"
        raise field_error(source, loc, f"`{kind}` takes {form} (numbers), but got {args!r:.80}")
    lo, hi = args[0], args[1]
    if kind == "randint" and not all(isinstance(a, int) for a in args):
        raise field_error(source, loc, f"`randint` takes integers [lo, hi] (hi excluded), but got {args}")
    if lo >= hi:
        raise field_error(source, loc, f"`{kind}` needs lo < hi, but got {args}")
    if kind == "loguniform" and lo <= 0:
        raise field_error(source, loc, f"`loguniform` needs 0 < lo < hi, but got {args}")
    if kind == "quniform" and args[2] <= 0:
        raise field_error(source, loc, f"`quniform` needs a step q > 0, but got {args}")
    return Leaf(kind, tuple(args))
