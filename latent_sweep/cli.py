"""`latent-sweep` command line: parse, call the library, turn UserError into one paragraph."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from latent_sweep.errors import UserError
from latent_sweep.interrupts import interrupt_after
from latent_sweep.store import layout

EXAMPLES = {
    "run": "example: latent-sweep run sweeps/quick.yaml --storage results --name quick",
    "resume": "example: latent-sweep resume results/quick --restart-errored",
    "train": "example: latent-sweep train sweeps/ex17.yaml --seeds 0-19  (or: --seed 3 --out results/s3)",
    "validate": "example: latent-sweep validate sweeps/ex15.yaml",
    "table": "example: latent-sweep table results/quick --sort hue_corr --top 5 --where 'recon_mse < 1e-3'",
    "compare": (
        "examples: latent-sweep compare results/labels_soft_vs_hard --by labels.mode --scores hue_corr\n"
        "          latent-sweep compare results/labels_soft_vs_hard --by labels.mode --paired --baseline hard"
    ),
    "plot": "example: latent-sweep plot results/quick --kind latent   (into results/quick/plots/)",
    "importance": "example: latent-sweep importance results/quick --score hue_corr --format markdown",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="latent-sweep",
        description="Ray Tune sweeps over latent-space training experiments.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, help_text: str) -> argparse.ArgumentParser:
        return sub.add_parser(
            name,
            # argparse %-formats a help string (for `%(default)s`), not a raw description.
            help=help_text.replace("%", "%%"),
            description=help_text,
            epilog=EXAMPLES[name],
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )

    p = add("run", f"Run a sweep on Ray Tune and write {layout.TRIALS}.")
    p.add_argument("sweep", help="sweep file (YAML)")
    p.add_argument("--storage", help=f"results root: a directory or a URI (default: {layout.STORAGE_ROOT}/)")
    p.add_argument("--name", help="experiment name (default: the sweep's name)")
    p.add_argument("--num-samples", type=int, help="override the sweep's num_samples")
    p.add_argument("--address", help="Ray cluster address (auto, or HOST:PORT); default: embedded local Ray")
    p.add_argument("--set", action="append", metavar="PATH=VALUE", help="override a config value")

    p = add("resume", "Finish an interrupted sweep from its checkpoints.")
    p.add_argument("results_dir", help="the sweep's results directory")
    p.add_argument("--restart-errored", action="store_true", help="retry trials that errored")
    p.add_argument("--address", help="Ray cluster address; default: embedded local Ray")

    p = add(
        "train",
        "Train one trial in-process, without Ray (the base config, no sampling).",
    )
    p.add_argument("config", help=f"sweep file or a trial's {layout.CONFIG}")
    p.add_argument("--seed", type=int, help="override the seed")
    p.add_argument("--seeds", help="train these seeds as one population, e.g. 0-19 or 0,2,5-7")
    p.add_argument("--steps", type=int, help="stop after this many steps")
    train_dir = f"{layout.STORAGE_ROOT}/{layout.TRAIN_DIR}"
    p.add_argument("--out", help=f"trial directory (default: {train_dir}/<name>-seed<N>)")
    # No default here: `local.train`'s (THREADS), which `latent_sweep.train` shares.
    p.add_argument("--threads", type=int, help="torch threads (default 1: these models are tiny)")
    p.add_argument("--set", action="append", metavar="PATH=VALUE", help="override a config value")

    p = add("validate", "Check a sweep file and the schedules it names, without running anything.")
    p.add_argument("sweep", help="sweep file (YAML)")
    p.add_argument("--set", action="append", metavar="PATH=VALUE", help="override a value, as run does")

    p = add("table", "Show the trials of one or more sweeps as a table.")
    p.add_argument("results_dirs", nargs="+", help="sweep results directories")
    p.add_argument("--sort", help="score or column to sort by (best first)")
    p.add_argument("--top", type=int, help="keep the first N rows")
    p.add_argument("--where", help='filter expression, e.g. "hue_order == 1 and recon_mse < 1e-3"')
    p.add_argument("--columns", nargs="+", help="columns to show")
    p.add_argument("--format", default="table", choices=["table", "csv", "markdown", "parquet"])
    p.add_argument("--out", help="write to this file instead of stdout (required for parquet)")

    p = add(
        "compare",
        "Group trials by a config path: count, mean ± std [95% bootstrap CI of the mean] per score;\n"
        "--paired: each group against a baseline, member by member (same seed and other sampled values).",
    )
    p.add_argument("results_dirs", nargs="+", help="sweep results directories")
    p.add_argument("--by", required=True, help="config path to group by, e.g. labels.mode")
    p.add_argument("--scores", nargs="+", help="scores to summarize")
    p.add_argument("--pareto", help="mark the Pareto front, e.g. hue_corr:max,recon_mse:min")
    p.add_argument(
        "--paired",
        action="store_true",
        help="pair members by seed and sampled values: wins/losses/ties, median difference, CI, Wilcoxon p",
    )
    p.add_argument(
        "--baseline", help="with --paired: the group the others are compared with (default: first)"
    )
    p.add_argument(
        "--bins",
        type=int,
        help="cut a numeric --by into N quantile bins (automatic for floats with > 10 values; 0: never)",
    )
    p.add_argument(
        "--success",
        help="count members whose final scores satisfy EXPR, e.g. "
        '"hue_order >= 0.999 and abs(hue_winding) == 1" (default: the sweeps\' own `sweep.success`)',
    )
    p.add_argument("--format", default="table", choices=["table", "csv", "markdown"])

    p = add("plot", "Draw PNG plots of a sweep or one of its trials.")
    p.add_argument("results_dir", help="sweep results directory (or a trial directory)")
    p.add_argument("trial", nargs="?", help="trial id (default: the best trial)")
    p.add_argument("--member", type=int, help="member of a population trial (default: its best member)")
    p.add_argument(
        "--kind", default="latent", choices=["latent", "schedule", "curves", "sweep", "importance"]
    )
    p.add_argument("--score", help="with --kind importance: the score (default: the sweep's metric)")
    p.add_argument("--out", help="output directory for PNG files (default: RESULTS_DIR/plots)")

    p = add(
        "importance",
        "Importance of the sampled parameters for a score (fANOVA over configs, seeds averaged).",
    )
    p.add_argument("results_dirs", nargs="+", help="sweep results directories")
    p.add_argument(
        "--score", help="score to explain (default: the sweep's metric); `success`: the rate of --success"
    )
    p.add_argument("--where", help='only the members this holds for, e.g. "seed < 4" (half of the seeds)')
    p.add_argument(
        "--success",
        metavar="EXPR",
        help="with --score success: what a member's success is (default: the sweeps' `sweep.success`)",
    )
    p.add_argument("--format", default="table", choices=["table", "csv", "markdown"])
    return parser


def _options(args: argparse.Namespace, *names: str) -> dict[str, Any]:
    """Options passed on to the library function of the same keyword names."""
    return {name: getattr(args, name) for name in names}


def dispatch(args: argparse.Namespace) -> int:
    # The layers, each imported when a command needs it, so that `--help` stays instant; their
    # native start-up (Ray's, pyarrow's) must not be cut half-way by Ctrl-C (`interrupts`).
    if args.command == "validate":
        with interrupt_after():
            from latent_sweep.tune import checks  # the sweep's checks: pandas, pydantic, no Ray

        print(checks.validate(args.sweep, overrides=args.set))
        return 0
    if args.command in ("run", "resume"):
        with interrupt_after():
            from latent_sweep.tune import sweep  # the tune layer: Ray, seconds to import

        if args.command == "run":
            options = _options(args, "storage", "name", "num_samples", "address")
            return sweep.run(args.sweep, overrides=args.set, **options).exit_code
        outcome = sweep.resume(args.results_dir, restart_errored=args.restart_errored, address=args.address)
        return outcome.exit_code
    with interrupt_after():
        from latent_sweep import commands  # analysis and engine: pandas, scipy, rich, about a second

    if args.command == "train":
        options = _options(args, "seed", "seeds", "steps", "out", "threads")
        given = {name: value for name, value in options.items() if value is not None}  # else its defaults
        return commands.train(args.config, overrides=args.set, **given)
    if args.command == "table":
        options = _options(args, "where", "sort", "top", "columns", "out")
        return commands.table(args.results_dirs, fmt=args.format, **options)
    if args.command == "compare":
        options = _options(args, "scores", "pareto", "paired", "baseline", "bins", "success")
        return commands.compare(args.results_dirs, by=args.by, fmt=args.format, **options)
    if args.command == "importance":
        options = _options(args, "score", "where", "success")
        return commands.importance(args.results_dirs, fmt=args.format, **options)
    if args.command == "plot":
        return commands.plot(args.results_dir, args.trial, **_options(args, "member", "kind", "score", "out"))
    raise AssertionError(args.command)


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return dispatch(build_parser().parse_args(argv))
    except UserError as err:
        # One paragraph: a newline inside a quoted input (a --set value, a CSV cell) is shown escaped.
        print("error: " + str(err).replace("\r", "\\r").replace("\n", "\\n"), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
