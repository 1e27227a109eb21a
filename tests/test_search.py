"""Optuna search: multi-objective (Pareto) sweeps, the study kept in the results directory
(journal storage, read back with `optuna.load_study`, through a resume), warm start from an
earlier sweep; their validation messages (exact text)."""

from __future__ import annotations

import copy
import re
import signal
import subprocess
from pathlib import Path

import optuna
import pandas as pd
import pytest
from fixtures_results import ALPHA, SPACE, make_results
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from sweep_runs import DEADLINE_S, run, start_run, tiny_sweep

from latent_sweep.errors import UserError
from latent_sweep.spec import config
from latent_sweep.tune import search
from latent_sweep.tune import space as tune_space
from latent_sweep.tune.checks import load_sweep
from latent_sweep.tune.study import JOURNAL_FILE
from latent_sweep.tune.warm_start import OPTUNA_PREFIX, warm_start

ROOT = Path(__file__).resolve().parent.parent
SRC = "sweeps/q.yaml"
PARETO = {"metric": ["hue_corr", "anchor_error_red"], "mode": ["max", "min"]}
SCALE = {"schedule.scale.reg-polar": {"uniform": [0.5, 2.0]}}


@pytest.fixture(scope="module")
def quick_raw() -> dict:
    return config.load_file(ROOT / "sweeps" / "quick.yaml")


def spec_with(quick_raw: dict, **block):
    raw = copy.deepcopy(quick_raw)
    raw["sweep"] = {"metric": "hue_corr", "mode": "max", "search": "optuna", "space": SCALE, **block}
    return load_sweep(raw, SRC)


def error_of(quick_raw: dict, **block) -> str:
    with pytest.raises(UserError) as err:
        spec_with(quick_raw, **block)
    return str(err.value)


CASES = [
    (
        dict(metric=["hue_corr", "anchor_error_red"], mode="max"),
        "sweeps/q.yaml: `sweep.mode` must give one direction per metric, but `sweep.metric` is "
        "[hue_corr, anchor_error_red] and `sweep.mode` is `max`; e.g. `metric: [hue_corr, anchor_error_red]` "
        "with `mode: [max, min]`",
    ),
    (
        dict(metric=["hue_corr", "anchor_error_red"], mode=["max"]),
        "sweeps/q.yaml: `sweep.mode` must give one direction per metric, but `sweep.metric` is "
        "[hue_corr, anchor_error_red] and `sweep.mode` is [max]; e.g. `metric: [hue_corr, anchor_error_red]` "
        "with `mode: [max, min]`",
    ),
    (
        dict(metric=["hue_corr", "hue_corr"], mode=["max", "max"]),
        "sweeps/q.yaml: `sweep.metric` lists 2 objectives (hue_corr, hue_corr); a Pareto search needs two "
        "or more different metrics",
    ),
    (
        dict(**PARETO, scheduler="asha"),
        "sweeps/q.yaml: `sweep.scheduler` is `asha`, which stops trials early by ranking them on one metric, "
        "but `sweep.metric` lists 2 objectives (hue_corr, anchor_error_red): a Pareto search has no single "
        "ranking (a trial behind on one objective may be on the front by another); use `scheduler: fifo`, "
        "or a single metric",
    ),
    (
        dict(**PARETO, scheduler="pbt"),
        "sweeps/q.yaml: `sweep.scheduler` is `pbt`, which replaces the configs of trials ranked low on one "
        "metric with copies of better ones, but `sweep.metric` lists 2 objectives (hue_corr, "
        "anchor_error_red): a Pareto search has no single ranking (a trial behind on one objective may be "
        "on the front by another); use `scheduler: fifo`, or a single metric",
    ),
    (
        dict(**PARETO, pack=4),
        "sweeps/q.yaml: `sweep.pack` is 4, but `sweep.metric` lists 2 objectives (hue_corr, "
        "anchor_error_red): the Pareto search suggests each config from the front so far and cannot draw "
        "configs ahead to pack them into one trial; use `pack: 1`",
    ),
    (
        dict(**PARETO, population="none", seeds=3),
        "sweeps/q.yaml: `sweep.population` is `none` with 3 seeds, so each seed of a config is its own "
        "trial and Ray averages their metric over the seeds, one metric only, but `sweep.metric` lists 2 "
        "objectives (hue_corr, anchor_error_red); use `population: seeds` (the default: one trial trains "
        "all seeds of a config)",
    ),
    (
        dict(**PARETO, search="random"),
        "sweeps/q.yaml: `sweep.metric` lists 2 objectives (hue_corr, anchor_error_red), a Pareto search, "
        "which only `search: optuna` runs (sampler tpe or nsga2); `random` search samples configs without "
        "looking at results; use `search: optuna`",
    ),
    (
        dict(metric=["hue_corr", "hue_corr_sd"], mode=["max", "min"]),
        "sweeps/q.yaml: `sweep.metric` must be a score this sweep's trials report (recon_mse, "
        "recon_mse_vibrant, recon_mse_dark, recon_mse_desaturated, hue_corr, hue_order, hue_winding, "
        "planarity_vibrant, norm_error, anchor_error_red, trustworthiness_k5, trustworthiness_k10, "
        "trustworthiness_k15, continuity_k5, continuity_k10, continuity_k15, knn_recall_k5, knn_recall_k10, "
        "knn_recall_k15; the mean over a trial's members), a score with `_std`, `_min` or `_max` (that "
        "statistic over the members), `success_rate` (with `sweep.success`) or `diverged_rate`, but got "
        "`hue_corr_sd`",
    ),
    (dict(mode=["max", "maximize"]), "sweeps/q.yaml: `sweep.mode` input should be 'max' or 'min', but got "
     "['max', 'maximize']"),
    (dict(search="random", sampler="nsga2"), "sweeps/q.yaml: `sweep.sampler` applies to `search: optuna` "
     "only, not `random`"),
    (dict(search="grid", space={}, warm_start="x"), "sweeps/q.yaml: `sweep.warm_start` applies to "
     "`search: optuna` only, not `grid`"),
]  # fmt: skip


@pytest.mark.parametrize(("block", "message"), CASES)
def test_bad_search_blocks_are_one_paragraph_errors(quick_raw, block, message):
    assert error_of(quick_raw, **block) == message


def test_warm_start_needs_a_finished_sweep_with_the_same_parameters(quick_raw, tmp_path):
    alpha, beta = make_results(tmp_path)
    assert error_of(quick_raw, space=SPACE, warm_start=str(tmp_path / "none")) == (
        f"sweeps/q.yaml: `sweep.warm_start` names `{tmp_path / 'none'}`, which is not a readable sweep: "
        f"results directory `{tmp_path / 'none'}` does not exist"
    )
    assert error_of(quick_raw, space=SPACE, warm_start=str(beta)) == (
        f"sweeps/q.yaml: `sweep.warm_start` names `{beta}`, which has no trials.parquet; expected the "
        "results directory of a finished (or resumed) `latent-sweep run`"
    )
    assert error_of(quick_raw, warm_start=str(alpha)) == (
        f"sweeps/q.yaml: `sweep.warm_start` names `{alpha}`, whose sampled parameters (labels.mode, "
        "schedule.scale.reg-polar) differ from this sweep's space (schedule.scale.reg-polar); warm start "
        "needs the same parameters"
    )
    narrow = {**SPACE, "schedule.scale.reg-polar": {"loguniform": [3, 10]}}
    assert error_of(quick_raw, space=narrow, warm_start=str(alpha)) == (
        f"sweeps/q.yaml: `sweep.warm_start` names `{alpha}`, but none of its 4 configs lies inside this "
        "sweep's space, finished, with a finite hue_corr; widen the space or drop `warm_start`"
    )


def load_study(results: Path, name: str) -> optuna.Study:
    return optuna.load_study(
        study_name=name, storage=JournalStorage(JournalFileBackend(str(results / JOURNAL_FILE)))
    )


def test_warm_start_adds_the_earlier_configs_to_the_stored_study_once(quick_raw, tmp_path):
    alpha, _ = make_results(tmp_path)
    spec = spec_with(quick_raw, **PARETO, name="w", space=SPACE, warm_start=str(alpha), sampler="nsga2")
    finished = {k: v for k, v in ALPHA.items() if v[3] == "TERMINATED"}  # a3 errored: left out
    expected = [
        (
            {f"{OPTUNA_PREFIX}labels.mode": mode, f"{OPTUNA_PREFIX}schedule.scale.reg-polar": scale},
            [s[0], s[3]],
        )
        for mode, scale, _, _, s in finished.values()
    ]
    assert warm_start(spec).trials == expected
    results = tmp_path / "res"
    results.mkdir()
    for _ in range(2):  # a resumed sweep sets its study up again: the points go in once
        searcher = search.search_alg(spec, str(results))
        assert isinstance(searcher._sampler, optuna.samplers.NSGAIISampler)
        searcher.set_search_properties(None, None, tune_space.param_space(spec))
        study = load_study(results, "w")
        assert [(t.params, t.values) for t in study.trials] == expected
        assert [d.name for d in study.directions] == ["MAXIMIZE", "MINIMIZE"]


def front_of(out: str, ids) -> set[str]:
    """The trial ids of the printed rows marked ★."""
    return {i for i in ids for line in out.splitlines() if i in line and "★" in line}


@pytest.mark.slow
def test_pareto_search_keeps_its_study_through_a_resume(local_ray, tmp_path, capsys):
    alpha, _ = make_results(tmp_path / "earlier")
    block = dict(
        **PARETO, search="optuna", num_samples=3, startup_trials=2, space=SPACE, warm_start=str(alpha)
    )
    path = tiny_sweep(tmp_path, "pareto", 600, **block)
    results = tmp_path / "res" / "pareto"
    proc = start_run(path, tmp_path / "res", stderr=subprocess.PIPE)
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=DEADLINE_S)
    assert proc.returncode == 130
    interrupted = load_study(results, "pareto")
    assert len(interrupted.trials) >= 4  # the three warm-start configs, then the sweep's first suggestions

    capsys.readouterr()
    assert run("resume", results) == 0
    out = capsys.readouterr().out
    trials = pd.read_parquet(results / "trials.parquet")
    assert len(trials) == 3 and set(trials["status"]) == {"TERMINATED"}

    study = load_study(results, "pareto")
    mode, scale = SPACE  # the two sampled paths
    named = {path: f"{OPTUNA_PREFIX}{path}" for path in SPACE}  # their names in the study
    assert [t.params[named[mode]] for t in study.trials[:3]] == ["soft", "soft", "hard"]  # the warm start
    scores = ["hue_corr", "anchor_error_red"]
    ran = {(r[f"config.{mode}"], r[f"config.{scale}"]): [r[s] for s in scores] for _, r in trials.iterrows()}
    complete = optuna.trial.TrialState.COMPLETE
    told = {
        (t.params[named[mode]], t.params[named[scale]]): t.values
        for t in study.trials[3:]
        if t.state == complete
    }
    assert told == ran  # every trial of the sweep, told once with its final scores
    assert sum(t.state == complete for t in study.trials) == 6

    # The leaderboard's front is `compare --pareto`'s front, and `table` marks the same trials.
    assert re.search(r"Pareto front \(hue_corr:max, anchor_error_red:min\): \d of 3 configs", out)
    board = front_of(out, trials["trial_id"])
    assert board
    assert run("compare", results, "--by", "trial_id", "--pareto", "hue_corr:max,anchor_error_red:min") == 0
    note = capsys.readouterr().out.strip().splitlines()[-1]
    assert set(note.split(": ", 1)[1].split(", ")) == board
    assert run("table", results) == 0
    assert front_of(capsys.readouterr().out, trials["trial_id"]) == board
