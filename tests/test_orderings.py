"""Tests of ``bornmachine.orderings``: pixel -> chain-position maps.

``order[i]`` is the row-major pixel placed at chain position ``i``. Named orderings are checked to be
permutations on square, odd and degenerate (one-row/one-column) images; snake and column-major are
compared with the independent versions in tests/oracle.py; the path orderings (snake, hilbert) are
checked to step between grid neighbours.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats

import oracle
from helpers import MarkovChain, gen

from bornmachine import MPS, SweepTrainer, load, orderings, pairwise_mutual_information

SHAPES = [(28, 28), (3, 4), (4, 3), (5, 7), (7, 5), (1, 6), (6, 1), (1, 1), (2, 2), (3, 3), (2, 9), (16, 8)]
SHAPE_IDS = [f"{h}x{w}" for h, w in SHAPES]


def steps(order, shape) -> tuple[np.ndarray, np.ndarray]:
    """Row and column displacement between consecutive chain positions."""
    r, c = np.divmod(np.asarray(order, dtype=np.int64), shape[1])
    return np.abs(np.diff(r)), np.abs(np.diff(c))


@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
@pytest.mark.parametrize("name", orderings.NAMES)
def test_every_named_ordering_is_a_permutation(name, shape):
    order = np.asarray(getattr(orderings, name)(shape))
    n = shape[0] * shape[1]
    assert order.shape == (n,)
    assert np.issubdtype(order.dtype, np.integer)
    np.testing.assert_array_equal(np.sort(order), np.arange(n))
    resolved = orderings.resolve(name, n, shape)
    assert resolved.dtype == torch.int64
    np.testing.assert_array_equal(resolved.numpy(), order)


@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
def test_row_major_is_the_identity(shape):
    n = shape[0] * shape[1]
    np.testing.assert_array_equal(orderings.row_major(shape), np.arange(n))
    for ordering in (None, "row_major"):
        assert torch.equal(orderings.resolve(ordering, n, shape), torch.arange(n))
    assert torch.equal(orderings.resolve(None, 5, None), torch.arange(5))  # no shape needed


@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
def test_snake_matches_oracle_and_steps_between_neighbours(shape):
    order = orderings.snake(shape)
    np.testing.assert_array_equal(order, oracle.snake_ordering(*shape))
    dr, dc = steps(order, shape)
    assert np.all(dr + dc == 1)


def test_snake_small_example():
    np.testing.assert_array_equal(orderings.snake((3, 4)), [0, 1, 2, 3, 7, 6, 5, 4, 8, 9, 10, 11])


@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
def test_column_major_matches_oracle(shape):
    order = orderings.column_major(shape)
    np.testing.assert_array_equal(order, oracle.column_major_ordering(*shape))
    h, w = shape
    image = np.arange(h * w).reshape(h, w)
    np.testing.assert_array_equal(order, image.T.reshape(-1))  # i.e. Fortran-order flattening
    np.testing.assert_array_equal(order, image.flatten(order="F"))


def test_column_major_small_example():
    np.testing.assert_array_equal(orderings.column_major((2, 3)), [0, 3, 1, 4, 2, 5])


@pytest.mark.parametrize("shape", SHAPES + [(15, 4), (4, 5), (6, 7), (31, 17)],
                         ids=SHAPE_IDS + ["15x4", "4x5", "6x7", "31x17"])
def test_hilbert_is_a_path_of_neighbour_steps(shape):
    """Unit steps, except at most one diagonal step (the docstring's exception for awkward sizes)."""
    order = orderings.hilbert(shape)
    dr, dc = steps(order, shape)
    assert np.all(np.maximum(dr, dc) == 1)  # every step lands on one of the 8 neighbours
    assert np.sum(dr + dc != 1) <= 1


@pytest.mark.parametrize("shape", [(28, 28), (3, 4), (5, 7), (1, 6), (6, 1), (2, 9), (16, 8), (8, 8), (4, 6)],
                         ids=["28x28", "3x4", "5x7", "1x6", "6x1", "2x9", "16x8", "8x8", "4x6"])
def test_hilbert_unit_steps_on_usual_shapes(shape):
    dr, dc = steps(orderings.hilbert(shape), shape)
    assert np.all(dr + dc == 1)


def test_hilbert_on_a_power_of_two_square_is_local():
    """On 2^k x 2^k images every aligned 2^j block is visited contiguously (the Hilbert property)."""
    order = orderings.hilbert((8, 8))
    r, c = np.divmod(order, 8)
    for block in (2, 4):
        for start in range(0, 64, block * block):
            seg_r, seg_c = r[start:start + block * block], c[start:start + block * block]
            assert len({(a // block, b // block) for a, b in zip(seg_r, seg_c)}) == 1
    assert (r[0], c[0]) == (0, 0)


# --- resolve and inverse --------------------------------------------------------------------------

def test_resolve_accepts_permutations_in_any_integer_container():
    perm = [2, 0, 3, 1]
    for obj in (perm, tuple(perm), np.array(perm, dtype=np.int32), torch.tensor(perm, dtype=torch.int16)):
        out = orderings.resolve(obj, 4, None)
        assert out.dtype == torch.int64 and out.tolist() == perm


def test_resolve_rejects_unknown_names():
    with pytest.raises(ValueError, match="unknown ordering 'zigzag'"):
        orderings.resolve("zigzag", 12, (3, 4))


@pytest.mark.parametrize("name", ["snake", "column_major", "hilbert"])
def test_resolve_named_ordering_needs_an_image_shape(name):
    with pytest.raises(ValueError, match="needs an image shape"):
        orderings.resolve(name, 12, None)
    with pytest.raises(ValueError, match="needs an image shape"):
        orderings.resolve(name, 12, (12,))
    with pytest.raises(ValueError, match="needs an image shape"):
        MPS(12, 2, ordering=name)


@pytest.mark.parametrize("bad", [[0, 1, 1, 3], [0, 1, 2], [0, 1, 2, 3, 4], [1, 2, 3, 4], [-1, 0, 1, 2]],
                         ids=["repeat", "short", "long", "out-of-range", "negative"])
def test_resolve_rejects_non_permutations(bad):
    with pytest.raises(ValueError, match="permutation of range\\(4\\)"):
        orderings.resolve(bad, 4, None)


@pytest.mark.parametrize("bad", [[0.0, 1.0, 2.0, 3.0], [[0, 1], [2, 3]], [True, False, True, False]],
                         ids=["float", "2-D", "bool"])
def test_resolve_rejects_non_integer_or_non_flat_orderings(bad):
    with pytest.raises(TypeError, match="1-D sequence of integer"):
        orderings.resolve(bad, 4, None)


@pytest.mark.parametrize("shape", [(3, 4), (5, 7), (28, 28)], ids=["3x4", "5x7", "28x28"])
@pytest.mark.parametrize("name", orderings.NAMES)
def test_inverse(name, shape):
    n = shape[0] * shape[1]
    order = orderings.resolve(name, n, shape)
    inv = orderings.inverse(order)
    assert inv.dtype == order.dtype
    assert torch.equal(inv[order], torch.arange(n))
    assert torch.equal(order[inv], torch.arange(n))
    assert torch.equal(orderings.inverse(inv), order)
    # moving data into chain order and back with the inverse is the identity
    x = torch.randint(0, 2, (5, n), generator=torch.Generator().manual_seed(0))
    assert torch.equal(x[:, order][:, inv], x)


def test_inverse_random_permutation():
    perm = torch.randperm(50, generator=torch.Generator().manual_seed(1))
    inv = orderings.inverse(perm)
    assert torch.equal(inv, torch.argsort(perm))
    assert inv[perm[7]] == 7


def test_shape_must_be_two_dimensional():
    for fn in (orderings.snake, orderings.column_major, orderings.hilbert):
        with pytest.raises(ValueError, match="\\(H, W\\)"):
            fn((2, 3, 4))


# --- from_data -------------------------------------------------------------------------------------

def shuffled_chain(n: int = 30, n_rows: int = 2000, seed: int = 0):
    """(chain, perm, train, test): Markov-chain rows whose pixel j is chain site ``perm[j]``."""
    chain = MarkovChain(n)
    perm = np.random.default_rng(100 + seed).permutation(n)
    return chain, perm, chain.sample(n_rows, seed)[:, perm], chain.sample(n_rows, seed + 1)[:, perm]


@pytest.mark.parametrize("method, refine", [("curve", True), ("curve", False), ("tree", True), ("tree", False),
                                            ("fiedler", True), ("fiedler", False)])
def test_from_data_puts_a_shuffled_markov_chain_back_in_order(method, refine):
    _, perm, train, _ = shuffled_chain()
    order = orderings.from_data(train, method, refine=refine)
    assert order.dtype == np.int64 and sorted(order.tolist()) == list(range(30))
    rho = stats.spearmanr(perm[order], np.arange(30)).statistic  # chain site at each position
    assert abs(rho) >= 0.99


def test_an_mps_on_the_learned_ordering_reaches_the_exact_nll_of_the_chain():
    """Bond 2 holds the chain exactly (ψ = √p is a product of 2×2 transfer matrices), so after training
    (SweepTrainer defaults, max_bond=2) the test NLL is that of the true chain up to the fitting
    noise of maximum likelihood, which costs ≈ k / (2N) nats on held-out rows (Akaike) for the
    k = 232 − 4·29 − 1 = 115 free parameters of a bond-2 MPS over 30 sites (entries less GL(2) gauge
    per bond less the norm), i.e. ≈ 0.029 nats at N = 2000; the 4 default sweeps leave ≲ 0.01 nats
    more (measured over data seeds 0-5 at the default lr 0.1: 0.018-0.035; here, seed 0: 0.025). The tolerance
    is 2k/(2N).
    The initial tensors are made positive like √p: from random signs the sweeps can settle
    0.3-0.8 nats higher (a sign-frustrated local minimum)."""
    chain, perm, train, test = shuffled_chain()
    order = orderings.from_data(train)
    start = MPS(30, 2, ordering=order, generator=gen(0))
    mps = MPS.from_tensors([t.abs() for t in start.tensors], ordering=order)
    SweepTrainer(mps, max_bond=2).fit(train, progress=False)
    exact = -chain.log_prob(test[:, np.argsort(perm)]).mean()  # the rows back in chain order
    assert max(mps.bond_dims) == 2
    assert abs(mps.nll(test) - exact) < 2 * 115 / (2 * len(train))


def _two_parts_and_constants():
    a, b = MarkovChain(6).sample(500, 0), MarkovChain(5, flip=(0.05, 0.1)).sample(500, 1)
    return np.concatenate([a, np.zeros((500, 2), dtype=np.uint8), b], axis=1)  # pixels 6, 7 constant


def test_fiedler_orders_independent_parts_apart_and_constant_pixels_last():
    order = orderings.from_data(_two_parts_and_constants(), "fiedler")
    assert sorted(order[-2:].tolist()) == [6, 7]
    head = set(order[:6].tolist())  # the larger part first, contiguous
    assert head == set(range(6)) and set(order[6:11].tolist()) == set(range(8, 13))


@pytest.mark.parametrize("method", ["curve", "tree"])
def test_tree_order_keeps_independent_parts_in_their_own_halves(method):
    order = orderings.from_data(_two_parts_and_constants(), method).tolist()
    a = [order.index(s) for s in range(6)]  # the larger part: the first half of the top split, in chain order
    assert sorted(a) in (list(range(6)), list(range(7, 13)))
    b = [order.index(s) for s in range(8, 13)]
    assert (max(a) < min(b)) or (max(b) < min(a))
    assert abs(stats.spearmanr([order.index(s) for s in range(6)], range(6)).statistic) == 1.0


def test_optimal_leaf_order_maximises_the_neighbour_information_over_orientations():
    rng = np.random.default_rng(4)
    mi = rng.random((8, 8))
    mi = np.triu(mi, 1) + np.triu(mi, 1).T
    nested = (((0, 1), (2, 3)), ((4, 5), (6, 7)))
    best = orderings.optimal_leaf_order(nested, mi)
    assert sorted(best.tolist()) == list(range(8))

    def orientations(node):  # every leaf order the tree allows
        if not isinstance(node, tuple):
            return [[node]]
        return [x + y for a, b in (node, node[::-1]) for x in orientations(a) for y in orientations(b)]

    values = [orderings.neighbour_information(o, mi) for o in orientations(nested)]
    assert orderings.neighbour_information(best, mi) == pytest.approx(max(values))


def test_segment_reversals_end_where_no_reversal_raises_the_neighbour_information():
    rng = np.random.default_rng(3)
    mi = rng.random((12, 12))
    mi = np.triu(mi, 1) + np.triu(mi, 1).T
    start = rng.permutation(12)
    refined = orderings._reverse_segments(start, mi)
    assert sorted(refined.tolist()) == list(range(12))
    best = orderings.neighbour_information(refined, mi)
    assert best > orderings.neighbour_information(start, mi)
    for i in range(12):
        for j in range(i + 1, 12):
            reversed_ = refined.copy()
            reversed_[i:j + 1] = reversed_[i:j + 1][::-1]
            assert orderings.neighbour_information(reversed_, mi) <= best + 1e-9


def test_refinement_raises_the_neighbour_information_of_the_spectral_order():
    _, _, train, _ = shuffled_chain(16, 300, seed=5)
    mi = pairwise_mutual_information(train)
    spectral = orderings.from_data(train, "fiedler", refine=False)
    refined = orderings.from_data(train, "fiedler")
    assert sorted(refined.tolist()) == list(range(16))
    assert orderings.neighbour_information(refined, mi) >= orderings.neighbour_information(spectral, mi) - 1e-9


def test_neighbour_information_by_hand():
    mi = np.array([[0, 1.0, 0.5], [1.0, 0, 0], [0.5, 0, 0]])
    assert orderings.neighbour_information([1, 0, 2], mi) == pytest.approx(1.5)
    assert orderings.neighbour_information([0, 1, 2], torch.as_tensor(mi)) == pytest.approx(1.0)


def test_mi_distance_cost_by_hand():
    mi = np.array([[0, 1.0, 0.5], [1.0, 0, 0], [0.5, 0, 0]])
    assert orderings.mi_distance_cost([0, 1, 2], mi) == pytest.approx(1.0 + 0.5 * 4)
    assert orderings.mi_distance_cost([1, 0, 2], mi) == pytest.approx(1.0 + 0.5)


def smooth_field(h: int, w: int, n_rows: int, seed: int = 0) -> np.ndarray:
    """(n_rows, h·w) binary images: the sign of white noise blurred by a 3×3 box on an h × w grid (correlations
    between grid neighbours only, fading with distance)."""
    noise = np.random.default_rng(seed).standard_normal((n_rows, h + 2, w + 2))
    blurred = sum(noise[:, i:i + h, j:j + w] for i in range(3) for j in range(3))
    return (blurred > 0).astype(np.uint8).reshape(n_rows, h * w)


def test_curve_ordering_is_as_local_as_the_hilbert_curve_on_grid_data():
    """On data with a 2-D geometry the learned chain keeps each pixel's partners as near as a Hilbert curve does
    (and nearer than row-major), without being told the geometry; the pixels shuffled, it finds it again."""
    x = smooth_field(8, 8, 3000)
    mi = pairwise_mutual_information(x)
    learned = orderings.locality(orderings.from_data(x), mi)
    assert learned >= orderings.locality(orderings.hilbert((8, 8)), mi) - 1e-9
    assert learned > 1.05 * orderings.locality(orderings.row_major((8, 8)), mi)
    perm = np.random.default_rng(1).permutation(64)
    shuffled = orderings.from_data(x[:, perm])
    assert orderings.locality(shuffled, mi[np.ix_(perm, perm)]) >= 0.99 * learned


def test_locality_swaps_end_where_no_swap_raises_the_locality():
    rng = np.random.default_rng(2)
    mi = rng.random((12, 12)) ** 4
    mi = np.triu(mi, 1) + np.triu(mi, 1).T
    start = rng.permutation(12)
    refined = orderings._locality_swaps(start, mi, 3.0)
    assert sorted(refined.tolist()) == list(range(12))
    best = orderings.locality(refined, mi, 3.0)
    assert best > orderings.locality(start, mi, 3.0)
    for i in range(12):
        for j in range(i + 1, 12):
            swapped = refined.copy()
            swapped[[i, j]] = swapped[[j, i]]
            assert orderings.locality(swapped, mi, 3.0) <= best + 1e-9


def test_locality_by_hand():
    mi = np.array([[0, 1.0, 0.5], [1.0, 0, 0], [0.5, 0, 0]])
    assert orderings.locality([0, 1, 2], mi, 2.0) == pytest.approx(np.exp(-0.5) + 0.5 * np.exp(-1.0))
    assert orderings.locality([1, 0, 2], torch.as_tensor(mi), 2.0) == pytest.approx(1.5 * np.exp(-0.5))


def test_from_data_ordering_is_kept_by_the_model(tmp_path):
    images = np.random.default_rng(0).integers(0, 2, (200, 3, 4))
    order = orderings.from_data(images)
    mps = MPS((3, 4), 2, ordering=order, generator=gen(0))
    assert mps.ordering.tolist() == order.tolist()
    mps.save(tmp_path / "m.npz")
    assert load(tmp_path / "m.npz").ordering.tolist() == order.tolist()


def test_from_data_rejects_bad_arguments():
    x = np.random.default_rng(0).integers(0, 2, (20, 5))
    with pytest.raises(ValueError, match="unknown method 'spectral'"):
        orderings.from_data(x, method="spectral")
    with pytest.raises(TypeError, match="refine"):
        orderings.from_data(x, refine=1)
    with pytest.raises(ValueError, match="neighbours"):
        orderings.from_data(x, neighbours=0)
    for reach in (0, -1.0, "far", True):
        with pytest.raises(ValueError, match="reach"):
            orderings.from_data(x, reach=reach)
    with pytest.raises(ValueError, match="binary"):
        orderings.from_data(x * 3)
    with pytest.raises(ValueError, match="expected rows"):
        orderings.from_data(x[0])
