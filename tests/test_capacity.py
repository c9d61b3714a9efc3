"""Capacity bounds: RBM |Z| ln 2 by hand, tree min cut against brute force, MPS and TTN networks."""
from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from comparison import bipartitions as bp
from comparison import capacity as cap

LN2, LN4 = math.log(2), math.log(4)


def chain_mps(dims, ordering=None, shape=None):
    """An MPS with the given bond dimensions (values irrelevant for the bounds)."""
    from bornmachine import MPS

    full = [1] + list(dims) + [1]
    g = torch.Generator().manual_seed(0)
    tensors = [torch.randn(full[k], 2, full[k + 1], generator=g, dtype=torch.float64) for k in range(len(full) - 1)]
    return MPS.from_tensors(tensors, ordering=ordering, shape=shape)


def brute_force_cut(edges, leaf_side) -> float:
    """Cheapest subset of edges whose removal leaves no component with both an X and a Y node."""
    best = math.inf
    m = len(edges)
    for removed in itertools.product([False, True], repeat=m):
        parent = {}

        def find(a):
            parent.setdefault(a, a)
            while parent[a] != a:
                a = parent[a]
            return a

        for (u, v, _), r in zip(edges, removed):
            if not r:
                parent[find(u)] = find(v)
        sides = {}
        ok = True
        for node, s in leaf_side.items():
            root = find(node)
            if sides.setdefault(root, s) != s:
                ok = False
                break
        if ok:
            best = min(best, sum(math.log(d) for (_, _, d), r in zip(edges, removed) if r))
    return best


def random_tree(n_nodes: int, rng):
    """Random labelled tree (each node attaches to an earlier one), random dims, random fixed nodes."""
    edges = [(v, int(rng.integers(0, v)), int(rng.integers(1, 6))) for v in range(1, n_nodes)]
    fixed = rng.choice(n_nodes, size=int(rng.integers(2, n_nodes + 1)), replace=False)
    leaf_side = {int(v): bool(rng.integers(0, 2)) for v in fixed}
    return edges, leaf_side


# --- RBM -----------------------------------------------------------------------------------------

def test_rbm_bound_by_hand():
    b = bp.up_down((2, 2), 1)  # X = pixels 0, 1
    mask = np.zeros((4, 4), dtype=bool)
    mask[[0, 1], 0] = True  # only X
    mask[[1, 2], 1] = True  # both
    mask[:, 2] = True  # both
    mask[[2, 3], 3] = True  # only Y
    assert cap.coupled_hidden_units(mask, b).tolist() == [1, 2]
    assert cap.rbm_bound(mask, b) == pytest.approx(2 * LN2)
    assert cap.rbm_bound(mask, b, base=2) == pytest.approx(2.0)
    assert cap.rbm_bound(torch.from_numpy(mask), b) == pytest.approx(2 * LN2)
    assert cap.rbm_bound(mask.astype(int), b) == pytest.approx(2 * LN2)
    assert cap.rbm_bound(np.ones((4, 7), bool), b) == pytest.approx(7 * LN2)
    assert cap.rbm_bound(mask, bp.left_right((2, 2), 1)) == pytest.approx(4 * LN2)  # X = {0, 2}: all straddle


def test_rbm_bound_errors():
    b = bp.up_down((2, 2), 1)
    with pytest.raises(ValueError, match=r"expected \(n_visible=4, n_hidden\)"):
        cap.rbm_bound(np.ones((5, 3), bool), b)
    with pytest.raises(ValueError, match="found value 3"):
        cap.rbm_bound(np.full((4, 3), 3), b)
    with pytest.raises(TypeError, match="Bipartition"):
        cap.rbm_bound(np.ones((4, 3), bool), [0, 1])


# --- tree min cut --------------------------------------------------------------------------------

@pytest.mark.parametrize("seed", range(40))
def test_min_cut_tree_against_brute_force(seed):
    rng = np.random.default_rng(seed)
    edges, leaf_side = random_tree(int(rng.integers(2, 12)), rng)
    expected = brute_force_cut(edges, leaf_side)
    value, cut = cap.min_cut_tree(edges, leaf_side, return_cut=True)
    assert value == pytest.approx(expected, abs=1e-12)
    assert sum(math.log(edges[e][2]) for e in cut) == pytest.approx(value, abs=1e-12)
    kept = [e for i, e in enumerate(edges) if i not in cut]  # the returned cut separates X from Y
    assert brute_force_cut([(u, v, 2) for u, v, _ in kept], leaf_side) == 0.0


def test_min_cut_tree_uncuttable_and_trivial():
    # star: centre 0 free, leaves 1 (X), 2 (Y) with uncuttable legs: no finite cut
    assert cap.min_cut_tree([(0, 1, math.inf), (0, 2, math.inf)], {1: True, 2: False}) == math.inf
    assert cap.min_cut_tree([(0, 1, math.inf), (0, 2, 3)], {1: True, 2: False}) == pytest.approx(math.log(3))
    assert cap.min_cut_tree([(0, 1, 5)], {0: True, 1: True}) == 0.0
    assert cap.min_cut_tree([(0, 1, 1)], {0: True, 1: False}) == 0.0  # a D = 1 bond carries nothing
    assert cap.min_cut_tree([], {0: True}) == 0.0


@pytest.mark.parametrize("edges, leaf_side, match", [
    ([(0, 1, 2), (1, 2, 2), (2, 0, 2)], {0: True}, "not a tree"),
    ([(0, 1, 2), (2, 3, 2), (3, 4, 2)], {0: True}, "not a tree"),
    ([(0, 1, 2), (1, 2, 0)], {0: True}, "must be >= 1"),
    ([(0, 1, 2)], {5: True}, "no edge touches"),
    ([(0, 0, 2)], {0: True}, "loop"),
    ([(0, 1)], {0: True}, "triple"),
])
def test_min_cut_tree_errors(edges, leaf_side, match):
    with pytest.raises(ValueError, match=match):
        cap.min_cut_tree(edges, leaf_side)


# --- MPS -----------------------------------------------------------------------------------------

def test_mps_non_contiguous_by_hand():
    """X = {0, 2} on a 5-site chain with bonds [2, 4, 4, 2]: sides X Y X Y Y."""
    model = chain_mps([2, 4, 4, 2])
    b = bp.from_mask([1, 0, 1, 0, 0])
    # virtual bonds only: bonds 0, 1, 2 join opposite sides -> ln 2 + ln 4 + ln 4
    assert cap.network_bound(model, b, physical_legs=False) == pytest.approx(LN2 + LN4 + LN4)
    # physical legs cuttable: cut the legs of sites 0 and 2 (or bond 0 and leg 2) -> 2 ln 2
    assert cap.network_bound(model, b) == pytest.approx(2 * LN2)
    assert cap.network_bound(model, b, base=2) == pytest.approx(2.0)


@pytest.mark.parametrize("mask, legs, no_legs", [
    ([1, 1, 0, 0, 0], LN4, LN4),  # contiguous: one bond (D = 4) or two legs
    ([1, 0, 0, 0, 0], LN2, LN2),
    ([0, 0, 1, 0, 0], LN2, 2 * LN4),  # middle site: its leg beats both bonds
    ([0, 1, 1, 1, 0], 2 * LN2, LN2 + LN2),  # the two outer sites: ends cost ln 2 each
    ([1, 0, 1, 0, 1], 2 * LN2, 2 * LN2 + 2 * LN4),  # cut the legs of the two Y sites
])
def test_mps_chain_cases(mask, legs, no_legs):
    model = chain_mps([2, 4, 4, 2])
    b = bp.from_mask(mask)
    assert cap.network_bound(model, b) == pytest.approx(legs)
    assert cap.network_bound(model, b, physical_legs=False) == pytest.approx(no_legs)


@pytest.mark.parametrize("seed", range(10))
def test_chain_dp_equals_alternation_formula(seed):
    """Without legs, the chain min cut is Σ ln D_k over bonds joining opposite sides (chain order)."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 12))
    dims = [int(d) for d in rng.integers(1, 9, size=n - 1)]
    ordering = rng.permutation(n)
    model = chain_mps(dims, ordering=ordering)
    mask = rng.integers(0, 2, size=n).astype(bool)
    mask[0], mask[rng.integers(1, n)] = True, False
    b = bp.from_mask(mask)
    side = mask[ordering]  # side of chain position i
    expected = sum(math.log(dims[k]) for k in range(n - 1) if side[k] != side[k + 1])
    assert cap.network_bound(model, b, physical_legs=False) == pytest.approx(expected, abs=1e-12)
    edges, leaf_side = cap.network_edges(model, b)
    if len(edges) <= 13:
        assert cap.network_bound(model, b) == pytest.approx(brute_force_cut(edges, leaf_side), abs=1e-12)
    assert cap.network_bound(model, b) <= min(mask.sum(), (~mask).sum()) * LN2 + 1e-12
    assert cap.network_bound(model, b) <= expected + 1e-12


def test_mps_ordering_maps_pixels_to_chain_positions():
    # 2x3 image, column-major chain: positions carry pixels 0, 3, 1, 4, 2, 5
    model = chain_mps([2, 4, 8, 4, 2], ordering="column_major", shape=(2, 3))
    assert model.ordering.tolist() == [0, 3, 1, 4, 2, 5]
    up = bp.up_down((2, 3), 1)  # X = pixels 0, 1, 2 at positions 0, 2, 4: alternating chain
    assert cap.network_bound(model, up, physical_legs=False) == pytest.approx(math.log(2 * 4 * 8 * 4 * 2))
    left = bp.left_right((2, 3), 1)  # X = pixels 0, 3 = positions 0, 1: one bond, D = 4
    assert cap.network_bound(model, left, physical_legs=False) == pytest.approx(LN4)


def test_entropy_never_exceeds_the_bound():
    model = chain_mps([2, 3, 3, 3, 2])
    for mask in ([1, 0, 1, 0, 1, 0], [1, 1, 0, 0, 1, 1], [0, 1, 1, 1, 0, 0]):
        b = bp.from_mask(mask)
        s2 = model.renyi2(b.sites_x.tolist()).value
        assert s2 <= cap.network_bound(model, b) + 1e-9


# --- TTN -----------------------------------------------------------------------------------------

def test_ttn_bisection_by_hand():
    from bornmachine import TTN

    model = TTN((4, 4), 3, generator=torch.Generator().manual_seed(0))
    up = bp.up_down((4, 4), 2)  # the root bond of the bisection tree: D = 3
    assert cap.network_bound(model, up) == pytest.approx(math.log(3))
    assert cap.network_bound(model, bp.checkerboard((4, 4), 1)) <= 8 * LN2
    # a single pixel: its physical leg; uncuttable legs: the bond above its pair (D = 3, via the node)
    one = bp.from_mask(np.arange(16).reshape(4, 4) == 5)
    assert cap.network_bound(model, one) == pytest.approx(LN2)
    assert cap.network_bound(model, one, physical_legs=False) == math.inf  # sibling on the other side


@pytest.mark.parametrize("seed", range(6))
def test_mps_and_equivalent_ttn_agree(seed):
    from bornmachine import TTN

    rng = np.random.default_rng(seed)
    dims = [2, 4, 5, 3, 4, 2]
    model = chain_mps(dims, ordering=rng.permutation(7))
    tree = TTN.from_mps(model)
    b = bp.random(7, seed)
    assert cap.network_bound(tree, b) == pytest.approx(cap.network_bound(model, b), abs=1e-12)
    edges, leaf_side = cap.network_edges(tree, b)
    assert cap.min_cut_tree(edges, leaf_side) == pytest.approx(brute_force_cut(edges, leaf_side), abs=1e-12)


def test_network_bound_errors():
    model = chain_mps([2, 2])
    with pytest.raises(ValueError, match="3 sites"):
        cap.network_bound(model, bp.from_mask([1, 0, 0, 1]))
    with pytest.raises(TypeError, match="MPS or TTN"):
        cap.network_bound(object(), bp.from_mask([1, 0, 0]))
