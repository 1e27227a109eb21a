from __future__ import annotations

import copy
import shutil
from pathlib import Path

import pytest

from latent_sweep.cli import main
from latent_sweep.errors import UserError
from latent_sweep.spec import config, paths

ROOT = Path(__file__).resolve().parent.parent


def test_paths_get_and_set():
    raw = {"schedule": {"keyframes": [{"STEP": 0, "reg-polar": 1.0}]}, "labels": {}}
    assert paths.get_path(raw, "schedule.keyframes[0].reg-polar") == 1.0
    paths.set_path(raw, "schedule.keyframes[0].reg-polar", 0.5)
    paths.set_path(raw, "schedule.scale.reg-polar", 2.0)  # missing mappings are created
    assert raw["schedule"]["keyframes"][0]["reg-polar"] == 0.5
    assert raw["schedule"]["scale"] == {"reg-polar": 2.0}
    with pytest.raises(UserError, match=r"`schedule.keyframes\[3\]` does not exist \(list size 1\)"):
        paths.set_path(raw, "schedule.keyframes[3].lr", 1)


def test_overrides_parse_yaml_values():
    assert config.parse_overrides(["labels.mode=soft", "model.hidden=[8, 8]", "seed=3"]) == [
        ("labels.mode", "soft"),
        ("model.hidden", [8, 8]),
        ("seed", 3),
    ]
    with pytest.raises(UserError, match="--set expects PATH=VALUE"):
        config.parse_overrides(["seed"])


def test_load_file_inlines_the_schedule_csv():
    raw = config.load_file(ROOT / "sweeps" / "ex17.yaml")
    keyframes = raw["schedule"]["keyframes"]
    assert "csv" not in raw["schedule"]
    assert keyframes[0]["STEP"] == 0 and keyframes[1]["STEP"] == "+10"
    cfg = config.validate(config.split_sweep(raw)[0])
    assert [t.name for t in cfg.terms] == [
        "reg-polar",
        "reg-separate",
        "reg-planar",
        "reg-norm-v",
        "reg-norm",
    ]


# Each bad input: (what to change in ex17.yaml or its CSV, the exact one-paragraph message).
BAD_INPUTS = {
    "unknown_interp": (
        "csv",
        "STEP,PHASE,lr,reg-x:linear:cubic\n0,A,0.1,1\n10,,0.1,2\n",
        "error: {csv}, row 1, `reg-x:linear:cubic`: the interpolation in header 'reg-x:linear:cubic' "
        "must be minjerk, linear or step, but got 'cubic'.",
    ),
    "non_numeric": (
        "csv",
        "STEP,PHASE,lr\n0,A,0.1\n10,,abc\n",
        "error: {csv}, row 3, `lr`: a keyframe value must be a finite number (an empty cell means no key), "
        "but got 'abc'.",
    ),
    "unresolvable_step": (
        "csv",
        "STEP,PHASE,lr\n0,A,0.1\n+0.5,,0.2\n",
        "error: {csv}, row 3, `STEP`: STEP '+0.5' counts from the anchor below it (the nearest row with a "
        "plain step number), but there is none.",
    ),
    "duplicate_column": (
        "csv",
        "STEP,PHASE,lr,lr\n0,A,0.1,0.1\n",
        "error: {csv}, row 1, `lr`: column 'lr' defines 'lr' again (already defined by column 'lr'); "
        "each property may have one column.",
    ),
    "missing_lr": (
        "csv",
        "STEP,PHASE,reg-norm\n0,A,0.1\n10,,0.2\n",
        "error: {csv}: the schedule must define 'lr' (a column per property), but its properties are: "
        "reg-norm.",
    ),
    "unknown_term_kind": (
        ("kind: separate, power", "kind: repel, power"),
        None,
        "error: {yaml}: `terms[1]` has unknown kind `repel`; expected one of 'unitarity', 'planarity', "
        "'pin', 'separate', 'separate_euclidean', 'anchor'",
    ),
    "unknown_label": (
        ("affinities: {red: 1.0}", "affinities: {blue: 1.0}"),
        None,
        "error: {yaml}: terms[0] (`reg-polar`) has an affinity for unknown label `blue`; "
        "labels are: red, vibrant",
    ),
    "unknown_key": (
        ("eval_every: 500", "eval_every: 500\nlerning_rate: 3"),
        None,
        "error: {yaml}: `lerning_rate` is not a known key",
    ),
    "wrong_type": (
        ("batch_size: 64", "batch_size: many"),
        None,
        "error: {yaml}: `data.batch_size` input should be a valid integer, unable to parse string as an "
        "integer, but got 'many'",
    ),
    "plane_outside_latent_dim": (
        ("plane: [0, 1]", "plane: [0, 4]"),
        None,
        "error: {yaml}: `terms[2].plane` must list distinct latent dimensions in 0…3 (latent_dim = 4), "
        "but got [0, 4]",
    ),
    "degenerate_hue_plane": (
        ("eval_grid: 8 ", "eval_grid: 8\nscores: {hue_plane: [1, 1]}\n#"),
        None,
        "error: {yaml}: `scores.hue_plane` must list distinct latent dimensions in 0…3 (latent_dim = 4), "
        "but got [1, 1]",
    ),
    "zero_width": (
        ("hidden: [16]", "hidden: [0]"),
        None,
        "error: {yaml}: `model.hidden[0]` input should be greater than or equal to 1, but got 0",
    ),
    "unknown_phase": (
        ("eval_grid: 8 ", "eval_grid: 8\n  phases: {Warmup: hues}\n#"),
        None,
        "error: {yaml}: `data.phases` names phase `Warmup`, which the schedule does not have: ['Train']",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
@pytest.mark.parametrize("command", ["validate", "train"])
def test_bad_input_is_one_paragraph_naming_the_place(case, command, tmp_path, capsys):
    change, csv_text, expected = BAD_INPUTS[case]
    text = (ROOT / "sweeps" / "ex17.yaml").read_text()
    csv = tmp_path / "sheet.csv"
    if change == "csv":
        csv.write_text(csv_text)
        text = text.replace("../schedules/ex-1.7-dopesheet.csv", "sheet.csv")
    else:
        shutil.copy(ROOT / "schedules" / "ex-1.7-dopesheet.csv", tmp_path / "sheet.csv")
        text = text.replace("../schedules/ex-1.7-dopesheet.csv", "sheet.csv").replace(*change)
    sweep = tmp_path / "bad.yaml"
    sweep.write_text(text)
    args = [command, str(sweep)] + (["--out", str(tmp_path / "out")] if command == "train" else [])
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.strip() == expected.format(csv=csv, yaml=sweep)
    assert "Traceback" not in err
    assert not (tmp_path / "out" / "history").exists()


def test_missing_file_and_bad_yaml(tmp_path, capsys):
    assert main(["validate", str(tmp_path / "nope.yaml")]) == 2
    assert capsys.readouterr().err.startswith(f"error: {tmp_path / 'nope.yaml'}: cannot read the file")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    assert main(["validate", str(bad)]) == 2
    assert capsys.readouterr().err.startswith(f"error: {bad}: not valid YAML:")


def test_base_merges_mappings_replaces_the_rest_and_drops_the_base_sweep(tmp_path):
    (tmp_path / "parent.yaml").write_text(
        "name: parent\nseed: 1\nschedule:\n  keyframes: [{STEP: 0, lr: 0.1}, {STEP: 9}]\n  scale: {lr: 2.0}\n"
        "data: {batch_size: 32, eval_grid: 4}\nsweep: {metric: hue_corr}\n"
    )
    (tmp_path / "child.yaml").write_text(
        "base: parent.yaml\nname: child\ndata: {batch_size: 16}\n"
        "schedule:\n  keyframes: [{STEP: 0, lr: 0.5}]\n"
    )
    raw = config.load_file(tmp_path / "child.yaml")
    assert raw["name"] == "child" and raw["seed"] == 1
    assert raw["data"] == {"batch_size": 16, "eval_grid": 4}  # mappings merge key by key
    assert raw["schedule"] == {"keyframes": [{"STEP": 0, "lr": 0.5}], "scale": {"lr": 2.0}}  # lists replace
    assert "sweep" not in raw and "base" not in raw


def test_the_seed_sweeps_are_their_experiments(ex17_raw):
    trial, sweep = config.split_sweep(config.load_file(ROOT / "sweeps" / "ex17_seeds.yaml"))
    assert {k: v for k, v in trial.items() if k != "name"} == {
        k: v for k, v in ex17_raw.items() if k != "name"
    }
    assert sweep["seeds"] == 20


def test_base_errors(tmp_path):
    (tmp_path / "a.yaml").write_text("base: b.yaml\n")
    (tmp_path / "b.yaml").write_text("base: a.yaml\n")
    with pytest.raises(UserError) as err:
        config.load_file(tmp_path / "a.yaml")
    assert (
        str(err.value)
        == f"{tmp_path / 'b.yaml'}, `base`: `a.yaml` leads back to this file; bases cannot form a cycle"
    )
    (tmp_path / "c.yaml").write_text("base: missing.yaml\n")
    with pytest.raises(UserError) as err:
        config.load_file(tmp_path / "c.yaml")
    assert str(err.value) == f"{tmp_path / 'c.yaml'}, `base`: no config file at {tmp_path / 'missing.yaml'}"


def test_an_unquoted_plus_step_in_yaml_is_refused(tmp_path, capsys):
    sweep = tmp_path / "s.yaml"
    sweep.write_text(
        "schedule:\n  keyframes:\n    - {STEP: 0, lr: 0.01}\n    - {STEP: +50, lr: 0.02}\n    - {STEP: 100}\n"
    )
    assert main(["validate", str(sweep)]) == 2
    assert capsys.readouterr().err == (
        f"error: {sweep}, line 4: `+50` reads in YAML as the number 50, not as a relative STEP; quote it "
        "('+50') for a step counted from the anchor above, or drop the '+'\n"
    )
    sweep.write_text(sweep.read_text().replace("+50", "'+50'"))
    assert main(["validate", str(sweep)]) == 0


DUPLICATES = {
    # id: (file text, the key's path, how often and where)
    "top-level": (
        "base: {ex17}\nseed: 1\nsweep: {metric: hue_corr, mode: max}\nseed: 2\n",
        "seed",
        "twice (lines 2 and 4)",
    ),
    "nested": (
        "base: {ex17}\nsweep:\n  metric: hue_corr\n  mode: max\n  space:\n    seed: {choice: [1, 2]}\n"
        "    model.latent_dim: {choice: [3, 4]}\n    seed: {choice: [3]}\n",
        "sweep.space.seed",
        "twice (lines 6 and 8)",
    ),
    "in-a-list": (
        "base: {ex17}\nsweep: {metric: hue_corr, mode: max}\nterms:\n  - {name: a, kind: pin, name: b}\n",
        "terms[0].name",
        "twice (line 4)",
    ),
    "three-times": (
        "base: {ex17}\nseed: 1\nseed: 2\nsweep: {metric: hue_corr, mode: max}\nseed: 3\n",
        "seed",
        "3 times (lines 2, 3 and 5)",
    ),
}


@pytest.mark.parametrize("command", ["validate", "run"])
@pytest.mark.parametrize("case", sorted(DUPLICATES))
def test_a_key_written_twice_is_refused(case, command, tmp_path, capsys):
    text, key, where = DUPLICATES[case]
    sweep = tmp_path / "s.yaml"
    sweep.write_text(text.replace("{ex17}", str(ROOT / "sweeps" / "ex17.yaml")))
    storage = tmp_path / "results"
    assert main([command, str(sweep), *(["--storage", str(storage)] if command == "run" else [])]) == 2
    assert capsys.readouterr().err == (
        f"error: {sweep}: key `{key}` appears {where}; YAML keeps only the last, so one of them "
        "is a mistake: remove or rename one\n"
    )
    assert not storage.exists()  # refused before Ray or the results directory


def test_a_key_written_twice_in_a_base_or_a_set_value_is_refused(tmp_path, capsys):
    (tmp_path / "b.yaml").write_text("name: b\nseed: 1\nname: c\n")
    (tmp_path / "c.yaml").write_text("base: b.yaml\n")
    assert main(["validate", str(tmp_path / "c.yaml")]) == 2
    assert capsys.readouterr().err.startswith(
        f"error: {tmp_path / 'b.yaml'}: key `name` appears twice (lines 1 and 3)"
    )
    sweep = ROOT / "sweeps" / "quick.yaml"
    assert (
        main(["validate", str(sweep), "--set", "sweep.space={seed: {choice: [1]}, seed: {choice: [2]}}"]) == 2
    )
    assert capsys.readouterr().err == (
        "error: --set sweep.space: key `sweep.space.seed` appears twice (line 1 of the value "
        "`{seed: {choice: [1]}, seed: {choice: [2]}}`); YAML keeps only the last, so one of them is a "
        "mistake: remove or rename one\n"
    )


def test_merge_keys_and_aliases_are_not_duplicates(tmp_path):
    (tmp_path / "m.yaml").write_text(
        "defaults: &d {seed: 1, steps: 10}\nmine:\n  <<: *d\n  seed: 2\nagain: *d\n"
    )
    raw = config.read_yaml(tmp_path / "m.yaml")
    assert raw["mine"] == {"seed": 2, "steps": 10} and raw["again"] == {"seed": 1, "steps": 10}


def test_the_shipped_sweeps_validate():
    for sweep in sorted((ROOT / "sweeps").glob("*.yaml")):
        assert main(["validate", str(sweep)]) == 0, sweep


SHEET = [
    {"STEP": 0, "lr": 1e-8, "reg-polar": 0.0},
    {"STEP": "+10", "lr": 0.01},
    {"STEP": 5000, "reg-polar": 6e-3},
    {"STEP": "+0.5", "reg-polar": 2e-4},
    {"STEP": "-10", "lr": 0.01},
    {"STEP": 10000, "lr": 0.005},
]


def test_a_keyframe_is_addressed_by_its_step():
    raw = {"schedule": {"keyframes": copy.deepcopy(SHEET)}}
    assert paths.get_path(raw, "schedule.keyframes[@5000].reg-polar") == 6e-3
    assert paths.get_path(raw, "schedule.keyframes[@5000+0.5].reg-polar") == 2e-4  # from the anchor above
    assert paths.get_path(raw, "schedule.keyframes[@10000-10].lr") == 0.01  # from the anchor below
    assert paths.resolve_path(raw, "schedule.keyframes[@0+10].lr") == "schedule.keyframes[1].lr"
    assert paths.resolve_path(raw, "schedule.scale.lr") == "schedule.scale.lr"  # nothing to resolve
    # Both paths name the keyframe written at STEP 5000, whichever is set first.
    paths.set_paths(
        raw, {"schedule.keyframes[@5000].STEP": 6000, "schedule.keyframes[@5000].reg-polar": 0.01}
    )
    assert raw["schedule"]["keyframes"][2] == {"STEP": 6000, "reg-polar": 0.01}


def test_a_row_inserted_above_does_not_move_a_step_address():
    raw = {"schedule": {"keyframes": copy.deepcopy(SHEET)}}
    raw["schedule"]["keyframes"].insert(1, {"STEP": 2000, "lr": 0.02})
    assert paths.resolve_path(raw, "schedule.keyframes[@5000].reg-polar") == "schedule.keyframes[3].reg-polar"
    # An index that records its STEP: an error once the row there is another keyframe.
    assert paths.get_path({"schedule": {"keyframes": SHEET}}, "schedule.keyframes[2@5000].reg-polar") == 6e-3
    with pytest.raises(UserError) as err:
        paths.get_path(raw, "schedule.keyframes[2@5000].reg-polar")
    assert str(err.value) == (
        "config path `schedule.keyframes[2@5000].reg-polar`: keyframe 2 has STEP 2000+10, not STEP 5000 as "
        "the path records: the schedule changed since the path was written (a row added or removed above "
        "it?); the keyframe with STEP 5000 is now [3]; address the keyframe by its STEP alone (`[@STEP]`) or "
        "fix the index"
    )


@pytest.mark.parametrize(
    ("path", "message"),
    [
        (
            "schedule.keyframes[@4000].lr",
            "config path `schedule.keyframes[@4000].lr`: no keyframe of `schedule.keyframes` has STEP 4000; "
            "its STEPs are 0, 0+10, 5000, 5000+0.5, 10000-10, 10000 (a relative STEP is written after the "
            "anchor it counts from: `@5000+0.5`)",
        ),
        (
            "schedule.keyframes[9@5000].lr",
            "config path `schedule.keyframes[9@5000].lr`: there is no keyframe 9 (list size 6), not STEP "
            "5000 as the path records: the schedule changed since the path was written (a row added or "
            "removed above it?); the keyframe with STEP 5000 is now [2]; address the keyframe by its STEP "
            "alone (`[@STEP]`) or fix the index",
        ),
        ("schedule[@5000].lr", "config path `schedule[@5000].lr`: `schedule[@5000]` addresses keyframes by "
         "STEP, but is not a list"),
        ("schedule.keyframes[].lr", "config path `schedule.keyframes[].lr`: `[]` names no element; expected "
         "`[3]` or `[@5000]`"),
    ],
)  # fmt: skip
def test_bad_step_addresses(path, message):
    with pytest.raises(UserError) as err:
        paths.get_path({"schedule": {"keyframes": SHEET}}, path)
    assert str(err.value) == message


def test_two_keyframes_at_one_step_need_the_index_too():
    sheet = [{"STEP": 0, "lr": 1.0}, {"STEP": 0, "reg-polar": 0.1}, {"STEP": 100, "lr": 0.5}]
    raw = {"schedule": {"keyframes": sheet}}
    with pytest.raises(UserError, match=r"keyframes 0, 1 all have STEP 0; address one of them as `\[0@0\]`"):
        paths.get_path(raw, "schedule.keyframes[@0].lr")
    assert paths.get_path(raw, "schedule.keyframes[1@0].reg-polar") == 0.1


def test_sweeps_address_keyframes_by_step_in_validate_and_trials(tmp_path, capsys):
    # The quick sweep's `schedule.keyframes[@5000]` survives a row inserted into its schedule.
    sweep = tmp_path / "quick.yaml"
    text = (
        (ROOT / "sweeps" / "quick.yaml")
        .read_text()
        .replace("base: ex17.yaml", f"base: {ROOT}/sweeps/ex17.yaml")
    )
    sweep.write_text(text)
    assert main(["validate", str(sweep)]) == 0
    csv = (ROOT / "schedules" / "ex-1.7-dopesheet.csv").read_text().splitlines()
    csv.insert(2, "1000,,,0.01,,,,,")  # an extra anchor above STEP 5000
    (tmp_path / "sheet.csv").write_text("\n".join(csv) + "\n")
    sweep.write_text(text + "schedule: {csv: sheet.csv}\n")
    assert main(["validate", str(sweep)]) == 0
    from latent_sweep.spec.checks import load_spec
    from latent_sweep.spec.sweep_block import trial_config

    spec = load_spec(config.load_file(sweep), sweep)
    raw = trial_config(spec.base, {"params": {"schedule.keyframes[@5000].reg-polar": 0.02}})
    moved = raw["schedule"]["keyframes"][6]
    assert moved["STEP"] == 5000 and moved["reg-polar"] == 0.02
    # The same sweep by index, recording the STEP meant: the inserted row makes it an error.
    sweep.write_text(sweep.read_text().replace("keyframes[@5000]", "keyframes[5@5000]"))
    capsys.readouterr()
    assert main(["validate", str(sweep)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(
        f"error: {sweep}: `sweep.space.schedule.keyframes[5@5000].reg-polar` does not name a value in the "
        "base config: keyframe 5 has STEP 1000+0.7, not STEP 5000 as the path records"
    )
    assert err.count("\n") == 1
