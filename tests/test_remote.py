"""Results read from URIs: `table`, `compare`, `importance`, `plot` and the `load_*` functions over file://
URIs give what they give over the local paths (the URI mirrored through pyarrow.fs, refreshed
when storage changes, checkpoints left out); a sweep run into a local S3-compatible server
(moto) reads back with `table` and `plot`."""

from __future__ import annotations

import io
import socket
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pyarrow.fs
import pyarrow.parquet as pq
import pytest
from fixtures_results import make_results
from sweep_runs import DEADLINE_S, tiny_sweep

from latent_sweep.analysis.results import load_evals, load_trials
from latent_sweep.cli import main
from latent_sweep.store.history import read_table
from latent_sweep.store.remote import CACHE_ENV, local_dir

SCALE = {"schedule.scale.reg-polar": {"uniform": [0.5, 2.0]}}


@pytest.fixture
def sweeps(tmp_path, monkeypatch) -> tuple[Path, Path]:
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    return make_results(tmp_path / "storage")


def run(capsys: pytest.CaptureFixture[str], *argv: str | Path) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize(
    "argv",
    [
        ["table", "{alpha}", "{beta}", "--format", "csv"],
        ["compare", "{alpha}", "--by", "labels.mode", "--pareto", "hue_corr:max,recon_mse:min"],
        ["importance", "{alpha}", "--score", "hue_corr", "--format", "csv"],
    ],
)
def test_table_compare_and_importance_read_file_uris_as_local_paths(sweeps, capsys, argv):
    alpha, beta = sweeps
    local = run(capsys, *(a.format(alpha=alpha, beta=beta) for a in argv))
    uris = run(capsys, *(a.format(alpha=alpha.as_uri(), beta=beta.as_uri()) for a in argv))
    assert local[0] == 0 and local[1]
    assert uris == local


def test_a_uri_is_named_as_given_not_by_its_mirror(sweeps, capsys, tmp_path):
    alpha, _ = sweeps
    code, out, _ = run(capsys, "table", alpha.as_uri())
    assert code == 0
    assert out.splitlines()[0].strip() == alpha.as_uri()  # the table's title
    assert str(tmp_path / "cache") not in out


def test_plot_reads_a_file_uri(sweeps, capsys, tmp_path, monkeypatch):
    alpha, _ = sweeps
    monkeypatch.chdir(tmp_path)  # a URI's plots go to ./plots/ by default, not into the mirror
    assert run(capsys, "plot", alpha.as_uri()) == (0, f"{Path('plots') / 'a2-latent.png'}\n", "")
    assert run(capsys, "plot", alpha, "--out", tmp_path / "local")[0] == 0
    drawn = [(tmp_path / d / "a2-latent.png").read_bytes() for d in ("plots", "local")]
    assert drawn[0] == drawn[1]


def test_the_mirror_follows_storage_and_leaves_checkpoints_out(sweeps):
    alpha, _ = sweeps
    (alpha / "a0" / "checkpoint_000000").mkdir()
    (alpha / "a0" / "checkpoint_000000" / "state.pt").write_bytes(b"x" * 1000)
    mirror = local_dir(alpha.as_uri())
    assert mirror.name == "alpha" and not (mirror / "a0" / "checkpoint_000000").exists()
    assert load_evals(f"{alpha.as_uri()}/a1").equals(load_evals(alpha / "a1"))

    # Storage changes (a resumed trial rewrites its parts, the table is rewritten): the next read follows.
    first = sorted(p.name for p in (alpha / "a1" / "evals").iterdir())[0]
    (alpha / "a1" / "evals" / first).unlink()
    trials = load_trials(alpha)
    trials.iloc[:1].to_parquet(alpha / "trials.parquet")  # one row: the other trials come from their dirs
    assert load_trials(alpha.as_uri()).equals(load_trials(alpha))
    assert not (mirror / "a1" / "evals" / first).exists()
    assert read_table(mirror / "a1" / "evals").equals(read_table(alpha / "a1" / "evals"))


def test_a_missing_uri_is_a_user_error(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    missing = (tmp_path / "nothing").as_uri()
    assert run(capsys, "table", missing) == (2, "", f"error: results directory `{missing}` does not exist\n")


@pytest.fixture
def s3(monkeypatch):
    """A local S3-compatible server (moto's), with a bucket `results`; its endpoint and test
    credentials in the environment of this process and of the processes it starts."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-p", str(port)], stderr=subprocess.PIPE, text=True
    )
    for line in server.stderr:  # blocks until the server listens
        if "Running on" in line:
            break
    endpoint = f"http://127.0.0.1:{port}"
    for key, value in {
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_EC2_METADATA_DISABLED": "true",
    }.items():
        monkeypatch.setenv(key, value)
    pyarrow.fs.S3FileSystem(endpoint_override=endpoint, allow_bucket_creation=True).create_dir("results")
    yield endpoint
    server.terminate()
    server.wait()


@pytest.mark.slow
def test_a_sweep_run_into_s3_reads_back_with_table_and_plot(s3, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    path = tiny_sweep(tmp_path, "s3sweep", 200, num_samples=2, space=SCALE)
    storage, uri = "s3://results/sweeps", "s3://results/sweeps/s3sweep"
    done = subprocess.run(
        [sys.executable, "-m", "latent_sweep", "run", str(path), "--storage", storage],
        capture_output=True,
        text=True,
        timeout=DEADLINE_S,
    )
    assert done.returncode == 0, done.stderr
    fs, root = pyarrow.fs.FileSystem.from_uri(uri)
    with fs.open_input_file(f"{root}/trials.parquet") as f:
        stored = pq.read_table(f).to_pandas()
    assert len(stored) == 2 and set(stored["status"]) == {"TERMINATED"}

    code, out, err = run(capsys, "table", uri, "--format", "csv", "--columns", "trial_id,hue_corr,steps")
    assert (code, err) == (0, "")
    shown = pd.read_csv(io.StringIO(out)).sort_values("trial_id").reset_index(drop=True)
    expected = stored[["trial_id", "hue_corr", "steps"]].sort_values("trial_id").reset_index(drop=True)
    pd.testing.assert_frame_equal(shown, expected, check_exact=False, rtol=1e-12)
    best = stored.loc[stored["hue_corr"].idxmax(), "trial_id"]
    code, out, err = run(capsys, "plot", uri, "--kind", "latent", "--out", tmp_path / "plots")
    assert (code, err, out) == (0, "", f"{tmp_path / 'plots' / f'{best}-latent.png'}\n")
