"""Spectral bisection of the pixels' mutual-information graph: compact blocks without a geometry.

On images the pixels sharing the most information with a pixel are mostly its grid neighbours, so the graph
that links every pixel to its ``neighbours`` strongest partners (:func:`nearest_information_graph`) is close
to the image grid, while the full MI matrix also links distant pixels of the same strokes. Splitting that
graph recursively in two halves of small cut weight (:func:`spectral_bisection`: a spectral order cut at its
middle, refined by Kernighan–Lin swaps) then cuts an image into compact blocks, as a geometric bisection
would, from the data alone: the nested blocks give a tree
(:meth:`bornmachine.Tree.from_data` with ``method="spectral"``) and, in the optimal leaf order, a chain
(:func:`bornmachine.orderings.from_data` with ``method="tree", refine=False``).
"""
from __future__ import annotations

import numpy as np
import scipy.sparse.csgraph

__all__ = ["significant_information", "nearest_information_graph", "spectral_bisection", "spectral_order",
           "balanced_swaps", "cut_weight", "CHI2_1_P001"]

#: The 0.999 quantile of χ²(1): 2N·I of two independent pixels exceeds it with probability 0.001.
CHI2_1_P001 = 10.83


def significant_information(mi: np.ndarray, n_samples: int) -> np.ndarray:
    """A copy of the pairwise MI (n, n), nats, with the links below the sampling noise of independent pixels
    (I < 10.83 / (2N), p = 0.001) and the diagonal set to 0."""
    out = np.array(mi, dtype=np.float64)
    out[out < CHI2_1_P001 / (2 * n_samples)] = 0.0
    np.fill_diagonal(out, 0.0)
    return out


def nearest_information_graph(mi: np.ndarray, neighbours: int) -> np.ndarray:
    """Symmetric weights (n, n): the MI of each pixel's ``neighbours`` strongest nonzero links (a link kept
    by either end)."""
    n = mi.shape[0]
    strongest = np.argsort(-mi, axis=1, kind="stable")[:, :neighbours]
    rows = np.repeat(np.arange(n), strongest.shape[1])
    cols = strongest.reshape(-1)
    keep = mi[rows, cols] > 0
    graph = np.zeros_like(mi)
    graph[rows[keep], cols[keep]] = mi[rows[keep], cols[keep]]
    return np.maximum(graph, graph.T)


#: Directions tried in the plane of the two lowest nontrivial Laplacian eigenvectors (see :func:`spectral_bisection`).
DIRECTIONS = 16
#: Tentative swaps per Kernighan–Lin pass, and passes per split (see :func:`balanced_swaps`).
SWAPS_PER_PASS = 64
MAX_PASSES = 10


def spectral_bisection(weights: np.ndarray, sites: np.ndarray | None = None):
    """Nested pairs of sites: ``sites`` (default all) split into halves of ⌊m/2⌋ and ⌈m/2⌉ of small cut weight
    Σ_{i∈A, j∈B} w_ij, recursively, for symmetric ``weights`` (n, n) restricted to them.

    Each split starts from the sites in spectral order (:func:`spectral_order`: connected parts largest first,
    sites without a link in the block last) cut at the middle, then :func:`balanced_swaps` lowers the cut
    weight by exchanging sites between the halves. On the 4-neighbour 28×28 grid the summed cut weight of all
    the tree's edges is 9863 this way, against 10817 for the plain median of the Fiedler vector and 9600 for the
    geometric bisection (``Tree.bisection``)."""
    sites = np.arange(weights.shape[0]) if sites is None else np.asarray(sites)
    if sites.size == 1:
        return int(sites[0])
    half = sites.size // 2
    order = spectral_order(weights[np.ix_(sites, sites)], half)
    first, second = balanced_swaps(weights[np.ix_(sites, sites)], order[:half], order[half:])
    return (spectral_bisection(weights, sites[first]), spectral_bisection(weights, sites[second]))


def cut_weight(block: np.ndarray, in_first: np.ndarray) -> float:
    """Σ w_ij over i in the first part, j in the second, for weights (m, m) and a mask (m,) of the first part."""
    return float(block[np.ix_(in_first, ~in_first)].sum())


def spectral_order(block: np.ndarray, split: int) -> np.ndarray:
    """Positions 0 … m−1 of a weight block (m, m) in spectral order, for a cut after the first ``split``.

    The connected parts of the block's graph come largest first, each sorted along one direction v(θ) =
    cos θ·u₂ + sin θ·u₃ in the plane of the eigenvectors of the two lowest nontrivial eigenvalues of its
    Laplacian; the sites without a link come last. In the part that the cut falls into, θ is the one of
    :data:`DIRECTIONS` angles whose cut there has the least weight (θ = 0 is the Fiedler vector; on a square
    grid u₂ and u₃ are degenerate and the Fiedler vector alone may cut diagonally); other parts use θ = 0."""
    linked = block.sum(1) > 0
    n_parts, part = scipy.sparse.csgraph.connected_components(block > 0, directed=False)
    sizes = np.bincount(part[linked], minlength=n_parts)
    pieces, start = [], 0
    for c in np.argsort(-sizes, kind="stable"):
        idx = np.flatnonzero((part == c) & linked)
        local = split - start
        start += idx.size
        if idx.size <= 2:
            pieces.append(idx)
            continue
        sub = block[np.ix_(idx, idx)]
        _, vectors = np.linalg.eigh(scipy.sparse.csgraph.laplacian(sub))
        if not 0 < local < idx.size or idx.size < 4:
            pieces.append(idx[np.argsort(vectors[:, 1], kind="stable")])
            continue
        best, best_cut = None, 0.0
        for theta in np.arange(DIRECTIONS) * (np.pi / DIRECTIONS):
            order = np.argsort(np.cos(theta) * vectors[:, 1] + np.sin(theta) * vectors[:, 2], kind="stable")
            in_first = np.zeros(idx.size, dtype=bool)
            in_first[order[:local]] = True
            cut = cut_weight(sub, in_first)
            if best is None or cut < best_cut - 1e-12 * max(best_cut, 1.0):
                best, best_cut = order, cut
        pieces.append(idx[best])
    return np.concatenate(pieces + [np.flatnonzero(~linked)]).astype(np.int64)


def balanced_swaps(block: np.ndarray, first: np.ndarray, second: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Kernighan–Lin refinement of the split of a weight block (m, m) into positions ``first`` and ``second``.

    A pass exchanges, up to :data:`SWAPS_PER_PASS` times, the unlocked pair (a in the first part, b in the
    second) of largest gain D_a + D_b − 2 w_ab (D = external − internal weight of a site; a site is locked once
    moved), and keeps the prefix of exchanges with the largest total gain; passes repeat (at most
    :data:`MAX_PASSES`) while that gain is positive. The part sizes never change and the cut weight never
    rises. Returns the two parts' positions, each in its input order."""
    m = block.shape[0]
    in_second = np.zeros(m, dtype=bool)
    in_second[second] = True
    rank = np.empty(m, dtype=np.int64)
    rank[np.concatenate([first, second])] = np.arange(m)
    for _ in range(MAX_PASSES):
        sign = np.where(in_second, 1.0, -1.0)
        gain_of = -sign * (block @ sign)  # D: external − internal weight
        side, locked = in_second.copy(), np.zeros(m, dtype=bool)
        total, best_total, best_count, swaps = 0.0, 0.0, 0, []
        for _ in range(min(SWAPS_PER_PASS, first.size, second.size)):
            a, b = np.flatnonzero(~side & ~locked), np.flatnonzero(side & ~locked)
            gains = gain_of[a][:, None] + gain_of[b][None, :] - 2.0 * block[np.ix_(a, b)]
            i, j = divmod(int(np.argmax(gains)), b.size)
            va, vb = a[i], b[j]
            total += gains[i, j]
            swaps.append((va, vb))
            gain_of += np.where(side, 2.0, -2.0) * (block[:, vb] - block[:, va])
            side[va], side[vb] = True, False
            locked[[va, vb]] = True
            if total > best_total + 1e-12:
                best_total, best_count = total, len(swaps)
        if best_total <= 1e-12:
            break
        for va, vb in swaps[:best_count]:
            in_second[va], in_second[vb] = True, False
    parts = (np.flatnonzero(~in_second), np.flatnonzero(in_second))
    return tuple(idx[np.argsort(rank[idx], kind="stable")] for idx in parts)
