"""`compare --paired` (latent_sweep.scores.stats): pairs by seed and sampled values, wins/losses/ties,
median difference with its bootstrap interval worked out by hand, Wilcoxon p equal to scipy's;
bootstrap intervals of group means; quantile bins of a continuous --by."""

from __future__ import annotations

import io
import itertools
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.stats
import yaml
from fixtures_results import write_sweep

from latent_sweep.cli import main
from latent_sweep.scores.stats import bootstrap_ci, wilcoxon_p

SPACE = {"labels.mode": {"grid": ["soft", "hard"]}, "schedule.scale.reg-polar": {"choice": [1.0, 2.0]}}
# anchor_error_red (lower is better) of seed s: hard 1/4 + s/64; soft 1/16 less on seeds 0–7 and
# 1/32 more on seeds 8 and 9 (dyadic numbers: differences exact in floating point).
HARD_ANCHOR = [0.25 + s / 64 for s in range(10)]
SOFT_ANCHOR = [a - 1 / 16 if s < 8 else a + 1 / 32 for s, a in enumerate(HARD_ANCHOR)]
# hue_corr (higher is better): soft − hard is +, −, 0 by seed
HUE_DIFF = [0.01, 0.02, -0.01, 0.0, 0.03, 0.0, -0.02, 0.04, -0.005, 0.0]


def member(trial: str, mode: str, scale: float, seed: int, hue: float, anchor: float) -> dict:
    return {
        "trial_id": trial,
        "seed": seed,
        "status": "TERMINATED",
        "config.seed": seed,
        "config.labels.mode": mode,
        "config.schedule.scale.reg-polar": scale,
        "hue_corr": hue,
        "anchor_error_red": anchor,
    }


@pytest.fixture(scope="module")
def soft_hard(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Soft and hard over seeds 0–9 at scale 1, plus members no pairing may use: a soft seed 10
    (no hard partner) and a hard seed 3 at scale 2 (other config)."""
    rows = [member("h", "hard", 1.0, s, 0.9, HARD_ANCHOR[s]) for s in range(10)]
    rows += [member("s", "soft", 1.0, s, 0.9 + HUE_DIFF[s], SOFT_ANCHOR[s]) for s in range(10)]
    rows += [member("s", "soft", 1.0, 10, 0.5, 0.5), member("x", "hard", 2.0, 3, 0.1, 0.9)]
    return write_sweep(tmp_path_factory.mktemp("paired") / "soft_hard", rows, SPACE)


def compare(capsys: pytest.CaptureFixture[str], *argv: str | Path) -> tuple[int, str, str]:
    code = main(["compare", *(str(a) for a in argv)])
    out, err = capsys.readouterr()
    return code, out, err


def test_paired_counts_median_interval_and_p_by_hand(soft_hard, capsys):
    code, out, err = compare(
        capsys, soft_hard, "--by", "labels.mode", "--paired", "--scores", "anchor_error_red", "hue_corr",
        "--format", "csv",
    )  # fmt: skip
    assert (code, err) == (0, "")
    table = pd.read_csv(io.StringIO(out)).set_index("score")
    assert table["config.labels.mode"].tolist() == ["soft", "soft"]  # against hard, first in order
    anchor, hue = table.loc["anchor_error_red"], table.loc["hue_corr"]
    # Lower anchor error wins: soft is 1/16 closer on 8 seeds, 1/32 farther on 2.
    assert (anchor["pairs"], anchor["wins"], anchor["losses"], anchor["ties"]) == (10, 8, 2, 0)
    assert anchor["median_diff"] == -1 / 16
    # Resampling 10 differences, 8 of them a = −1/16 and 2 b = +1/32: with N a's drawn
    # (Binomial(10, 0.8)) the median is a when N ≥ 6 (P = 0.967), (a + b)/2 when N = 5
    # (P = 0.026), b when N ≤ 4 (P = 0.006); so the 2.5% point is a and the 97.5% point (a + b)/2.
    assert (anchor["ci_low"], anchor["ci_high"]) == pytest.approx((-1 / 16, (-1 / 16 + 1 / 32) / 2))
    differences = np.array(SOFT_ANCHOR) - np.array(HARD_ANCHOR)
    assert anchor["p_wilcoxon"] == scipy.stats.wilcoxon(differences).pvalue
    # Higher hue_corr wins; three seeds tie.
    assert (hue["pairs"], hue["wins"], hue["losses"], hue["ties"]) == (10, 4, 3, 3)
    assert hue["median_diff"] == pytest.approx(np.median(HUE_DIFF))
    hue_d = (0.9 + np.array(HUE_DIFF)) - 0.9
    assert hue["p_wilcoxon"] == scipy.stats.wilcoxon(hue_d).pvalue


def test_paired_table_says_what_was_paired_and_dropped(soft_hard, capsys):
    code, out, _ = compare(
        capsys, soft_hard, "--by", "labels.mode", "--paired", "--scores", "anchor_error_red",
        "--format", "markdown",
    )  # fmt: skip
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == (
        "| config.labels.mode | score | pairs | wins | losses | ties | median_diff | 95% CI | p (Wilcoxon) |"
    )
    p = format(scipy.stats.wilcoxon(np.array(SOFT_ANCHOR) - np.array(HARD_ANCHOR)).pvalue, ".4g")
    assert lines[2] == f"| soft | anchor_error_red | 10 | 8 | 2 | 0 | -0.0625 | [-0.0625, -0.01562] | {p} |"
    # 11 soft and 11 hard members, 10 pairs: the soft seed 10 and the hard seed 3 at scale 2 are left
    assert lines[-1] == "group − baseline; soft: 10 pairs, 2 members unpaired"
    code, out, _ = compare(capsys, soft_hard, "--by", "labels.mode", "--paired", "--scores", "hue_corr")
    assert "paired against config.labels.mode = hard by seed, config.schedule.scale.reg-polar" in out


def test_a_diverged_member_leaves_its_pair_out_of_that_score(tmp_path, capsys):
    rows = [member("h", "hard", 1.0, s, 0.9, HARD_ANCHOR[s]) for s in range(10)]
    rows += [member("s", "soft", 1.0, s, 0.95, np.nan if s == 4 else SOFT_ANCHOR[s]) for s in range(10)]
    root = write_sweep(tmp_path / "nan", rows, SPACE)
    code, out, _ = compare(capsys, root, "--by", "labels.mode", "--paired", "--format", "csv",
                           "--scores", "anchor_error_red", "hue_corr")  # fmt: skip
    table = pd.read_csv(io.StringIO(out)).set_index("score")
    assert code == 0
    assert table.loc["anchor_error_red", ["pairs", "wins", "losses"]].tolist() == [9, 7, 2]
    assert table.loc["hue_corr", ["pairs", "wins", "ties"]].tolist() == [10, 10, 0]


def test_each_group_against_the_baseline(tmp_path, capsys):
    rows = [
        member(f"t{m}", m, 1.0, s, 0.9 + i * 0.01 * s, 0.2) for i, m in enumerate("abc") for s in range(5)
    ]
    root = write_sweep(tmp_path / "three", rows, space={"labels.mode": {"grid": ["a", "b", "c"]}})
    code, out, _ = compare(capsys, root, "--by", "labels.mode", "--paired", "--scores", "hue_corr",
                           "--format", "csv")  # fmt: skip
    table = pd.read_csv(io.StringIO(out))
    assert code == 0
    assert table["config.labels.mode"].tolist() == ["b", "c"]  # each against a
    assert table["wins"].tolist() == [4, 4] and table["ties"].tolist() == [1, 1]  # seed 0 ties
    assert table["median_diff"].tolist() == pytest.approx([0.02, 0.04])
    code, out, _ = compare(capsys, root, "--by", "labels.mode", "--paired", "--scores", "hue_corr",
                           "--baseline", "c", "--format", "csv")  # fmt: skip
    table = pd.read_csv(io.StringIO(out))
    assert table["config.labels.mode"].tolist() == ["a", "b"]
    assert table["losses"].tolist() == [4, 4]
    assert table["median_diff"].tolist() == pytest.approx([-0.04, -0.02])


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["--by", "seed", "--paired"],
            "--paired pairs members that share a seed, so it cannot group --by seed; group by a config path",
        ),
        (
            ["--by", "labels.mode", "--paired", "--baseline", "medium"],
            "--baseline `medium` is not a group of `config.labels.mode`; groups: hard, soft",
        ),
        (
            ["--by", "labels.mode", "--baseline", "hard"],
            "--baseline names the group the others are paired with: it needs --paired",
        ),
        (
            ["--by", "labels.mode", "--paired", "--pareto", "hue_corr,anchor_error_red"],
            "--paired and --pareto answer different questions; give one of them",
        ),
        (
            ["--by", "labels.mode", "--bins", "3"],
            "--bins 3: `config.labels.mode` is not numeric (values such as `hard`), so it cannot be "
            "cut into quantile bins; leave out --bins to group by its values",
        ),
        (
            ["--by", "schedule.scale.reg-polar", "--bins", "-1"],
            "--bins must be 0 (one group per value) or a number of bins, but got -1",
        ),
    ],
)
def test_paired_and_bins_errors(soft_hard, capsys, argv, message):
    assert compare(capsys, soft_hard, *argv) == (2, "", f"error: {message}\n")


def test_one_group_cannot_be_paired(tmp_path, capsys):
    root = write_sweep(tmp_path / "one", [member("h", "hard", 1.0, s, 0.9, 0.2) for s in range(3)], SPACE)
    code, _, err = compare(capsys, root, "--by", "labels.mode", "--paired")
    assert (code, err) == (
        2,
        "error: --paired needs at least two groups of `config.labels.mode`, but found 1: hard\n",
    )


def test_bootstrap_interval_and_wilcoxon_edge_cases():
    assert bootstrap_ci([0.5]) == (pytest.approx(np.nan, nan_ok=True),) * 2
    assert bootstrap_ci([0.5, 0.5, np.nan]) == (0.5, 0.5)
    assert np.isnan(wilcoxon_p(np.zeros(4)))
    values = np.random.default_rng(3).normal(size=30)
    assert bootstrap_ci(values) == bootstrap_ci(values)  # seeded: the same interval every time
    low, high = bootstrap_ci(values)
    half = 1.96 * values.std(ddof=1) / np.sqrt(len(values))  # the normal interval, for scale
    assert low == pytest.approx(values.mean() - half, abs=0.1) and high == pytest.approx(
        values.mean() + half, abs=0.1
    )


def float_sweep(root: Path) -> Path:
    """24 configs with distinct float values of a scale, 2 seeds each; hue_corr = the scale."""
    scales = np.round(np.linspace(0.1, 2.4, 24), 3)
    rows = [member(f"t{i}", "hard", float(v), s, float(v), 0.2) for i, v in enumerate(scales) for s in (0, 1)]
    return write_sweep(root, rows, space={"schedule.scale.reg-polar": {"uniform": [0.1, 2.4]}})


def test_a_continuous_by_is_cut_into_quantile_bins(tmp_path, capsys):
    root = float_sweep(tmp_path / "float")
    by = "config.schedule.scale.reg-polar"
    code, out, _ = compare(capsys, root, "--by", "schedule.scale.reg-polar", "--scores", "hue_corr",
                           "--format", "markdown")  # fmt: skip
    assert code == 0
    lines = out.splitlines()
    assert lines[-1] == (
        f"`{by}` (24 distinct values, 5 quantile bins; --bins N for another number, --bins 0 for one "
        f"group per value)"
    )
    # Each bin [lo, hi] holds the members above the previous bin's hi, up to its own hi.
    cells = [line.strip("| ").split(" | ") for line in lines[2:7]]
    edges = [float(c[0].strip("[]").split(", ")[0]) for c in cells] + [2.4]
    values = np.round(np.linspace(0.1, 2.4, 24), 3)
    inside = [((values > lo) | (lo == 0.1)) & (values <= hi) for lo, hi in itertools.pairwise(edges)]
    assert [int(c[1]) for c in cells] == [2 * int(m.sum()) for m in inside]
    assert sum(int(c[1]) for c in cells) == 48
    assert [float(c[2].split(" ± ")[0]) for c in cells] == pytest.approx([values[m].mean() for m in inside])
    code, out, _ = compare(capsys, root, "--by", by, "--bins", "2", "--scores", "hue_corr", "--format", "csv")
    stats = pd.read_csv(io.StringIO(out))
    assert stats[by].tolist() == ["[0.1, 1.25]", "[1.25, 2.4]"] and stats["count"].tolist() == [24, 24]
    assert stats["hue_corr_mean"].tolist() == pytest.approx([0.65, 1.85])  # 0.1…1.2 and 1.3…2.4
    code, out, _ = compare(capsys, root, "--by", by, "--bins", "0", "--scores", "hue_corr", "--format", "csv")
    assert len(pd.read_csv(io.StringIO(out))) == 24


def test_success_is_a_count_with_an_exact_interval_and_diverged_members_fail(tmp_path, capsys):
    # soft beats 0.9 on seeds 0, 1, 4 and 7 of its eleven members, hard on none of its eleven
    rows = [member("h", "hard", 1.0, s, 0.9, HARD_ANCHOR[s]) for s in range(10)]
    rows += [member("s", "soft", 1.0, s, 0.9 + HUE_DIFF[s], SOFT_ANCHOR[s]) for s in range(10)]
    rows += [member("s", "soft", 1.0, 10, 0.5, 0.5), member("x", "hard", 2.0, 3, 0.1, 0.9)]
    for row in rows:
        row["diverged_at"] = None
    rows[-2].update(hue_corr=0.99, diverged_at=70)  # its last scores pass, but it diverged
    root = write_sweep(tmp_path / "success", rows, SPACE)
    code, out, _ = compare(capsys, root, "--by", "labels.mode", "--scores", "hue_corr",
                           "--success", "hue_corr > 0.9", "--format", "csv")  # fmt: skip
    table = pd.read_csv(io.StringIO(out)).set_index("config.labels.mode")
    assert code == 0
    assert table["count"].tolist() == [11, 11] and table["success_k"].tolist() == [0, 4]
    assert table.loc["soft", "success_mean"] == pytest.approx(4 / 11)
    # Clopper–Pearson by its definitions: 0/n reaches up to 1 − (α/2)^(1/n); k/n is bounded
    # by beta quantiles.
    assert table.loc["hard", ["success_ci_low", "success_ci_high"]].tolist() == pytest.approx(
        [0.0, 1 - 0.025 ** (1 / 11)]
    )
    assert table.loc["soft", ["success_ci_low", "success_ci_high"]].tolist() == pytest.approx(
        [scipy.stats.beta.ppf(0.025, 4, 8), scipy.stats.beta.ppf(0.975, 5, 7)]
    )
    code, out, _ = compare(capsys, root, "--by", "labels.mode", "--scores", "hue_corr",
                           "--success", "hue_corr > 0.9")  # fmt: skip
    assert "0/11 = 0 [0, 0.2849]" in out and "4/11 = 0.3636 [0.1093, 0.6921]" in out
    assert "success: hue_corr > 0.9 (a diverged member fails)" in out


def test_success_pairs_count_discordant_members_and_default_to_the_sweeps_own(tmp_path, capsys):
    rows = [member("h", "hard", 1.0, s, 0.9, HARD_ANCHOR[s]) for s in range(10)]
    rows += [member("s", "soft", 1.0, s, 0.9 + HUE_DIFF[s], SOFT_ANCHOR[s]) for s in range(10)]
    root = write_sweep(tmp_path / "own", rows, SPACE)
    spec = yaml.safe_load((root / "sweep.yaml").read_text())
    spec["sweep"]["success"] = "hue_corr > 0.9"
    (root / "sweep.yaml").write_text(yaml.safe_dump(spec))
    code, out, _ = compare(capsys, root, "--by", "labels.mode", "--paired", "--scores", "hue_corr",
                           "--format", "csv")  # fmt: skip
    table = pd.read_csv(io.StringIO(out)).set_index("score")
    assert code == 0
    assert table.loc["success", ["pairs", "wins", "losses", "ties"]].tolist() == [10, 4, 0, 6]
    # A sweep's own expression over scores these rows lack is not counted, and not an error.
    spec["sweep"]["success"] = "hue_order == 1"
    (root / "sweep.yaml").write_text(yaml.safe_dump(spec))
    code, out, _ = compare(capsys, root, "--by", "labels.mode", "--scores", "hue_corr", "--format", "csv")
    assert code == 0 and "success" not in out


def test_a_bad_success_expression_is_one_line(soft_hard, capsys):
    code, out, err = compare(capsys, soft_hard, "--by", "labels.mode", "--success", "hue_cor > 0.9")
    assert code == 2 and out == ""
    assert err.startswith(
        "error: --success names `hue_cor`, which is not a score of this sweep's trials; the expression "
        "is evaluated on each member's final scores (hue_corr, anchor_error_red); expected comparisons"
    )
    assert len(err.strip().splitlines()) == 1


def test_no_pairs_at_all_is_an_error_that_names_the_seeds(tmp_path, capsys):
    """One seed per config, drawn per trial: no member of one group shares a seed with the other's."""
    rows = [member(f"h{s}", "hard", 1.0, s, 0.9, 0.2) for s in range(4)]
    rows += [member(f"s{s}", "soft", 1.0, s, 0.9, 0.2) for s in range(10, 17)]
    root = write_sweep(tmp_path / "unpaired", rows, SPACE)
    code, out, err = compare(capsys, root, "--by", "labels.mode", "--paired", "--scores", "hue_corr")
    assert (code, out) == (2, "")
    assert err == (
        "error: --paired found no pairs: it pairs each member of a group of `config.labels.mode` with "
        "the member of the baseline `hard` that has the same seed and other sampled values, but no "
        "other group has a seed of the baseline's. Seeds by group: hard: 0, 1, 2, 3; soft: 10, 11, 12, "
        "13, 14, … (7 seeds). Pairs need each config run on the same seeds (e.g. `sweep.seeds: 4`); "
        "compare without --paired for each group's statistics\n"
    )


def test_no_pairs_when_members_with_a_seed_in_common_differ_in_other_sampled_values(tmp_path, capsys):
    rows = [member("h0", "hard", 1.0, 0, 0.9, 0.2), member("h1", "hard", 2.0, 1, 0.9, 0.2)]
    rows += [member("s0", "soft", 2.0, 0, 0.9, 0.2), member("s1", "soft", 1.0, 1, 0.9, 0.2)]
    root = write_sweep(tmp_path / "apart", rows, SPACE)
    code, _, err = compare(capsys, root, "--by", "labels.mode", "--paired")
    assert code == 2 and err.count("\n") == 1
    assert "but the members that share a seed differ in the other sampled values " in err
    assert "(config.schedule.scale.reg-polar). Seeds by group: hard: 0, 1; soft: 0, 1. Pairs need" in err


def test_two_sweeps_by_name_pair_by_seed_when_their_samples_are_each_one_value(tmp_path, capsys):
    """A searched config re-run on fresh seeds (one value per sampled path) against a baseline
    sweep that samples nothing: the values are what is compared, so members pair by seed alone."""
    best = [{**member("b", "hard", 0.65, s, 0.95, 0.2), "config.name": "best"} for s in range(100, 104)]
    base = [{**member("f", "hard", 1.0, s, 0.9, 0.3), "config.name": "fresh"} for s in range(100, 104)]
    for row in base:
        del row["config.schedule.scale.reg-polar"]  # the baseline sweep samples nothing
    write_sweep(tmp_path / "best", best, {"schedule.scale.reg-polar": {"grid": [0.65]}})
    write_sweep(tmp_path / "fresh", base, {})
    code, out, err = compare(
        capsys, tmp_path / "best", tmp_path / "fresh", "--by", "name", "--paired", "--baseline", "fresh",
        "--scores", "hue_corr", "--format", "csv",
    )  # fmt: skip
    assert (code, err) == (0, "")
    table = pd.read_csv(io.StringIO(out))
    assert table[["config.name", "pairs", "wins", "losses"]].values.tolist() == [["best", 4, 4, 0]]
