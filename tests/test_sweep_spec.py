"""The `sweep:` block: validation messages (exact text) and translation into Ray Tune objects."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import optuna
import pytest
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, PopulationBasedTraining
from ray.tune.search import BasicVariantGenerator, ConcurrencyLimiter, Repeater
from ray.tune.search.optuna import OptunaSearch
from ray.tune.search.sample import Categorical, Float, Integer

from latent_sweep import cli, config
from latent_sweep.errors import UserError
from latent_sweep.sweep_spec import TRIAL_INDEX, load_spec, trial_config

ROOT = Path(__file__).resolve().parent.parent
SRC = "sweeps/q.yaml"
SWEEPS = ["quick", "ex17_seeds", "ex15_seeds", "constant_vs_schedule", "labels_soft_vs_hard"]


@pytest.fixture(scope="module")
def quick_raw() -> dict:
    return config.load_file(ROOT / "sweeps" / "quick.yaml")


def spec_with(quick_raw: dict, **block):
    raw = copy.deepcopy(quick_raw)
    raw["sweep"] = {"metric": "hue_corr", "mode": "max", **block}
    return load_spec(raw, SRC)


def error_of(quick_raw: dict, **block) -> str:
    with pytest.raises(UserError) as err:
        spec_with(quick_raw, **block)
    return str(err.value)


@pytest.mark.parametrize("name", SWEEPS)
def test_shipped_sweeps_validate(name):
    path = ROOT / "sweeps" / f"{name}.yaml"
    spec = load_spec(config.load_file(path), path)
    assert spec.block.metric in ("hue_corr", "anchor_error_red")


SCALE = {"schedule.scale.reg-polar": {"uniform": [0.5, 2.0]}}
CASES = [
    (
        dict(search="optuna", scheduler="pbt", space=SCALE),
        "sweeps/q.yaml: `sweep.scheduler` is `pbt`, which mutates configs itself and cannot be combined "
        "with search algorithm `optuna`; use `search: random` with pbt",
    ),
    (
        dict(scheduler="pbt", space={"labels.mode": {"choice": ["soft", "hard"]}}),
        "sweeps/q.yaml: `sweep.space` has no `schedule.scale.<property>` leaf, but pbt mutates schedule "
        "multipliers and needs one",
    ),
    (
        dict(scheduler="pbt", space=SCALE, pbt={"perturbation_interval": 750}),
        "sweeps/q.yaml: `sweep.pbt.perturbation_interval` must be a multiple of the checkpoint interval "
        "(2500) so that exploiting trials copy a fresh checkpoint, but got 750",
    ),
    (
        dict(asha={"grace_period": 100}),
        "sweeps/q.yaml: `sweep.asha` sets asha parameters, but `sweep.scheduler` is `fifo`",
    ),
    (dict(searches="optuna"), "sweeps/q.yaml: `sweep.searches` is not a known key"),
    (dict(mode="maximize"), "sweeps/q.yaml: `sweep.mode` input should be 'max' or 'min', but got 'maximize'"),
    (
        dict(seeds=0),
        "sweeps/q.yaml: `sweep.seeds` must be a number of seeds ≥ 1 (repeat over seeds 0…N-1) or "
        "{sample: true}, but got 0",
    ),
    (
        dict(metric="hue_corelation"),
        "sweeps/q.yaml: `sweep.metric` must be a score name (recon_mse, hue_corr, hue_order, hue_winding, "
        "anchor_error_<concept>, planarity_vibrant, norm_error, trustworthiness_k<k>, …), but got "
        "`hue_corelation`",
    ),
    (
        dict(space={"schedule.keyframes[9].lr": {"uniform": [0.001, 0.01]}}),
        "sweeps/q.yaml: `sweep.space.schedule.keyframes[9].lr` does not name a value in the base config: "
        "`schedule.keyframes[9]` does not exist (list size 8)",
    ),
    (
        dict(space={"schedule.scale.reg-polr": {"uniform": [0.5, 2]}}),
        "sweeps/q.yaml: `sweep.space.schedule.scale.reg-polr` scales `reg-polr`, which is not a schedule "
        "property: lr, reg-separate, reg-planar, reg-norm, reg-norm-v, reg-polar",
    ),
    (
        dict(space={"model.latent_dim": {"normal": [4, 1]}}),
        "sweeps/q.yaml: `sweep.space.model.latent_dim` has unknown distribution `normal`; expected "
        "{uniform: [lo, hi]}, {loguniform: [lo, hi]}, {quniform: [lo, hi, q]}, {randint: [lo, hi]} (hi "
        "excluded), {choice: [a, b, …]} or {grid: [a, b, …]}",
    ),
    (
        dict(space={"schedule.keyframes[5].reg-polar": {"loguniform": [0, 0.1]}}),
        "sweeps/q.yaml: `sweep.space.schedule.keyframes[5].reg-polar` `loguniform` needs 0 < lo < hi, "
        "but got [0, 0.1]",
    ),
    (
        dict(space={"schedule.keyframes[5].STEP": {"randint": [600.5, 1400]}}),
        "sweeps/q.yaml: `sweep.space.schedule.keyframes[5].STEP` `randint` takes integers [lo, hi] "
        "(hi excluded), but got [600.5, 1400]",
    ),
    (
        dict(search="optuna", space={"labels.mode": {"grid": ["soft", "hard"]}}),
        "sweeps/q.yaml: `sweep.space.labels.mode` is a `grid`, which Optuna cannot sample; use "
        "`choice: [...]`, or `search: random`",
    ),
    (
        dict(search="grid", space={"schedule.keyframes[5].reg-polar": {"uniform": [0.001, 0.01]}}),
        "sweeps/q.yaml: `sweep.space.schedule.keyframes[5].reg-polar` is `uniform`, but `sweep.search` is "
        "`grid`, which only enumerates `grid` leaves; use `grid: [...]` or `search: random`",
    ),
    (
        dict(search="optuna"),
        "sweeps/q.yaml: `sweep.space` is empty, so Optuna has nothing to search; use `search: random`",
    ),
    (dict(seeds=2, space={"seed": {"randint": [0, 9]}}), None),  # checked below: message names both
    (
        dict(space={"labels.mode": {"choice": ["soft", "fuzzy"]}}),
        "sweeps/q.yaml: `labels.mode` input should be 'soft' or 'hard', but got 'fuzzy'",
    ),
]


@pytest.mark.parametrize(("block", "message"), CASES)
def test_validation_messages(quick_raw, block, message):
    got = error_of(quick_raw, **block)
    if message is None:
        assert (
            got
            == "sweeps/q.yaml: `sweep.space.seed` is also set by `sweep.seeds`; sample the seed in one place"
        )
    else:
        assert got == message


def test_cuda_device_needs_a_gpu_share(quick_raw):
    raw = copy.deepcopy(quick_raw)
    raw["device"] = "cuda"
    with pytest.raises(
        UserError, match=r"`sweep.resources.gpu` is 0, but the config asks for `device: cuda`"
    ):
        load_spec(raw, SRC)
    raw["sweep"]["resources"] = {"cpu": 1, "gpu": 0.25}
    assert load_spec(raw, SRC).block.resources.gpu == 0.25


def test_cli_prints_one_paragraph_and_exits_2(tmp_path, quick_raw, capsys):
    import yaml

    raw = copy.deepcopy(quick_raw)
    raw["sweep"]["scheduler"] = "pbt"
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(raw))
    assert cli.main(["run", str(path), "--storage", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {path}: `sweep.scheduler` is `pbt`, which mutates configs itself")
    assert err.count("\n") == 1
    assert not (tmp_path / "out").exists()


def test_random_search_repeats_each_config_over_a_seed_grid(quick_raw):
    spec = spec_with(quick_raw, seeds=3, num_samples=4, search_seed=5, max_concurrent=2, space=SCALE)
    space = spec.param_space()["params"]
    assert space["seed"] == {"grid_search": [0, 1, 2]}
    assert isinstance(space["schedule.scale.reg-polar"], Float)
    alg = spec.search_alg()
    assert isinstance(alg, BasicVariantGenerator)
    assert alg._constant_grid_search and alg.max_concurrent == 2
    assert spec.total_samples(4) == 4  # Tune multiplies by the grid itself
    assert isinstance(spec.scheduler(), FIFOScheduler)


def test_optuna_repeats_through_a_repeater(quick_raw):
    block = quick_raw["sweep"]
    spec = spec_with(quick_raw, **{**block, "seeds": 3, "max_concurrent": 2})
    alg = spec.search_alg()
    assert isinstance(alg, ConcurrencyLimiter) and isinstance(alg.searcher, Repeater)
    optuna_search = alg.searcher.searcher
    assert isinstance(optuna_search, OptunaSearch)
    assert isinstance(optuna_search._sampler, optuna.samplers.TPESampler)
    assert optuna_search._sampler._n_startup_trials == 6
    assert spec.total_samples(8) == 24
    space = spec.param_space()["params"]
    assert "seed" not in space
    assert isinstance(space["schedule.keyframes[5].STEP"], Integer)


def test_sampled_seed(quick_raw):
    spec = spec_with(quick_raw, seeds={"sample": True}, space={"labels.mode": {"choice": ["soft", "hard"]}})
    space = spec.param_space()["params"]
    assert isinstance(space["seed"], Integer) and isinstance(space["labels.mode"], Categorical)


def test_schedulers(quick_raw):
    asha = spec_with(quick_raw, scheduler="asha", asha={"reduction_factor": 3}).scheduler()
    assert isinstance(asha, ASHAScheduler)
    assert asha._time_attr == "step" and asha._reduction_factor == 3
    assert asha._brackets[0]._rungs[-1][0] == 1000  # default grace period: the evaluation interval
    pbt = spec_with(quick_raw, scheduler="pbt", space=SCALE).scheduler()
    assert isinstance(pbt, PopulationBasedTraining)
    assert pbt._perturbation_interval == 2500
    assert set(pbt._hyperparam_mutations["params"]) == {"schedule.scale.reg-polar"}


def test_interval_overrides_reach_the_base(quick_raw):
    spec = spec_with(quick_raw, eval_every=50, checkpoint_every=100)
    assert (spec.base["eval_every"], spec.base["checkpoint_every"]) == (50, 100)


def test_trial_config_applies_params_and_repeat_index(quick_raw):
    spec = spec_with(quick_raw)
    params = {
        "schedule.keyframes[5].reg-polar": np.float64(0.004),
        "schedule.keyframes[5].STEP": np.int64(900),
        "schedule.scale.reg-separate": 1.5,
    }
    raw = trial_config(spec.base, {"params": params, TRIAL_INDEX: 2})
    assert raw["seed"] == 2
    assert raw["schedule"]["keyframes"][5]["STEP"] == 900
    assert type(raw["schedule"]["keyframes"][5]["reg-polar"]) is float  # plain YAML, not numpy
    assert raw["schedule"]["scale"] == {"reg-separate": 1.5}
    assert "scale" not in spec.base["schedule"]  # the base is left alone
    config.validate(raw, SRC)
