"""The neighbor scan behind `latent_sweep.scores.neighbors`, batched over population members.

A population's members embed one shared point set X, each as its own Z; a single embedding is
a population of one. The scan goes over chunks of rows: a chunk's squared distances in X, its
neighbors in X and (with enough members to share them) every point's rank in X are computed
once, then members go through the chunk in blocks. Per block: squared distances in Z, the
nearest neighbors in Z (one top-k search at the largest k), their ranks in X and the ranks in
Z of the neighbors in X; every k is read off the same neighbors and ranks. Memory stays
O(members per block × rows per chunk × n): no n × n matrix, let alone K × n × n, is held.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

# Budget for a chunk's distance rows (and, off the CPU, its rank-counting block): half for X's
# rows, half for a block of members' rows. Bytes per entry of a row: X's distances, their sorted
# copy and ranks; a member's distances and temporaries of the same size.
_MEMORY_BUDGET = 256 * 2**20
_X_BYTES = 24
_MEMBER_BYTES = 24
# Budget for one CPU rank-counting block (rows × candidates × n booleans): small enough for cache.
_COUNT_BUDGET = 2**18
# CPU chunk rows: at least 64 (measured fastest single-threaded at n = 6,000 to 20,000), up to
# 2¹⁸ entries per chunk (fewer, larger steps at small n, e.g. the 8³ grid).
_CPU_CHUNK = 64
_CPU_CHUNK_ENTRIES = 2**18
# Budget for one CPU block of members' distance rows with their temporaries.
_CPU_BLOCK = 16 * 2**20
# Ranks in X come from sorted rows (n log n per row, once) rather than counting (members × k × n
# per row) from this many members × largest k on: a sort costs about 120 compares per entry.
_SORT_MIN_CANDIDATES = 128
# X's part of a scan (distances, ranks) kept between evaluations of one trial up to this size:
# the evaluation set is fixed, and its part is over a third of an evaluation at n = 1,000.
_X_CACHE_BUDGET = 64 * 2**20
_X_CACHED_BYTES = 12  # per entry: a float32 distance and an int64 rank
# Rows whose ball (see `_nearest`) holds at most n / this many points are searched in the ball.
_BALL_FRACTION = 4


@dataclass
class _Sums:
    """Per-member, per-k totals over all rows (int64 tensors of shape (members, len(ks)))."""

    trust: torch.Tensor  # Σ (r_X − k)+ over the k nearest in Z
    kept: torch.Tensor  # number of the k nearest in Z with r_X ≤ k
    cont: torch.Tensor  # Σ (r_Z − k)+ over the k nearest in X
    hits: torch.Tensor  # correct leave-one-out kNN predictions in Z


def _scan(
    x: torch.Tensor,
    z: torch.Tensor,
    ks: list[int],
    chunk: int,
    *,
    member_chunk: int | None = None,
    continuity: bool = False,
    labels: torch.Tensor | None = None,
    temperature: float = 0.07,
    cache: dict | None = None,
) -> _Sums:
    """One chunked pass of centered x (n × D) against every member's centered z (members × n × E),
    `member_chunk` members at a time; continuity and accuracy only when asked for. X's part of
    each chunk is kept in `cache` (within _X_CACHE_BUDGET) for the next pass over the same x."""
    members, n, kmax = z.shape[0], x.shape[0], ks[-1]
    sums = _Sums(*(torch.zeros(members, len(ks), dtype=torch.int64, device=x.device) for _ in range(4)))
    sq_x, sq_z = _sq_norms(x), z.square().sum(dim=2)
    classes = int(labels.max()) + 1 if labels is not None else 0
    step = member_chunk or _member_chunk(min(chunk, n), n, x.device)
    sort_x = members * kmax >= _SORT_MIN_CANDIDATES  # ranks in X looked up, not counted
    keep = cache is not None and n * n * _X_CACHED_BYTES <= _X_CACHE_BUDGET
    for start in range(0, n, chunk):
        stop = min(start + chunk, n)
        key = (start, stop, kmax, continuity, sort_x)
        if keep and key in cache:
            dx, near_x, ranks_x = cache[key]
        else:
            dx = _sq_dists(x[start:stop], x, sq_x)
            # Self is nobody's neighbor and never counts as closer.
            dx.diagonal(offset=start).fill_(torch.inf)
            near_x = dx.topk(kmax, dim=1, largest=False).indices if continuity else None
            ranks_x = torch.searchsorted(dx.sort(dim=1).values, dx).add_(1) if sort_x else None
            if keep:
                cache[key] = dx, near_x, ranks_x
        for m0 in range(0, members, step):
            block = slice(m0, min(m0 + step, members))
            zb, sq = z[block], sq_z[block]
            dz = torch.baddbmm(sq[:, start:stop, None], zb[:, start:stop], zb.transpose(1, 2), alpha=-2.0)
            dz.add_(sq[:, None, :]).diagonal(offset=start, dim1=1, dim2=2).fill_(torch.inf)
            m, rows = dz.shape[:2]
            cand = None if near_x is None else near_x.repeat(m, 1)
            near_dz, near_z, rank_z = _nearest(dz.view(m * rows, n), kmax, cand)
            near_dz, near_z = near_dz.view(m, rows, kmax), near_z.view(m, rows, kmax)
            if ranks_x is not None:
                rank_x = ranks_x.expand(m, rows, n).gather(2, near_z)
            else:  # all members' candidates of a row side by side: one count in the shared row
                rank_x = _ranks(dx, near_z.transpose(0, 1).reshape(rows, m * kmax))
                rank_x = rank_x.view(rows, m, kmax).transpose(0, 1)
            for i, k in enumerate(ks):
                sums.trust[block, i] += (rank_x[..., :k] - k).clamp_(min=0).sum(dim=(1, 2))
                sums.kept[block, i] += (rank_x[..., :k] <= k).sum(dim=(1, 2))
            if rank_z is not None:
                rank_z = rank_z.view(m, rows, kmax)
                for i, k in enumerate(ks):
                    sums.cont[block, i] += (rank_z[..., :k] - k).clamp_(min=0).sum(dim=(1, 2))
            if labels is not None:
                for i, k in enumerate(ks):
                    pred = _vote(near_dz[..., :k], near_z[..., :k], labels, classes, temperature)
                    sums.hits[block, i] += (pred == labels[start:stop]).sum(dim=1)
    return sums


def _nearest(
    d: torch.Tensor, kmax: int, cand: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """The kmax smallest entries of each row of d (values, columns) and the ranks of the
    candidate columns `cand` (None without candidates).

    The kmax nearest lie within the ball up to the farthest of the (≥ kmax) candidates, and only
    points in that ball count toward a candidate's rank. Where numpy counts (single-threaded
    CPU), rows whose ball holds few points (a good embedding keeps X-neighbors close) are packed
    to their ball's points, in column order, and searched and counted there.
    """
    if cand is None:
        return *d.topk(kmax, dim=1, largest=False), None
    thresholds = d.gather(1, cand)
    if _use_numpy(d):
        dn = d.numpy()
        inside = dn <= thresholds.max(dim=1).values.numpy()[:, None]
        size = np.count_nonzero(inside, axis=1)
        # (A ball holds ≥ kmax points unless distances are NaN: overflowing coordinates.)
        small = (size <= max(kmax, d.shape[1] // _BALL_FRACTION)) & (size >= kmax)
        if small.any():
            return _nearest_in_balls(d, kmax, thresholds, inside, size, small)
    return *d.topk(kmax, dim=1, largest=False), _ranks_below(d, thresholds)


def _nearest_in_balls(
    d: torch.Tensor,
    kmax: int,
    thresholds: torch.Tensor,
    inside: np.ndarray,
    size: np.ndarray,
    small: np.ndarray,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """`_nearest` (CPU) with the `small` rows searched in their packed balls, the rest in full."""
    packed = np.flatnonzero(small)
    every = packed.size == d.shape[0]
    n, counts = d.shape[1], size[packed]
    starts = np.cumsum(counts) - counts
    row = np.repeat(np.arange(packed.size), counts)
    flat = np.flatnonzero(inside if every else inside[packed])  # each ball in column order
    col = flat - row * n
    width = int(counts.max())
    values = np.full(packed.size * width, np.inf)
    values[np.arange(flat.size) + np.repeat(np.arange(packed.size) * width - starts, counts)] = (
        d.numpy().ravel()[flat if every else packed[row] * n + col]
    )
    values = torch.from_numpy(values.reshape(packed.size, width))
    ball_d, pos = values.topk(kmax, dim=1, largest=False)
    ball_near = torch.from_numpy(col[starts[:, None] + pos.numpy()])
    ball_ranks = _ranks_below(values, thresholds[packed])
    if every:
        return ball_d, ball_near, ball_ranks
    near_d, near = d.new_empty(d.shape[0], kmax), torch.empty(d.shape[0], kmax, dtype=torch.int64)
    ranks = torch.empty(thresholds.shape, dtype=torch.int64)
    packed_t, rest = torch.from_numpy(packed), torch.from_numpy(np.flatnonzero(~small))
    near_d[packed_t], near[packed_t], ranks[packed_t] = ball_d, ball_near, ball_ranks
    rest_d = d[rest]
    near_d[rest], near[rest] = rest_d.topk(kmax, dim=1, largest=False)
    ranks[rest] = _ranks_below(rest_d, thresholds[rest])
    return near_d, near, ranks


def _ranks(d: torch.Tensor, cand: torch.Tensor) -> torch.Tensor:
    """Rank (1-based) of each candidate column `cand[r, c]` among row r of distances `d`."""
    return _ranks_below(d, d.gather(1, cand))


def _ranks_below(d: torch.Tensor, thresholds: torch.Tensor) -> torch.Tensor:
    """1 + how many entries of d[r] are strictly below thresholds[r, c]."""
    return _count_below(d, thresholds, use_numpy=_use_numpy(d)) + 1


def _use_numpy(d: torch.Tensor) -> bool:
    """numpy's compare kernels are ~4× faster than torch's per thread but single-threaded."""
    return d.device.type == "cpu" and torch.get_num_threads() < 4


def _count_below(d: torch.Tensor, thresholds: torch.Tensor, *, use_numpy: bool) -> torch.Tensor:
    """For each row r and column c: how many entries of d[r] are strictly below thresholds[r, c].

    Rows go in blocks so the rows × thresholds × n comparison stays small (in cache on CPU).
    The numpy route compares through zero-copy views of CPU tensors.
    """
    rows, m, n = thresholds.shape[0], thresholds.shape[1], d.shape[1]
    block = max(1, (_COUNT_BUDGET if use_numpy else _MEMORY_BUDGET) // (m * n))
    if use_numpy:
        dn, tn = d.numpy(), thresholds.numpy()
        counts = np.empty((rows, m), dtype=np.int64)
        for s in range(0, rows, block):
            below = dn[s : s + block, None, :] < tn[s : s + block, :, None]
            counts[s : s + block] = below.sum(axis=2, dtype=np.int32)
        return torch.from_numpy(counts)
    counts_t = torch.empty(rows, m, dtype=torch.int64, device=d.device)
    for s in range(0, rows, block):
        below = d[s : s + block].unsqueeze(1) < thresholds[s : s + block].unsqueeze(2)
        counts_t[s : s + block] = below.sum(2)
    return counts_t


def _vote(
    near_d2: torch.Tensor, near: torch.Tensor, ref_y: torch.Tensor, classes: int, temperature: float
) -> torch.Tensor:
    """Predicted class per row (neighbors on the last axis): argmax over classes of Σ 1/(d + T)
    of the neighbors in each class."""
    weights = 1.0 / (near_d2.clamp(min=0).sqrt() + temperature)
    scores = torch.zeros(*near.shape[:-1], classes, dtype=weights.dtype, device=weights.device)
    scores.scatter_add_(-1, ref_y[near], weights)
    return scores.argmax(dim=-1)


def _score_table(sums: _Sums, n: int, ks: list[int], *, accuracy: bool) -> dict[str, torch.Tensor]:
    """Every score of `neighbor_scores` per member, as float64 tensors of shape (members,)."""
    table: dict[str, torch.Tensor] = {}
    for i, k in enumerate(ks):
        table[f"trustworthiness_k{k}"] = _from_rank_excess(sums.trust[:, i], n, k)
        table[f"continuity_k{k}"] = _from_rank_excess(sums.cont[:, i], n, k)
        table[f"knn_recall_k{k}"] = sums.kept[:, i].double() / (n * k)
        if accuracy:
            table[f"knn_accuracy_k{k}"] = sums.hits[:, i].double() / n
    return table


def _from_rank_excess(total: torch.Tensor, n: int, k: int) -> torch.Tensor:
    return 1.0 - total.double() * 2.0 / (n * k * (2.0 * n - 3.0 * k - 1.0))


def _centered(p: torch.Tensor, mean: torch.Tensor | None = None) -> torch.Tensor:
    """Shift (each member's) points to their (given) mean: distances don't change, and
    |a|² + |b|² − 2a·b stays accurate."""
    return p - (p.mean(dim=-2, keepdim=True) if mean is None else mean)


def _sq_norms(p: torch.Tensor) -> torch.Tensor:
    return p.square().sum(dim=1)


def _sq_dists(rows: torch.Tensor, points: torch.Tensor, sq_points: torch.Tensor) -> torch.Tensor:
    """Squared euclidean distances (rows × points) via |a|² + |b|² − 2a·b (inputs are centered)."""
    d2 = torch.addmm(_sq_norms(rows).unsqueeze(1), rows, points.T, alpha=-2.0)
    return d2.add_(sq_points.unsqueeze(0))


def _chunk_rows(n: int, device: torch.device) -> int:
    """Rows per chunk: X's rows fit half the memory budget (on CPU see `_CPU_CHUNK`)."""
    fit = max(1, _MEMORY_BUDGET // (2 * _X_BYTES * max(n, 1)))
    if device.type == "cpu":
        return min(fit, max(_CPU_CHUNK, _CPU_CHUNK_ENTRIES // max(n, 1)))
    return min(fit, max(n, 1))


def _member_chunk(rows: int, n: int, device: torch.device) -> int:
    """Members per block: their rows fit the other half of the memory budget (on CPU a block of
    `_CPU_BLOCK`, or one member)."""
    budget = _CPU_BLOCK if device.type == "cpu" else _MEMORY_BUDGET // 2
    return max(1, budget // (_MEMBER_BYTES * rows * max(n, 1)))
