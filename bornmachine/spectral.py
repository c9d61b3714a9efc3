"""Spectral bisection of the pixels' mutual-information graph: compact blocks without a geometry.

On images the pixels sharing the most information with a pixel are mostly its grid neighbours, so the graph
that links every pixel to its ``neighbours`` strongest partners (:func:`nearest_information_graph`) is close
to the image grid, while the full MI matrix also links distant pixels of the same strokes. Splitting that
graph recursively in two halves at the median of its Fiedler vector (:func:`spectral_bisection`) then cuts an
image into compact blocks, as a geometric bisection would, from the data alone: the nested blocks give a tree
(:meth:`bornmachine.Tree.from_data` with ``method="spectral"``) and, in the optimal leaf order, a chain
(:func:`bornmachine.orderings.from_data` with ``method="tree"``).
"""
from __future__ import annotations

import numpy as np
import scipy.sparse.csgraph

__all__ = ["significant_information", "nearest_information_graph", "spectral_bisection", "CHI2_1_P001"]

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


def spectral_bisection(weights: np.ndarray, sites: np.ndarray | None = None):
    """Nested pairs of sites: ``sites`` (default all) ordered by the Fiedler vector of the graph Laplacian of
    ``weights`` (n, n) restricted to them, split at the median into halves of ⌊m/2⌋ and ⌈m/2⌉, recursively.
    Within a block the connected parts are ordered largest first, each by its own Fiedler vector, and sites
    without a link in the block come last."""
    sites = np.arange(weights.shape[0]) if sites is None else np.asarray(sites)
    if sites.size == 1:
        return int(sites[0])
    order = _fiedler_order(weights[np.ix_(sites, sites)], sites)
    half = order.size // 2
    return (spectral_bisection(weights, order[:half]), spectral_bisection(weights, order[half:]))


def _fiedler_order(block: np.ndarray, sites: np.ndarray) -> np.ndarray:
    linked = block.sum(1) > 0
    n_parts, part = scipy.sparse.csgraph.connected_components(block > 0, directed=False)
    sizes = np.bincount(part[linked], minlength=n_parts)
    pieces = []
    for c in np.argsort(-sizes, kind="stable"):
        idx = np.flatnonzero((part == c) & linked)
        if idx.size <= 2:
            pieces.append(sites[idx])
            continue
        laplacian = scipy.sparse.csgraph.laplacian(block[np.ix_(idx, idx)])
        _, vectors = np.linalg.eigh(laplacian)
        pieces.append(sites[idx[np.argsort(vectors[:, 1], kind="stable")]])
    return np.concatenate(pieces + [sites[~linked]])
