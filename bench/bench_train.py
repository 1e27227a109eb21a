"""Steps/s of `latent-sweep train` (ex17, history and evaluations on, default intervals)
against a plain loop written the way the seed notebook's 1.7 loop is, in the same run.

    .venv/bin/python bench/bench_train.py [--steps 3000] [--repeats 3]

Both run on one thread; the ratio is what matters (target ≥ 1.5×). Speed is steps per
CPU-second of this process (`time.process_time`), best of the repeats: on a shared machine
wall time mostly measures the neighbors' load, CPU time measures the code.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader, TensorDataset, WeightedRandomSampler

from latent_sweep import colors, config
from latent_sweep.experiments import run_trial, seed_everything
from latent_sweep.models import ColorAutoencoder
from latent_sweep.schedule import Dopesheet
from latent_sweep.session import LocalSession
from latent_sweep.timeline import Timeline

ROOT = Path(__file__).resolve().parent.parent


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


def ours(steps: int) -> float:
    trial, _ = config.split_sweep(config.load_file(ROOT / "sweeps" / "ex17.yaml"))
    trial["steps"] = steps
    with tempfile.TemporaryDirectory() as tmp:
        start = time.process_time()
        run_trial(trial, LocalSession(tmp))
        return steps / (time.process_time() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    ours(200)  # warm-up: imports, allocator
    base, mine = [], []
    for _ in range(args.repeats):  # interleaved, so load on the machine hits both alike
        base.append(seed_style_loop(args.steps))
        mine.append(ours(args.steps))
    b, m = max(base), max(mine)
    print(f"seed-style loop : {b:8.1f} steps/s  (runs: {', '.join(f'{v:.0f}' for v in base)})")
    print(f"latent-sweep    : {m:8.1f} steps/s  (runs: {', '.join(f'{v:.0f}' for v in mine)})")
    note = f"target ≥ 1.5x; {args.steps} steps, 1 thread, best of {args.repeats}"
    print(f"ratio           : {m / b:8.2f}x  ({note})")


if __name__ == "__main__":
    main()
