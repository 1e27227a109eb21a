"""The parametric projection experiment: real short runs, resume, every input source and its errors."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
import yaml
from conftest import assert_crash_resume_matches
from sklearn import datasets
from sklearn.manifold import trustworthiness
from sklearn.neighbors import NearestNeighbors

from latent_sweep.engine.registry import run_trial
from latent_sweep.engine.session import LocalSession
from latent_sweep.errors import UserError
from latent_sweep.experiments import colors, proj_data
from latent_sweep.experiments.projection import knn_graph
from latent_sweep.spec import config, paths
from latent_sweep.spec.checks import load_spec
from latent_sweep.store.history import read_table

ROOT = Path(__file__).resolve().parent.parent

BASE = {
    "experiment": "projection",
    "seed": 3,
    "steps": 200,
    "eval_every": 100,
    "checkpoint_every": 100,
    "schedule": {
        "keyframes": [
            {"STEP": 0, "PHASE": "exaggerate", "lr": 3e-3, "exaggeration": 4},
            {"STEP": 60, "PHASE": "refine", "exaggeration": 1},
        ]
    },
    "data": {"source": "swiss_roll", "n_samples": 400, "seed": 3},
    "model": {"hidden": [32, 32]},
    "loss": {"batch_size": 64},
    "scores": {"ks": [5, 10]},
}


@pytest.fixture(autouse=True)
def one_thread():
    """Two threads on two shared cores spin against each other; one is many times faster here."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def trial(**changes) -> dict:
    raw = copy.deepcopy(BASE)
    for path, value in changes.items():
        paths.set_path(raw, path.replace("__", "."), value)
    return raw


def test_swiss_roll_run_writes_the_layout_and_beats_a_random_projection(tmp_path):
    raw = trial(steps=300, eval_every=150, checkpoint_every=150, data__n_samples=600)
    final = run_trial(raw, LocalSession(tmp_path)).iloc[0]
    hist = read_table(tmp_path / "history")
    evals = read_table(tmp_path / "evals")
    assert hist["step"].tolist() == list(range(300))
    assert {"phase", "lr", "exaggeration", "term.attraction", "weighted.repulsion", "loss"} <= set(hist)
    row = hist.iloc[10]  # exaggerated: the weighted attraction is λ times the raw one
    assert row["exaggeration"] > 1
    assert row["weighted.attraction"] == pytest.approx(row["exaggeration"] * row["term.attraction"], rel=1e-5)
    # No `repulsion` property in the schedule: weight 1.
    assert (hist["weighted.repulsion"] == hist["term.repulsion"]).all()
    assert evals["step"].tolist() == [150, 300]
    names = {f"{s}_k{k}" for s in ("trustworthiness", "continuity", "knn_recall") for k in (5, 10)}
    assert set(final.index) == {"member", "seed", "diverged_at", *names}
    snap = pd.read_parquet(tmp_path / "latents" / "step-000000300.parquet")
    assert list(snap.columns) == ["trial_id", "step", "member", "seed", "z0", "z1", "r", "g", "b"]
    assert len(snap) == 600

    # The reported score is sklearn's trustworthiness of the snapshot (the oracle).
    x, _ = datasets.make_swiss_roll(600, noise=0.0, random_state=3)
    z = snap[["z0", "z1"]].to_numpy(np.float64)
    assert final["trustworthiness_k10"] == pytest.approx(trustworthiness(x, z, n_neighbors=10), abs=1e-6)
    random = trustworthiness(x, x @ np.random.default_rng(0).normal(size=(3, 2)), n_neighbors=10)
    assert final["trustworthiness_k10"] > random + 0.08
    assert final["trustworthiness_k10"] > 0.93


def test_resume_after_a_crash_equals_an_uninterrupted_run(tmp_path):
    assert_crash_resume_matches(trial(data__n_samples=300), tmp_path)


def test_parquet_with_labels_scores_knn_accuracy(tmp_path):
    rng = np.random.default_rng(0)
    centers = rng.normal(scale=6.0, size=(3, 8))
    y = np.repeat([0, 1, 2], 60)
    x = centers[y] + rng.normal(size=(180, 8))
    df = pd.DataFrame(x, columns=[f"f{i}" for i in range(8)]).assign(kind=np.array(["a", "b", "c"])[y])
    df.to_parquet(tmp_path / "blobs.parquet")
    raw = trial(
        steps=100, data={"source": "file", "path": str(tmp_path / "blobs.parquet"), "label_column": "kind"}
    )
    final = run_trial(raw, LocalSession(tmp_path / "t")).iloc[0]
    assert final["knn_accuracy_k10"] > 0.95
    snap = pd.read_parquet(tmp_path / "t" / "latents" / "step-000000100.parquet")
    assert snap["label"].tolist() == y.tolist()


def test_color_cube_scores_the_hue_wheel(tmp_path):
    raw = trial(steps=100, data={"source": "color_cube", "cube": "rgb", "grid": 6})
    final = run_trial(raw, LocalSession(tmp_path)).iloc[0]
    assert {"hue_corr", "hue_order", "hue_winding"} <= set(final.index)
    assert 0 <= final["hue_corr"] <= 1


def write_latents(trial_dir: Path, step: int, z: np.ndarray, rgb: np.ndarray) -> None:
    cols = {f"z{i}": z[:, i] for i in range(z.shape[1])} | {c: rgb[:, i] for i, c in enumerate("rgb")}
    (trial_dir / "latents").mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(cols), trial_dir / "latents" / f"step-{step:09d}.parquet")


def test_trial_source_reads_the_latest_snapshot(tmp_path):
    grid = colors.rgb_cube(5)
    write_latents(tmp_path, 10, np.zeros((3, 2)), np.zeros((3, 3)))
    write_latents(tmp_path, 200, np.c_[grid.rgb, grid.rgb[:, :1] ** 2], grid.rgb)
    data = proj_data.load(proj_data.ProjDataConfig(source="trial", path=str(tmp_path)))
    assert data.features.shape == (125, 4) and data.is_color
    np.testing.assert_allclose(data.rgb, grid.rgb, atol=1e-7)
    final = run_trial(
        trial(steps=20, data={"source": "trial", "path": str(tmp_path)}), LocalSession(tmp_path / "p")
    )
    assert "hue_winding" in final


# --- errors ---------------------------------------------------------------------------------


def error_of(raw: dict, tmp_path: Path) -> str:
    with pytest.raises(UserError) as info:
        run_trial(raw, LocalSession(tmp_path / "t"), source="p.yaml")
    return str(info.value)


def load_error(tmp_path: Path, **data) -> str:
    with pytest.raises(UserError) as info:
        proj_data.load(proj_data.ProjDataConfig(**data))
    return str(info.value)


def test_config_errors(tmp_path):
    assert error_of(trial(knn__k_neighbors=0), tmp_path) == (
        "p.yaml: `knn.k_neighbors` input should be greater than or equal to 1, but got 0"
    )
    assert error_of(trial(scores__temperature=0), tmp_path) == (
        "p.yaml: `scores.temperature` input should be greater than 0, but got 0"
    )
    assert error_of(trial(scores__ks=[5, 0]), tmp_path) == (
        "p.yaml: `scores.ks[1]` input should be greater than or equal to 1, but got 0"
    )
    assert error_of(trial(data={"source": "file"}), tmp_path) == (
        "p.yaml: `data` source `file` needs `path`, but got {'source': 'file'}"
    )


def test_neighborhoods_must_be_below_half_the_points(tmp_path):
    assert error_of(trial(data__n_samples=20, knn__k_neighbors=10), tmp_path) == (
        "`knn.k_neighbors` must be < n/2 (n = 20 input points), but got 10"
    )
    assert error_of(trial(data__n_samples=20, knn__k_neighbors=5), tmp_path) == (
        "`scores.ks` must be < n/2 (n = 20 scored points), but got 10"
    )
    assert error_of(trial(data__n_samples=100, scores__eval_samples=12, knn__k_neighbors=5), tmp_path) == (
        "`scores.ks` must be < n/2 (n = 12 scored points), but got 10"
    )


def test_npy_errors(tmp_path):
    nan = np.ones((5, 3))
    nan[2, 1] = np.nan
    np.save(tmp_path / "nan.npy", nan)
    np.save(tmp_path / "flat.npy", np.ones(5))
    np.save(tmp_path / "text.npy", np.array([["a", "b"], ["c", "d"]]))
    (tmp_path / "junk.npy").write_text("not an array")
    f = tmp_path
    assert load_error(f, source="file", path=str(f / "nan.npy")) == (
        f"`data.path`: {f}/nan.npy features must be finite, but got 1 NaN or infinite values "
        "(the first at row 2, column 1)"
    )
    assert load_error(f, source="file", path=str(f / "flat.npy")) == (
        f"`data.path`: {f}/flat.npy must hold a 2-D numeric array (points × features), but got "
        "shape (5,) of dtype float64"
    )
    assert load_error(f, source="file", path=str(f / "text.npy")) == (
        f"`data.path`: {f}/text.npy must hold a 2-D numeric array (points × features), but got "
        "shape (2, 2) of dtype <U1"
    )
    assert load_error(f, source="file", path=str(f / "junk.npy")).startswith(
        f"`data.path`: {f}/junk.npy is not a readable .npy array ("
    )
    assert load_error(f, source="file", path=str(f / "none.npy")) == (
        f"`data.path`: {f}/none.npy does not exist; expected a .npy or .parquet feature file"
    )
    assert load_error(f, source="file", path=str(f / "nan.npy"), label_column="y") == (
        f"`data.label_column`: {f}/nan.npy is a .npy array, which has no columns; put features and "
        "labels in a .parquet file, or leave out the label column, but got 'y'"
    )
    (f / "x.csv").write_text("1,2\n")
    assert load_error(f, source="file", path=str(f / "x.csv")) == (
        f"`data.path`: expected a .npy or .parquet feature file, but got {f}/x.csv"
    )


def test_parquet_errors(tmp_path):
    f = tmp_path
    pd.DataFrame({"a": [1.0, 2.0], "b": [0.5, np.inf], "name": ["x", "y"]}).to_parquet(f / "d.parquet")
    (f / "junk.parquet").write_bytes(b"PAR1 not really")
    assert load_error(f, source="file", path=str(f / "d.parquet"), label_column="y") == (
        f"`data.label_column`: {f}/d.parquet has no column 'y'; its columns are ['a', 'b', 'name']"
    )
    assert load_error(f, source="file", path=str(f / "d.parquet"), feature_columns=["a", "name"]) == (
        f"`data.feature_columns`: {f}/d.parquet must have numeric feature columns, but got "
        "non-numeric ['name']"
    )
    assert load_error(f, source="file", path=str(f / "d.parquet")) == (
        f"`data.path`: {f}/d.parquet features must be finite, but got 1 NaN or infinite values "
        "(the first at row 1, column 1)"
    )
    pd.DataFrame({"a": [1.0, 2.0], "y": [1, None]}).to_parquet(f / "gap.parquet")
    assert load_error(f, source="file", path=str(f / "gap.parquet"), label_column="y") == (
        f"`data.label_column`: {f}/gap.parquet column 'y' must have a label on every row, "
        "but 1 rows have none"
    )
    assert load_error(f, source="file", path=str(f / "junk.parquet")).startswith(
        f"`data.path`: {f}/junk.parquet is not a readable Parquet file ("
    )
    data = proj_data.load(
        proj_data.ProjDataConfig(
            source="file", path=str(f / "d.parquet"), feature_columns=["a"], label_column="name"
        )
    )
    assert data.features.tolist() == [[1.0], [2.0]] and data.labels.tolist() == [0, 1]


def test_trial_directory_errors(tmp_path):
    f = tmp_path
    (f / "empty").mkdir()
    assert load_error(f, source="trial", path=str(f / "empty")) == (
        f"`data.path`: {f}/empty has no latent snapshots (latents/step-*.parquet); expected a finished "
        "autoencoder trial directory"
    )
    assert load_error(f, source="trial", path=str(f / "gone")) == (
        f"`data.path`: {f}/gone does not exist; expected a finished autoencoder trial directory"
    )
    write_latents(f / "nocolor", 5, np.ones((4, 2)), np.ones((4, 3)))
    pq.write_table(pa.table({"z0": [1.0]}), f / "nocolor" / "latents" / "step-000000009.parquet")
    assert load_error(f, source="trial", path=str(f / "nocolor")) == (
        f"`data.path`: {f}/nocolor/latents/step-000000009.parquet must have latent columns z0, z1, … "
        "and colors r, g, b, but its columns are ['z0']"
    )


def test_knn_graph_matches_sklearn():
    x = np.random.default_rng(1).normal(size=(300, 7))
    for metric in ("euclidean", "cosine"):
        ours = knn_graph(torch.tensor(x), 6, metric).numpy()
        theirs = NearestNeighbors(n_neighbors=7, metric=metric).fit(x).kneighbors(x)[1][:, 1:]
        np.testing.assert_array_equal(ours, theirs)


def test_sweep_files_validate():
    digits = load_spec(config.load_file(ROOT / "sweeps" / "projection_digits.yaml"), "projection_digits.yaml")
    assert digits.cfg.experiment == "projection" and digits.block.metric == "trustworthiness_k10"
    hues = load_spec(config.load_file(ROOT / "sweeps" / "projection_colors.yaml"), "projection_colors.yaml")
    assert hues.cfg.data.source == "color_cube" and hues.block.metric == "hue_corr"


def test_data_path_is_relative_to_the_config_file(tmp_path):
    sub = tmp_path / "inputs"
    sub.mkdir()
    np.save(sub / "x.npy", np.random.default_rng(0).normal(size=(50, 3)))
    raw = trial(steps=10, data={"source": "file", "path": "x.npy"})
    (sub / "p.yaml").write_text(yaml.safe_dump(raw))
    loaded = config.load_file(sub / "p.yaml")
    assert loaded["data"]["path"] == str(sub / "x.npy")
    assert proj_data.load(config.validate(loaded).data).features.shape == (50, 3)
    assert issubclass(UserError, ValueError)  # library callers may catch it the usual way


def test_validate_reads_the_inputs_a_trial_would_read(tmp_path, capsys):
    from latent_sweep.cli import main

    config_file = tmp_path / "p.yaml"
    config_file.write_text(yaml.safe_dump(trial(data={"source": "file", "path": "missing.npy"})))
    assert main(["validate", str(config_file)]) == 2
    assert capsys.readouterr().err == (
        f"error: {config_file}: `data.path`: {tmp_path / 'missing.npy'} does not exist; expected a .npy or "
        ".parquet feature file\n"
    )
    config_file.write_text(yaml.safe_dump(trial(data={"source": "swiss_roll", "n_samples": 20})))
    assert main(["validate", str(config_file)]) == 2
    assert capsys.readouterr().err == (
        f"error: {config_file}: `knn.k_neighbors` must be < n/2 (n = 20 input points), but got 15\n"
    )
