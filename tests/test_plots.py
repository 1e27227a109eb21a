"""Plots (latent_sweep.analysis.plots_trial): every kind writes a PNG that reads back; trial
choice; errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fixtures_results import SCORES, make_population_sweep, make_results
from matplotlib.image import imread
from matplotlib.patches import Circle

from latent_sweep.analysis.plots_trial import (
    latent_pairs,
    load_latents,
    plot_curves,
    plot_latent,
    plot_schedule,
    point_colors,
    schedule_curves,
)
from latent_sweep.analysis.results import load_evals, load_history, load_sweeps, read_trial_config
from latent_sweep.cli import main
from latent_sweep.errors import UserError
from latent_sweep.spec.population import member_raws

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def sweeps(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return make_results(tmp_path_factory.mktemp("results"))


def plot(capsys: pytest.CaptureFixture[str], *argv: str | Path) -> tuple[int, list[str], str]:
    code = main(["plot", *(str(a) for a in argv)])
    out, err = capsys.readouterr()
    return code, out.splitlines(), err


def assert_png(path: str | Path) -> np.ndarray:
    path = Path(path)
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    image = imread(path)
    assert image.ndim == 3
    assert image.shape[0] > 100
    assert image.shape[1] > 100
    return image


@pytest.mark.parametrize("kind", ["latent", "schedule", "curves"])
def test_trial_plots_default_to_the_best_trial(sweeps, capsys, tmp_path, kind):
    code, lines, err = plot(capsys, sweeps[0], "--kind", kind, "--out", tmp_path)
    assert (code, err) == (0, "")
    assert lines == [str(tmp_path / f"a2-{kind}.png")]  # a2 has the best hue_corr (sweep.mode max)
    assert_png(lines[0])
    assert [p.name for p in tmp_path.iterdir()] == [f"a2-{kind}.png"]  # no temporaries left


def test_trial_by_id_and_a_trial_directory(sweeps, capsys, tmp_path):
    code, lines, _ = plot(capsys, sweeps[0], "a1", "--out", tmp_path)
    assert (code, lines) == (0, [str(tmp_path / "a1-latent.png")])
    trial_dir = sweeps[1] / "group" / "b1"
    for kind in ("latent", "schedule", "curves"):
        code, lines, _ = plot(capsys, trial_dir, "--kind", kind, "--out", tmp_path)
        assert (code, lines) == (0, [str(tmp_path / f"b1-{kind}.png")])
        assert_png(lines[0])


def test_sweep_plots(sweeps, capsys, tmp_path):
    code, lines, _ = plot(capsys, sweeps[1], "--kind", "sweep", "--out", tmp_path)
    assert code == 0
    assert lines == [str(tmp_path / "beta-sweep.png"), str(tmp_path / "beta-parallel.png")]
    for line in lines:
        assert_png(line)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["a"], "trial `a` matches 4 trials in `{alpha}`; trial ids: a0, a1, a2, a3"),
        (["zz"], "trial `zz` matches no trial in `{alpha}`; trial ids: a0, a1, a2, a3"),
    ],
)
def test_trial_choice_errors(sweeps, capsys, tmp_path, argv, message):
    code, lines, err = plot(capsys, sweeps[0], *argv, "--out", tmp_path)
    assert (code, lines, err) == (2, [], f"error: {message.format(alpha=sweeps[0])}\n")


def test_trial_directory_with_a_trial_argument_is_an_error(sweeps, capsys, tmp_path):
    trial_dir = sweeps[0] / "a0"
    code, _, err = plot(capsys, trial_dir, "a1", "--out", tmp_path)
    assert code == 2
    assert err == (
        f"error: `{trial_dir}` is a trial directory (it holds the trial's config), so TRIAL `a1` cannot "
        "select one of its trials; pass the sweep directory instead\n"
    )


def test_missing_latents_is_an_error(tmp_path, capsys):
    trial_dir = tmp_path / "t"
    trial_dir.mkdir()
    (trial_dir / "config.yaml").write_text("seed: 0\n")
    code, _, err = plot(capsys, trial_dir, "--out", tmp_path / "plots")
    assert code == 2
    assert err == (
        f"error: trial directory `{trial_dir}` has no latent snapshots (latents/step-<step>.parquet); "
        "only trials that record latents can be drawn with --kind latent\n"
    )
    code, _, err = plot(capsys, trial_dir, "--kind", "schedule", "--out", tmp_path / "plots")
    assert (code, err) == (2, "error: the trial config has no `schedule.keyframes` to draw\n")
    code, _, err = plot(capsys, trial_dir, "--kind", "curves", "--out", tmp_path / "plots")
    assert (code, err) == (
        2,
        "error: the trial has no history (loss terms) or evaluations (scores) to draw yet\n",
    )
    assert not (tmp_path / "plots").exists()


def test_sweep_plot_needs_sampled_parameters(tmp_path, capsys):
    root = tmp_path / "flat"
    root.mkdir()
    pd.DataFrame({"trial_id": ["x", "y"], "status": ["TERMINATED"] * 2, "hue_corr": [0.1, 0.2]}).to_parquet(
        root / "trials.parquet"
    )
    code, _, err = plot(capsys, root, "--kind", "sweep", "--out", tmp_path)
    assert code == 2
    assert err == (
        f"error: `{root}` has no sampled parameters (sweep.yaml `sweep.space`) to plot: "
        "a sweep plot draws scores against parameters\n"
    )


def test_latest_snapshot_and_default_pairs(sweeps):
    step, latents = load_latents(sweeps[0] / "a0")
    assert step == 99
    z = latents[["z0", "z1", "z2", "z3"]].to_numpy()
    assert np.linalg.norm(z, axis=1) == pytest.approx(np.ones(len(z)))  # the final, unit-norm snapshot
    assert [latent_pairs(m) for m in (2, 3, 4, 8)] == [
        [(0, 1)],
        [(0, 1), (0, 2)],
        [(0, 1), (0, 2), (0, 3)],
        [(0, 1), (0, 2), (0, 3)],
    ]


def test_latent_figure_draws_each_point_in_its_color_over_a_unit_circle():
    rng = np.random.default_rng(1)
    rgb = rng.uniform(size=(20, 3))
    latents = pd.DataFrame({"z0": rng.normal(size=20), "z1": rng.normal(size=20), "z2": rng.normal(size=20)})
    latents[["r", "g", "b"]] = rgb
    fig = plot_latent(latents)
    assert len(fig.axes) == 2
    for ax in fig.axes:
        assert ax.get_aspect() == 1.0
        circles = [p for p in ax.patches if isinstance(p, Circle)]
        assert [c.get_radius() for c in circles] == [1]
        assert ax.collections[0].get_facecolors()[:, :3] == pytest.approx(rgb)
        assert ax.get_xlim()[1] >= np.abs(latents.to_numpy()).max()
    with pytest.raises(UserError, match=r"dimension pair \(0, 3\) is out of range"):
        plot_latent(latents, pairs=[(0, 3)])


def test_point_colors_fall_back_to_labels():
    colors = point_colors(pd.DataFrame({"z0": [0.0, 1, 2], "z1": [0.0, 1, 2], "label": ["a", "b", "a"]}))
    assert colors.shape == (3, 3)
    assert colors[0] == pytest.approx(colors[2])
    assert colors[0] != pytest.approx(colors[1])


def test_schedule_curves_are_scaled_with_each_propertys_keys(sweeps):
    table, keys, actions = schedule_curves(read_trial_config(sweeps[0] / "a1"))  # reg-polar × 2.0
    assert keys == {"lr": [0, 99], "reg-polar": [0, 50]}
    assert actions == {40: ["anchor"]}
    assert len(table) == 100
    assert table["reg-polar"].iloc[0] == pytest.approx(0.012)
    assert table["reg-polar"].iloc[99] == pytest.approx(0.0004)
    assert table["lr"].iloc[99] == pytest.approx(0.001)
    fig = plot_schedule(table, keys, actions)
    lr_axis, weight_axis = fig.axes
    assert (lr_axis.get_yscale(), weight_axis.get_yscale()) == ("log", "linear")
    key_marks = weight_axis.lines[1]  # the curve, then its keyframe dots
    assert list(key_marks.get_xdata()) == [0, 50]


def test_curves_use_log_axes_for_losses(sweeps):
    trial = sweeps[0] / "a0"
    fig = plot_curves(load_history(trial), load_evals(trial))
    weighted, terms, *scores = fig.axes
    assert (weighted.get_yscale(), terms.get_yscale()) == ("log", "log")
    assert [ax.get_title() for ax in scores] == [
        "hue_corr",
        "hue_order",
        "recon_mse",
        "anchor_error_red",
        "trustworthiness_k10",
    ]
    labels = [line.get_label() for line in weighted.lines if not line.get_label().startswith("_")]
    assert labels == ["weighted.recon", "weighted.reg-polar", "loss"]


# ---------------------------------------------------------------------------------------
# Populations: one member of a trial


@pytest.fixture(scope="module")
def gamma(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_population_sweep(tmp_path_factory.mktemp("populations") / "gamma")


def test_population_plots_draw_the_best_member_or_the_one_named(gamma, capsys, tmp_path):
    code, lines, err = plot(capsys, gamma, "--out", tmp_path)
    assert (code, lines, err) == (0, [str(tmp_path / "g1_0-latent.png")], "")  # g1 member 0: best hue_corr
    code, lines, _ = plot(capsys, gamma, "g0", "--out", tmp_path)
    assert lines == [str(tmp_path / "g0_0-latent.png")]  # g0's best member
    for kind in ("latent", "schedule", "curves"):
        code, lines, _ = plot(capsys, gamma, "g0", "--member", "3", "--kind", kind, "--out", tmp_path)
        assert (code, lines) == (0, [str(tmp_path / f"g0_3-{kind}.png")])
        assert_png(lines[0])
    code, lines, _ = plot(capsys, gamma / "g0", "--member", "2", "--out", tmp_path)  # a trial directory
    assert (code, lines) == (0, [str(tmp_path / "g0_2-latent.png")])


def test_member_choice_errors(gamma, capsys, tmp_path):
    code, _, err = plot(capsys, gamma, "g0", "--member", "9", "--out", tmp_path)
    assert (code, err) == (
        2,
        f"error: --member 9 is not a member of trial `g0` in `{gamma}`; members are numbered 0–3\n",
    )
    code, _, err = plot(capsys, gamma, "--member", "5", "--out", tmp_path)
    assert err == f"error: --member 5 is not a member of any trial in `{gamma}`; members are numbered 0–3\n"


def test_member_latents_schedule_and_curves(gamma):
    step, latents = load_latents(gamma / "g0", member=3)
    assert step == 99 and len(latents) == 13 and set(latents["member"]) == {3}  # member m: 10 + m points
    with pytest.raises(UserError, match="holds no points of member 4"):
        load_latents(gamma / "g0", member=4)
    raws = member_raws(read_trial_config(gamma / "g0"))
    table, _, _ = schedule_curves(raws[2])  # member 2: reg-polar × 2.0
    assert table["reg-polar"].iloc[0] == pytest.approx(0.012)
    fig = plot_curves(load_history(gamma / "g0", member=1), load_evals(gamma / "g0", member=1))
    assert [ax.get_title() for ax in fig.axes[2:]] == list(SCORES)  # no member/seed/diverged_at panels


def test_plots_go_under_the_results_dir_by_default(tmp_path, capsys):
    alpha, _ = make_results(tmp_path)
    code, lines, _ = plot(capsys, alpha, "--kind", "latent")
    assert (code, lines) == (0, [str(alpha / "plots" / "a2-latent.png")])
    code, lines, _ = plot(capsys, alpha / "a1", "--kind", "curves")  # a trial directory: its own plots/
    assert (code, lines) == (0, [str(alpha / "a1" / "plots" / "a1-curves.png")])
    # a plots/ directory in the sweep is not mistaken for a trial
    assert load_sweeps([alpha])[0]["trial_id"].tolist() == ["a0", "a1", "a2", "a3"]
