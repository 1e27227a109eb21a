"""Benchmark population evaluation: member-batched scores against one call per member.

* `neighbors`: `neighbor_scores_members` on K embeddings of the autoencoder's 8³ evaluation grid
  (latent dim 4, ks 5, 10, 15) against K calls of `neighbor_scores`, on random embeddings (no
  structure: every row searched in full) and trained-like ones (a noisy linear map of the grid:
  most rows searched in small balls). Both must agree exactly.
* `large`: time and peak RSS of `neighbor_scores_members` at K = 4096 on the grid (n = 512) and
  at n = 5,000 (projection evaluation, 64-D inputs, 2-D embeddings), each in its own subprocess;
  "score MB" is the peak RSS minus the RSS before the call (data included). `--large-members`
  sets K for n = 5,000 (4096 takes about an hour on one CPU thread; memory does not grow with K
  beyond the K × n × E embeddings themselves).
* `scores`: the `scores` population functions at K = 4096 against a loop over members.
* `--share 1024,16384`, on its own: what an evaluation costs a trial. ex17 at K members: one
  evaluation (`loop.evaluate`, all members in blocks, after a first call that builds the grid's
  cache) against the 500 steps to the next one (20 steps timed, after 3 of warm-up), in CPU
  time of this process (on CUDA, wall time with the device synchronized); `share` is the
  evaluation's part of the two.

    .venv/bin/python bench/bench_eval.py [--threads 1] [--members 64] [--large-members 64] [--skip-large]
    .venv/bin/python bench/bench_eval.py --share 1024,16384 [--device cuda]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import numpy as np
import torch

KS = [5, 10, 15]
EVAL_EVERY = 500  # ex17's


def grid() -> torch.Tensor:
    axis = np.arange(8) / 7
    return torch.tensor(np.stack(np.meshgrid(axis, axis, axis, indexing="ij"), -1).reshape(-1, 3)).float()


def embeddings(x: torch.Tensor, members: int, dim: int, trained: bool, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    noise = torch.randn(members, x.shape[0], dim, generator=gen)
    if not trained:
        return noise
    maps = torch.randn(members, x.shape[1], dim, generator=gen)
    return torch.einsum("nd,kde->kne", x, maps) + 0.05 * noise


def best(f, repeats: int = 3) -> tuple[float, object]:
    """Fastest of `repeats` runs, in CPU seconds of this process (robust to other load)."""
    fastest, out = float("inf"), None
    for _ in range(repeats):
        start = time.process_time()
        out = f()
        fastest = min(fastest, time.process_time() - start)
    return fastest, out


def bench_neighbors(members: int) -> None:
    from latent_sweep.scores.neighbors import neighbor_scores, neighbor_scores_members

    x = grid()
    print(f"neighbor scores, K = {members}, n = 512 (8³ grid), E = 4, ks {KS}")
    print(f"{'embeddings':>13} {'K calls s':>10} {'batched s':>10} {'ratio':>6}")
    for trained in (False, True):
        z = embeddings(x, members, 4, trained)
        neighbor_scores_members(x, z[:2], KS)  # first-call setup stays out of the timing
        one_by_one, singles = best(lambda z=z: [neighbor_scores(x, z[m], KS) for m in range(members)])
        batched, got = best(lambda z=z: neighbor_scores_members(x, z, KS))
        for m, scores in enumerate(singles):
            assert all(got[name][m] == value for name, value in scores.items()), "batched ≠ one by one"
        name = "trained-like" if trained else "random"
        print(f"{name:>13} {one_by_one:10.3f} {batched:10.3f} {one_by_one / batched:6.2f}")


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def worker(n: int, members: int) -> None:
    from latent_sweep.scores.neighbors import neighbor_scores_members

    if n == 512:
        x, z = grid(), embeddings(grid(), members, 4, trained=True)
    else:
        gen = torch.Generator().manual_seed(1)
        x = torch.randn(n, 64, generator=gen)
        z = embeddings(x, members, 2, trained=True) / 8
    neighbor_scores_members(x[:200], z[:1, :200], KS)
    before = rss_mb()
    start, cpu = time.perf_counter(), time.process_time()
    scores = neighbor_scores_members(x, z, KS)
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu
    finite = bool(np.isfinite(scores["trustworthiness_k10"]).all())
    result = {"seconds": seconds, "cpu": cpu_seconds, "before": before, "peak": rss_mb(), "ok": finite}
    print(json.dumps(result))


def bench_large(threads: int, large_members: int) -> None:
    print(f"\nlarge populations ({threads} thread(s))")
    print(f"{'K':>5} {'n':>6} {'seconds':>8} {'cpu s':>7} {'score MB':>9} {'peak MB':>8}")
    for members, n in ((4096, 512), (large_members, 5000)):
        cmd = [sys.executable, __file__, "--worker", str(n), str(members), "--threads", str(threads)]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        r = json.loads(out.strip().splitlines()[-1])
        assert r["ok"], "non-finite scores"
        score_mb = r["peak"] - r["before"]
        print(f"{members:5d} {n:6d} {r['seconds']:8.2f} {r['cpu']:7.2f} {score_mb:9.0f} {r['peak']:8.0f}")


def bench_scores() -> None:
    from latent_sweep.scores import geometry as scores

    members, n = 4096, 512
    gen = torch.Generator().manual_seed(2)
    z = torch.randn(members, n, 4, generator=gen)
    hues = np.arange(n) / n
    rgb, out = torch.rand(n, 3, generator=gen), torch.rand(members, n, 3, generator=gen)
    hsv = torch.rand(n, 3, generator=gen).numpy()
    print(f"\nscores, K = {members}, n = {n}")
    print(f"{'score':>14} {'loop s':>8} {'batched s':>10} {'ratio':>6}")
    cases = {
        "hue_scores": (
            lambda: [scores.hue_scores(z[m], hues) for m in range(members)],
            lambda: scores.hue_scores_members(z, hues),
        ),
        "recon_errors": (
            lambda: [scores.recon_errors(rgb, out[m], hsv) for m in range(members)],
            lambda: scores.recon_errors_members(rgb, out, hsv),
        ),
        "planarity": (
            lambda: [scores.planarity(z[m]) for m in range(members)],
            lambda: scores.planarity_members(z),
        ),
    }
    for name, (loop, batched) in cases.items():
        t_loop, _ = best(loop, 1)
        t_batched, _ = best(batched)
        print(f"{name:>14} {t_loop:8.3f} {t_batched:10.4f} {t_loop / t_batched:6.0f}")


def bench_share(sizes: list[int], device: torch.device) -> None:
    torch.set_flush_denormal(True)  # as a trial runs
    print(f"ex17 evaluation against the {EVAL_EVERY} steps to the next one, on {device}")
    print(f"{'K':>6} {'step ms':>8} {'eval s':>7} {'steps s':>8} {'share':>6}", flush=True)
    for k in sizes:
        steps, ev = evaluation_share(k, device)
        share = 100 * ev / (ev + steps)
        print(f"{k:6d} {1e3 * steps / EVAL_EVERY:8.1f} {ev:7.2f} {steps:8.1f} {share:5.1f}%", flush=True)


def evaluation_share(k: int, device: torch.device) -> tuple[float, float]:
    """(seconds of EVAL_EVERY steps, seconds of one evaluation) of ex17 at K = k."""
    from latent_sweep.engine.loop import evaluate
    from latent_sweep.engine.optim import PopulationAdam
    from latent_sweep.experiments.autoencoder import Autoencoders
    from latent_sweep.spec.config import load_file
    from latent_sweep.spec.population import build_members

    def clock() -> float:
        if device.type == "cuda":
            torch.cuda.synchronize()
            return time.perf_counter()
        return time.process_time()

    raw = load_file("sweeps/ex17.yaml")
    raw["members"] = [{"seed": s} for s in range(k)]
    pop = Autoencoders(build_members(raw, "sweeps/ex17.yaml"), device)
    adam = PopulationAdam(pop.params, weight_decay=0.0, decoupled=True)
    t = torch.zeros((), dtype=torch.int64, device=device)
    alive = torch.ones(k, dtype=torch.bool, device=device)

    def step(s: int) -> None:
        _, weighted = pop.losses(t, pop.shape(s), s)
        adam.step(pop.model.grad(weighted.sum()), pop.lr.at(t, s), alive)
        t.add_(1)

    for s in range(3):
        step(s)
    begin, timed = clock(), 20
    for s in range(3, 3 + timed):
        step(s)
    steps = (clock() - begin) / timed * EVAL_EVERY
    evaluate(pop, k, device)  # builds the grid's neighbor cache, as a trial's first evaluation
    begin = clock()
    evaluate(pop, k, device)
    return steps, clock() - begin


def main() -> None:
    raw = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=raw)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--members", type=int, default=64)
    parser.add_argument("--large-members", type=int, default=64)
    parser.add_argument("--skip-large", action="store_true")
    parser.add_argument("--share", type=lambda v: [int(k) for k in v.split(",")], metavar="K,...")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--worker", nargs=2, type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.share:
        bench_share(args.share, torch.device(args.device))
        return
    if args.worker:
        worker(*args.worker)
        return
    bench_neighbors(args.members)
    if not args.skip_large:
        bench_large(args.threads, args.large_members)
    bench_scores()


if __name__ == "__main__":
    main()
