"""Model-steps/s of population training (members × steps per second) against the seed-style
single-model loop, in the same run.

    .venv/bin/python bench/bench_population.py [--members 1,16,64,256] [--steps 3000]
    .venv/bin/python bench/bench_population.py --device cuda --members 1024,4096,16384 --profile

The workload is ex17 as a sweep trains it: history on (automatic decimation) and evaluations
every 500 steps, checkpoints every 2500. Steady state is the span from a population's first
evaluation report to its last (setup, first-call allocations and the first 500 steps are the
warm-up, reported separately). On CPU: one thread, CPU time of this process
(`time.process_time`: on a shared machine wall time mostly measures the neighbours' load);
on CUDA: wall time, each report already synchronized by the evaluation's host transfer.
`--compile` also runs each population with `compile: true` (torch.compile; the compile time
is part of its warm-up). The baseline is a plain loop written the way the seed notebook's 1.7
loop is: DataLoader, weighted sampler, a Python loop over regularizers with `.item()` per term.
Target on CPU:
K = 64 ≥ 40× the seed-style loop (20× the floor).
"""

from __future__ import annotations

import argparse
import copy
import tempfile
import time
from itertools import pairwise
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset, WeightedRandomSampler

from latent_sweep import colors, config
from latent_sweep.experiments import run_trial, seed_everything
from latent_sweep.schedule import Dopesheet
from latent_sweep.session import LocalSession
from latent_sweep.timeline import Timeline

ROOT = Path(__file__).resolve().parent.parent


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


def population(members: int, steps: int, device: str, compile: bool, profile: bool) -> tuple[float, float]:
    """(steady-state model-steps/s, warm-up seconds) of one ex17 population of `members` seeds."""
    trial, _ = config.split_sweep(config.load_file(ROOT / "sweeps" / "ex17.yaml"))
    trial = copy.deepcopy(trial)
    trial.update(steps=steps, device=device, compile=compile, members=[{"seed": s} for s in range(members)])
    clock = time.process_time if device == "cpu" else time.perf_counter
    marks: list[tuple[int, float]] = []
    start = clock()
    with tempfile.TemporaryDirectory() as tmp:
        session = LocalSession(tmp, on_report=lambda m, _: marks.append((int(m["step"]), clock())))
        if profile:
            from torch.profiler import ProfilerActivity
            from torch.profiler import profile as torch_profile

            activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device == "cuda" else [])
            with torch_profile(activities=activities) as prof:
                run_trial(trial, session)
            sort = "self_cuda_time_total" if device == "cuda" else "self_cpu_time_total"
            print(prof.key_averages().table(sort_by=sort, row_limit=20))
        else:
            run_trial(trial, session)
    (s0, t0), (s1, t1) = marks[0], marks[-1]
    return members * (s1 - s0) / (t1 - t0), t0 - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", default="1,16,64,256", help="population sizes K, comma-separated")
    parser.add_argument("--steps", type=int, default=3000, help="steps per population (≥ 1000)")
    parser.add_argument("--baseline-steps", type=int, default=2000)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--compile", action="store_true", help="also run each population compiled")
    parser.add_argument("--profile", action="store_true", help="profile the largest population")
    args = parser.parse_args()
    torch.set_num_threads(1)
    sizes = [int(k) for k in args.members.split(",")]
    # The baseline runs before each population; ratios use its fastest run (the conservative
    # choice on a machine whose load varies).
    runs, rows = [], []
    for k in sizes:
        runs.append(seed_style_loop(args.baseline_steps))
        for compile in (False, True) if args.compile else (False,):
            rate, warm = population(k, args.steps, args.device, compile, args.profile and k == sizes[-1])
            rows.append((k, "compiled" if compile else "eager", rate, warm))
    base = max(runs)
    each = ", ".join(f"{r:.0f}" for r in runs)
    print(f"seed-style loop (cpu, 1 thread): {base:10.0f} steps/s  (runs: {each})")
    for k, mode, rate, warm in rows:
        head = f"K = {k:6d} ({args.device}, {mode:8})"
        print(f"{head}: {rate:10.0f} model-steps/s {rate / base:8.1f}x  (warm-up {warm:.1f} s)")
    print(f"ex17, {args.steps} steps, evaluations every 500, history on; target on cpu: K = 64 ≥ 40x")


if __name__ == "__main__":
    main()
