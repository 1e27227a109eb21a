"""Neighbor-preservation scores against sklearn and plain numpy oracles; every error message."""

from __future__ import annotations

import re
import warnings

import numpy as np
import pytest
import torch
from sklearn.manifold import trustworthiness as sk_trustworthiness

from latent_sweep.errors import UserError
from latent_sweep.scores import _scan as neighbors_members
from latent_sweep.scores._scan import _count_below
from latent_sweep.scores.neighbors import (
    continuity,
    knn_accuracy,
    knn_recall,
    neighbor_scores,
    neighbor_scores_members,
    trustworthiness,
)


def _noisy_projection(seed: int, n: int, dim: int, latent: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centers = rng.normal(scale=4.0, size=(4, dim))
    x = centers[rng.integers(0, 4, n)] + rng.normal(size=(n, dim))
    z = x[:, :latent] + rng.normal(scale=1.5, size=(n, latent))
    return x, z


DATASETS = [(0, 120, 8, 2), (1, 200, 5, 3), (2, 61, 3, 2)]


def _numpy_knn_accuracy(ref, ref_y, query, query_y, k, temperature, leave_one_out):
    """The 1/(d + T) weighted vote written out directly, one query at a time."""
    dist = np.sqrt(((query[:, None, :] - ref[None, :, :]) ** 2).sum(-1))
    if leave_one_out:
        np.fill_diagonal(dist, np.inf)
    correct = 0
    for i in range(len(query)):
        near = np.argsort(dist[i], kind="stable")[:k]
        scores = np.zeros(max(ref_y.max(), query_y.max()) + 1)
        np.add.at(scores, ref_y[near], 1.0 / (dist[i, near] + temperature))
        correct += int(np.argmax(scores) == query_y[i])
    return correct / len(query)


def _numpy_ranks(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distances with self at inf, and rank = 1 + number of points strictly closer."""
    d = ((a[:, None, :] - a[None, :, :]) ** 2).sum(-1)
    np.fill_diagonal(d, np.inf)
    return d, (d[:, None, :] < d[:, :, None]).sum(-1) + 1


@pytest.mark.parametrize(("seed", "n", "dim", "latent"), DATASETS)
def test_trustworthiness_matches_sklearn_for_several_k_and_chunkings(seed, n, dim, latent):
    x, z = _noisy_projection(seed, n, dim, latent)
    ks = [1, 3, 10, (n - 1) // 2]
    expected = {k: sk_trustworthiness(x, z, n_neighbors=k) for k in ks}
    for chunk in (None, 1, 7, n):
        got = trustworthiness(x, z, ks, chunk_size=chunk)
        assert set(got) == set(ks)
        for k in ks:
            assert got[k] == pytest.approx(expected[k], abs=1e-6)
    # One size gives a float, equal to its entry in the multi-k answer.
    assert trustworthiness(x, z, 3) == pytest.approx(expected[3], abs=1e-6)
    assert expected[3] < 0.999  # the data is not trivially perfect


def test_continuity_is_trustworthiness_with_the_spaces_swapped():
    x, z = _noisy_projection(3, 150, 6, 2)
    ks = [2, 9, 30]
    got = continuity(x, z, ks, chunk_size=16)
    assert got == trustworthiness(z, x, ks)
    for k in ks:
        assert got[k] == pytest.approx(sk_trustworthiness(z, x, n_neighbors=k), abs=1e-6)
    assert got[9] != pytest.approx(trustworthiness(x, z, 9), abs=1e-3)


def test_torch_inputs_give_the_numpy_answer():
    x, z = _noisy_projection(4, 90, 4, 2)
    zt = torch.tensor(z, dtype=torch.float32, requires_grad=True)
    assert trustworthiness(torch.from_numpy(x), zt, 5) == pytest.approx(
        trustworthiness(x, zt.detach().double().numpy(), 5), abs=1e-12
    )


def test_knn_recall_hand_checked_pairs():
    # Pairs (0, 1), (2, 3), (4, 5) are nearest neighbors in X; Z swaps members of the first two.
    x = np.array([[0.0], [1.0], [10.0], [11.0], [20.0], [21.0]])
    z = np.array([[0.0], [10.0], [1.0], [11.0], [20.0], [21.0]])
    assert knn_recall(x, x, 1) == 1.0
    assert knn_recall(x, z, 1) == pytest.approx(2 / 6)


def test_knn_recall_matches_set_intersection_and_breaks_under_permutation():
    x, z = _noisy_projection(5, 140, 6, 2)
    ks = [1, 4, 15]
    order_x = np.argsort(_numpy_ranks(x)[0], axis=1, kind="stable")
    order_z = np.argsort(_numpy_ranks(z)[0], axis=1, kind="stable")
    got = knn_recall(x, z, ks, chunk_size=9)
    for k in ks:
        kept = [len(set(order_x[i, :k]) & set(order_z[i, :k])) for i in range(len(x))]
        assert got[k] == pytest.approx(np.mean(kept) / k, abs=1e-12)
    assert knn_recall(x, x, ks) == {k: 1.0 for k in ks}
    shuffled = knn_recall(x, x[np.random.default_rng(0).permutation(len(x))], 15)
    assert shuffled < 0.3 < got[15]


def test_ties_get_the_best_rank():
    # A 4 × 4 integer grid: many equal distances. The documented rank is 1 + strictly closer.
    grid = np.array([[i, j] for i in range(4) for j in range(4)], dtype=float)
    z = grid[:, ::-1] * np.array([1.0, 2.5]) + np.arange(16)[:, None] * 0.01
    k = 3
    d_z = ((z[:, None] - z[None]) ** 2).sum(-1)
    np.fill_diagonal(d_z, np.inf)
    near_z = np.argsort(d_z, axis=1, kind="stable")[:, :k]
    ranks = np.take_along_axis(_numpy_ranks(grid)[1], near_z, axis=1)
    expected = 1 - 2 / (16 * k * (32 - 3 * k - 1)) * np.clip(ranks - k, 0, None).sum()
    assert trustworthiness(grid, z, k) == pytest.approx(expected, abs=1e-12)


def test_torch_and_numpy_counting_agree_with_ties():
    gen = torch.Generator().manual_seed(0)
    d = torch.randint(0, 20, (13, 50), generator=gen).double()
    thresholds = d[:, :6].clone()
    expected = (d.unsqueeze(1) < thresholds.unsqueeze(2)).sum(2)
    assert torch.equal(_count_below(d, thresholds, use_numpy=True), expected)
    assert torch.equal(_count_below(d, thresholds, use_numpy=False), expected)


def test_knn_accuracy_hand_computed():
    ref = np.array([[0.0], [1.0], [3.0]])
    ref_y = np.array([0, 0, 1])
    query = np.array([[2.2], [2.6]])
    query_y = np.array([1, 1])
    # T = 0.1. At 2.2: class 0 gets 1/2.3 + 1/1.3 = 1.204 > class 1's 1/0.9 = 1.111 (wrong).
    # At 2.6: class 0 gets 1/2.7 + 1/1.7 = 0.959 < class 1's 1/0.5 = 2 (right, against the majority).
    assert knn_accuracy(ref, ref_y, query, query_y, 3, temperature=0.1, num_classes=2) == 0.5
    # A large temperature flattens the weights to a majority vote: both predicted 0.
    assert knn_accuracy(ref, ref_y, query, query_y, 3, temperature=100.0, num_classes=2) == 0.0


@pytest.mark.parametrize("k", [1, 5, 12])
def test_knn_accuracy_matches_numpy_oracle(k):
    rng = np.random.default_rng(k)
    ref, query = rng.normal(size=(80, 3)), rng.normal(size=(37, 3))
    ref_y, query_y = rng.integers(0, 4, 80), rng.integers(0, 4, 37)
    for temperature in (0.07, 1.0):
        expected = _numpy_knn_accuracy(ref, ref_y, query, query_y, k, temperature, False)
        got = knn_accuracy(ref, ref_y, query, query_y, k, temperature, num_classes=4, chunk_size=10)
        assert got == expected
        loo = _numpy_knn_accuracy(ref, ref_y, ref, ref_y, k, temperature, True)
        assert knn_accuracy(ref, ref_y, ref, ref_y, k, temperature, num_classes=4, chunk_size=7) == loo


def test_knn_accuracy_leaves_self_out_only_for_the_same_object():
    rng = np.random.default_rng(7)
    z, y = rng.normal(size=(60, 2)), rng.integers(0, 3, 60)
    assert knn_accuracy(z, y, z.copy(), y, 1, num_classes=3) == 1.0  # each point finds itself
    assert knn_accuracy(z, y, z, y, 1, num_classes=3) < 0.7


def test_knn_accuracy_warns_when_it_infers_num_classes():
    z, y = np.eye(4), np.array([0, 2, 2, 0])
    with pytest.warns(UserWarning, match=re.escape("inferred num_classes = 3")):
        knn_accuracy(z, y, z, y, 1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        knn_accuracy(z, y, z, y, 1, num_classes=3)


def test_neighbor_scores_agree_with_the_single_scores():
    x, z = _noisy_projection(6, 130, 5, 2)
    labels = np.random.default_rng(6).integers(0, 3, 130)
    ks = [3, 8, 20]
    scores = neighbor_scores(x, z, ks, labels=labels, temperature=0.5, chunk_size=11)
    names = ("trustworthiness", "continuity", "knn_recall", "knn_accuracy")
    assert set(scores) == {f"{name}_k{k}" for name in names for k in ks}
    for k in ks:
        assert scores[f"trustworthiness_k{k}"] == pytest.approx(sk_trustworthiness(x, z, n_neighbors=k))
        assert scores[f"continuity_k{k}"] == pytest.approx(sk_trustworthiness(z, x, n_neighbors=k))
        assert scores[f"knn_recall_k{k}"] == knn_recall(x, z, k)
        loo = _numpy_knn_accuracy(z, labels, z, labels, k, 0.5, True)
        assert scores[f"knn_accuracy_k{k}"] == pytest.approx(loo, abs=1e-12)
    assert "knn_accuracy_k3" not in neighbor_scores(x, z, ks)


def _raises(message: str):
    return pytest.raises(UserError, match="^" + re.escape(message) + "$")


def test_neighbor_score_errors():
    x, z = _noisy_projection(8, 100, 3, 2)
    with _raises("`k` must be < n/2 (n = 100), but got 50"):
        trustworthiness(x, z, 50)
    with pytest.raises(ValueError, match="less than n_samples / 2"):
        sk_trustworthiness(x, z, n_neighbors=50)  # the condition we mirror
    assert 0 < trustworthiness(x, z, 49) <= 1
    with _raises("`k` must be a positive integer, but got 0"):
        knn_recall(x, z, 0)
    with _raises("`k` must be a positive integer, but got 2.5"):
        continuity(x, z, 2.5)
    with _raises("`k` must hold positive integers, but got -1"):
        trustworthiness(x, z, [3, -1])
    with _raises("`ks` must name at least one neighborhood size, but got []"):
        neighbor_scores(x, z, [])
    with _raises("`ks` must be < n/2 (n = 100), but got 60"):
        neighbor_scores(x, z, [5, 60])
    with _raises("`X` and `Z` must have the same number of rows (points), but got 100 and 99"):
        trustworthiness(x, z[:99], 5)
    x_nan, z_inf = x.copy(), z.copy()
    x_nan[3, 1] = np.nan
    z_inf[[0, 5], 0] = np.inf
    with _raises("`X` must hold only finite values, but got 1 NaN or infinite entries"):
        trustworthiness(x_nan, z, 5)
    with _raises("`Z` must hold only finite values, but got 2 NaN or infinite entries"):
        continuity(x, z_inf, 5)
    with _raises("`X` must be a 2-D array (points × features, at least one feature), but got shape (100,)"):
        trustworthiness(x[:, 0], z, 5)
    with pytest.raises(UserError, match=re.escape("`Z` must be a numeric array, but got str")):
        trustworthiness(x, "points", 5)
    with _raises("`chunk_size` must be a positive integer or None, but got 0"):
        trustworthiness(x, z, 5, chunk_size=0)
    with _raises("`labels` must have shape (100,), one label per point, but got (99,)"):
        neighbor_scores(x, z, [5], labels=np.zeros(99, dtype=int))
    with _raises("`temperature` must be > 0, but got 0.0"):
        neighbor_scores(x, z, [5], labels=np.zeros(100, dtype=int), temperature=0.0)


def test_knn_accuracy_errors():
    z, y = np.random.default_rng(9).normal(size=(10, 2)), np.arange(10) % 3
    with _raises("`k` must be a positive integer, but got 0"):
        knn_accuracy(z, y, z, y, 0, num_classes=3)
    with _raises("`temperature` must be > 0, but got -1.0"):
        knn_accuracy(z, y, z, y, 3, temperature=-1.0, num_classes=3)
    with _raises("`temperature` must be > 0, but got 0"):
        knn_accuracy(z, y, z, y, 3, temperature=0, num_classes=3)
    with _raises("`k` must be ≤ the number of reference points (10), but got 11"):
        knn_accuracy(z, y, z.copy(), y, 11, num_classes=3)
    with _raises(
        "`k` must be ≤ the number of reference points (each point left out of its own neighbors) (9), "
        "but got 10"
    ):
        knn_accuracy(z, y, z, y, 10, num_classes=3)
    with _raises("`num_classes` must be > the largest label (2), but got 2"):
        knn_accuracy(z, y, z, y, 3, num_classes=2)
    with _raises("`num_classes` must be a positive integer, but got 0"):
        knn_accuracy(z, y, z, y, 3, num_classes=0)
    with _raises("`train_y` must hold integer class labels, but got dtype torch.float64"):
        knn_accuracy(z, y.astype(float), z, y, 3, num_classes=3)
    with _raises("`query_y` must hold class labels ≥ 0, but got -1"):
        knn_accuracy(z, y, z, y - 1, 3, num_classes=3)
    with _raises("`query_Z` must have as many columns as `train_Z` (2), but got 3"):
        knn_accuracy(z, y, np.zeros((4, 3)), y[:4], 3, num_classes=3)
    with _raises("`query_Z` must hold at least one point, but got 0 rows"):
        knn_accuracy(z, y, np.zeros((0, 2)), y[:0], 3, num_classes=3)


# --- populations: every member's embedding of the same points at once ----------------------------


def _population(seed: int, n: int, dim: int, members: int) -> tuple[np.ndarray, np.ndarray]:
    """Members' 2-D embeddings of one X: linear maps with growing noise, one without any structure
    (member 1), and three diverged ones (the last three: NaN, infinite, too large to square)."""
    rng = np.random.default_rng(seed)
    x, _ = _noisy_projection(seed, n, dim, 2)
    maps = rng.normal(size=(members, dim, 2))
    z = x @ maps + rng.normal(size=(members, n, 2)) * 0.3 * np.arange(members)[:, None, None]
    z[1] = rng.normal(size=(n, 2))
    z[-3] *= 1e160
    z[-2, 5, 0] = np.nan
    z[-1, 0, 1] = np.inf
    return x, z


def _oracle(x: np.ndarray, z: np.ndarray, ks: list[int]) -> dict[str, float]:
    """Trustworthiness, continuity and kNN recall from full rank matrices (no ties in the data)."""
    (dx, rx), (dz, rz) = _numpy_ranks(x), _numpy_ranks(z)
    n = len(x)
    scores = {}
    for k in ks:
        near_x, near_z = (np.argsort(d, axis=1, kind="stable")[:, :k] for d in (dx, dz))
        rank_x, rank_z = np.take_along_axis(rx, near_z, 1), np.take_along_axis(rz, near_x, 1)
        c = 2 / (n * k * (2 * n - 3 * k - 1))
        scores[f"trustworthiness_k{k}"] = 1 - c * np.clip(rank_x - k, 0, None).sum()
        scores[f"continuity_k{k}"] = 1 - c * np.clip(rank_z - k, 0, None).sum()
        scores[f"knn_recall_k{k}"] = (rank_x <= k).sum() / (n * k)
    return scores


@pytest.mark.parametrize(("chunk", "member_chunk"), [(None, None), (7, 3)])
def test_members_equal_their_neighbor_scores_one_by_one(chunk, member_chunk):
    x, z = _population(10, 90, 6, 8)
    labels = np.random.default_rng(10).integers(0, 3, 90)
    ks = [3, 8, 22]  # 8 members × k 22: ranks in X from sorted rows
    zt = torch.from_numpy(z)
    got = neighbor_scores_members(
        x, zt, ks, labels=labels, temperature=0.5, chunk_size=chunk, member_chunk=member_chunk
    )
    names = ("trustworthiness", "continuity", "knn_recall", "knn_accuracy")
    assert set(got) == {f"{name}_k{k}" for name in names for k in ks}
    for values in got.values():
        assert values.dtype == np.float64 and values.shape == (8,)
        assert np.isnan(values[-3:]).all() and not np.isnan(values[:-3]).any()
    for m in range(5):
        one = neighbor_scores(x, z[m], ks, labels=labels, temperature=0.5)
        for name, value in one.items():
            assert got[name][m] == pytest.approx(value, abs=1e-12)
        for name, value in _oracle(x, z[m], ks).items():
            assert got[name][m] == pytest.approx(value, abs=1e-12)
    assert got["continuity_k8"][0] > 0.9 > got["continuity_k8"][1]


def test_members_search_in_balls_and_in_full_rows_alike(monkeypatch):
    """Good embeddings are searched in small balls, bad ones in full rows; torch counting (many
    threads) searches full rows only. All give the oracle's scores."""
    x, z = _population(11, 80, 5, 6)
    z = z[:3]  # one block with both kinds of rows
    seen: list[np.ndarray] = []
    search = neighbors_members._nearest_in_balls

    def spy(d, kmax, thresholds, inside, size, small):
        seen.append(small)
        return search(d, kmax, thresholds, inside, size, small)

    monkeypatch.setattr(neighbors_members, "_nearest_in_balls", spy)
    single = neighbor_scores_members(x, z, [4, 9])
    assert seen and all(s.any() and not s.all() for s in seen)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(4)
        many = neighbor_scores_members(x, z, [4, 9])
    finally:
        torch.set_num_threads(threads)
    assert len(seen) == 1  # no ball search with torch counting
    for m in range(3):
        for name, value in _oracle(x, z[m], [4, 9]).items():
            assert single[name][m] == pytest.approx(value, abs=1e-12)
            assert many[name][m] == pytest.approx(value, abs=1e-12)


def test_members_of_a_grid_with_distance_ties_match_one_by_one():
    grid = np.stack(np.meshgrid(np.arange(5), np.arange(5), np.arange(4)), -1).reshape(-1, 3) / 4
    grid = grid.astype(np.float32)
    rng = np.random.default_rng(12)
    z = torch.from_numpy(grid @ rng.normal(size=(3, 4)) + rng.normal(scale=0.1, size=(6, 100, 4))).float()
    got = neighbor_scores_members(torch.from_numpy(grid), z, [5, 10])
    for m in range(6):
        for name, value in neighbor_scores(torch.from_numpy(grid), z[m], [5, 10]).items():
            assert got[name][m] == value


def test_member_blocks_stay_within_the_memory_budget():
    for device in (torch.device("cpu"), torch.device("cuda")):
        for n in (512, 5000, 50_000):
            rows = neighbors_members._chunk_rows(n, device)
            members = neighbors_members._member_chunk(rows, n, device)
            entries = rows * n
            x_bytes, member_bytes = neighbors_members._X_BYTES, neighbors_members._MEMBER_BYTES
            assert (x_bytes + members * member_bytes) * entries <= neighbors_members._MEMORY_BUDGET


def test_member_errors():
    x, z = _population(13, 40, 3, 3)
    with _raises(
        "`Z` must be a 3-D array (members × points × features, at least one member and feature), "
        "but got shape (40, 2)"
    ):
        neighbor_scores_members(x, z[0], [3])
    with _raises("`Z` must embed the 40 points of `X` (shape (K, 40, E)), but got (3, 39, 2)"):
        neighbor_scores_members(x, z[:, :39], [3])
    with _raises("`member_chunk` must be a positive integer or None, but got 0"):
        neighbor_scores_members(x, z, [3], member_chunk=0)
    with _raises("`ks` must be < n/2 (n = 40), but got 20"):
        neighbor_scores_members(x, z, [20])
    x[0, 0] = np.nan
    with _raises("`X` must hold only finite values, but got 1 NaN or infinite entries"):
        neighbor_scores_members(x, z, [3])


def test_a_cache_of_x_gives_the_same_scores_and_respects_its_budget(monkeypatch):
    # A trial's evaluation set is fixed: its distances and ranks are reused, the scores unchanged.
    gen = torch.Generator().manual_seed(5)
    x = torch.rand(300, 3, generator=gen)
    cache: dict = {}
    for _ in range(2):  # two evaluations of different embeddings
        z = torch.randn(3, 300, 2, generator=gen)
        fresh = neighbor_scores_members(x, z, [5, 10])
        assert_equal_scores(neighbor_scores_members(x, z, [5, 10], cache=cache), fresh)
        assert cache  # filled on the first call, read on the second
    monkeypatch.setattr(neighbors_members, "_X_CACHE_BUDGET", 0)
    small: dict = {}
    neighbor_scores_members(x, z, [5, 10], cache=small)
    assert small == {}


def assert_equal_scores(got: dict, want: dict) -> None:
    assert got.keys() == want.keys()
    for name in want:
        np.testing.assert_array_equal(got[name], want[name])
