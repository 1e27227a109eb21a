"""Results read from URIs: `table`, `compare`, `plot` and the `load_*` functions over file://
URIs give what they give over the local paths (the URI mirrored through pyarrow.fs, refreshed
when storage changes, checkpoints left out)."""

from __future__ import annotations

from pathlib import Path

import pytest
from fixtures_results import make_results

from latent_sweep.cli import main
from latent_sweep.history import read_table
from latent_sweep.remote import CACHE_ENV, local_dir
from latent_sweep.results import load_evals, load_trials


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
    ],
)
def test_table_and_compare_read_file_uris_as_local_paths(sweeps, capsys, argv):
    alpha, beta = sweeps
    local = run(capsys, *(a.format(alpha=alpha, beta=beta) for a in argv))
    uris = run(capsys, *(a.format(alpha=alpha.as_uri(), beta=beta.as_uri()) for a in argv))
    assert local[0] == 0 and local[1]
    assert uris == local


def test_plot_reads_a_file_uri(sweeps, capsys, tmp_path):
    alpha, _ = sweeps
    for kind in ("latent", "curves"):
        assert run(capsys, "plot", alpha, "--kind", kind, "--out", tmp_path / "local")[0] == 0
        code, out, err = run(capsys, "plot", alpha.as_uri(), "--kind", kind, "--out", tmp_path / "uri")
        assert (code, err, out) == (0, "", f"{tmp_path / 'uri' / f'a2-{kind}.png'}\n")
        assert (tmp_path / "uri" / f"a2-{kind}.png").read_bytes() == (
            tmp_path / "local" / f"a2-{kind}.png"
        ).read_bytes()


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
