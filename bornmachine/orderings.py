"""Pixel orderings: which image pixel sits at each chain position.

An ordering is a permutation ``order`` of ``range(H·W)`` with ``order[i]`` = the row-major pixel
index placed at chain position ``i``. Models keep their ordering, so users pass images in their
natural (row-major) layout.

:func:`from_data` learns an ordering from the pairwise mutual information of a data set (Hilbert curves
through the pixels' spectral embedding or the leaves of a spectral bisection tree, refined for
:func:`locality`, or the Fiedler ordering of quantum-chemistry DMRG, Barcza, Legeza, Marti & Reiher, PRA 83,
012508 (2011)); it needs data, so it is a function to call, not a name in :data:`NAMES`.
"""
from __future__ import annotations

from numbers import Real
from typing import Sequence

import numpy as np
import scipy.cluster.hierarchy
import scipy.linalg
import scipy.sparse.csgraph
import scipy.spatial.distance
import torch

from .mutual_information import pairwise_mutual_information
from .spectral import nearest_information_graph, significant_information, spectral_bisection
from .validation import as_binary_data, check_positive_int

NAMES = ("row_major", "snake", "column_major", "hilbert")


def row_major(shape: Sequence[int]) -> np.ndarray:
    """Identity: rows left to right, top to bottom."""
    return np.arange(int(np.prod(shape)))


def snake(shape: Sequence[int]) -> np.ndarray:
    """Boustrophedon: even rows left→right, odd rows right→left (neighbours stay adjacent)."""
    h, w = _hw(shape)
    grid = np.arange(h * w).reshape(h, w)
    grid[1::2] = grid[1::2, ::-1]
    return grid.reshape(-1)


def column_major(shape: Sequence[int]) -> np.ndarray:
    """Columns top to bottom, left to right."""
    h, w = _hw(shape)
    return np.arange(h * w).reshape(h, w).T.reshape(-1)


def hilbert(shape: Sequence[int]) -> np.ndarray:
    """Generalised Hilbert curve ("gilbert") for any H×W: a space-filling path between grid neighbours.

    Steps are unit steps except for at most one diagonal step, which occurs on some shapes whose
    longer side is odd (e.g. 4×5); square and power-of-two shapes such as 28×28 have only unit steps."""
    h, w = _hw(shape)
    coords = list(_gilbert(w, h))
    return np.array([y * w + x for x, y in coords], dtype=np.int64)


FROM_DATA_METHODS = ("curve", "tree", "fiedler")
#: Default reach (chain positions) of :func:`locality`: links shorter than this count fully, longer ones
#: fade as exp(−distance / reach).
REACH = 16.0
#: Directions of the Hilbert curves through the spectral embedding tried by ``from_data(method="curve")``.
EMBEDDING_ANGLES = 6


def from_data(data, method: str = "curve", *, neighbours: int = 6, refine: bool = True,
              reach: float = REACH) -> np.ndarray:
    """An ordering that keeps pixels sharing much information close on the chain.

    With I the pairwise mutual information (:func:`~bornmachine.mutual_information.pairwise_mutual_information`;
    links weaker than the sampling noise of independent pixels dropped,
    :func:`~bornmachine.spectral.significant_information`):

    ``"curve"`` (default): the best, by :func:`locality` Σ I_ij exp(−|pos_i − pos_j| / reach), of the ``"tree"``
    ordering and of Hilbert curves through the pixels' two-dimensional spectral embedding (the eigenvectors of
    the two lowest nontrivial eigenvalues of the Laplacian of each pixel's ``neighbours`` strongest links, whose
    ranks place an image's pixels close to their grid; :data:`EMBEDDING_ANGLES` directions of the curve in that
    plane), each first refined by swaps of two pixels while one raises the locality. An MPS of bond D holds the
    correlations between sites at a distance its transfer matrices let through, and a chain in which each pixel's
    strongest partners are near it needs the least of that; the locality ranks the chains of 28×28 images as
    their MPS NLL does (row-major < snake < spectral-tree leaf order < Hilbert). On mnist5k (3600 training rows,
    D = 9, 6 sweeps of ``SweepTrainer`` at lr 0.05, its default then, ``benchmarks/bench_orderings.py``) test
    NLL 99.5 against 100.7 for the Hilbert curve and 107.3 for the unrefined ``"tree"`` order; on Fashion-MNIST
    (3600 rows) 146.3 against 144.9 (tree 147.3).

    ``"tree"``: the leaves of the spectral bisection tree of the graph of each pixel's ``neighbours``
    strongest links (:mod:`bornmachine.spectral`, the tree of ``Tree.from_data(method="spectral")``), in the
    optimal leaf order (Bar-Joseph, Gifford & Jaakkola 2001: the orientation of every subtree that maximises
    the information between chain neighbours, ``scipy.cluster.hierarchy.optimal_leaf_ordering``); every prefix
    of the chain is then a compact block of the image. ``refine=True`` adds the locality swaps.

    ``"fiedler"``: the Fiedler ordering of quantum-chemistry DMRG (Barcza, Legeza, Marti & Reiher, PRA 83,
    012508, 2011): sort the pixels by the eigenvector of the second-smallest eigenvalue of L = diag(Σ_j I_ij) − I,
    the real positions that minimise Σ I_ij (pos_i − pos_j)² (:func:`mi_distance_cost`) at unit norm and zero
    mean. Each connected part of the graph is ordered alone, largest first; pixels without any link (e.g.
    constant ones) come last. ``refine=True`` then swaps adjacent chain positions while a swap lowers the cost
    (at most 100 passes), and reverses chain segments while a reversal raises the information between chain
    neighbours (:func:`neighbour_information`, 2-opt): the spectral order alone chains pixels of nearly equal
    Fiedler value in arbitrary order (on mnist5k neighbours 13 grid steps apart; after the reversals 3.5).

    Parameters
    ----------
    data : (N, n) or (N, H, W) binary array, numpy or torch (pixels row-major).
    method : "curve", "tree" or "fiedler".
    neighbours : int ≥ 1, links per pixel of the graph ``"curve"`` embeds and ``"tree"`` bisects (about the
        number of neighbours a pixel has in the data's geometry: 2 on a chain, 4–8 on an image grid).
    refine : bool, the local improvement after the spectral ordering (see each method).
    reach : float > 0, chain positions, the length scale of :func:`locality` (``"curve"`` and ``"tree"``).

    Returns
    -------
    (n,) int64 permutation, ``order[i]`` = the pixel at chain position ``i`` (for ``MPS(ordering=)``);
    the direction of the chain is arbitrary.
    """
    if method not in FROM_DATA_METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {FROM_DATA_METHODS}")
    if not isinstance(refine, bool):
        raise TypeError(f"refine must be True or False, got {type(refine).__name__}")
    if isinstance(reach, bool) or not isinstance(reach, Real) or not reach > 0:
        raise ValueError(f"reach must be a positive number of chain positions, got {reach!r}")
    neighbours = check_positive_int(neighbours, "neighbours")
    x = as_binary_data(data)
    mi = significant_information(pairwise_mutual_information(x).cpu().numpy(), x.shape[0])
    if method == "fiedler":
        return _fiedler_chain(mi, refine)
    graph = nearest_information_graph(mi, neighbours)
    tree = optimal_leaf_order(spectral_bisection(graph), mi)
    starts = [tree] + (_embedding_curves(graph, tree) if method == "curve" else [])
    chains = [_locality_swaps(order, mi, float(reach)) if refine else order for order in starts]
    return max(chains, key=lambda order: locality(order, mi, reach))


def _fiedler_chain(mi: np.ndarray, refine: bool) -> np.ndarray:
    """The Fiedler ordering of every connected part of the MI graph (n, n), largest first, unlinked sites last."""
    linked = mi > 0
    n_parts, part = scipy.sparse.csgraph.connected_components(linked, directed=False)
    isolated = ~linked.any(axis=1)
    sizes = np.bincount(part[~isolated], minlength=n_parts)
    order = [_fiedler_order(mi[np.ix_(sites, sites)], sites)
             for sites in (np.flatnonzero(part == c) for c in np.argsort(-sizes, kind="stable")) if len(sites) > 1]
    order = np.concatenate(order + [np.flatnonzero(isolated)]).astype(np.int64)
    return _reverse_segments(_swap_descent(order, mi), mi) if refine else order


def locality(order, mi, reach: float = REACH) -> float:
    """Σ_{i<j} I_ij exp(−|pos_i − pos_j| / reach) of a chain ``order`` (n,) for a mutual-information matrix
    (n, n)."""
    mi = mi.cpu().numpy() if isinstance(mi, torch.Tensor) else np.asarray(mi, dtype=np.float64)
    pos = inverse(torch.as_tensor(np.asarray(order), dtype=torch.int64)).numpy()
    return float(np.sum(np.triu(mi, 1) * _fade(pos[:, None] - pos[None, :], reach)))


def _fade(distance: np.ndarray, reach: float) -> np.ndarray:
    """exp(−|distance| / reach), 0 at distance 0 (a site is not its own partner)."""
    out = np.exp(-np.abs(distance) / reach)
    out[distance == 0] = 0.0
    return out


def _locality_swaps(order: np.ndarray, mi: np.ndarray, reach: float, max_passes: int = 50) -> np.ndarray:
    """Swap two pixels while a swap raises :func:`locality` (each pass visits every pixel once, in a seeded
    random order, and makes its best swap).

    With K_ac = exp(−|pos_a − pos_c| / reach) (0 on the diagonal) and R_a = Σ_c I_ac K_ac, swapping the positions
    of a and b changes the locality by (K I_a)_b + (I K_a)_b − R_a − R_b + 2 I_ab K_ab (the last term undoes
    the pair a, b itself, whose distance stays)."""
    n = order.size
    pos = inverse(torch.as_tensor(order, dtype=torch.int64)).numpy()  # writable: swaps move it
    fade = _fade(pos[:, None] - pos[None, :], reach)
    row = np.einsum("ij,ij->i", mi, fade)
    for sweep in range(max_passes):
        moved = False
        for a in np.random.default_rng(sweep).permutation(n):
            gain = fade @ mi[a] + mi @ fade[a] - row[a] - row + 2.0 * mi[a] * fade[a]
            gain[a] = 0.0
            b = int(np.argmax(gain))
            if gain[b] <= 1e-12:
                continue
            pos[a], pos[b] = pos[b], pos[a]
            for site in (a, b):
                new = _fade(pos - pos[site], reach)
                row += mi[:, site] * (new - fade[:, site])
                fade[site], fade[:, site] = new, new
            row[a], row[b] = mi[a] @ fade[a], mi[b] @ fade[b]
            moved = True
        if not moved:
            break
    return inverse(torch.from_numpy(pos)).numpy()


def _embedding_curves(graph: np.ndarray, rest_order: np.ndarray) -> list[np.ndarray]:
    """Chains (n,) through the largest connected part of a weight graph (n, n) along Hilbert curves over the
    ranks of its two-dimensional spectral embedding, one per direction of :data:`EMBEDDING_ANGLES` (the other
    sites follow in ``rest_order``); none when that part has fewer than 4 sites."""
    _, part = scipy.sparse.csgraph.connected_components(graph > 0, directed=False)
    main = part == np.argmax(np.bincount(part))
    sites = np.flatnonzero(main)
    if sites.size < 4:
        return []
    block = graph[np.ix_(sites, sites)]
    _, plane = scipy.linalg.eigh(np.diag(block.sum(axis=1)) - block, subset_by_index=[1, 2])
    cells = 2 ** int(np.ceil(np.log2(2 * np.sqrt(sites.size))))  # a square of about 4 cells per site
    cell_rank = inverse(torch.as_tensor(hilbert((cells, cells)))).numpy()  # row-major cell → place on the curve
    rest = rest_order[~main[rest_order]]
    chains = []
    for angle in np.arange(EMBEDDING_ANGLES) * (np.pi / 2 / EMBEDDING_ANGLES):
        turned = plane @ np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
        ranks = np.argsort(np.argsort(turned, axis=0, kind="stable"), axis=0, kind="stable")
        row, col = (ranks * cells // sites.size).T
        chains.append(np.concatenate([sites[np.argsort(cell_rank[row * cells + col], kind="stable")], rest]))
    return chains


def optimal_leaf_order(nested, mi: np.ndarray) -> np.ndarray:
    """The leaves (n,) int64 of a binary tree of nested pairs of sites 0 … n−1, each subtree oriented so that
    the mutual information between neighbouring leaves (n, n) is largest in total (optimal leaf ordering)."""
    n = mi.shape[0]
    links, sizes, heights = [], [1] * n, [0] * n

    def build(node) -> int:
        if not isinstance(node, tuple):
            return int(node)
        a, b = build(node[0]), build(node[1])
        links.append([a, b, 1 + max(heights[a], heights[b]), sizes[a] + sizes[b]])
        sizes.append(sizes[a] + sizes[b])
        heights.append(1 + max(heights[a], heights[b]))
        return n + len(links) - 1

    build(nested)
    distance = mi.max() - mi
    np.fill_diagonal(distance, 0.0)
    linkage = scipy.cluster.hierarchy.optimal_leaf_ordering(np.array(links, dtype=np.float64),
                                                            scipy.spatial.distance.squareform(distance, checks=False))
    return scipy.cluster.hierarchy.leaves_list(linkage).astype(np.int64)


def mi_distance_cost(order, mi) -> float:
    """Σ_{i<j} I_ij (pos_i − pos_j)² of a chain ``order`` (n,) for a mutual-information matrix (n, n)."""
    mi = mi.cpu().numpy() if isinstance(mi, torch.Tensor) else np.asarray(mi, dtype=np.float64)
    pos = inverse(torch.as_tensor(np.asarray(order), dtype=torch.int64)).numpy().astype(np.float64)
    return float(np.sum(np.triu(mi, 1) * (pos[:, None] - pos[None, :]) ** 2))


def _fiedler_order(mi: np.ndarray, sites: np.ndarray) -> np.ndarray:
    """``sites`` sorted by the Fiedler vector of the Laplacian of their (connected) MI block."""
    laplacian = np.diag(mi.sum(axis=1)) - mi
    _, vectors = scipy.linalg.eigh(laplacian, subset_by_index=[0, 1])  # the two lowest eigenpairs
    return sites[np.argsort(vectors[:, 1], kind="stable")]


def _swap_descent(order: np.ndarray, mi: np.ndarray, max_passes: int = 100) -> np.ndarray:
    """Swap adjacent chain positions while a swap lowers :func:`mi_distance_cost`.

    Swapping positions k, k+1 (pixels a, b) moves a by +1 and b by −1, which changes the cost by
    Σ_c (I_ac − I_bc)(2(k − pos_c) + 1) + 2 I_ab (the sum over all c; the last term undoes c ∈ {a, b})."""
    order = order.copy()
    pos = np.empty_like(order)
    pos[order] = np.arange(order.size)
    for _ in range(max_passes):
        improved = False
        for k in range(order.size - 1):
            a, b = order[k], order[k + 1]
            delta = (mi[a] - mi[b]) @ (2.0 * (k - pos) + 1.0) + 2.0 * mi[a, b]
            if delta < -1e-12:
                order[k], order[k + 1] = b, a
                pos[a], pos[b] = k + 1, k
                improved = True
        if not improved:
            break
    return order


def neighbour_information(order, mi) -> float:
    """Σ_k I(o_k, o_{k+1}): the mutual information between neighbours on the chain ``order`` (n,)."""
    mi = mi.cpu().numpy() if isinstance(mi, torch.Tensor) else np.asarray(mi, dtype=np.float64)
    order = np.asarray(order)
    return float(mi[order[:-1], order[1:]].sum())


def _reverse_segments(order: np.ndarray, mi: np.ndarray, max_moves: int | None = None) -> np.ndarray:
    """Reverse the chain segment whose reversal raises :func:`neighbour_information` most, while one does
    (2-opt on a path; at most ``max_moves``, default 20 n). Reversing positions i … j replaces the links
    (o_{i−1}, o_i), (o_j, o_{j+1}) by (o_{i−1}, o_j), (o_i, o_{j+1}); the chain's ends link to a zero pad."""
    n = order.size
    padded = np.zeros((n + 1, n + 1))
    padded[:n, :n] = mi
    chain = np.concatenate([[n], order, [n]])  # pad index n at both ends
    for _ in range(20 * n if max_moves is None else max_moves):
        links = padded[np.ix_(chain, chain)]  # (n + 2, n + 2) in chain order
        kept = links.diagonal(1)  # kept[k] = I(chain_k, chain_{k+1})
        # gain[i − 1, j − 1] of reversing chain[i..j], 1 ≤ i ≤ j ≤ n
        gain = np.triu(links[:-2, 1:-1] + links[1:-1, 2:] - kept[:-1, None] - kept[None, 1:])
        best = int(np.argmax(gain))
        if gain.flat[best] <= 1e-12:
            break
        i, j = (v + 1 for v in divmod(best, n))
        chain[i:j + 1] = chain[i:j + 1][::-1].copy()
    return chain[1:-1]


def resolve(ordering, n_sites: int, shape: Sequence[int] | None) -> torch.Tensor:
    """Turn ``ordering`` (None, a name in :data:`NAMES`, or a permutation) into a LongTensor (n_sites,)."""
    if ordering is None or (isinstance(ordering, str) and ordering == "row_major"):
        return torch.arange(n_sites)
    if isinstance(ordering, str):
        if ordering not in NAMES:
            raise ValueError(f"unknown ordering {ordering!r}; choose one of {NAMES} or pass a permutation")
        if shape is None or len(shape) != 2:
            raise ValueError(f"ordering {ordering!r} needs an image shape (H, W); construct the model with n_sites=(H, W)")
        return torch.as_tensor(globals()[ordering](shape), dtype=torch.int64)
    perm = torch.as_tensor(np.asarray(ordering))
    if perm.dim() != 1 or perm.dtype.is_floating_point or perm.dtype == torch.bool:
        raise TypeError("ordering must be a name or a 1-D sequence of integer pixel indices")
    perm = perm.to(torch.int64)
    if perm.numel() != n_sites or not torch.equal(torch.sort(perm).values, torch.arange(n_sites)):
        raise ValueError(f"ordering must be a permutation of range({n_sites}); got {perm.numel()} entries "
                         "with repeats or out-of-range values")
    return perm


def inverse(order: torch.Tensor) -> torch.Tensor:
    """Chain position of every pixel: ``inverse(order)[order[i]] == i``."""
    inv = torch.empty_like(order)
    inv[order] = torch.arange(order.numel())
    return inv


def _hw(shape):
    if len(shape) != 2:
        raise ValueError(f"image shape must be (H, W), got {tuple(shape)}")
    return int(shape[0]), int(shape[1])


def _sign(v: int) -> int:
    return (v > 0) - (v < 0)


def _gilbert(width: int, height: int):
    if width >= height:
        yield from _gilbert_rec(0, 0, width, 0, 0, height)
    else:
        yield from _gilbert_rec(0, 0, 0, height, width, 0)


def _gilbert_rec(x, y, ax, ay, bx, by):
    w, h = abs(ax + ay), abs(bx + by)
    dax, day, dbx, dby = _sign(ax), _sign(ay), _sign(bx), _sign(by)
    if h == 1:
        for _ in range(w):
            yield x, y
            x, y = x + dax, y + day
        return
    if w == 1:
        for _ in range(h):
            yield x, y
            x, y = x + dbx, y + dby
        return
    ax2, ay2, bx2, by2 = ax // 2, ay // 2, bx // 2, by // 2
    w2, h2 = abs(ax2 + ay2), abs(bx2 + by2)
    if 2 * w > 3 * h:
        if w2 % 2 and w > 2:
            ax2, ay2 = ax2 + dax, ay2 + day
        yield from _gilbert_rec(x, y, ax2, ay2, bx, by)
        yield from _gilbert_rec(x + ax2, y + ay2, ax - ax2, ay - ay2, bx, by)
    else:
        if h2 % 2 and h > 2:
            bx2, by2 = bx2 + dbx, by2 + dby
        yield from _gilbert_rec(x, y, bx2, by2, ax2, ay2)
        yield from _gilbert_rec(x + bx2, y + by2, ax, ay, bx - bx2, by - by2)
        yield from _gilbert_rec(x + (ax - dax) + (bx2 - dbx), y + (ay - day) + (by2 - dby),
                                -bx2, -by2, -(ax - ax2), -(ay - ay2))
