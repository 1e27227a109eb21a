"""A hand-written corpus of bad inputs, one class each, tried as a new user would: every one exits 2
with one paragraph naming what is wrong (the fragment given), no traceback, and no file changed.
Classes: schedules (order, duplicates, log space, lengths, YAML signs), YAML keys written twice,
latent indices and widths, projection inputs, sampled leaves, keyframe addresses, paths naming files,
seeds, --set."""

from __future__ import annotations

from pathlib import Path

import pytest
from cli_outcome import outcome

ROOT = Path(__file__).resolve().parent.parent
EX17 = ROOT / "sweeps" / "ex17.yaml"
PROJ = ROOT / "sweeps" / "projection_colors.yaml"
QUICK = ROOT / "sweeps" / "quick.yaml"
SHEET = "STEP,PHASE,lr,reg-polar\n0,Train,0.01,0.1\n"

# (id, files written into a fresh directory, argv after the command, fragment of the message).
# In files and argv, {d} is that directory; c.yaml is validated unless argv says otherwise.
CASES = [
    # Dopesheets
    ("step-decreases", {"s.csv": SHEET + "500,,0.01,\n300,,0.02,\n"}, None, "must not decrease"),
    ("same-step-two-keys", {"s.csv": SHEET + "500,,0.01,\n500,,0.02,\n"}, None, "one value per step"),
    ("relative-below-zero", {"s.csv": "STEP,lr\n0,0.01\n-20,0.5\n10,0.01\n"}, None, "one value per step"),
    ("step-1e12", {"s.csv": SHEET + "1000000000000,,0.01,\n"}, None, "at most 10,000,000 steps"),
    ("relative-1e12", {"s.csv": SHEET + "+1000000000000,,0.01,\n"}, None, "at most 10,000,000 steps"),
    ("negative-log-value", {"s.csv": "STEP,lr:log\n0,0.01\n100,-0.5\n"}, None, "-0.5"),
    ("nan-value", {"s.csv": SHEET + "100,,nan,\n"}, None, "finite number"),
    ("unknown-space", {"s.csv": "STEP,lr:cubic\n0,0.01\n"}, None, "lr:cubic"),
    ("no-step-column", {"s.csv": "lr\n0.01\n"}, None, "needs a STEP column"),
    ("empty-sheet", {"s.csv": ""}, None, "the schedule is empty"),
    ("extra-cells", {"s.csv": SHEET + "100,,0.01,0.1,7\n"}, None, "cells"),
    ("fraction-without-anchor", {"s.csv": SHEET + "+0.5,,0.02,\n"}, None, "counts from the anchor below"),
    ("no-lr", {"s.csv": "STEP,reg-polar\n0,0.1\n"}, None, "lr"),
    ("binary-csv", {"s.csv": "\x00\x01\x02"}, None, "s.csv"),
    ("yaml-plus-step", {"c.yaml": "base: {ex17}\nschedule:\n  keyframes:\n    - {STEP: 0, lr: 0.01}\n"
                        "    - {STEP: +50, lr: 0.02}\n"}, None, "quote it"),
    ("yaml-key-twice", {"c.yaml": "base: {ex17}\nseed: 1\nseed: 2\n"}, None,
     "`seed` appears twice (lines 2 and 3)"),
    ("csv-and-keyframes", {"c.yaml": "base: {ex17}\nschedule: {csv: s.csv, keyframes: []}\n", "s.csv": SHEET},
     None, "give either `csv` or `keyframes`"),
    ("missing-csv", {"c.yaml": "base: {ex17}\nschedule: {csv: nope.csv}\n"}, None, "nope.csv"),
    # Latent indices, channels, widths
    ("plane-outside-latent-dim", {"c.yaml": "base: {ex17}\nmodel: {latent_dim: 2}\n"}, None, "latent_dim"),
    ("hue-plane-one-dim-twice", {"c.yaml": "base: {ex17}\nscores: {hue_plane: [1, 1]}\n"}, None, "distinct"),
    ("hue-plane-negative", {"c.yaml": "base: {ex17}\nscores: {hue_plane: [-1, 0]}\n"}, None, "hue_plane"),
    ("zero-hidden-width", {"c.yaml": "base: {ex17}\nmodel: {hidden: [0]}\n"}, None, "hidden"),
    ("latent-dim-1", {"c.yaml": "base: {ex17}\nmodel: {latent_dim: 1}\n"}, None, "latent_dim"),
    ("negative-seed", {"c.yaml": "base: {ex17}\nseed: -3\n"}, None, "seed"),
    ("huge-seed", {"c.yaml": "base: {ex17}\nseed: 100000000000000000000\n"}, None, "seed"),
    ("unknown-key", {"c.yaml": "base: {ex17}\nmodle: {}\n"}, None, "modle"),
    ("experiment-is-a-list", {"c.yaml": "base: {ex17}\nexperiment: []\n"}, None, "must be one of"),
    ("base-cycle", {"c.yaml": "base: c.yaml\n"}, None, "cycle"),
    ("not-a-mapping", {"c.yaml": "- 1\n- 2\n"}, None, "mapping"),
    ("bad-yaml", {"c.yaml": "a: [1, 2\n"}, None, "not valid YAML"),
    # Projection inputs
    ("projection-missing-file", {"c.yaml": "base: {proj}\ndata: {source: file, path: nope.csv}\n"}, None,
     "nope.csv"),
    ("projection-k-too-large", {"c.yaml": "base: {proj}\nknn: {k_neighbors: 100000}\n"}, None, "k_neighbors"),
    ("projection-trial-not-a-trial", {"c.yaml": "base: {proj}\ndata: {source: trial, path: .}\n"}, None,
     "data.path"),
    ("projection-file-bad-columns", {"c.yaml": "base: {proj}\ndata: {source: file, path: x.csv}\n",
                                     "x.csv": "a,b\nx,y\n"}, None, "x.csv"),
    # Phases
    ("unknown-phase", {"c.yaml": "base: {ex17}\ndata: {phases: {Nope: {fraction: 0.5}}}\n"}, None, "Nope"),
    # Sweep blocks
    ("uniform-on-int-field", {"c.yaml": "base: {ex17}\nsweep: {metric: hue_corr, mode: max, space: "
                              "{model.latent_dim: {uniform: [2, 6]}}}\n"}, None, "latent_dim"),
    ("uniform-on-step", {"c.yaml": "base: {ex17}\nsweep: {metric: hue_corr, mode: max, space: "
                         "{'schedule.keyframes[@5000].STEP': {uniform: [3000, 7000]}}}\n"}, None, "STEP"),
    ("space-path-missing", {"c.yaml": "base: {ex17}\nsweep: {metric: hue_corr, mode: max, space: "
                            "{model.nope: {choice: [1, 2]}}}\n"}, None, "model.nope"),
    ("keyframe-step-missing", {"c.yaml": "base: {ex17}\nsweep: {metric: hue_corr, mode: max, space: "
                               "{'schedule.keyframes[@4000].lr': {choice: [0.1]}}}\n"}, None, "STEP 4000"),
    ("keyframe-index-moved", {"c.yaml": "base: {ex17}\nsweep: {metric: hue_corr, mode: max, space: "
                              "{'schedule.keyframes[4@5000].lr': {choice: [0.1]}}}\n"}, None, "not STEP"),
    ("unknown-metric", {"c.yaml": "base: {ex17}\nsweep: {metric: hue_corrr, mode: max}\n"}, None, "corrr"),
    ("loguniform-negative", {"c.yaml": "base: {ex17}\nsweep: {metric: hue_corr, mode: max, space: "
                             "{schedule.scale.lr: {loguniform: [-1, 1]}}}\n"}, None, "loguniform"),
    ("too-many-members", {"c.yaml": "base: {ex17}\nsweep: {metric: hue_corr, mode: max, seeds: 70000}\n"},
     None, "at most 65536"),
    ("success-operator", {"c.yaml": "base: {ex17}\nsweep: {metric: hue_corr, mode: max, "
                          "success: 'hue_corr >> 1'}\n"}, None, "uses `RShift`"),
    ("max-failures-negative", {"c.yaml": "base: {ex17}\nsweep: {metric: hue_corr, mode: max, "
                               "max_failures: -1}\n"}, None, "max_failures"),
    # --set
    ("set-no-equals", {}, ["validate", "{ex17}", "--set", "seed"], "--set expects PATH=VALUE"),
    ("set-bad-yaml", {}, ["validate", "{ex17}", "--set", "seed=[\n"], "not valid YAML"),
    ("set-malformed-path", {}, ["validate", "{ex17}", "--set", "a..b=1"], "malformed"),
    ("set-list-index-missing", {}, ["validate", "{ex17}", "--set", "terms[9].power=2"], "terms[9]"),
    # Paths naming files or nothing
    ("validate-missing-file", {}, ["validate", "{d}/nope.yaml"], "nope.yaml"),
    ("validate-a-directory", {}, ["validate", "{d}"], "cannot read"),
    ("train-out-is-a-file", {"f": "x"}, ["train", "{ex17}", "--steps", "1", "--out", "{d}/f"], "{d}/f"),
    ("run-storage-is-a-file", {"f": "x"}, ["run", "{quick}", "--storage", "{d}/f"], "{d}/f is a file"),
    ("run-no-sweep-block", {}, ["run", "{ex17}", "--storage", "{d}/r"], "has no `sweep:` block"),
    ("run-name-escapes", {}, ["run", "{quick}", "--name", "../x", "--storage", "{d}/r"], "plain directory"),
    ("train-out-under-a-file", {"f": "x"}, ["train", "{ex17}", "--steps", "1", "--out", "{d}/f/x"],
     "{d}/f is a file"),
    ("train-seeds-bad", {}, ["train", "{ex17}", "--seeds", "3-1"], "--seeds"),
    ("table-not-a-sweep", {}, ["table", "{d}"], "no trials found"),
    ("table-garbage-parquet", {"trials.parquet": "PAR1 no"}, ["table", "{d}"], "not a readable Parquet"),
    ("plot-missing-dir", {}, ["plot", "{d}/nope"], "nope"),
    ("compare-missing-dir", {}, ["compare", "{d}/nope", "--by", "seed"], "nope"),
]  # fmt: skip


@pytest.mark.parametrize(("files", "argv", "fragment"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_one_paragraph(tmp_path, files, argv, fragment):
    def fill(text: str) -> str:
        for key, value in {"{d}": tmp_path, "{ex17}": EX17, "{proj}": PROJ, "{quick}": QUICK}.items():
            text = text.replace(key, str(value))
        return text

    for name, text in files.items():
        (tmp_path / name).write_text(fill(text))
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    argv = [fill(a) for a in argv] if argv else ["validate", str(tmp_path / "c.yaml")]
    if argv[0] == "validate" and not files.get("c.yaml") and "s.csv" in files and len(argv) == 2:
        (tmp_path / "c.yaml").write_text(f"base: {EX17}\nschedule: {{csv: s.csv}}\n")
        before[tmp_path / "c.yaml"] = (tmp_path / "c.yaml").read_bytes()
    result, err = outcome(argv, label=argv)
    assert result == "error", f"{argv} was accepted"
    assert fill(fragment) in err, err
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before
