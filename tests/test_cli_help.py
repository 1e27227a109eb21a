"""Every `--help` and `-h` prints usage and exits 0: the top level and each subcommand, found
from the parser so a new one is covered (a `%` in a help string once crashed the top level)."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

from latent_sweep import cli


def subcommands() -> list[str]:
    parser = cli.build_parser()
    (action,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return list(action.choices)


def test_subcommands_are_found():
    assert {"run", "validate", "compare"} <= set(subcommands())


@pytest.mark.parametrize("flag", ["--help", "-h"])
@pytest.mark.parametrize("command", [None, *subcommands()])
def test_help_prints_usage_and_exits_0(command, flag, capsys):
    argv = [flag] if command is None else [command, flag]
    with pytest.raises(SystemExit) as exited:
        cli.main(argv)
    assert exited.value.code == 0
    printed = capsys.readouterr()
    assert printed.err == ""
    usage = "usage: latent-sweep" + ("" if command is None else f" {command}")
    assert printed.out.startswith(usage), printed.out
    if command is None:
        assert all(name in printed.out for name in subcommands())
    else:
        assert f"latent-sweep {command} " in printed.out.split("\n\n")[-1]  # the epilog's example


def test_help_as_a_process():
    done = subprocess.run(
        [sys.executable, "-m", "latent_sweep", "--help"], capture_output=True, text=True, timeout=60
    )
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout.startswith("usage: latent-sweep")
