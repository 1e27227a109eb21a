"""Run the CLI in-process and classify what a user would see: "ok" (exit 0) or "error" (exit 2 with
one paragraph: `error: ` and a single line, no traceback). Anything else fails the calling test;
an exception other than UserError escapes `cli.main` and fails it with its traceback.

With FUZZ_LOG=FILE set, each input and its outcome are appended to FILE (for counting inputs)."""

from __future__ import annotations

import contextlib
import io
import json
import os
import time

from latent_sweep import cli


def outcome(argv: list[str], label: object = None) -> tuple[str, str]:
    """("ok" or "error", what the CLI wrote to stderr)."""
    out, err = io.StringIO(), io.StringIO()
    start = time.perf_counter()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main([str(a) for a in argv])
    seconds = time.perf_counter() - start
    text = err.getvalue()
    if code == 0:
        result = "ok"
    else:
        assert code == 2, (code, text)
        assert text.startswith("error: ") and text.count("\n") == 1 and text.endswith("\n"), text
        assert "Traceback" not in text, text
        result = "error"
    if log := os.environ.get("FUZZ_LOG"):
        with open(log, "a") as f:
            entry = {"input": repr(label if label is not None else argv), "outcome": result, "s": seconds}
            f.write(json.dumps(entry) + "\n")
    return result, text
