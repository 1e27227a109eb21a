"""Kill a sweep anywhere, resume it, and check that it ends as an uninterrupted run ends.

    .venv/bin/python scripts/kill_anywhere.py [--searches random,grid,optuna,optuna_mo,asha,pbt,pack]
        [--signals kill,int] [--kills 20] [--seed 0] [--out DIR]

For each search and signal: one uninterrupted run of a small sweep (the reference), then chains
of `latent-sweep run`, interrupted, `latent-sweep resume`, interrupted again, …, until a resume
ends on its own; chains are started until `--kills` interruptions have landed. Each interruption is
aimed at a phase: `start` (imports, Ray starting), `checkpoint` (right as a trial's checkpoint
directory appears), `time` (any moment of the run) or `end` (Tune has finished: trials.parquet
being collected and written). `kill` is SIGKILL of the process group (a power cut, `kill -9`),
`int` SIGINT to it (Ctrl-C in a terminal).

Each interrupted command must exit 130 (SIGINT; 0 if it finished first, or killed by the
signal if it landed as Python exited) and each resume must
continue; the last must exit 0. Then (`check`): as many configs as the reference, all TERMINATED,
every member's history with each step once (PBT: at most once, since a trial that takes over
another's checkpoint goes on from its step); the final scores of every config equal the
reference's where the run is deterministic (random, grid and pack: Ray draws the same configs
and trials are deterministic); for Optuna, the study's COMPLETE trials are exactly the sweep's
trials, with the values trials.parquet gives; with ASHA, where a trial ran as far as the
reference's trial of its config, the scores there agree. Prints one row per interruption as it happens,
then the matrix. Exit status 1 when a cell failed. docs/reliability.md ("Resume") says what
resume guarantees; tests/test_kill_anywhere.py runs a few chains of this in the slow lane.
"""

from __future__ import annotations

import argparse
import copy
import math
import os
import random
import select
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import optuna
import pandas as pd
import yaml

from latent_sweep.analysis.results import load_evals, load_history
from latent_sweep.errors import UserError
from latent_sweep.spec import config
from latent_sweep.tune import recovery
from latent_sweep.tune.study import JOURNAL_FILE, TRIAL_ID_ATTR, journal_storage

ROOT = Path(__file__).resolve().parent.parent
STEPS, EVERY = 300, 100
PHASES = ("start", "checkpoint", "time", "end")
SIGNALS = {"kill": signal.SIGKILL, "int": signal.SIGINT}
EXIT_WAIT_S = 180.0  # a bound on waits for processes to exit, never a synchronization
POLAR = {"loguniform": [0.001, 0.03]}
SCALE = {"uniform": [0.5, 2.0]}
SEARCHES: dict[str, dict] = {
    "random": {"search": "random", "space": {"schedule.keyframes[@5000].reg-polar": POLAR}},
    "grid": {
        "search": "grid",
        "num_samples": 1,
        "space": {
            "labels.mode": {"grid": ["soft", "hard"]},
            "schedule.scale.reg-separate": {"grid": [0.5, 1.5]},
        },
    },
    "optuna": {
        "search": "optuna",
        "startup_trials": 2,
        "space": {"schedule.keyframes[@5000].reg-polar": POLAR, "schedule.scale.reg-separate": SCALE},
    },
    "optuna_mo": {
        "search": "optuna",
        "startup_trials": 2,
        "metric": ["hue_corr", "recon_mse"],
        "mode": ["max", "min"],
        "space": {"schedule.keyframes[@5000].reg-polar": POLAR},
    },
    "asha": {
        "search": "random",
        "scheduler": "asha",
        "asha": {"grace_period": 100, "reduction_factor": 2},
        "space": {"schedule.keyframes[@5000].reg-polar": POLAR},
    },
    "pbt": {"search": "random", "scheduler": "pbt", "space": {"schedule.scale.reg-separate": SCALE}},
    "pack": {"search": "random", "pack": 2, "space": {"schedule.keyframes[@5000].reg-polar": POLAR}},
}
DETERMINISTIC = ("random", "grid", "pack")


def sweep_file(where: Path, search: str) -> Path:
    """sweeps/quick.yaml cut to STEPS steps, evaluated and checkpointed every EVERY, 4 configs × 2 seeds."""
    raw = copy.deepcopy(config.load_file(ROOT / "sweeps" / "quick.yaml"))
    raw.update(name=search, steps=STEPS, eval_every=EVERY, checkpoint_every=EVERY)
    block = {"metric": "hue_corr", "mode": "max", "num_samples": 4, "seeds": 2, "max_concurrent": 2}
    raw["sweep"] = {**block, "search_seed": 0, **SEARCHES[search]}
    path = where / f"{search}.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


@dataclass
class Interruption:
    search: str
    signal: str
    phase: str
    command: str  # run | resume
    landed_s: float  # seconds after the command started
    exit_code: int | None  # of the interrupted command (None: it had finished before)
    outcome: str = "pass"  # what the chain made of it, set when the chain is checked
    notes: list[str] = field(default_factory=list)


def descendants(pid: int) -> set[int]:
    """Every process below `pid` (children, their children, …), from /proc."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def wait_for_exit(pids: set[int]) -> None:
    """Block until each process has exited (its pidfd becomes readable): Ray's workers are not in
    the killed group, and a resume must not start while one of them still writes."""
    deadline = time.monotonic() + EXIT_WAIT_S
    for pid in pids:
        try:
            fd = os.pidfd_open(pid)
        except ProcessLookupError:
            continue
        try:
            ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
        finally:
            os.close(fd)
        if not ready:
            raise TimeoutError(
                f"process {pid} of the interrupted command did not exit in {EXIT_WAIT_S:.0f} s"
            )


def _command(args: list[str], log: Path, stale: bool = False) -> subprocess.Popen:
    """`latent-sweep ARGS`, its output appended to `log`. `stale`: Tune saves its experiment state
    only when it starts and stops (not every few seconds), so an interruption finds it far behind
    the trials and the Optuna journal: the disagreement `resume` must reconcile, made likely."""
    cmd = [sys.executable, "-m", "latent_sweep", *args]
    env = {**os.environ, **({"TUNE_GLOBAL_CHECKPOINT_S": "3600"} if stale else {})}
    with log.open("ab") as out:
        return subprocess.Popen(
            cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, cwd=ROOT, env=env
        )


def _aim(
    phase: str, proc: subprocess.Popen, results: Path, log: Path, rng: random.Random, span: float, total: int
) -> None:
    """Return when the interruption should land (or when the command has ended). `end`: once the
    command's progress has reported every trial left to run, a moment later (Tune ending,
    trials.parquet being collected and written)."""
    start = time.monotonic()
    offset = log.stat().st_size  # the log holds the chain's earlier commands too
    seen = set(results.glob("trial_*/checkpoint_*"))
    wait = {"start": rng.uniform(0.2, 5.0), "time": rng.uniform(1.0, span)}.get(phase)
    left = _trials_left(results, total) if phase == "end" else 0
    while proc.poll() is None:
        now = time.monotonic() - start
        if wait is not None and now >= wait:
            return
        if phase == "checkpoint" and set(results.glob("trial_*/checkpoint_*")) - seen:
            return
        out = log.read_bytes()[offset:] if phase == "end" else b""
        if left and out.count(b"  done  ") >= left:
            time.sleep(rng.uniform(0.0, 0.5))
            return
        if phase == "end" and not left and b"resuming" in out:  # nothing to run: Tune ends at once
            time.sleep(rng.uniform(0.0, 3.0))
            return
        time.sleep(0.002)  # polling for the moment to strike, not waiting for a result


def _trials_left(results: Path, total: int) -> int:
    """Trials the next command runs to their end: those Tune's experiment state does not hold
    as TERMINATED (it may be behind: a trial it still calls RUNNING is run again)."""
    try:
        statuses = recovery.check_experiment_state(results)
    except UserError:
        statuses = {}
    return total - sum(status == "TERMINATED" for status in statuses.values())


def _interrupt(proc: subprocess.Popen, sig: str) -> int | None:
    """Send the signal to the command's process group; its exit code (None: it had ended)."""
    if proc.poll() is not None:
        return None
    tree = descendants(proc.pid)
    os.killpg(proc.pid, SIGNALS[sig])
    try:
        code = proc.wait(timeout=EXIT_WAIT_S)
    except subprocess.TimeoutExpired:  # a hang: reported, then cleared away
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        code = -999
    wait_for_exit(tree)
    return code


def chain(
    search: str,
    sig: str,
    sweep: Path,
    storage: Path,
    name: str,
    rng: random.Random,
    span: float,
    budget: int,
    total: int,
    stale: bool = False,
) -> tuple[list[Interruption], Path, list[str]]:
    """Run, interrupt, resume, interrupt, …: until a command ends on its own or `budget`
    interruptions landed, then resume to the end. The interruptions and what went wrong."""
    results = storage / name
    log = storage / f"{name}.log"
    events: list[Interruption] = []
    problems: list[str] = []
    start = ["run", str(sweep), "--storage", str(storage), "--name", name]
    args = start
    while True:
        command = args[0]
        log.touch()
        proc = _command(args, log, stale)
        started = time.monotonic()
        if len(events) < budget:
            phase = PHASES[rng.randrange(len(PHASES))]
            _aim(phase, proc, results, log, rng, span, total)
            landed = time.monotonic() - started
            code = _interrupt(proc, sig)
            if code not in (None, 0):  # 0: it finished before the signal took effect
                event = Interruption(search, sig, phase, command, round(landed, 2), code)
                events.append(event)
                print(
                    f"  {search:9} {sig:4} {phase:10} {command:6} at {landed:6.2f} s → exit {code}",
                    flush=True,
                )
                # Killed by SIGINT itself (a shell shows 130 too): it landed as Python exited.
                if code not in ({-signal.SIGKILL} if sig == "kill" else {130, -signal.SIGINT}):
                    event.outcome = "fail"
                    problems.append(
                        f"{command} interrupted by {sig} at {landed:.2f} s ({phase}) exited {code}"
                    )
                # Killed before it wrote sweep.yaml, a run left nothing to resume: run it again.
                args = ["resume", str(results)] if (results / "sweep.yaml").exists() else start
                if args is start:
                    event.notes.append("before sweep.yaml: run again")
                continue
        code = proc.wait()
        if code != 0:
            problems.append(f"`{' '.join(args)}` exited {code}; see {log}")
        return events, results, problems


def reference_run(sweep: Path, storage: Path) -> tuple[float, pd.DataFrame]:
    """The sweep run without interruption, into `storage/reference`: its wall time and members."""
    started = time.monotonic()
    cmd = [sys.executable, "-m", "latent_sweep", "run", sweep, "--storage", storage, "--name", "reference"]
    ref = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if ref.returncode != 0:
        raise RuntimeError(f"the uninterrupted run of {sweep} exited {ref.returncode}:\n{ref.stderr[-2000:]}")
    return time.monotonic() - started, summary(storage / "reference")


def summary(results: Path) -> pd.DataFrame:
    """One row per member: its config values, seed, steps and final scores."""
    trials = pd.read_parquet(results / "trials.parquet")
    return trials.sort_values(["trial_dir", "member"]).reset_index(drop=True)


def _sampled(trials: pd.DataFrame, reference: pd.DataFrame) -> list[str]:
    """The config columns that differ between configs: the sampled values."""
    shared = set(trials.columns) & set(reference.columns)
    names = (c for c in shared if c.startswith("config.") and c != "config.seed")
    return sorted(c for c in names if reference[c].astype(str).nunique() > 1)


def check(search: str, results: Path, reference: pd.DataFrame, spec: dict) -> list[str]:
    """What differs from an uninterrupted run (an empty list: nothing)."""
    problems = []
    trials = summary(results)
    params = _sampled(trials, reference)
    configs = trials[params].astype(str).agg("|".join, axis=1)
    wanted = reference[params].astype(str).agg("|".join, axis=1)
    if (
        configs.nunique() != wanted.nunique()
        or trials["trial_id"].nunique() != reference["trial_id"].nunique()
    ):
        problems.append(
            f"{configs.nunique()} configs in {trials['trial_id'].nunique()} trials; the uninterrupted run "
            f"has {wanted.nunique()} in {reference['trial_id'].nunique()}"
        )
    if set(trials["status"]) != {"TERMINATED"}:
        problems.append(f"statuses {dict(Counter(trials['status']))}")
    for row in trials.itertuples():
        steps = load_history(results / row.trial_dir, member=row.member)["step"].tolist()
        evals = load_evals(results / row.trial_dir, member=row.member)["step"].tolist()
        if search == "pbt":  # a trial that takes over another's checkpoint goes on from its step
            whole = steps == sorted(set(steps)) and evals == sorted(set(evals)) and evals[-1] == row.steps
        else:
            whole = steps == list(range(row.steps)) and evals == list(range(EVERY, row.steps + 1, EVERY))
        if not whole:
            problems.append(
                f"{row.trial_dir} member {row.member}: history steps {_runs(steps)}, evaluations at {evals}"
            )
    if search in DETERMINISTIC:
        keys = [*params, "seed"]
        mine = trials.sort_values(keys)[[*keys, "steps", "hue_corr"]].reset_index(drop=True)
        theirs = reference.sort_values(keys)[[*keys, "steps", "hue_corr"]].reset_index(drop=True)
        if not mine.astype(str).equals(theirs.astype(str)):
            problems.append("final scores differ from the uninterrupted run's")
    if search == "asha":
        problems += _check_asha(results, trials, params, reference)
    if spec.get("search") == "optuna":
        problems += _check_study(results, trials, spec)
    return problems


def _check_asha(results: Path, trials: pd.DataFrame, params: list[str], reference: pd.DataFrame) -> list[str]:
    """ASHA stops trials by the order results arrive in, which an interruption changes; where a
    trial ran as far as the uninterrupted run's trial of its config, its scores there must agree."""
    reference_dirs = results.parent / "reference"
    wrong = []
    for _, row in trials.iterrows():
        same = (reference[params] == row[params]).all(axis=1) & (reference["seed"] == row["seed"])
        theirs = load_evals(reference_dirs / reference.loc[same, "trial_dir"].iloc[0], member=row["member"])
        at = theirs[theirs["step"] == row["steps"]]
        if len(at) and at["hue_corr"].iloc[0] != row["hue_corr"]:
            wrong.append(f"{row['trial_dir']} member {row['member']} at step {row['steps']}")
    return [f"scores differ from the uninterrupted run's at the same step: {wrong}"] if wrong else []


def _check_study(results: Path, trials: pd.DataFrame, spec: dict) -> list[str]:
    """The study's COMPLETE trials are the sweep's trials, with the values its trials reported
    (the mean of each metric over the trial's members)."""
    study = optuna.load_study(study_name=results.name, storage=journal_storage(results / JOURNAL_FILE))
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    told = {t.user_attrs.get(TRIAL_ID_ATTR): t.values for t in complete}
    metrics = spec.get("metric", "hue_corr")
    metrics = metrics if isinstance(metrics, list) else [metrics]
    means = trials.groupby("trial_id")[metrics].mean()
    if len(told) != len(complete) or set(told) != set(means.index):
        return [f"study COMPLETE trials {sorted(map(str, told))}, sweep trials {sorted(means.index)}"]
    wrong = [
        tid
        for tid, values in told.items()
        if not all(math.isclose(v, m, rel_tol=1e-9) for v, m in zip(values, means.loc[tid], strict=True))
    ]
    return [f"study values differ from trials.parquet for {wrong}"] if wrong else []


def _runs(steps: list[int]) -> str:
    dupes = [s for s, n in Counter(steps).items() if n > 1]
    return f"{len(steps)} rows, first {steps[:1]}, last {steps[-1:]}, repeated {dupes[:5]}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--searches", default=",".join(SEARCHES))
    parser.add_argument("--signals", default="kill,int")
    parser.add_argument("--kills", type=int, default=20, help="interruptions per search and signal")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("/tmp/kill-anywhere"))
    parser.add_argument(
        "--stale-state",
        action="store_true",
        help="Tune saves its state only at start and stop: it is far behind at every interruption",
    )
    args = parser.parse_args(argv)
    if args.out.exists() and any(args.out.iterdir()):
        parser.error(f"{args.out} is not empty: name another directory with --out")
    rng = random.Random(args.seed)
    rows: list[Interruption] = []
    failed = False
    for search in args.searches.split(","):
        where = args.out / search
        where.mkdir(parents=True, exist_ok=True)
        sweep = sweep_file(where, search)
        span, reference = reference_run(sweep, where)
        total = reference["trial_id"].nunique()
        print(f"{search}: uninterrupted run {span:.1f} s", flush=True)
        for sig in args.signals.split(","):
            landed = 0
            number = 0
            while landed < args.kills:
                number += 1
                name = f"{sig}-{number}"
                events, results, problems = chain(
                    search, sig, sweep, where, name, rng, span, args.kills - landed, total, args.stale_state
                )
                if (results / "trials.parquet").exists():
                    problems += check(search, results, reference, SEARCHES[search])
                for event in events:
                    if problems and event.outcome == "pass":
                        event.outcome = "fail (chain)"
                    event.notes += problems
                rows += events
                landed += len(events)
                for problem in problems:
                    print(f"  FAIL {search} {name}: {problem}", flush=True)
                failed |= bool(problems)
                if not events and not problems:
                    print(f"  {search} {name}: finished before any interruption landed", flush=True)
    table = pd.DataFrame([{**e.__dict__, "notes": "; ".join(e.notes)} for e in rows])
    matrix = table.groupby(["search", "signal", "phase"])["outcome"].agg(
        lambda o: f"{(o == 'pass').sum()}/{len(o)} pass"
    )
    print(matrix.unstack("phase").fillna("").to_string())
    table.to_csv(args.out / "interruptions.csv", index=False)
    print(f"every interruption: {args.out / 'interruptions.csv'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
