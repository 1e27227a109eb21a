"""Neighbor-preservation scores between input space X and latent space Z, and weighted kNN accuracy
(definitions for users: docs/scores.md).

Everything runs in torch on one device, in float64, chunked over query rows so memory stays
O(chunk × n): no n × n matrix is ever held. One pass computes, per chunk of rows, the squared
distances to all n points in both spaces, the neighbors in each space (one top-k search at
the largest k) and the ranks of those neighbors in the other space; every k is then read off
the same neighbors and ranks. `neighbor_scores_members` scores a whole population (each
member's embedding of the same X) in that one pass, sharing X's part; the single-embedding
scores are a population of one (the scan is in `latent_sweep.scores._scan`).

Rank convention: the rank of j among i's neighbors is 1 + the number of points strictly
closer to i than j (i itself excluded). Without distance ties this is the rank sklearn uses;
with ties every tied point gets the best rank (sklearn's argsort breaks ties arbitrarily).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from latent_sweep.errors import UserError
from latent_sweep.scores._scan import (
    _MEMORY_BUDGET,
    _centered,
    _scan,
    _score_table,
    _sq_dists,
    _sq_norms,
    _vote,
)
from latent_sweep.scores._scan import _chunk_rows as _default_chunk_rows


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
    z = _centered(z)[None]  # a population of one
    sums = _scan(_centered(x), z, sizes, chunk, continuity=True, labels=y, temperature=temperature)
    table = _score_table(sums, x.shape[0], sizes, accuracy=y is not None)
    return dict(zip(table, torch.stack(list(table.values()))[:, 0].tolist(), strict=True))


def neighbor_scores_members(
    X: Any,
    Z: Any,
    ks: int | Sequence[int],
    *,
    labels: Any = None,
    temperature: float = 0.07,
    device: str | torch.device | None = None,
    chunk_size: int | None = None,
    member_chunk: int | None = None,
    cache: dict | None = None,
) -> dict[str, np.ndarray]:
    """`neighbor_scores(X, Z[m], ks, ...)` for every member m at once: float64 arrays of shape (K,).

    X (n × D) holds the shared input points, Z (K × n × E) each member's embedding of them.
    Computes on `device` (default: Z's, else X's) and copies to the host once, at the end.
    `chunk_size` (rows) and `member_chunk` (members per block) default to what fits the memory
    budget. A diverged member (any non-finite coordinate) scores NaN; the others are unaffected.
    `cache`, an empty dict kept by the caller, holds X's distances and ranks for the next call
    with the same X (a trial's fixed evaluation set); the scores do not change.
    """
    dev = _resolve_device(device, Z, X)
    x = _points(X, "X", dev)
    n = x.shape[0]
    z, finite = _member_points(Z, n, dev)
    sizes = _neighborhood_sizes(ks, "ks", n)
    y = None
    if labels is not None:
        y = _labels(labels, "labels", n, dev)
        _check_temperature(temperature)
    if member_chunk is not None and (
        isinstance(member_chunk, bool) or not isinstance(member_chunk, int | np.integer) or member_chunk <= 0
    ):
        raise UserError(f"`member_chunk` must be a positive integer or None, but got {member_chunk!r}")
    chunk = _chunk_rows(chunk_size, n, dev)
    step = None if member_chunk is None else int(member_chunk)
    sums = _scan(
        _centered(x),
        z,
        sizes,
        chunk,
        member_chunk=step,
        continuity=True,
        labels=y,
        temperature=temperature,
        cache=cache,
    )
    table = _score_table(sums, n, sizes, accuracy=y is not None)
    values = torch.stack(list(table.values())).masked_fill_(~finite, torch.nan).cpu().numpy()
    return dict(zip(table, values, strict=True))


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


def _one_score(
    name: str, X: Any, Z: Any, k: int | Sequence[int], chunk_size: int | None, device: Any
) -> float | dict[int, float]:
    """trustworthiness, continuity or knn_recall for one k or several."""
    x, z, sizes = _prepare(X, Z, k, "k", device)
    if name == "continuity":
        x, z = z, x
    n = x.shape[0]
    sums = _scan(_centered(x), _centered(z)[None], sizes, _chunk_rows(chunk_size, n, x.device))
    table = _score_table(sums, n, sizes, accuracy=False)
    family = "knn_recall" if name == "knn_recall" else "trustworthiness"
    got = torch.cat([table[f"{family}_k{size}"] for size in sizes]).tolist()
    values = dict(zip(sizes, got, strict=True))
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
    return x, z, _neighborhood_sizes(k, k_name, x.shape[0])


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


def _member_points(Z: Any, n: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Each member's points as float64 on `device`, centered per member, and which members are
    finite (their squared distances too); a non-finite member's points become zeros (its scores
    are discarded)."""
    try:
        t = torch.as_tensor(Z.detach() if isinstance(Z, torch.Tensor) else Z)
    except (TypeError, ValueError, RuntimeError) as e:
        raise UserError(f"`Z` must be a numeric array, but got {type(Z).__name__}: {e}") from None
    if t.ndim != 3 or 0 in (t.shape[0], t.shape[2]):
        raise UserError(
            "`Z` must be a 3-D array (members × points × features, at least one member and feature), "
            f"but got shape {tuple(t.shape)}"
        )
    if t.shape[1] != n:
        raise UserError(f"`Z` must embed the {n} points of `X` (shape (K, {n}, E)), but got {tuple(t.shape)}")
    z = torch.empty(t.shape, dtype=torch.float64, device=device)
    finite = torch.empty(t.shape[0], dtype=torch.bool, device=device)
    step = max(1, _MEMORY_BUDGET // (32 * n * t.shape[2]))  # a few members at a time
    for s in range(0, t.shape[0], step):
        part = t[s : s + step].to(device=device, dtype=torch.float64)
        part = _centered(part)  # NaN or infinite throughout if any coordinate is
        ok = torch.isfinite(4 * part.square().sum(dim=2).amax(dim=1))  # bounds every squared distance
        finite[s : s + step] = ok
        z[s : s + step] = torch.where(ok[:, None, None], part, 0.0)
    return z, finite


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
    """Rows per chunk: given, or what fits the memory budget (see `neighbors_members._chunk_rows`)."""
    if chunk_size is None:
        return _default_chunk_rows(n, device)
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int | np.integer) or chunk_size <= 0:
        raise UserError(f"`chunk_size` must be a positive integer or None, but got {chunk_size!r}")
    return int(chunk_size)
