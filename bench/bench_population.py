"""Model-steps/s of population training (members × steps per second) against the seed-style
single-model loop, in the same run; one row printed as each measurement finishes.

    .venv/bin/python bench/bench_population.py [--members 1,16,64,256] [--steps 3000] [--compile]
    .venv/bin/python bench/bench_population.py --device cuda --members 1,1024,16384 --graph both \
        --compile 16384

The workload is ex17 as a sweep trains it: history on (automatic decimation) and evaluations
every 500 steps, checkpoints every 2500 and at the end. Steady state is the span from a
population's first evaluation report to its last (so `--steps` ≥ 1000): setup, first-call
allocations, compiling, graph capture and the first 500 steps are the warm-up, reported
separately in wall seconds. Steady-state time is, on CPU, CPU time of this process with one
thread (`time.process_time`: on a shared machine wall time mostly measures the neighbours'
load); on CUDA, wall time, the device synchronized at each report.

Columns: `× seed` is the rate over the fastest seed-style run so far (the baseline: a plain loop
written the way the seed notebook's 1.7 loop is — DataLoader, weighted sampler, a Python loop over
regularizers with `.item()` per term — on one CPU thread, CPU time; on CPU it runs again before
each size, as the load varies, on CUDA once). `eval %` is the share of steady-state time inside
the loop's `evaluate()` (all members, in blocks; timed by wrapping it here; on CUDA the device is
synchronized before and after, and the loop already syncs there). `report %` is the share from the end of
each `evaluate()` to its report reaching the session: score tables, summary statistics, history
parts and checkpoints written. Snapshots (at the end only, for ex17) and history logging are in
neither: they are part of the steps.

`--graph on|off|both` sets the trial's `cuda_graph` to `auto` (on) or `off`; the `graph` column
says what happened: `on` when CUDA graphs were replayed (`torch.cuda.CUDAGraph.replay` is counted
here), else `off`, marked `!` where that differs from what was asked. CPU has no CUDA graphs:
there each population runs once, as it is, and the column reads `n/a`. `--compile` also runs
each population with `compile: true` (torch.compile; every compiled run starts from a reset
compiler, as a trial's process does, and its compile time is part of its warm-up); `--compile
16384` does so only for the sizes listed. A population that fails prints a `failed` row, the
others still run, and the exit status is 1.

Target on CPU: K = 64 ≥ 40× the seed-style loop (20× the floor).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import gc
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset, WeightedRandomSampler

from latent_sweep.engine import loop
from latent_sweep.engine.registry import run_trial, seed_everything
from latent_sweep.engine.session import LocalSession
from latent_sweep.experiments import colors
from latent_sweep.spec import config
from latent_sweep.spec.schedule import Dopesheet
from latent_sweep.spec.timeline import Timeline

ROOT = Path(__file__).resolve().parent.parent
EVAL_EVERY = 500  # ex17's


class ColorAutoencoder(nn.Module):
    """The seed's model: nn.Linear layers with GELU, a sigmoid on the output."""

    def __init__(self, hidden: list[int], latent_dim: int) -> None:
        super().__init__()

        def mlp(widths: list[int]) -> list[nn.Module]:
            layers: list[nn.Module] = []
            for a, b in pairwise(widths):
                layers += [nn.Linear(a, b), nn.GELU()]
            return layers[:-1]

        self.encoder = nn.Sequential(*mlp([3, *hidden, latent_dim]))
        self.decoder = nn.Sequential(*mlp([latent_dim, *reversed(hidden), 3]), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = self.encoder(x)
        return self.decoder(z), z


def seed_style_loop(steps: int) -> float:
    """The seed's shape: DataLoader + weighted sampler + a labelling collate, a Python loop over
    regularizers with `.item()` per term, per-sample affinities built per term."""
    seed_everything(0)
    cube = colors.hsv_cube()
    data = torch.tensor(cube.rgb, dtype=torch.float32)
    vib = torch.tensor(cube.vibrancy, dtype=torch.float32)
    bias = colors.sampling_bias(cube, 36, 10)

    def collate(batch):
        x = torch.stack([b[0] for b in batch])
        v = torch.stack([b[1] for b in batch])
        r, g, b = x[:, 0], x[:, 1], x[:, 2]
        probs = {"red": (r * (1 - g / 2 - b / 2)) ** 10 * 0.5, "vibrant": v**100 * 0.5}
        return x, {k: (torch.rand_like(p) < p).float() for k, p in probs.items()}

    loader = DataLoader(
        TensorDataset(data, vib),
        batch_size=64,
        sampler=WeightedRandomSampler(bias.tolist(), num_samples=len(data), replacement=True),
        collate_fn=collate,
    )
    timeline = Timeline(Dopesheet.from_csv(ROOT / "schedules" / "ex-1.7-dopesheet.csv"))
    model = ColorAutoencoder([16], 4)
    opt = torch.optim.Adam(model.parameters(), lr=0)
    pin = torch.tensor([1.0, 0, 0, 0])

    def separate(z):
        e = z / (z.norm(dim=-1, keepdim=True) + 1e-8)
        c = e @ e.T
        c[torch.isclose(c, torch.ones_like(c))] = 0.0
        return (c**10).sum(-1)

    regs = [
        ("reg-polar", lambda z: ((z - pin) ** 2).sum(-1), {"red": 1.0}),
        ("reg-separate", separate, None),
        ("reg-planar", lambda z: (z[:, 2:] ** 2).sum(-1), {"vibrant": 1.0}),
        ("reg-norm-v", lambda z: (z.norm(dim=-1) - 1) ** 2, {"vibrant": 1.0}),
        ("reg-norm", lambda z: (z.norm(dim=-1) - 1) ** 2, None),
    ]

    def forever():
        while True:
            yield from loader

    it = forever()
    start = time.process_time()
    for step in range(steps):
        x, labels = next(it)
        for g in opt.param_groups:
            g["lr"] = float(timeline.values("lr")[step])
        opt.zero_grad()
        out, z = model(x)
        total = ((out - x) ** 2).mean()
        losses = {"recon": total.item()}
        for name, fn, aff in regs:
            w = float(timeline.values(name)[step])
            if w == 0:
                continue
            if aff is None:
                a = torch.ones(len(x))
            else:
                a = torch.stack([labels[k] * v for k, v in aff.items()]).sum(0).clamp(0, 1)
                if torch.allclose(a, torch.zeros_like(a)):
                    continue
            term = (fn(z) * a).sum() / (a.sum() + 1e-8)
            losses[name] = term.item()
            total = total + w * term
        if total > 0:
            total.backward()
            opt.step()
        _ = total.item()
    return steps / (time.process_time() - start)


@dataclass
class Measured:
    rate: float  # steady-state model-steps/s
    warm: float  # wall seconds from the start of the trial to its first report
    eval_share: float  # of steady-state time, inside evaluate()
    report_share: float  # of steady-state time, from evaluate()'s end to the report
    replays: int | None  # CUDA graph replays during the trial (None on CPU)


@contextlib.contextmanager
def timed_evaluations(clock: Callable[[], float], sync: Callable[[], None]) -> Iterator[list]:
    """(start, end) on `clock` of every evaluation (`loop.evaluate`: all members, in blocks) while
    inside."""
    spans: list[tuple[float, float]] = []
    original = loop.evaluate

    def evaluate(*args):
        sync()
        begin = clock()
        try:
            return original(*args)
        finally:
            sync()
            spans.append((begin, clock()))

    loop.evaluate = evaluate
    try:
        yield spans
    finally:
        loop.evaluate = original


@contextlib.contextmanager
def counted_graph_replays(device: str) -> Iterator[list[int]]:
    """How many times a CUDA graph (`torch.cuda.CUDAGraph`, what `torch.cuda.graph`,
    `make_graphed_callables` and torch.compile's graph trees capture into) is replayed."""
    count = [0]
    if device != "cuda":
        yield count
        return
    cls = torch.cuda.CUDAGraph
    original = cls.replay

    def replay(self, *args, **kwargs):
        count[0] += 1
        return original(self, *args, **kwargs)

    cls.replay = replay
    try:
        yield count
    finally:
        cls.replay = original


def population(
    members: int, steps: int, device: str, compile: bool, graph: bool | None, profile: bool
) -> Measured:
    """One ex17 population of `members` seeds; `graph` None leaves `cuda_graph` unset (CPU)."""
    trial, _ = config.split_sweep(config.load_file(ROOT / "sweeps" / "ex17.yaml"))
    trial = copy.deepcopy(trial)
    trial.update(steps=steps, device=device, compile=compile, members=[{"seed": s} for s in range(members)])
    if graph is not None:
        trial["cuda_graph"] = "auto" if graph else "off"
    cuda = device == "cuda"
    clock = time.perf_counter if cuda else time.process_time
    sync = torch.cuda.synchronize if cuda else lambda: None
    marks: list[tuple[int, float, float]] = []  # step, clock, wall

    def on_report(metrics: dict, _checkpoint) -> None:
        sync()
        marks.append((int(metrics["step"]), clock(), time.perf_counter()))

    if compile:
        torch._dynamo.reset()  # compile afresh, as a trial's own process does
    start = time.perf_counter()
    with (
        tempfile.TemporaryDirectory() as tmp,
        timed_evaluations(clock, sync) as spans,
        counted_graph_replays(device) as replays,
    ):
        session = LocalSession(tmp, on_report=on_report)
        if profile:
            from torch.profiler import ProfilerActivity
            from torch.profiler import profile as torch_profile

            activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
            with torch_profile(activities=activities) as prof:
                run_trial(trial, session)
            sort = "self_cuda_time_total" if cuda else "self_cpu_time_total"
            print(prof.key_averages().table(sort_by=sort, row_limit=20), flush=True)
        else:
            run_trial(trial, session)
    if len(marks) != len(spans) or len(marks) < 2:
        raise RuntimeError(f"{len(marks)} reports and {len(spans)} evaluations: no steady state to measure")
    (s0, t0, wall0), (s1, t1, _) = marks[0], marks[-1]
    span = t1 - t0
    # Evaluations 1.. (and their reports) fall inside the steady state; the first is warm-up.
    evals = sum(end - begin for begin, end in spans[1:])
    reports = sum(mark[1] - end for mark, (_, end) in zip(marks[1:], spans[1:], strict=True))
    return Measured(
        rate=members * (s1 - s0) / span,
        warm=wall0 - start,
        eval_share=evals / span,
        report_share=reports / span,
        replays=replays[0] if cuda else None,
    )


HEAD = (
    f"{'K':>6}  {'device':<6}  {'mode':<8}  {'graph':<5}  {'model-steps/s':>13}  {'× seed':>7}"
    f"  {'warm-up s':>9}  {'eval %':>6}  {'report %':>8}"
)


def row(k: str, device: str, mode: str, graph: str, rate: float, ratio: float, rest: str = "") -> str:
    return f"{k:>6}  {device:<6}  {mode:<8}  {graph:<5}  {rate:>13,.0f}  {ratio:>7.1f}{rest}"


def measure_row(
    k: int, steps: int, device: str, compile: bool, graph: bool | None, profile: bool, base: float
) -> bool:
    """Run one population and print its row (or a `failed` row); whether it ran."""
    mode = "compiled" if compile else "eager"
    asked = "n/a" if graph is None else "on" if graph else "off"
    try:
        m = population(k, steps, device, compile, graph, profile)
    except Exception as e:  # one failing population must not hide the other rows
        traceback.print_exc()
        reason = f"{type(e).__name__}: {e}".splitlines()[0][:70]
        print(f"{k:>6}  {device:<6}  {mode:<8}  {asked:<5}  failed: {reason}", flush=True)
        return False
    finally:
        gc.collect()
        if device == "cuda":
            torch.cuda.empty_cache()
    got = asked if m.replays is None else "on" if m.replays else "off"
    mark = "" if got == asked else "!"
    rest = f"  {m.warm:>9.1f}  {100 * m.eval_share:>6.1f}  {100 * m.report_share:>8.1f}"
    print(row(str(k), device, mode, got + mark, m.rate, m.rate / base, rest), flush=True)
    if mark:
        print(f"        (cuda_graph asked {asked}: {m.replays} CUDA graph replays)", flush=True)
    return True


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", default="1,16,64,256", help="population sizes K, comma-separated")
    parser.add_argument("--steps", type=int, default=3000, help="steps per population (≥ 1000)")
    parser.add_argument("--baseline-steps", type=int, default=2000)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument(
        "--compile",
        nargs="?",
        const="all",
        metavar="K,...",
        help="also run each population compiled; with sizes, only those",
    )
    parser.add_argument(
        "--graph",
        default="on",
        choices=["on", "off", "both"],
        help="CUDA graphs (cuda_graph: auto / off), or each population both ways; CPU: n/a",
    )
    parser.add_argument("--profile", action="store_true", help="profile the largest population")
    args = parser.parse_args()
    if args.steps < 2 * EVAL_EVERY:
        parser.error(f"--steps must be ≥ {2 * EVAL_EVERY}: the steady state is between evaluations")
    torch.set_num_threads(1)
    sizes = [int(k) for k in args.members.split(",")]
    if args.compile is None:
        compiled_sizes: set[int] = set()
    elif args.compile == "all":
        compiled_sizes = set(sizes)
    else:
        compiled_sizes = {int(k) for k in args.compile.split(",")}
    cuda = args.device == "cuda"
    if cuda:
        torch.zeros(1, device="cuda")  # the CUDA context, outside every row's warm-up
        torch.cuda.synchronize()
        where = f"{torch.cuda.get_device_name()}, torch {torch.__version__}"
        graphs: list[bool | None] = {"on": [True], "off": [False], "both": [True, False]}[args.graph]
    else:
        where = f"cpu, 1 thread, torch {torch.__version__}"
        graphs = [None]
    print(f"ex17, {args.steps} steps, history on, evaluations every {EVAL_EVERY}; {where}", flush=True)
    if not cuda and args.graph != "on":
        print(f"(cpu has no CUDA graphs: --graph {args.graph} runs each population once, as is)", flush=True)
    print(HEAD, flush=True)

    runs: list[float] = []

    def baseline() -> None:
        runs.append(seed_style_loop(args.baseline_steps))
        print(row("seed", "cpu", "loop", "n/a", runs[-1], runs[-1] / max(runs)), flush=True)

    failed = 0
    for i, k in enumerate(sizes):
        if i == 0 or not cuda:
            baseline()
        for compile in (False, True) if k in compiled_sizes else (False,):
            for graph in graphs:
                profile = args.profile and k == sizes[-1]
                failed += not measure_row(k, args.steps, args.device, compile, graph, profile, max(runs))
    each = ", ".join(f"{r:,.0f}" for r in runs)
    print(f"seed-style loop runs (steps/s): {each}; × seed: over the fastest run before the row", flush=True)
    if not cuda:
        print("target on cpu: K = 64 ≥ 40× the seed-style loop", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
