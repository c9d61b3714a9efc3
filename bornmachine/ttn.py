"""Tree tensor network (TTN) Born machine: p(v) = Ψ(v)² / Z with Ψ a real binary tree of tensors.

A chain cuts a 28×28 image along one line, so pixels that touch vertically sit ~28 sites apart and
an MPS carries their correlation through every bond between them. A tree built from the image's 2D
geometry keeps neighbouring blocks close (Cheng, Wang, Xiang, Zhang, PRB 99, 155131 (2019)).

Layout: the leaves of the :class:`~bornmachine.tree.Tree` are the sites (physical dimension 2, no
tensor of their own); internal node v holds a tensor of shape (d_child0, d_child1, d_parent), a leaf
child contributing d = 2 and the root's parent leg having d = 1 (like the MPS boundary bonds). So a
TTN over n sites has n − 1 tensors and 2n − 2 edges: ``edges[k] = (child, parent)`` sorted by child,
the first n being the physical legs of sites 0…n−1. Cutting an edge splits the sites into the
subtree below it and the rest; the two edges under the root give the same split (they form one bond
of the root matrix), so they carry the same entropy.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch

from . import tree_kernels
from .base import BornMachine
from .mps import MPS
from .tree import Tree, make_tree
from .io import register_loader
from .validation import check_positive_int, parse_sites


class TTN(BornMachine):
    """Real binary tree tensor network Born machine over ``n_sites`` binary pixels.

    Parameters
    ----------
    n_sites : int or (H, W)
        Number of sites, or an image shape (sites = H·W pixels, row-major natural order).
    bond_dim : int
        Maximal bond dimension D; the edge above a node covering s sites gets min(D, 2^s, 2^(n−s)).
    tree : None, str, nested pairs, parent array or :class:`~bornmachine.tree.Tree`
        None: recursive bisection of the image into compact blocks for an (H, W) shape, balanced
        bisection of the chain otherwise; ``"bisection"``, ``"balanced"``, ``"caterpillar"`` (MPS-like);
        nested pairs of sites such as ``((0, 1), (2, (3, 4)))``; a parent array of length 2n − 1
        (``-1`` for the root, entries 0…n−1 are the sites), or a Tree such as ``Tree.from_data(data)``
        (merges of the data's mutual information). Every site must appear exactly once.
    dtype, device : torch dtype and device (float64, CPU by default).
    generator : torch.Generator for the random initial tensors.

    Attributes
    ----------
    tensors : list of n − 1 tensors, ``tensors[v − n]`` for internal node v, shape (d_c0, d_c1, d_parent).
    tree : the :class:`~bornmachine.tree.Tree`. shape : image shape or None.
    ordering : identity permutation (sites are pixels in natural order; kept for the trainers).
    center : orthogonality centre (an internal node id) or None when not known to be canonical.
    """

    kind = "TTN"
    sweep_engine = "tree"

    def __init__(self, n_sites, bond_dim: int, *, tree=None, dtype=torch.float64, device=None,
                 generator: torch.Generator | None = None):
        n, shape = parse_sites(n_sites)
        bond_dim = check_positive_int(bond_dim, "bond_dim")
        tree = make_tree(tree, n, shape)
        dims = [2] * n + [min(bond_dim, 2 ** min(len(tree.sites_below(v)), n - len(tree.sites_below(v)), 62))
                          for v in range(n, 2 * n - 1)]
        dims[tree.root] = 1
        gen_device = generator.device if generator is not None else "cpu"
        tensors = []
        for v in range(n, 2 * n - 1):
            d0, d1 = dims[tree.children[v, 0]], dims[tree.children[v, 1]]
            a = torch.randn(d0, d1, dims[v], generator=generator, dtype=torch.float64, device=gen_device)
            tensors.append((a / math.sqrt(d0 * d1)).to(dtype=dtype, device=device))
        self._init(tensors, tree, shape, center=None)

    # ---------------------------------------------------------------------------------------------
    # construction, basic properties
    # ---------------------------------------------------------------------------------------------
    @classmethod
    def from_tensors(cls, tensors: Sequence[torch.Tensor], *, tree=None, shape=None) -> "TTN":
        """Build a TTN from n − 1 tensors (``tensors[v − n]`` for internal node v) and a tree.

        ``tree`` as in the constructor (default: bisection for a 2D ``shape``, else balanced).
        """
        tensors = [torch.as_tensor(t) for t in tensors]
        n = len(tensors) + 1
        if shape is not None:
            shape = tuple(int(s) for s in shape)
            if int(np.prod(shape)) != n:
                raise ValueError(f"shape {shape} has {int(np.prod(shape))} pixels but {len(tensors)} tensors "
                                 f"make a TTN over {n} sites")
        tree = make_tree(tree, n, shape)
        tree_kernels.check_tensors(tree, tensors)
        obj = cls.__new__(cls)
        obj._init(tensors, tree, shape, center=None)
        return obj

    @classmethod
    def from_mps(cls, mps: MPS) -> "TTN":
        """The same state Ψ as a caterpillar TTN ``((((o0, o1), o2), …)`` over the MPS's chain order.

        The internal node covering chain positions 0…k (k ≥ 1) is node n + k − 1 and its parent edge
        is MPS bond k; MPS bond 0 is the edge of the first site's leaf.
        """
        if mps.n_sites < 2:
            raise ValueError("a TTN needs at least 2 sites")
        tree = Tree.caterpillar(mps.ordering.tolist())
        a = mps.tensors
        first = torch.einsum("sa,atb->stb", a[0][0], a[1])
        return cls.from_tensors([first] + [t.clone() for t in a[2:]], tree=tree, shape=mps.shape)

    def _init(self, tensors, tree: Tree, shape, center):
        self.tensors = list(tensors)
        self.tree = tree
        self.shape = shape
        self.ordering = torch.arange(tree.n_sites)
        self.center = center

    @property
    def n_sites(self) -> int:
        return self.tree.n_sites

    @property
    def edges(self) -> list[tuple[int, int]]:
        """Every edge as (child, parent), sorted by child; ``edges[s] = (s, parent)`` for site s."""
        return list(self.tree.edges)

    @property
    def bond_dims(self) -> list[int]:
        """Dimension of every edge, aligned with :attr:`edges` (2 for the physical legs)."""
        dims = tree_kernels.node_dims(self.tree, self.tensors)
        return [dims[c] for c, _ in self.tree.edges]

    def subtree_sites(self, edge: int) -> list[int]:
        """Sorted sites below edge ``edge`` (the side of the cut not containing the root)."""
        return self.tree.sites_below(self._edge_child(edge))

    def __repr__(self) -> str:
        return (f"TTN(n_sites={self.n_sites}, max_bond={max(self.bond_dims)}, height="
                f"{int(self.tree.height[self.tree.root])}, n_params={self.n_params}, dtype={self.dtype}, "
                f"device={self.device})")

    def _with_tensors(self, tensors) -> "TTN":
        return TTN.from_tensors(tensors, tree=self.tree, shape=self.shape)

    # ---------------------------------------------------------------------------------------------
    # gauge (the default centre is the root)
    # ---------------------------------------------------------------------------------------------
    def _center_tensor(self, center: int) -> torch.Tensor:
        return self.tensors[center - self.n_sites]

    def _canonicalized(self, center: int):
        return tree_kernels.canonicalize(self.tree, self.tensors, center)

    # kernels on (tensors, x): amplitudes and ln Z differentiable (GradientTrainer) -------------------
    def amplitude_kernel(self, tensors, x):
        """(sign, ln|Ψ(x)|) of ``tensors`` on this tree for x (N, n_sites); differentiable."""
        return tree_kernels.log_amplitude(self.tree, tensors, x)

    def sample_kernel(self, tensors, n, generator):
        """Exact samples (x (n, n_sites), ln p) of canonical ``tensors`` on this tree."""
        return tree_kernels.sample(self.tree, tensors, n, generator)

    def log_norm_kernel(self, tensors):
        """ln Z of ``tensors`` on this tree; differentiable."""
        return tree_kernels.log_norm(self.tree, tensors)

    def _conditional_kernel(self, tensors, x, known, generator):
        return tree_kernels.conditional_sample(self.tree, tensors, x, known, generator)

    # ---------------------------------------------------------------------------------------------
    # probabilities
    # ---------------------------------------------------------------------------------------------
    def _marginal(self, sites: list[int], x_sub: torch.Tensor) -> torch.Tensor:
        return tree_kernels.marginal_log_prob(self.tree, self._canonical(), sites, x_sub)

    # ---------------------------------------------------------------------------------------------
    # entanglement
    # ---------------------------------------------------------------------------------------------
    def schmidt_values(self, edge: int) -> torch.Tensor:
        """Schmidt values λ (descending, Σλ² = 1) across ``edges[edge]`` (subtree below vs the rest)."""
        return tree_kernels.schmidt_values(self.tree, self.tensors, self._edge_child(edge))

    def _spectra(self) -> list[torch.Tensor]:
        """Schmidt values of every edge (aligned with :attr:`edges`; the two root edges alike), O(n D⁴)."""
        return tree_kernels.edge_spectra(self.tree, self._canonical())

    def _side_mask(self, sites) -> torch.Tensor:
        in_x = torch.zeros(self.n_sites, dtype=torch.bool)
        in_x[sites] = True  # leaves are pixels
        return in_x

    def _renyi2_exact(self, in_x: torch.Tensor) -> float:
        return tree_kernels.renyi2_swap(self.tree, self._canonical(), in_x.tolist())

    # ---------------------------------------------------------------------------------------------
    # I/O
    # ---------------------------------------------------------------------------------------------
    def _structure_arrays(self) -> dict:
        return {"tree_children": self.tree.internal_children()}

    @staticmethod
    def _n_tensors(n_sites: int) -> int:
        return n_sites - 1

    @classmethod
    def _from_structure(cls, tensors, arrays, shape) -> "TTN":
        return cls.from_tensors(tensors, tree=Tree(arrays["tree_children"]), shape=shape)

    # ---------------------------------------------------------------------------------------------
    # checks
    # ---------------------------------------------------------------------------------------------
    def _check_center(self, center) -> int:
        if center is None:
            return self.tree.root
        if isinstance(center, bool) or not isinstance(center, (int, np.integer)):
            raise TypeError("center must be an integer internal node id")
        if not self.n_sites <= center < 2 * self.n_sites - 1:
            raise ValueError(f"center={center} is not an internal node (internal nodes are "
                             f"{self.n_sites}..{2 * self.n_sites - 2}; 0..{self.n_sites - 1} are sites)")
        return int(center)

    def edge_index(self, edge) -> int:
        """The index into :attr:`edges` of ``edge``: an index, or a (child, parent) pair as ``edges`` yields."""
        if isinstance(edge, (tuple, list)):
            if len(edge) != 2 or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in edge):
                raise TypeError(f"edge must be an index into .edges or a (child, parent) pair of ints, got {edge!r}")
            child, parent = int(edge[0]), int(edge[1])
            if not 0 <= child < len(self.tree.parent) or child == self.tree.root or \
                    int(self.tree.parent[child]) != parent:
                raise ValueError(f"edge {(child, parent)} is not a (child, parent) pair of this tree's .edges")
            return self.tree.edge_index(child)
        if isinstance(edge, bool) or not isinstance(edge, (int, np.integer)):
            raise TypeError(f"edge must be an index into .edges or a (child, parent) pair, got {type(edge).__name__}")
        n_edges = len(self.tree.edges)
        if not 0 <= edge < n_edges:
            raise ValueError(f"edge={edge} out of range 0..{n_edges - 1}")
        return int(edge)

    def _edge_child(self, edge) -> int:
        return self.tree.edges[self.edge_index(edge)][0]


register_loader(TTN.kind, TTN._from_saved)
