"""Balanced spectral bisection of a weight graph: cut weights, balance, and straight cuts of a grid."""
import itertools

import numpy as np
import pytest

from bornmachine import Tree
from bornmachine.spectral import balanced_swaps, cut_weight, spectral_bisection, spectral_order


def grid_weights(h: int, w: int) -> np.ndarray:
    """Unit weights (h·w, h·w) between 4-neighbours of an h × w grid, sites row-major."""
    n = h * w
    out = np.zeros((n, n))
    for r, c in itertools.product(range(h), range(w)):
        for dr, dc in ((0, 1), (1, 0)):
            if r + dr < h and c + dc < w:
                out[r * w + c, (r + dr) * w + c + dc] = out[(r + dr) * w + c + dc, r * w + c] = 1.0
    return out


def random_weights(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    a = rng.random((n, n)) * (rng.random((n, n)) < 0.3)
    a = np.triu(a, 1)
    return a + a.T


def blocks(nested) -> set:
    """The site sets of all subtrees of a nested pair."""
    out = set()

    def walk(node):
        if isinstance(node, tuple):
            sites = walk(node[0]) | walk(node[1])
        else:
            sites = frozenset([node])
        out.add(sites)
        return sites

    walk(nested)
    return out


def _sites(node) -> list:
    return _sites(node[0]) + _sites(node[1]) if isinstance(node, tuple) else [node]


def _subtrees(node) -> list:
    return [node] + _subtrees(node[0]) + _subtrees(node[1]) if isinstance(node, tuple) else []


def tree_cut_weight(weights: np.ndarray, nested) -> float:
    """Summed cut weight of every tree edge: each block of sites against all the others."""
    n = weights.shape[0]
    total = 0.0
    for block in blocks(nested):
        inside = np.zeros(n, dtype=bool)
        inside[list(block)] = True
        total += cut_weight(weights, inside)
    return total


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("m", [9, 20, 33])
def test_balanced_swaps_keeps_sizes_and_never_raises_the_cut(seed, m):
    block = random_weights(m, seed)
    order = np.random.default_rng(seed + 100).permutation(m)
    first, second = balanced_swaps(block, order[: m // 2], order[m // 2:])
    assert first.size == m // 2 and second.size == m - m // 2
    assert sorted(np.concatenate([first, second]).tolist()) == list(range(m))
    before = np.zeros(m, dtype=bool)
    before[order[: m // 2]] = True
    after = np.zeros(m, dtype=bool)
    after[first] = True
    assert cut_weight(block, after) <= cut_weight(block, before) + 1e-12


def test_balanced_swaps_recovers_two_planted_communities():
    rng = np.random.default_rng(3)
    m = 24
    community = np.arange(m) % 2 == 0
    block = np.where(community[:, None] == community[None, :], 1.0, 0.05) * (0.5 + rng.random((m, m)))
    block = np.triu(block, 1)
    block = block + block.T
    first, second = balanced_swaps(block, np.arange(m // 2), np.arange(m // 2, m))  # half of each side wrong
    assert len({bool(community[i]) for i in first}) == 1
    assert len({bool(community[i]) for i in second}) == 1


@pytest.mark.parametrize("h, w", [(8, 8), (6, 10), (28, 28)])
def test_top_split_of_a_grid_is_a_straight_cut(h, w):
    weights = grid_weights(h, w)
    in_first = np.zeros(h * w, dtype=bool)
    in_first[spectral_order(weights, h * w // 2)[: h * w // 2]] = True
    first, _ = balanced_swaps(weights, np.flatnonzero(in_first), np.flatnonzero(~in_first))
    mask = np.zeros(h * w, dtype=bool)
    mask[first] = True
    assert cut_weight(weights, mask) == min(h, w)  # a straight cut across the shorter side


@pytest.mark.parametrize("h, w", [(16, 16), (7, 9)])
def test_spectral_bisection_is_balanced_and_cuts_a_grid_about_as_the_geometric_bisection(h, w):
    weights = grid_weights(h, w)
    nested = spectral_bisection(weights)
    subtrees = [b for b in blocks(nested) if len(b) > 1]
    for node in _subtrees(nested):
        a, b = (len(_sites(child)) for child in node)
        assert b - a in (0, 1)  # halves of ⌊m/2⌋ and ⌈m/2⌉
    assert len(subtrees) == h * w - 1
    geometric = tree_cut_weight(weights, Tree.bisection((h, w)).to_nested())
    assert tree_cut_weight(weights, nested) <= 1.1 * geometric


@pytest.mark.parametrize("seed", range(3))
def test_spectral_bisection_follows_a_relabelling_of_the_sites(seed):
    weights = random_weights(32, seed)
    perm = np.random.default_rng(seed + 7).permutation(32)  # new site k is old site perm[k]
    relabelled = spectral_bisection(weights[np.ix_(perm, perm)])
    original = {frozenset(perm[list(b)].tolist()) for b in blocks(relabelled)}
    assert original == blocks(spectral_bisection(weights))


def test_sites_without_links_come_last():
    weights = grid_weights(4, 4)
    padded = np.zeros((20, 20))
    padded[2:18, 2:18] = weights
    order = spectral_order(padded, 10)
    assert sorted(order[-4:].tolist()) == [0, 1, 18, 19]
    assert sorted(order.tolist()) == list(range(20))
