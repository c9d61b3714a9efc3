"""Binary trees over sites, for tree tensor networks (TTN).

A :class:`Tree` over ``n`` sites has ``2n − 1`` nodes: the leaves ``0 … n−1`` *are* the sites
(natural pixel indices), the internal nodes ``n … 2n−2`` each have exactly two children (an ordered
pair: the tensor of node v has legs (child 0, child 1, parent)), and one internal node is the root.
Every node but the root has a parent edge; ``edges`` lists them as ``(child, parent)`` pairs sorted
by child, so ``edges[k]`` for ``k < n`` is the physical leg of site ``k``.

Ways to build one (all validated, with errors that name the offending site or node):

* ``Tree.bisection((H, W))``: recursive bisection of the image along its longer side (rows first on
  ties) into compact blocks, for any H×W (the default for 2D data).
* ``Tree.balanced(n)``: balanced bisection of the chain 0…n−1 (the default for 1D data).
* ``Tree.random(n, generator)``: balanced bisection of a random permutation of the sites.
* ``Tree.caterpillar(n or order)``: ``((((o0, o1), o2), o3), …)``, the MPS-like tree; the internal
  node covering the first k+1 sites of ``order`` carries the MPS bond k.
* ``Tree.from_nested(((0, 1), (2, (3, 4))))``: nested pairs of sites; internal nodes are numbered in
  post-order (children before parents), so the root is ``2n − 2``.
* ``Tree.from_parent(parent)``: a parent array of length 2n−1 (``-1`` for the root); internal node
  numbers are kept, children are ordered by node number.
* ``Tree.from_data(data)``: bottom-up from the pairwise mutual information of a data set (the blocks
  sharing the most information merge first), its height held to a bound.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch

from .mutual_information import pairwise_mutual_information
from .spectral import nearest_information_graph, significant_information, spectral_bisection
from .validation import as_binary_data, check_positive_int

NAMES = ("bisection", "balanced", "caterpillar")


class Tree:
    """An immutable rooted binary tree whose leaves are the sites ``0 … n_sites−1``.

    Parameters
    ----------
    children : int array (n_sites − 1, 2)
        ``children[i]`` = the ordered pair of children of internal node ``n_sites + i``.

    Attributes
    ----------
    n_sites, n_nodes (= 2·n_sites − 1), root : int
    children : (n_nodes, 2) int64, −1 for leaves. parent : (n_nodes,) int64, −1 for the root.
    slot : (n_nodes,) which child (0 or 1) a node is of its parent, −1 for the root.
    height : (n_nodes,) 0 for leaves, 1 + max(children) otherwise. depth : (n_nodes,) 0 at the root.
    internal : internal node ids, children before parents (post-order). levels : internal nodes by height.
    edges : list of (child, parent), sorted by child. leaf_order : sites in depth-first (left-to-right) order.
    """

    def __init__(self, children):
        arr = np.asarray(children)
        if arr.ndim != 2 or arr.shape[1] != 2 or arr.shape[0] < 1:
            raise ValueError(f"children must have shape (n_sites - 1, 2) with n_sites >= 2, got {arr.shape}")
        if not np.issubdtype(arr.dtype, np.integer):
            raise TypeError(f"children must hold integer node ids, got dtype {arr.dtype}")
        n = arr.shape[0] + 1
        n_nodes = 2 * n - 1
        arr = arr.astype(np.int64)
        bad = arr[(arr < 0) | (arr >= n_nodes)]
        if bad.size:
            raise ValueError(f"child id {int(bad[0])} out of range 0..{n_nodes - 1}")
        parent = np.full(n_nodes, -1, dtype=np.int64)
        slot = np.full(n_nodes, -1, dtype=np.int64)
        for i, pair in enumerate(arr):
            node = n + i
            if pair[0] == pair[1]:
                raise ValueError(f"internal node {node} has the same child {int(pair[0])} twice")
            for s, c in enumerate(pair):
                if parent[c] != -1:
                    raise ValueError(f"node {int(c)} has two parents ({int(parent[c])} and {node})")
                if c == node:
                    raise ValueError(f"node {node} is its own child")
                parent[c] = node
                slot[c] = s
        leaves_without_parent = [v for v in range(n) if parent[v] == -1]
        if leaves_without_parent:
            raise ValueError(f"site {leaves_without_parent[0]} is not attached to the tree")
        roots = [v for v in range(n, n_nodes) if parent[v] == -1]
        if len(roots) != 1:
            raise ValueError(f"a tree needs exactly one root; internal nodes without a parent: {roots}")
        root = roots[0]
        full = np.full((n_nodes, 2), -1, dtype=np.int64)
        full[n:] = arr
        # reachability from the root (rules out cycles among internal nodes)
        order, stack, seen = [], [root], np.zeros(n_nodes, dtype=bool)
        while stack:
            v = stack.pop()
            if seen[v]:
                raise ValueError(f"node {v} is reached twice from the root: not a tree")
            seen[v] = True
            order.append(v)
            if v >= n:
                stack.extend(full[v].tolist())
        if not seen.all():
            missing = int(np.flatnonzero(~seen)[0])
            raise ValueError(f"node {missing} is not connected to the root {root} (a cycle?)")
        self.n_sites, self.n_nodes, self.root = n, n_nodes, int(root)
        self.children, self.parent, self.slot = full, parent, slot
        depth = np.zeros(n_nodes, dtype=np.int64)
        for v in order:  # pre-order: parents first
            if v != root:
                depth[v] = depth[parent[v]] + 1
        height = np.zeros(n_nodes, dtype=np.int64)
        internal = [v for v in reversed(order) if v >= n]  # children before parents
        for v in internal:
            height[v] = 1 + max(height[full[v, 0]], height[full[v, 1]])
        self.depth, self.height = depth, height
        self.internal = internal
        self.levels = [[v for v in internal if height[v] == h] for h in range(1, int(height[root]) + 1)]
        self.edges = [(v, int(parent[v])) for v in range(n_nodes) if v != root]
        self._edge_index = {v: k for k, (v, _) in enumerate(self.edges)}
        below: list[list[int]] = [[v] for v in range(n)] + [[] for _ in range(n, n_nodes)]
        for v in internal:
            below[v] = below[full[v, 0]] + below[full[v, 1]]
        self.leaf_order = list(below[root])
        self._below = [sorted(b) for b in below]
        for arr_ in (self.children, self.parent, self.slot, self.depth, self.height):
            arr_.setflags(write=False)

    # ---------------------------------------------------------------------------------------------
    # constructors
    # ---------------------------------------------------------------------------------------------
    @classmethod
    def from_nested(cls, nested, n_sites: int | None = None) -> "Tree":
        """Build from nested pairs of site indices, e.g. ``((0, 1), (2, (3, 4)))``.

        Every site 0…n−1 must appear exactly once and every tuple must have exactly two entries.
        Internal nodes are numbered in post-order, so the root is ``2n − 2``.
        """
        if isinstance(nested, (int, np.integer)) and not isinstance(nested, bool):
            raise ValueError("a tree over a single site has no internal node; a TTN needs at least 2 sites")
        leaves: list[int] = []
        _collect(nested, leaves)
        n = len(leaves) if n_sites is None else int(n_sites)
        _check_sites_once(leaves, n)
        children: list[tuple[int, int]] = []
        ids: list[int] = []  # post-order numbering with an explicit stack (no recursion limit)
        stack = [(nested, False)]
        while stack:
            item, expanded = stack.pop()
            if not isinstance(item, (tuple, list)):
                ids.append(int(item))
            elif expanded:
                b, a = ids.pop(), ids.pop()
                children.append((a, b))
                ids.append(n + len(children) - 1)
            else:
                stack.extend([(item, True), (item[1], False), (item[0], False)])
        return cls(np.array(children, dtype=np.int64))

    @classmethod
    def from_parent(cls, parent, n_sites: int | None = None) -> "Tree":
        """Build from a parent array: ``parent[v]`` for every node v of 0…2n−2, ``-1`` for the root.

        Entries 0…n−1 are the sites (leaves), n…2n−2 the internal nodes (numbers kept); each internal
        node needs exactly two children, ordered by node number.
        """
        arr = np.asarray(parent.detach().cpu().numpy() if isinstance(parent, torch.Tensor) else parent)
        if arr.ndim != 1 or arr.dtype == object or not (np.issubdtype(arr.dtype, np.integer)
                                                         or (arr.dtype.kind == "f" and np.all(arr == np.round(arr)))):
            raise TypeError("a parent array must be a 1-D sequence of integer node ids (-1 for the root)")
        arr = arr.astype(np.int64)
        if arr.size % 2 == 0 or arr.size < 3:
            raise ValueError(f"a parent array over n sites has 2n-1 entries (odd, >= 3); got {arr.size}")
        n = (arr.size + 1) // 2
        if n_sites is not None and n != n_sites:
            raise ValueError(f"parent array has {arr.size} entries, i.e. {n} sites; expected {2 * n_sites - 1} "
                             f"entries for {n_sites} sites")
        n_nodes = arr.size
        roots = np.flatnonzero(arr == -1).tolist()
        if len(roots) != 1:
            raise ValueError(f"a parent array needs exactly one root (-1); found {len(roots)}: nodes {roots}")
        bad = [v for v in range(n_nodes) if v != roots[0] and not n <= arr[v] < n_nodes]
        if bad:
            v = bad[0]
            raise ValueError(f"parent[{v}] = {int(arr[v])}: parents must be internal nodes {n}..{n_nodes - 1} "
                             "(entries 0..n-1 are the sites, which are leaves)")
        if roots[0] < n:
            raise ValueError(f"the root (node {roots[0]}) must be an internal node (>= {n}), not a site")
        kids: list[list[int]] = [[] for _ in range(n_nodes)]
        for v in range(n_nodes):
            if arr[v] >= 0:
                kids[arr[v]].append(v)
        for v in range(n, n_nodes):
            if len(kids[v]) != 2:
                raise ValueError(f"internal node {v} has {len(kids[v])} children {kids[v]}; a binary tree needs 2")
        return cls(np.array([kids[v] for v in range(n, n_nodes)], dtype=np.int64))

    @classmethod
    def balanced(cls, n_sites: int) -> "Tree":
        """Balanced bisection of the chain 0…n−1 (left half ⌊n/2⌋ sites)."""
        n = _check_n(n_sites)
        return cls.from_nested(_bisect(list(range(n))), n)

    @classmethod
    def random(cls, n_sites: int, generator: torch.Generator | None = None) -> "Tree":
        """Balanced bisection of a random permutation of the sites (``torch.randperm`` with ``generator``):
        a tree of the least height that ignores the data's geometry (e.g. a start for ``restructure``)."""
        n = _check_n(n_sites)
        return cls.from_nested(_bisect(torch.randperm(n, generator=generator).tolist()), n)

    @classmethod
    def caterpillar(cls, order) -> "Tree":
        """The MPS-like tree ``((((o0, o1), o2), o3), …)`` for an int n (order 0…n−1) or a site order."""
        order = list(range(_check_n(order))) if isinstance(order, (int, np.integer)) else [int(s) for s in order]
        if len(order) < 2:
            raise ValueError("a TTN needs at least 2 sites")
        nested = order[0]
        for s in order[1:]:
            nested = (nested, s)
        return cls.from_nested(nested, len(order))

    @classmethod
    def bisection(cls, shape: Sequence[int]) -> "Tree":
        """Recursive bisection of an (H, W) image along its longer side into compact blocks.

        A block of h×w pixels splits into the top ⌊h/2⌋ rows and the rest when h ≥ w, else into the
        left ⌊w/2⌋ columns and the rest; every internal node covers a rectangle. Sites are row-major.
        """
        if len(shape) != 2:
            raise ValueError(f"bisection needs an image shape (H, W), got {tuple(shape)}")
        h, w = int(shape[0]), int(shape[1])
        _check_n(h * w)

        def split(r0, r1, c0, c1):
            if r1 - r0 == 1 and c1 - c0 == 1:
                return r0 * w + c0
            if r1 - r0 >= c1 - c0:
                mid = r0 + (r1 - r0) // 2
                return (split(r0, mid, c0, c1), split(mid, r1, c0, c1))
            mid = c0 + (c1 - c0) // 2
            return (split(r0, r1, c0, mid), split(r0, r1, mid, c1))

        return cls.from_nested(split(0, h, 0, w), h * w)

    @classmethod
    def from_data(cls, data, *, method: str = "spectral", max_height: int | None = None,
                  neighbours: int = 6) -> "Tree":
        """A binary tree over the sites from their mutual information.

        ``method="spectral"`` (default): the recursive balanced spectral bisection of the graph of each site's
        ``neighbours`` strongest links (:func:`bornmachine.spectral.spectral_bisection`; height ⌈log₂ n⌉), the
        tree whose optimal leaf order is ``orderings.from_data(method="tree", refine=False)``. On mnist5k (3240
        training and 360 validation images, D = 8, lr 0.05, 6 sweeps, seeds 0 and 1) a TTN on it reached test NLL
        108.3 and 108.2 (108.7 and 109.1 with 4 neighbours), against 107.0 and 107.7 for the image bisection and 110.6
        and 111.1 when each block is split at the median of its Fiedler vector alone; on a shuffled Markov
        chain its blocks are runs of the chain, where the height bound of the agglomerative merges can force
        far sites together.

        ``method="agglomerative"``: agglomerate the sites bottom-up, with a height bound. Every
        site starts as a block; each step merges the two blocks of largest average pairwise
        mutual information Σ_{i∈A, j∈B} I_ij / (|A| |B|) (I from
        :func:`~bornmachine.mutual_information.pairwise_mutual_information`) among the pairs the
        balance rule allows. Balance rule: the tree's height stays ≤ ``max_height``. Blocks of heights
        h_b can still be joined under a root of height ≤ H iff Σ_b 2^{h_b} ≤ 2^H (Kraft's inequality),
        so a merge is allowed when the sum after it stays ≤ 2^H; merging the two lowest blocks always
        is, so the greedy never gets stuck. Internal node n + k is the k-th merge, its children the two
        blocks in node-id order.

        Parameters
        ----------
        data : (N, n) or (N, H, W) binary array, numpy or torch (sites = pixels, row-major), n ≥ 2.
        method : "agglomerative" or "spectral".
        max_height : int, optional, ``"agglomerative"`` only
            Height bound, at least ⌈log₂ n⌉ (that value gives a perfectly balanced depth); default
            ⌈log₂ n⌉ + 2. ``n − 1`` lifts the bound (pure information-driven merges).
        neighbours : int ≥ 1, ``"spectral"`` only: links per site of the bisected graph, about the number of
            neighbours a site has in the data's geometry (2 on a chain; 4–8 on an image grid). With many more,
            the small blocks of a chain are nearly complete graphs whose Fiedler vector is noise.
        """
        if method not in ("agglomerative", "spectral"):
            raise ValueError(f"unknown method {method!r}; choose 'agglomerative' or 'spectral'")
        x = as_binary_data(data)
        mi = pairwise_mutual_information(x).cpu().numpy()
        n = _check_n(mi.shape[0])
        if method == "spectral":
            graph = nearest_information_graph(significant_information(mi, x.shape[0]),
                                              check_positive_int(neighbours, "neighbours"))
            return cls.from_nested(spectral_bisection(graph), n)
        lowest = math.ceil(math.log2(n))
        if max_height is None:
            max_height = lowest + 2
        if isinstance(max_height, bool) or not isinstance(max_height, (int, np.integer)):
            raise TypeError(f"max_height must be an integer, got {type(max_height).__name__}")
        if max_height < lowest:
            raise ValueError(f"max_height = {max_height} is below ceil(log2 {n}) = {lowest}, the least height "
                             f"of a binary tree over {n} sites")
        capacity = 2 ** int(max_height)  # Python ints: exact for any height
        n_nodes = 2 * n - 1
        weight = np.zeros((n_nodes, n_nodes))  # Σ of pairwise MI between the sites of two blocks
        weight[:n, :n] = mi
        size = np.ones(n_nodes)
        height = np.zeros(n_nodes, dtype=np.int64)
        alive = np.zeros(n_nodes, dtype=bool)
        alive[:n] = True
        kraft = n  # Σ 2^height over the blocks
        children = []
        for node in range(n, n_nodes):
            ids = np.flatnonzero(alive)
            h = height[ids]
            allowed = np.zeros((int(h.max()) + 1,) * 2, dtype=bool)  # by the heights of the two blocks
            present = np.unique(h).tolist()
            for ha in present:
                for hb in present:
                    allowed[ha, hb] = kraft + 2 ** (max(ha, hb) + 1) - 2 ** ha - 2 ** hb <= capacity
            score = weight[np.ix_(ids, ids)] / (size[ids, None] * size[None, ids])
            score[~allowed[h[:, None], h[None, :]]] = -np.inf
            np.fill_diagonal(score, -np.inf)
            i, j = sorted(np.unravel_index(int(np.argmax(score)), score.shape))
            a, b = int(ids[i]), int(ids[j])
            children.append((a, b))
            weight[node] = weight[a] + weight[b]
            weight[:, node] = weight[node]
            weight[node, node] = 0.0
            size[node] = size[a] + size[b]
            height[node] = max(height[a], height[b]) + 1
            alive[[a, b]] = False
            alive[node] = True
            kraft += 2 ** int(height[node]) - 2 ** int(height[a]) - 2 ** int(height[b])
        return cls(np.array(children, dtype=np.int64))

    # ---------------------------------------------------------------------------------------------
    # queries
    # ---------------------------------------------------------------------------------------------
    def is_leaf(self, v: int) -> bool:
        return v < self.n_sites

    def sites_below(self, v: int) -> list[int]:
        """Sorted sites of the subtree rooted at node ``v``."""
        return list(self._below[v])

    def edge_index(self, child: int) -> int:
        """Index in :attr:`edges` of the edge above node ``child``."""
        return self._edge_index[int(child)]

    def to_nested(self):
        """Nested pairs of sites (inverse of :meth:`from_nested`, up to internal numbering)."""
        out: list = []
        stack = [(self.root, False)]
        while stack:
            v, expanded = stack.pop()
            if v < self.n_sites:
                out.append(int(v))
            elif expanded:
                b, a = out.pop(), out.pop()
                out.append((a, b))
            else:
                stack.extend([(v, True), (int(self.children[v, 1]), False), (int(self.children[v, 0]), False)])
        return out[0]

    def internal_children(self) -> np.ndarray:
        """(n_sites − 1, 2) children of the internal nodes n…2n−2 (the constructor's input)."""
        return np.array(self.children[self.n_sites:])

    def __eq__(self, other) -> bool:
        return isinstance(other, Tree) and np.array_equal(self.children, other.children)

    def __hash__(self) -> int:
        return hash(self.children.tobytes())

    def __repr__(self) -> str:
        return f"Tree(n_sites={self.n_sites}, height={int(self.height[self.root])}, root={self.root})"


def make_tree(spec, n_sites: int, shape: Sequence[int] | None = None) -> Tree:
    """Resolve a ``tree=`` argument: None (bisection for a 2D ``shape``, else balanced), a name in
    :data:`NAMES`, a :class:`Tree`, a parent array (numpy/torch array, or a flat int sequence of length
    2n−1) or nested pairs of sites. The result must cover exactly the sites 0…n_sites−1."""
    two_d = shape is not None and len(shape) == 2 and min(shape) > 1
    if spec is None:
        spec = "bisection" if two_d else "balanced"
    if isinstance(spec, str):
        if spec == "bisection":
            if shape is None or len(shape) != 2:
                raise ValueError("tree='bisection' needs an image shape (H, W); construct the model with (H, W)")
            tree = Tree.bisection(shape)
        elif spec == "balanced":
            tree = Tree.balanced(n_sites)
        elif spec == "caterpillar":
            tree = Tree.caterpillar(n_sites)
        else:
            raise ValueError(f"unknown tree {spec!r}; choose one of {NAMES}, or pass nested pairs of sites, "
                             "a parent array or a Tree")
    elif isinstance(spec, Tree):
        tree = spec
    elif isinstance(spec, (np.ndarray, torch.Tensor)) or (
            isinstance(spec, (list, tuple)) and len(spec) == 2 * n_sites - 1 and len(spec) != 2
            and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in spec)):
        tree = Tree.from_parent(spec, n_sites)
    elif isinstance(spec, (list, tuple)):
        tree = Tree.from_nested(spec, n_sites)
    else:
        raise TypeError(f"tree must be None, a name, nested pairs of sites, a parent array or a Tree; "
                        f"got {type(spec).__name__}")
    if tree.n_sites != n_sites:
        raise ValueError(f"the tree has {tree.n_sites} sites but the model has {n_sites}")
    return tree


# --------------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------------
def _check_n(n) -> int:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
        raise TypeError(f"n_sites must be an integer, got {type(n).__name__}")
    if n < 2:
        raise ValueError(f"a TTN needs at least 2 sites, got {n}")
    return int(n)


def _bisect(order: list[int]):
    """Nested pairs of a balanced bisection of ``order`` (left half ⌊k/2⌋ sites)."""
    if len(order) == 1:
        return order[0]
    mid = len(order) // 2
    return (_bisect(order[:mid]), _bisect(order[mid:]))


def _collect(node, leaves: list[int]) -> None:
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, (tuple, list)):
            if len(item) != 2:
                raise ValueError(f"every internal node needs exactly 2 children (binary tree); got {len(item)} "
                                 f"in {_short(item)}")
            stack.append(item[1])
            stack.append(item[0])
        elif isinstance(item, (int, np.integer)) and not isinstance(item, bool):
            leaves.append(int(item))
        else:
            raise TypeError(f"tree entries must be site indices (int) or pairs; got {item!r}")


def _check_sites_once(leaves: list[int], n: int) -> None:
    if n < 2:
        raise ValueError(f"a TTN needs at least 2 sites, got {n}")
    bad = [s for s in leaves if not 0 <= s < n]
    if bad:
        raise ValueError(f"tree has out-of-range site {bad[0]} (valid: 0..{n - 1})")
    counts = np.bincount(np.asarray(leaves, dtype=np.int64), minlength=n)
    if (counts > 1).any():
        raise ValueError(f"site {int(np.flatnonzero(counts > 1)[0])} appears more than once in the tree")
    if (counts == 0).any():
        raise ValueError(f"site {int(np.flatnonzero(counts == 0)[0])} is missing from the tree")


def _short(item) -> str:
    text = repr(item)
    return text if len(text) < 60 else text[:57] + "..."
