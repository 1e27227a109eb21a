"""Neighbor-preservation scores between input space X and latent space Z, and weighted kNN accuracy.

Everything runs in torch on one device, in float64, chunked over query rows so memory stays
O(chunk × n): no n × n matrix is ever held. One pass computes, per chunk of rows, the squared
distances to all n points in both spaces, the neighbors in each space (one top-k search at
the largest k) and the ranks of those neighbors in the other space; every k is then read off
the same neighbors and ranks.

Rank convention: the rank of j among i's neighbors is 1 + the number of points strictly
closer to i than j (i itself excluded). Without distance ties this is the rank sklearn uses;
with ties every tied point gets the best rank (sklearn's argsort breaks ties arbitrarily).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from latent_sweep.errors import UserError

# Budget for a chunk's distance rows (and, off the CPU, its rank-counting block).
_MEMORY_BUDGET = 256 * 2**20
# Budget for one CPU rank-counting block (rows × candidates × n booleans): small enough for cache.
_COUNT_BUDGET = 2**18
# Default CPU chunk rows: measured fastest single-threaded at n = 6,000 to 20,000.
_CPU_CHUNK = 64


def trustworthiness(
    X: Any,
    Z: Any,
    k: int | Sequence[int],
    *,
    chunk_size: int | None = None,
    device: str | torch.device | None = None,
) -> float | dict[int, float]:
    """Venna & Kaski trustworthiness of embedding Z of X; equals `sklearn.manifold.trustworthiness`.

    T(k) = 1 − 2/(n k (2n − 3k − 1)) Σ_i Σ_{j ∈ U_k(i)} (r(i, j) − k), where U_k(i) are i's k
    nearest neighbors in Z that are not among its k nearest in X and r(i, j) is j's rank
    among i's neighbors in X. `k` may be one size (returns a float) or several (returns
    {k: T(k)}, from one neighbor search). Requires 0 < k < n/2.
    """
    return _one_score("trustworthiness", X, Z, k, chunk_size, device)


def continuity(
    X: Any,
    Z: Any,
    k: int | Sequence[int],
    *,
    chunk_size: int | None = None,
    device: str | torch.device | None = None,
) -> float | dict[int, float]:
    """Continuity: trustworthiness with the two spaces swapped (are X-neighbors kept in Z?)."""
    return _one_score("continuity", X, Z, k, chunk_size, device)


def knn_recall(
    X: Any,
    Z: Any,
    k: int | Sequence[int],
    *,
    chunk_size: int | None = None,
    device: str | torch.device | None = None,
) -> float | dict[int, float]:
    """Mean fraction of each point's k nearest neighbors in X that are among its k nearest in Z."""
    return _one_score("knn_recall", X, Z, k, chunk_size, device)


def neighbor_scores(
    X: Any,
    Z: Any,
    ks: Sequence[int],
    *,
    labels: Any = None,
    temperature: float = 0.07,
    device: str | torch.device | None = None,
    chunk_size: int | None = None,
) -> dict[str, float]:
    """All neighbor scores for every k in `ks`, from one neighbor search per space.

    Returns `trustworthiness_k{k}`, `continuity_k{k}`, `knn_recall_k{k}` and, when `labels`
    (one integer class per point) are given, `knn_accuracy_k{k}`: leave-one-out weighted kNN
    accuracy in Z (see `knn_accuracy`).
    """
    x, z, sizes = _prepare(X, Z, ks, "ks", device)
    y = None
    if labels is not None:
        y = _labels(labels, "labels", x.shape[0], x.device)
        _check_temperature(temperature)
    chunk = _chunk_rows(chunk_size, x.shape[0], x.device)
    sums = _scan(x, z, sizes, chunk, continuity=True, labels=y, temperature=temperature)
    n = x.shape[0]
    scores: dict[str, float] = {}
    for i, k in enumerate(sizes):
        scores[f"trustworthiness_k{k}"] = _from_rank_excess(sums.trust[i], n, k)
        scores[f"continuity_k{k}"] = _from_rank_excess(sums.cont[i], n, k)
        scores[f"knn_recall_k{k}"] = float(sums.kept[i]) / (n * k)
        if y is not None:
            scores[f"knn_accuracy_k{k}"] = float(sums.hits[i]) / n
    return scores


def knn_accuracy(
    train_Z: Any,
    train_y: Any,
    query_Z: Any,
    query_y: Any,
    k: int,
    temperature: float = 0.07,
    num_classes: int | None = None,
    *,
    device: str | torch.device | None = None,
    chunk_size: int | None = None,
) -> float:
    """Accuracy of the weighted kNN rule (seed OnlineKNN) on the query set, in [0, 1].

    Each query takes its k nearest reference points by euclidean distance d, weights them by
    1/(d + temperature), scores each class by the summed weights of its neighbors and
    predicts the highest-scoring class (the lowest class id on a tie). When `query_Z` is the
    very same object as `train_Z`, each point is left out of its own neighbors
    (leave-one-out), so one labeled set scores itself honestly. `num_classes` is inferred as
    the largest label + 1 (with a warning) when None; it does not change the accuracy.
    """
    dev = _resolve_device(device, train_Z, query_Z)
    ref = _points(train_Z, "train_Z", dev)
    leave_one_out = query_Z is train_Z
    query = ref if leave_one_out else _points(query_Z, "query_Z", dev)
    if query.shape[1] != ref.shape[1]:
        raise UserError(
            f"`query_Z` must have as many columns as `train_Z` ({ref.shape[1]}), but got {query.shape[1]}"
        )
    if query.shape[0] == 0:
        raise UserError("`query_Z` must hold at least one point, but got 0 rows")
    ref_y = _labels(train_y, "train_y", ref.shape[0], dev)
    query_y_t = _labels(query_y, "query_y", query.shape[0], dev)
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k <= 0:
        raise UserError(f"`k` must be a positive integer, but got {k!r}")
    available = ref.shape[0] - 1 if leave_one_out else ref.shape[0]
    if k > available:
        why = " (each point left out of its own neighbors)" if leave_one_out else ""
        raise UserError(f"`k` must be ≤ the number of reference points{why} ({available}), but got {k}")
    _check_temperature(temperature)
    classes = _num_classes(num_classes, ref_y, query_y_t)
    chunk = _chunk_rows(chunk_size, ref.shape[0], ref.device)
    mean = ref.mean(dim=0)
    ref, query = _centered(ref, mean), _centered(query, mean)
    sq_ref = _sq_norms(ref)
    hits = torch.zeros((), dtype=torch.int64, device=dev)
    for start in range(0, query.shape[0], chunk):
        d2 = _sq_dists(query[start : start + chunk], ref, sq_ref)
        if leave_one_out:
            d2.diagonal(offset=start).fill_(torch.inf)
        near_d2, near = d2.topk(int(k), dim=1, largest=False)
        pred = _vote(near_d2, near, ref_y, classes, temperature)
        hits += (pred == query_y_t[start : start + chunk]).sum()
    return int(hits) / query.shape[0]


# --- the scan -------------------------------------------------------------------------------


@dataclass
class _Sums:
    """Per-k totals over all rows (tensors of shape (len(ks),))."""

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
    continuity: bool = False,
    labels: torch.Tensor | None = None,
    temperature: float = 0.07,
) -> _Sums:
    """One chunked pass over the rows; continuity and accuracy only when asked for."""
    n, kmax = x.shape[0], ks[-1]
    sums = _Sums(*(torch.zeros(len(ks), dtype=torch.int64, device=x.device) for _ in range(4)))
    sq_x, sq_z = _sq_norms(x), _sq_norms(z)
    classes = int(labels.max()) + 1 if labels is not None else 0
    for start in range(0, n, chunk):
        stop = min(start + chunk, n)
        dx = _sq_dists(x[start:stop], x, sq_x)
        dz = _sq_dists(z[start:stop], z, sq_z)
        # Self is nobody's neighbor and never counts as closer.
        dx.diagonal(offset=start).fill_(torch.inf)
        dz.diagonal(offset=start).fill_(torch.inf)
        near_dz, near_z = dz.topk(kmax, dim=1, largest=False)
        rank_x = _ranks(dx, near_z)
        for i, k in enumerate(ks):
            sums.trust[i] += (rank_x[:, :k] - k).clamp_(min=0).sum()
            sums.kept[i] += (rank_x[:, :k] <= k).sum()
        if continuity:
            near_x = dx.topk(kmax, dim=1, largest=False).indices
            rank_z = _ranks(dz, near_x)
            for i, k in enumerate(ks):
                sums.cont[i] += (rank_z[:, :k] - k).clamp_(min=0).sum()
        if labels is not None:
            for i, k in enumerate(ks):
                pred = _vote(near_dz[:, :k], near_z[:, :k], labels, classes, temperature)
                sums.hits[i] += (pred == labels[start:stop]).sum()
    return sums


def _ranks(d: torch.Tensor, cand: torch.Tensor) -> torch.Tensor:
    """Rank (1-based) of each candidate column `cand[r, c]` among row r of distances `d`."""
    # numpy's compare kernels are ~4× faster than torch's per thread but single-threaded.
    use_numpy = d.device.type == "cpu" and torch.get_num_threads() < 4
    return _count_below(d, d.gather(1, cand), use_numpy=use_numpy) + 1


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
    """Predicted class per row: argmax over classes of Σ 1/(d + T) of the neighbors in each class."""
    weights = 1.0 / (near_d2.clamp(min=0).sqrt() + temperature)
    scores = torch.zeros(near.shape[0], classes, dtype=weights.dtype, device=weights.device)
    scores.scatter_add_(1, ref_y[near], weights)
    return scores.argmax(dim=1)


def _from_rank_excess(total: torch.Tensor, n: int, k: int) -> float:
    return 1.0 - float(total) * 2.0 / (n * k * (2.0 * n - 3.0 * k - 1.0))


def _sq_norms(p: torch.Tensor) -> torch.Tensor:
    return p.square().sum(dim=1)


def _sq_dists(rows: torch.Tensor, points: torch.Tensor, sq_points: torch.Tensor) -> torch.Tensor:
    """Squared euclidean distances (rows × points) via |a|² + |b|² − 2a·b (inputs are centered)."""
    d2 = torch.addmm(_sq_norms(rows).unsqueeze(1), rows, points.T, alpha=-2.0)
    return d2.add_(sq_points.unsqueeze(0))


def _one_score(
    name: str, X: Any, Z: Any, k: int | Sequence[int], chunk_size: int | None, device: Any
) -> float | dict[int, float]:
    """trustworthiness, continuity or knn_recall for one k or several."""
    x, z, sizes = _prepare(X, Z, k, "k", device)
    if name == "continuity":
        x, z = z, x
    n = x.shape[0]
    sums = _scan(x, z, sizes, _chunk_rows(chunk_size, n, x.device))
    if name == "knn_recall":
        values = {size: float(sums.kept[i]) / (n * size) for i, size in enumerate(sizes)}
    else:
        values = {size: _from_rank_excess(sums.trust[i], n, size) for i, size in enumerate(sizes)}
    return values[sizes[0]] if _is_single(k) else values


# --- validation -----------------------------------------------------------------------------


def _prepare(
    X: Any, Z: Any, k: int | Sequence[int], k_name: str, device: Any
) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
    dev = _resolve_device(device, X, Z)
    x, z = _points(X, "X", dev), _points(Z, "Z", dev)
    if x.shape[0] != z.shape[0]:
        raise UserError(
            f"`X` and `Z` must have the same number of rows (points), but got {x.shape[0]} and {z.shape[0]}"
        )
    sizes = _neighborhood_sizes(k, k_name, x.shape[0])
    return _centered(x), _centered(z), sizes


def _centered(p: torch.Tensor, mean: torch.Tensor | None = None) -> torch.Tensor:
    """Shift to the (given) mean: distances don't change, and |a|² + |b|² − 2a·b stays accurate."""
    return p - (p.mean(dim=0) if mean is None else mean)


def _resolve_device(device: Any, *arrays: Any) -> torch.device:
    """The given device, else the device of the first tensor argument, else the CPU."""
    if device is not None:
        return torch.device(device)
    for a in arrays:
        if isinstance(a, torch.Tensor):
            return a.device
    return torch.device("cpu")


def _points(a: Any, name: str, device: torch.device) -> torch.Tensor:
    """A finite float64 (points × features) tensor on `device`."""
    try:
        t = torch.as_tensor(a.detach() if isinstance(a, torch.Tensor) else a)
    except (TypeError, ValueError, RuntimeError) as e:
        raise UserError(f"`{name}` must be a numeric array, but got {type(a).__name__}: {e}") from None
    if t.ndim != 2 or t.shape[1] == 0:
        raise UserError(
            f"`{name}` must be a 2-D array (points × features, at least one feature), "
            f"but got shape {tuple(t.shape)}"
        )
    t = t.to(device=device, dtype=torch.float64)
    bad = int((~torch.isfinite(t)).sum())
    if bad:
        raise UserError(f"`{name}` must hold only finite values, but got {bad} NaN or infinite entries")
    return t


def _neighborhood_sizes(k: int | Sequence[int], name: str, n: int) -> list[int]:
    """Sorted distinct sizes, each a positive integer below n/2 (sklearn's condition)."""
    single = _is_single(k)
    sizes = [k] if single else list(k)
    if not sizes:
        raise UserError(f"`{name}` must name at least one neighborhood size, but got []")
    for size in sizes:
        if isinstance(size, bool) or not isinstance(size, int | np.integer) or size <= 0:
            what = "be a positive integer" if single else "hold positive integers"
            raise UserError(f"`{name}` must {what}, but got {size!r}")
        if size >= n / 2:
            raise UserError(f"`{name}` must be < n/2 (n = {n}), but got {size}")
    return sorted({int(size) for size in sizes})


def _is_single(k: Any) -> bool:
    return not isinstance(k, Sequence | np.ndarray)


def _labels(y: Any, name: str, n: int, device: torch.device) -> torch.Tensor:
    t = torch.as_tensor(y.detach() if isinstance(y, torch.Tensor) else np.asarray(y))
    if t.dtype == torch.bool or t.is_floating_point() or t.is_complex():
        raise UserError(f"`{name}` must hold integer class labels, but got dtype {t.dtype}")
    if t.shape != (n,):
        raise UserError(f"`{name}` must have shape ({n},), one label per point, but got {tuple(t.shape)}")
    if n and int(t.min()) < 0:
        raise UserError(f"`{name}` must hold class labels ≥ 0, but got {int(t.min())}")
    return t.to(device=device, dtype=torch.int64)


def _num_classes(num_classes: int | None, *label_sets: torch.Tensor) -> int:
    largest = max(int(y.max()) for y in label_sets if y.numel())
    if num_classes is None:
        warnings.warn(
            f"knn_accuracy: inferred num_classes = {largest + 1} from the labels (largest label + 1); "
            "pass num_classes to state it",
            stacklevel=3,
        )
        return largest + 1
    if isinstance(num_classes, bool) or not isinstance(num_classes, int | np.integer) or num_classes <= 0:
        raise UserError(f"`num_classes` must be a positive integer, but got {num_classes!r}")
    if largest >= num_classes:
        raise UserError(f"`num_classes` must be > the largest label ({largest}), but got {num_classes}")
    return int(num_classes)


def _check_temperature(temperature: float) -> None:
    if not temperature > 0:
        raise UserError(f"`temperature` must be > 0, but got {temperature}")


def _chunk_rows(chunk_size: int | None, n: int, device: torch.device) -> int:
    """Rows per chunk: given, or what fits two float64 distance rows of length n in the budget.

    On CPU at most `_CPU_CHUNK` rows: a small block stays in cache across the passes over it.
    """
    if chunk_size is None:
        fit = max(1, _MEMORY_BUDGET // (16 * max(n, 1)))
        return min(fit, _CPU_CHUNK if device.type == "cpu" else n)
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int | np.integer) or chunk_size <= 0:
        raise UserError(f"`chunk_size` must be a positive integer or None, but got {chunk_size!r}")
    return int(chunk_size)
