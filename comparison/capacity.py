"""Capacity bounds: how much correlation an architecture can carry across a bipartition.

* RBM (:func:`rbm_bound`): with Z the hidden units connected to both X and Y, summing out the hidden
  layer leaves p(x, y) = Σ_z f(x, z) g(y, z) over the 2^|Z| states of Z, so I(X:Y) ≤ H(Z) ≤ |Z| ln 2.
* Tensor network (:func:`network_bound`): the Schmidt rank of Ψ across X | Y is at most the product
  of the dimensions of any set of bonds whose removal separates X from Y, so for every Rényi index
  α ≥ 0, S_α(X) ≤ S_0(X) = ln rank ≤ min-cut Σ ln D. The Born machine's classical MI is bounded by the
  same number: measuring Y in the computational basis and applying the Holevo bound gives
  I(X:Y) ≤ S₁(ρ_X) ≤ min-cut.

The min cut of a tree is computed exactly by :func:`min_cut_tree` (dynamic programming, O(nodes)); a
chain is a tree, so the MPS and TTN share one code path. A network's *physical legs* (dimension 2,
between a site and its tensor) are bonds too: cutting all legs of X costs |X| ln 2, the trivial bound,
so the tree cut is never worse than it. ``physical_legs=False`` forbids cutting them; for an MPS that
gives the "chain segments" bound Σ_{k: side(k) ≠ side(k+1)} ln D_k over the chain positions.

All bounds are in nats unless ``base=2``.
"""
from __future__ import annotations

import math
from typing import Mapping, Sequence

import numpy as np

from bornmachine.validation import log_base

from .bipartitions import Bipartition

__all__ = ["rbm_bound", "coupled_hidden_units", "network_bound", "network_edges", "min_cut_tree"]


# ------------------------------------------------------------------------------------------------
# RBM
# ------------------------------------------------------------------------------------------------
def coupled_hidden_units(mask, bip: Bipartition) -> np.ndarray:
    """Indices of the hidden units connected to at least one pixel of X and one of Y.

    ``mask``: (n_visible, n_hidden) boolean or 0/1 (numpy or torch), True = connection, with
    n_visible = ``bip.n_sites`` (row-major pixels).
    """
    m = _check_rbm_mask(mask, bip)
    to_x = m[bip.sites_x].any(axis=0)
    to_y = m[bip.sites_y].any(axis=0)
    return np.flatnonzero(to_x & to_y)


def rbm_bound(mask, bip: Bipartition, base="e") -> float:
    """|Z| ln 2: the most MI an RBM with this connectivity can carry across ``bip`` (nats by default).

    Z = hidden units coupled to both X and Y (:func:`coupled_hidden_units`); a dense RBM with n_h
    hidden units gets n_h ln 2 for every bipartition, a local one only counts the units whose
    receptive field straddles the cut.
    """
    return coupled_hidden_units(mask, bip).size * math.log(2.0) / log_base(base)


def _check_rbm_mask(mask, bip: Bipartition) -> np.ndarray:
    if not isinstance(bip, Bipartition):
        raise TypeError(f"bip must be a Bipartition, got {type(bip).__name__}")
    if hasattr(mask, "detach"):
        mask = mask.detach().cpu().numpy()
    arr = np.asarray(mask)
    if arr.dtype == object or not (arr.dtype == np.bool_ or np.issubdtype(arr.dtype, np.number)):
        raise TypeError(f"mask must be boolean or 0/1, got dtype {arr.dtype}")
    if arr.ndim != 2 or arr.shape[0] != bip.n_sites:
        raise ValueError(f"mask has shape {arr.shape}; expected (n_visible={bip.n_sites}, n_hidden)")
    if arr.dtype != np.bool_:
        bad = (arr != 0) & (arr != 1)
        if bad.any():
            raise ValueError(f"mask must be boolean or 0/1; found value {arr[bad][0].item()!r}")
        arr = arr == 1
    return arr


# ------------------------------------------------------------------------------------------------
# tensor networks
# ------------------------------------------------------------------------------------------------
def network_bound(model, bip: Bipartition, base="e", physical_legs: bool = True) -> float:
    """Min over sets of bonds separating X from Y of Σ ln D: bounds S_α(X) (any α) and I(X:Y).

    ``model``: an MPS (``kind == "MPS"``: ``bond_dims``, ``ordering``) or a TTN (``kind == "TTN"``:
    ``edges`` as (child, parent) with aligned ``bond_dims``, leaves 0…n−1 = pixels). The network is
    turned into a tree by :func:`network_edges` and cut by :func:`min_cut_tree`. Returns ``inf`` when
    ``physical_legs=False`` and no set of virtual bonds separates the sides (a TTN node with leaves on
    both sides).
    """
    edges, leaf_side = network_edges(model, bip, physical_legs=physical_legs)
    return min_cut_tree(edges, leaf_side) / log_base(base)


def network_edges(model, bip: Bipartition, physical_legs: bool = True):
    """The tree of a network as ``(edges, leaf_side)`` for :func:`min_cut_tree`.

    MPS over n sites: leaves 0…n−1 are the chain positions (side of pixel ``ordering[i]``). With
    ``physical_legs`` the tensors are nodes n…2n−1, joined to their site by a leg of dimension 2 and
    to each other by the bonds D_k; without, each tensor is identified with its site and only the
    bonds remain (a path). TTN: the model's own edges and bond dimensions (legs of dimension 2 into
    the leaves), legs made uncuttable (dimension ``inf``) when ``physical_legs`` is False.
    """
    if not isinstance(bip, Bipartition):
        raise TypeError(f"bip must be a Bipartition, got {type(bip).__name__}")
    kind = getattr(model, "kind", None)
    if kind not in ("MPS", "TTN"):
        raise TypeError(f"network_bound needs an MPS or TTN model (kind 'MPS' or 'TTN'), got {type(model).__name__}")
    n = int(model.n_sites)
    if n != bip.n_sites:
        raise ValueError(f"model has {n} sites but the bipartition {bip.name!r} has {bip.n_sites} pixels")
    shape = getattr(model, "shape", None)
    if shape is not None and len(bip.shape) > 1 and tuple(shape) != bip.shape:
        raise ValueError(f"model image shape {tuple(shape)} differs from the bipartition's {bip.shape}")
    side = bip.flat_mask
    if kind == "MPS":
        order = np.asarray(model.ordering, dtype=np.int64).reshape(-1)
        dims = [int(d) for d in model.bond_dims]
        leaf_side = {i: bool(side[order[i]]) for i in range(n)}
        if physical_legs:
            edges = [(i, n + i, 2) for i in range(n)] + [(n + i, n + i + 1, dims[i]) for i in range(n - 1)]
        else:
            edges = [(i, i + 1, dims[i]) for i in range(n - 1)]
        return edges, leaf_side
    dims = [int(d) for d in model.bond_dims]  # TTN: aligned with model.edges = (child, parent)
    edges = []
    for (child, parent), d in zip(model.edges, dims):
        leg = int(child) < n
        edges.append((int(child), int(parent), math.inf if (leg and not physical_legs) else d))
    return edges, {i: bool(side[i]) for i in range(n)}


def min_cut_tree(edges: Sequence[tuple], leaf_side: Mapping, return_cut: bool = False):
    """Exact minimum cut of a tree separating the nodes fixed to side X from those fixed to side Y.

    Every node gets a side; an edge whose endpoints differ is cut and costs ln D. Nodes listed in
    ``leaf_side`` are fixed, the others are free. Dynamic programming from the leaves up gives, for each
    node v and side s, the cheapest cost of v's subtree with v on s; the answer is min_s at the root.
    O(nodes), no recursion.

    Parameters
    ----------
    edges : sequence of (u, v, D): an undirected tree over hashable node ids, D ≥ 1 the bond dimension
        (``math.inf`` for a bond that may not be cut; D = 1 costs nothing).
    leaf_side : mapping node → bool (True = X, False = Y) of the fixed nodes (usually the sites).
    return_cut : also return the indices (into ``edges``) of one optimal set of cut bonds.

    Returns
    -------
    float (nats), ``inf`` if no finite cut exists; or (float, list of int) when ``return_cut``.
    """
    adjacency, nodes = _tree_adjacency(edges)
    if not edges:
        if len(leaf_side) > 1:
            raise ValueError("no edges: a tree over several fixed nodes needs edges")
        return (0.0, []) if return_cut else 0.0
    for v, s in leaf_side.items():
        if v not in adjacency:
            raise ValueError(f"leaf_side names node {v!r}, which no edge touches")
        if not isinstance(s, (bool, np.bool_)) and s not in (0, 1):
            raise ValueError(f"leaf_side[{v!r}] must be a bool (True = X), got {s!r}")
    weights = [_edge_cost(d, i) for i, (_, _, d) in enumerate(edges)]
    root = next(iter(leaf_side)) if leaf_side else next(iter(nodes))
    # iterative DFS: parents before children
    order, parent_edge, stack, seen = [], {root: None}, [root], {root}
    while stack:
        v = stack.pop()
        order.append(v)
        for u, e in adjacency[v]:
            if u not in seen:
                seen.add(u)
                parent_edge[u] = e
                stack.append(u)
    cost = {}  # node -> [cost with node in Y, cost with node in X]
    choice = {}  # (child, side of parent) -> side of child in the optimum
    for v in reversed(order):
        c = [0.0, 0.0]
        if v in leaf_side:
            c[1 - int(bool(leaf_side[v]))] = math.inf
        for u, e in adjacency[v]:
            if parent_edge.get(u) != e or u == v:
                continue  # u is v's parent
            for s in (0, 1):
                stay, switch = cost[u][s], cost[u][1 - s] + weights[e]
                choice[(u, s)] = s if stay <= switch else 1 - s
                c[s] += min(stay, switch)
        cost[v] = c
    best = min(cost[root])
    if not return_cut:
        return float(best)
    if math.isinf(best):
        return float(best), []
    side = {root: 0 if cost[root][0] <= cost[root][1] else 1}
    cut = []
    for v in order[1:]:
        e = parent_edge[v]
        a, b, _ = edges[e]
        p = b if a == v else a
        side[v] = choice[(v, side[p])]
        if side[v] != side[p]:
            cut.append(e)
    return float(best), sorted(cut)


def _edge_cost(d, index: int) -> float:
    if isinstance(d, bool):
        raise TypeError(f"edge {index}: bond dimension must be a number, got {d!r}")
    try:
        d = float(d)
    except (TypeError, ValueError) as err:
        raise TypeError(f"edge {index}: bond dimension must be a number, got {d!r}") from err
    if math.isnan(d) or d < 1:
        raise ValueError(f"edge {index}: bond dimension must be >= 1, got {d}")
    return math.inf if math.isinf(d) else math.log(d)


def _tree_adjacency(edges):
    adjacency: dict = {}
    nodes: set = set()
    for i, edge in enumerate(edges):
        try:
            u, v, _ = edge
        except (TypeError, ValueError) as err:
            raise ValueError(f"edge {i} must be a (u, v, D) triple, got {edge!r}") from err
        if u == v:
            raise ValueError(f"edge {i} is a loop on node {u!r}")
        adjacency.setdefault(u, []).append((v, i))
        adjacency.setdefault(v, []).append((u, i))
        nodes.update((u, v))
    if edges and len(edges) != len(nodes) - 1:
        raise ValueError(f"not a tree: {len(edges)} edges over {len(nodes)} nodes (a tree has nodes - 1)")
    if nodes:  # connected? (with nodes − 1 edges, connected ⇔ acyclic)
        start = next(iter(nodes))
        seen, stack = {start}, [start]
        while stack:
            for u, _ in adjacency[stack.pop()]:
                if u not in seen:
                    seen.add(u)
                    stack.append(u)
        if len(seen) != len(nodes):
            missing = next(iter(nodes - seen))
            raise ValueError(f"not a tree: node {missing!r} is not connected to node {start!r}")
    return adjacency, nodes
