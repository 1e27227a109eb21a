"""Dopesheet parsing, STEP resolution and timeline realization."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from latent_sweep.errors import UserError
from latent_sweep.spec.schedule import Dopesheet
from latent_sweep.spec.timeline import Phase, Timeline

SCHEDULES = Path(__file__).resolve().parent.parent / "schedules"
EX15 = SCHEDULES / "ex-1.5-dopesheet.csv"
EX17 = SCHEDULES / "ex-1.7-dopesheet.csv"


def load(tmp_path: Path, text: str) -> Dopesheet:
    path = tmp_path / "s.csv"
    path.write_text(text)
    return Dopesheet.from_csv(path)


def error(tmp_path: Path, text: str) -> str:
    with pytest.raises(UserError) as info:
        load(tmp_path, text)
    return str(info.value)


def test_ex17_resolves_and_realizes_as_spec_says() -> None:
    sheet = Dopesheet.from_csv(EX17)
    assert sheet.resolved_steps == [0, 10, 500, 2500, 3500, 5000, 7500, 10000]
    assert sheet.props == ["lr", "reg-separate", "reg-planar", "reg-norm", "reg-norm-v", "reg-polar"]
    timeline = Timeline(sheet)
    assert len(timeline) == 10001
    polar = timeline.values("reg-polar")
    assert np.all(polar[:5001] == 0.006)
    assert np.all(polar[7500:] == 0.0002)
    assert 0.0002 < polar[6250] < 0.006
    assert timeline.values("lr")[10] == 0.01
    assert timeline.values("lr")[0] == 1e-8
    assert timeline.phases == [Phase("Train", 0, 10000)]
    assert timeline.actions == {}


def test_ex15_resolves_with_anchor_action_and_phases() -> None:
    timeline = Timeline(Dopesheet.from_csv(EX15))
    assert timeline.dopesheet.resolved_steps == [
        0,
        1200,
        1800,
        3000,
        3350,
        6500,
        8600,
        10000,
        10500,
        13000,
        20000,
    ]
    assert len(timeline) == 20001
    assert timeline.actions == {3000: ["anchor"]}
    assert timeline.phases == [
        Phase("Primary & secondary", 0, 2999),
        Phase("All hues", 3000, 9999),
        Phase("Full color space", 10000, 20000),
    ]
    table = timeline.table()
    assert list(table.columns[:2]) == ["STEP", "PHASE"]
    assert table["STEP"].tolist() == list(range(20001))
    assert table.loc[2999, "PHASE"] == "Primary & secondary"
    assert table.loc[3000, "PHASE"] == "All hues"
    # lr is first keyed at 3350 (0.01) and holds that value before it.
    assert np.all(table["lr"].to_numpy()[:3351] == 0.01)
    assert table.loc[20000, "lr"] == 0.001


def test_each_interpolation_between_two_keys(tmp_path: Path) -> None:
    sheet = load(tmp_path, "STEP,a,b::linear,c::step,d::minjerk\n0,0,0,0,0\n10,1,1,1,1\n")
    timeline = Timeline(sheet)
    tau = np.arange(11) / 10
    minjerk = 10 * tau**3 - 15 * tau**4 + 6 * tau**5
    np.testing.assert_allclose(timeline.values("a"), minjerk, rtol=0, atol=1e-14)
    np.testing.assert_allclose(timeline.values("d"), minjerk, rtol=0, atol=1e-14)
    np.testing.assert_allclose(timeline.values("b"), tau, rtol=0, atol=1e-14)
    assert timeline.values("c").tolist() == [0.0] * 10 + [1.0]
    assert timeline.values("a")[2] == pytest.approx(0.05792)
    assert {p: sheet.properties[p].interp for p in sheet.props} == {
        "a": "minjerk",
        "b": "linear",
        "c": "step",
        "d": "minjerk",
    }


def test_log_space_interpolates_the_logarithm_and_clamps(tmp_path: Path) -> None:
    sheet = load(tmp_path, "STEP,lr:log:linear,z:log:linear,m:linear:linear\n0,1e-4,0,1\n10,1e-2,1,3\n")
    timeline = Timeline(sheet)
    assert sheet.properties["lr"].space == "log"
    assert sheet.properties["m"].space == "linear"
    assert timeline.values("lr")[5] == pytest.approx(1e-3, rel=1e-12)
    assert timeline.values("lr")[10] == 1e-2
    # 0 clamps to 1e-10 in log space, so the midpoint is the geometric mean 1e-5.
    assert timeline.values("z")[0] == 1e-10
    assert timeline.values("z")[5] == pytest.approx(1e-5, rel=1e-12)
    assert timeline.values("m")[5] == 2.0


def test_holds_first_value_before_and_last_after(tmp_path: Path) -> None:
    timeline = Timeline(load(tmp_path, "STEP,x::linear,y\n0,,7\n5,2,\n10,4,\n20,,\n"))
    x = timeline.values("x")
    assert np.all(x[:6] == 2.0) and x[7] == pytest.approx(2.8) and np.all(x[10:] == 4.0)
    assert np.all(timeline.values("y") == 7.0)
    assert len(timeline) == 21


def test_same_step_keys_must_agree(tmp_path: Path) -> None:
    timeline = Timeline(load(tmp_path, "STEP,x::step,y\n0,1,0\n10,2,\n10,2,5\n20,4,\n"))
    assert timeline.values("x")[10] == 2.0 and timeline.values("y")[10] == 5.0
    csv = tmp_path / "s.csv"
    assert error(tmp_path, "STEP,x::step\n0,1\n10,2\n10,3\n20,4\n") == (
        f"{csv}, row 4, `x::step`: `x` is keyed twice at step 10, as 2 and 3; a property takes one "
        "value per step (a relative STEP that resolves onto another key's step counts too)."
    )
    # -15 from the anchor at 10 clamps to step 0, where x is already keyed.
    assert error(tmp_path, "STEP,x\n0,1\n-15,2\n10,3\n").startswith(
        f"{csv}, row 3, `x`: `x` is keyed twice at step 0, as 1 and 2;"
    )


def test_error_anchors_out_of_order_negative_log_values_and_absurd_lengths(tmp_path: Path) -> None:
    csv = tmp_path / "s.csv"
    assert error(tmp_path, "STEP,x\n0,1\n5000,2\n3000,3\n") == (
        f"{csv}, row 4, `STEP`: STEP 3000 comes after STEP 5000 further up; absolute STEPs must not "
        "decrease down the sheet."
    )
    assert error(tmp_path, "STEP,x:log\n0,1\n10,-0.5\n") == (
        f"{csv}, row 3, `x:log`: `x` is in log space, so its keys must be ≥ 0 (0 stands for 1e-10), "
        "but got -0.5."
    )
    assert Timeline(load(tmp_path, "STEP,x:log\n0,0\n10,1\n")).values("x")[0] == 1e-10
    assert error(tmp_path, "STEP,x\n0,1\n1000000000000,2\n") == (
        f"{csv}, row 3, `STEP`: STEP resolves to 1,000,000,000,000, but a schedule may be at most "
        "10,000,000 steps long (it is realized as one value per step and property)."
    )


def test_phases_start_end_and_steps_before_the_first_phase(tmp_path: Path) -> None:
    text = "STEP,PHASE,x\n0,,1\n5,warm,\n8,warm,\n10,main,\n15,skip,\n15,cool,\n20,,\n"
    timeline = Timeline(load(tmp_path, text))
    # Repeating the current name continues the phase; at a shared step the later row wins.
    assert timeline.phases == [Phase("warm", 5, 9), Phase("main", 10, 14), Phase("cool", 15, 20)]
    assert timeline.phase_index.tolist() == [-1] * 5 + [0] * 5 + [1] * 5 + [2] * 6
    phase = timeline.table()["PHASE"]
    assert pd.isna(phase[4]) and phase[5] == "warm" and phase[20] == "cool"


def test_actions_are_comma_separated_and_collected_per_step(tmp_path: Path) -> None:
    text = 'STEP,ACTION,x\n0,,1\n5," anchor , snap ,",\n5,plot,\n+0.5,,\n10,,2\n'
    timeline = Timeline(load(tmp_path, text))
    assert timeline.actions == {5: ["anchor", "snap", "plot"]}


def test_relative_steps_count_from_anchors_in_both_directions(tmp_path: Path) -> None:
    text = "STEP,x\n0,1\n+10,\n+20,\n-10,\n100,\n+0.25,\n-0.25,\n-0.5,\n200,2\n"
    sheet = load(tmp_path, text)
    assert sheet.resolved_steps == [0, 10, 20, 90, 100, 125, 150, 175, 200]
    assert [r["STEP"] for r in sheet.to_records()] == [
        0,
        "+10",
        "+20",
        "-10",
        100,
        "+0.25",
        "-0.25",
        "-0.5",
        200,
    ]


def test_rows_are_sorted_and_negative_results_clamp_to_zero(tmp_path: Path) -> None:
    sheet = load(tmp_path, "STEP,x::linear\n-50,5\n20,1\n+150,3\n100,2\n")
    assert sheet.resolved_steps == [0, 20, 100, 170]
    x = Timeline(sheet).values("x")
    assert x[0] == 5.0 and x[20] == 1.0 and x[100] == 2.0 and x[170] == 3.0


def test_fraction_rounds_to_the_nearest_step(tmp_path: Path) -> None:
    assert load(tmp_path, "STEP,x\n0,1\n+0.333,\n-0.333,\n10,\n").resolved_steps == [0, 3, 7, 10]


def test_from_records_matches_from_csv_and_round_trips() -> None:
    csv_sheet = Dopesheet.from_csv(EX17)
    records = [
        {"STEP": 0, "PHASE": "Train", "lr": 1e-8, "reg-separate": 0.001, "reg-planar": 0.02},
        {"STEP": "+10", "lr": "0.01", "reg-norm": None},
        {"STEP": "+0.1", "reg-separate": 0.02, "ACTION": ""},
        {"STEP": "+0.5", "reg-separate": 0.01, "reg-planar": 0.08},
        {"STEP": "+0.7"},
        {"STEP": 5000, "lr": 0.01, "reg-separate": 0.001, "reg-planar": 0.02, "reg-norm": 0.2},
        {"STEP": "+0.5", "reg-polar": 2e-4},
        {"STEP": 10000.0, "lr": 0.005},
    ]
    # Header order decides property order, so declare the remaining columns on row 0.
    records[0] |= {"reg-norm": 0.01, "reg-norm-v": 0.02, "reg-polar": float("nan")}
    records[5]["reg-polar"] = 6e-3
    rec_sheet = Dopesheet.from_records(records, source="sweeps/ex17.yaml")
    assert rec_sheet.source == "sweeps/ex17.yaml"
    assert rec_sheet.props == csv_sheet.props
    assert rec_sheet.to_records() == csv_sheet.to_records()
    pd.testing.assert_frame_equal(Timeline(rec_sheet).table(), Timeline(csv_sheet).table())
    again = Dopesheet.from_records(csv_sheet.to_records())
    pd.testing.assert_frame_equal(Timeline(again).table(), Timeline(csv_sheet).table())


def test_records_accept_action_lists() -> None:
    sheet = Dopesheet.from_records([{"STEP": 0, "ACTION": ["anchor", " plot "], "x": 1}])
    assert Timeline(sheet).actions == {0: ["anchor", "plot"]}
    assert sheet.to_records() == [{"STEP": 0, "ACTION": "anchor, plot", "x": 1.0}]


def test_scale_multiplies_whole_curves() -> None:
    sheet = Dopesheet.from_csv(EX17)
    plain, scaled = Timeline(sheet), Timeline(sheet, scale={"reg-polar": 0.5})
    np.testing.assert_array_equal(scaled.values("reg-polar"), plain.values("reg-polar") * 0.5)
    np.testing.assert_array_equal(scaled.values("lr"), plain.values("lr"))


def test_values_are_read_only() -> None:
    timeline = Timeline(Dopesheet.from_csv(EX17))
    with pytest.raises(ValueError):
        timeline.values("lr")[0] = 1.0


def test_require_passes_when_present() -> None:
    Dopesheet.from_csv(EX17).require(["lr", "reg-polar"])


# -- errors: one paragraph naming file, row (file line; header = row 1) and column ------------------


def test_error_unknown_interp(tmp_path: Path) -> None:
    assert error(tmp_path, "STEP,x::cubic\n0,1\n") == (
        f"{tmp_path / 's.csv'}, row 1, `x::cubic`: the interpolation in header 'x::cubic' must be "
        "minjerk, linear or step, but got 'cubic'."
    )


def test_error_unknown_space(tmp_path: Path) -> None:
    assert error(tmp_path, "STEP,x:exp\n0,1\n") == (
        f"{tmp_path / 's.csv'}, row 1, `x:exp`: the space in header 'x:exp' must be linear or log, "
        "but got 'exp'."
    )


def test_error_malformed_header(tmp_path: Path) -> None:
    assert error(tmp_path, "STEP,x:log:linear:extra\n0,1\n") == (
        f"{tmp_path / 's.csv'}, row 1, `x:log:linear:extra`: a property header must be name, "
        "name:space, name::interp or name:space:interp, but got 'x:log:linear:extra'."
    )


def test_error_non_numeric_value(tmp_path: Path) -> None:
    assert error(tmp_path, "STEP,PHASE,lr\n0,a,0.1\n10,,fast\n") == (
        f"{tmp_path / 's.csv'}, row 3, `lr`: a keyframe value must be a finite number "
        "(an empty cell means no key), but got 'fast'."
    )


def test_error_non_numeric_value_in_records() -> None:
    with pytest.raises(UserError) as info:
        Dopesheet.from_records([{"STEP": 0, "lr": 0.1}, {"STEP": 5, "lr": True}], source="a.yaml")
    assert str(info.value) == (
        "a.yaml, `schedule.keyframes[1].lr`: a keyframe value must be a finite number "
        "(an empty cell means no key), but got True."
    )


def test_error_plus_offset_without_previous_anchor(tmp_path: Path) -> None:
    assert error(tmp_path, "STEP,x\n+10,1\n20,2\n") == (
        f"{tmp_path / 's.csv'}, row 2, `STEP`: STEP '+10' counts from the anchor above it "
        "(the nearest row with a plain step number), but there is none."
    )


def test_error_minus_offset_without_next_anchor(tmp_path: Path) -> None:
    assert error(tmp_path, "STEP,x\n0,1\n-10,2\n") == (
        f"{tmp_path / 's.csv'}, row 3, `STEP`: STEP '-10' counts from the anchor below it "
        "(the nearest row with a plain step number), but there is none."
    )


def test_error_fraction_without_next_anchor(tmp_path: Path) -> None:
    assert error(tmp_path, "STEP,x\n0,1\n\n+0.5,2\n") == (
        f"{tmp_path / 's.csv'}, row 4, `STEP`: STEP '+0.5' counts from the anchor below it "
        "(the nearest row with a plain step number), but there is none."
    )


STEP_FORMS = (
    "a non-negative integer anchor, +N/-N (N ≥ 1 steps after the previous or before the next anchor) "
    "or +F/-F (0 < F < 1, a fraction of the interval between the surrounding anchors)"
)


@pytest.mark.parametrize("cell", ["1.5", "+0", "+1.0", "x", ""])
def test_error_malformed_step(tmp_path: Path, cell: str) -> None:
    assert error(tmp_path, f"STEP,x\n0,1\n{cell},2\n") == (
        f"{tmp_path / 's.csv'}, row 3, `STEP`: STEP must be {STEP_FORMS}, but got '{cell}'."
    )


@pytest.mark.parametrize("step", [-10, 2.5])
def test_error_negative_or_fractional_anchor_in_records(step: float) -> None:
    with pytest.raises(UserError) as info:
        Dopesheet.from_records([{"STEP": 0, "x": 1}, {"STEP": step, "x": 2}], path_prefix="s.keys")
    assert str(info.value) == (
        f"`s.keys[1].STEP`: STEP must be {STEP_FORMS} (in YAML, quote relative steps, "
        f"e.g. '+0.5' or '-10'), but got {step!r}."
    )


def test_error_duplicate_column(tmp_path: Path) -> None:
    assert error(tmp_path, "STEP,lr,lr\n0,1,2\n") == (
        f"{tmp_path / 's.csv'}, row 1, `lr`: column 'lr' defines 'lr' again (already defined by "
        "column 'lr'); each property may have one column."
    )


def test_error_headers_that_reduce_to_the_same_property() -> None:
    with pytest.raises(UserError) as info:
        Dopesheet.from_records([{"STEP": 0, "lr": 1}, {"STEP": 5, "lr:log": 2}], source="a.yaml")
    assert str(info.value) == (
        "a.yaml, `schedule.keyframes[1].lr:log`: column 'lr:log' defines 'lr' again (already "
        "defined by column 'lr'); each property may have one column."
    )


def test_error_property_named_like_a_reserved_column(tmp_path: Path) -> None:
    assert "column 'STEP:log' defines 'STEP' again" in error(tmp_path, "STEP,STEP:log\n0,1\n")


def test_error_empty_file(tmp_path: Path) -> None:
    assert error(tmp_path, "\n\n") == (
        f"{tmp_path / 's.csv'}: the schedule is empty; expected a header row and keyframe rows."
    )


def test_error_header_only(tmp_path: Path) -> None:
    assert error(tmp_path, "STEP,lr\n") == (
        f"{tmp_path / 's.csv'}: the schedule has no keyframe rows; expected at least one."
    )


def test_error_empty_records() -> None:
    with pytest.raises(UserError) as info:
        Dopesheet.from_records([], source="a.yaml")
    assert str(info.value) == "a.yaml: the schedule has no keyframe rows; expected at least one."


def test_error_no_step_column(tmp_path: Path) -> None:
    assert error(tmp_path, "step,lr\n0,1\n") == (
        f"{tmp_path / 's.csv'}: the schedule needs a STEP column, but its columns are: step, lr."
    )


def test_error_row_longer_than_header(tmp_path: Path) -> None:
    assert error(tmp_path, "STEP,lr\n0,1,2\n") == (
        f"{tmp_path / 's.csv'}, row 2: the row has 3 cells, but the header has 2 columns."
    )


def test_error_property_without_keys(tmp_path: Path) -> None:
    assert error(tmp_path, "STEP,lr,x\n0,1,\n") == (
        f"{tmp_path / 's.csv'}, row 1, `x`: the property column has no keyframe values; "
        "expected at least one number."
    )


def test_error_record_not_a_mapping() -> None:
    with pytest.raises(UserError) as info:
        Dopesheet.from_records([{"STEP": 0, "x": 1}, 5], source="a.yaml")
    assert str(info.value) == (
        "a.yaml, `schedule.keyframes[1]`: each keyframe must be a mapping of column → value, but got 5."
    )


def test_error_missing_file(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"nope\.csv: cannot read the schedule file"):
        Dopesheet.from_csv(tmp_path / "nope.csv")


def test_error_require_names_the_file(tmp_path: Path) -> None:
    sheet = load(tmp_path, "STEP,reg-polar\n0,1\n")
    with pytest.raises(UserError) as info:
        sheet.require(["lr"])
    assert str(info.value) == (
        f"{tmp_path / 's.csv'}: the schedule must define 'lr' (a column per property), "
        "but its properties are: reg-polar."
    )


def test_error_scale_of_unknown_property(tmp_path: Path) -> None:
    sheet = load(tmp_path, "STEP,lr,reg-polar\n0,1,2\n")
    with pytest.raises(UserError) as info:
        Timeline(sheet, scale={"reg-polr": 0.5})
    assert str(info.value) == (
        f"{tmp_path / 's.csv'}: cannot scale 'reg-polr': expected a schedule property, one of: lr, reg-polar."
    )
