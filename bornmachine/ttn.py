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

from . import kernels, tree_kernels
from .estimate import BornMachineMethods
from .mps import MPS, _parse_sites
from .tree import Tree, make_tree
from .validation import as_binary, as_sites, check_alpha, check_positive_int, log_base


class TTN(BornMachineMethods):
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
        nested pairs of sites such as ``((0, 1), (2, (3, 4)))``; or a parent array of length 2n − 1
        (``-1`` for the root, entries 0…n−1 are the sites). Every site must appear exactly once.
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

    def __init__(self, n_sites, bond_dim: int, *, tree=None, dtype=torch.float64, device=None,
                 generator: torch.Generator | None = None):
        n, shape = _parse_sites(n_sites)
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

    @property
    def n_params(self) -> int:
        return int(sum(t.numel() for t in self.tensors))

    @property
    def dtype(self) -> torch.dtype:
        return self.tensors[0].dtype

    @property
    def device(self) -> torch.device:
        return self.tensors[0].device

    def subtree_sites(self, edge: int) -> list[int]:
        """Sorted sites below edge ``edge`` (the side of the cut not containing the root)."""
        return self.tree.sites_below(self._edge_child(edge))

    def __repr__(self) -> str:
        return (f"TTN(n_sites={self.n_sites}, max_bond={max(self.bond_dims)}, height="
                f"{int(self.tree.height[self.tree.root])}, n_params={self.n_params}, dtype={self.dtype}, "
                f"device={self.device})")

    def to(self, dtype=None, device=None) -> "TTN":
        """A copy with tensors converted to ``dtype`` / moved to ``device``."""
        tensors = [t.to(dtype=dtype or self.dtype, device=device or self.device) for t in self.tensors]
        return TTN.from_tensors(tensors, tree=self.tree, shape=self.shape)

    def copy(self) -> "TTN":
        out = TTN.from_tensors([t.clone() for t in self.tensors], tree=self.tree, shape=self.shape)
        out.center = self.center
        return out

    # ---------------------------------------------------------------------------------------------
    # gauge
    # ---------------------------------------------------------------------------------------------
    def canonicalize(self, center: int | None = None) -> "TTN":
        """Bring the tree in place to canonical form around internal node ``center`` (default: root).

        Every other tensor becomes an isometry towards the centre; Ψ is normalised (p unchanged).
        """
        center = self._check_center(center)
        self.tensors, _ = tree_kernels.canonicalize(self.tree, self.tensors, center)
        self.center = center
        return self

    def _canonical(self, center: int | None = None) -> list[torch.Tensor]:
        """A canonical, unit-norm copy of the tensors (the model is left as it is)."""
        center = self.tree.root if center is None else center
        if self.center == center and _unit_norm(self.tensors[center - self.n_sites]):
            return self.tensors
        return tree_kernels.canonicalize(self.tree, self.tensors, center)[0]

    def log_norm(self) -> float:
        """ln Z with Z = Σ_v Ψ(v)²; O(D³) when canonical, else O(n D⁴)."""
        if self.center is not None:
            return 2.0 * math.log(float(torch.linalg.vector_norm(self.tensors[self.center - self.n_sites])))
        return 2.0 * tree_kernels.canonicalize(self.tree, self.tensors)[1]

    # differentiable kernels on (tensors, x), used by GradientTrainer --------------------------------
    def amplitude_kernel(self, tensors, x):
        """(sign, ln|Ψ(x)|) of ``tensors`` on this tree for x (N, n_sites); differentiable."""
        return tree_kernels.log_amplitude(self.tree, tensors, x)

    def sample_kernel(self, tensors, n, generator):
        """Exact samples (x (n, n_sites), ln p) of canonical ``tensors`` on this tree."""
        return tree_kernels.sample(self.tree, tensors, n, generator)

    def log_norm_kernel(self, tensors):
        """ln Z of ``tensors`` on this tree; differentiable."""
        return tree_kernels.log_norm(self.tree, tensors)

    # ---------------------------------------------------------------------------------------------
    # probabilities
    # ---------------------------------------------------------------------------------------------
    def _data(self, x, name="x") -> torch.Tensor:
        return as_binary(x, self.n_sites, name=name, device=self.device, shape=self.shape)

    def log_amplitude(self, x) -> tuple[torch.Tensor, torch.Tensor]:
        """(sign, ln|Ψ(x)|) of the stored tensors for x (N, n_sites) or (N, H, W); like slogdet."""
        return tree_kernels.log_amplitude(self.tree, self.tensors, self._data(x))

    def log_prob(self, x) -> torch.Tensor:
        """Exact normalised ln p(x) (N,), nats. O(N n D³)."""
        _, log_abs = self.log_amplitude(x)
        return 2.0 * log_abs - self.log_norm()

    def nll(self, x) -> float:
        """Mean negative log-likelihood, nats per sample."""
        return float(-self.log_prob(x).mean())

    def sample(self, n: int, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """n exact independent samples, drawn top-down through the tree: (uint8 (n, n_sites), ln p (n,))."""
        n = check_positive_int(n, "n")
        x, logp = tree_kernels.sample(self.tree, self._canonical(), n, generator)
        return x.to(torch.uint8), logp.to(self.dtype)

    def marginal_log_prob(self, x_sub, sites) -> torch.Tensor:
        """ln p(x_S) = ln Σ_{v ∖ S} p(v) (N,) for pixel indices ``sites`` and values x_sub (N, |S|)."""
        sites = as_sites(sites, self.n_sites)
        x_sub = as_binary(x_sub, len(sites), name="x_sub", device=self.device)
        return tree_kernels.marginal_log_prob(self.tree, self._canonical(), sites, x_sub)

    def conditional_sample(self, x, known_mask, generator: torch.Generator | None = None):
        """Inpainting: keep pixels where ``known_mask`` is True, sample the rest exactly.

        x (N, n_sites) or (N, H, W); known_mask bool (n_sites,) or (N, n_sites). Returns
        (uint8 (N, n_sites), ln p(x_unknown | x_known) (N,)).
        """
        known = torch.as_tensor(np.asarray(known_mask) if not isinstance(known_mask, torch.Tensor) else known_mask)
        if known.dtype != torch.bool:
            raise TypeError(f"known_mask must be boolean, got {known.dtype}")
        x = self._data(x)
        known = known.reshape(-1, self.n_sites) if known.numel() % self.n_sites == 0 else known
        if known.dim() != 2 or known.shape[1] != self.n_sites or known.shape[0] not in (1, x.shape[0]):
            raise ValueError(f"known_mask has shape {tuple(known_mask.shape)}; expected ({self.n_sites},) "
                             f"or ({x.shape[0]}, {self.n_sites})")
        known = known.expand(x.shape[0], -1).to(self.device)
        out, logp = tree_kernels.conditional_sample(self.tree, self._canonical(), x, known, generator)
        return out.to(torch.uint8), logp.to(self.dtype)

    # ---------------------------------------------------------------------------------------------
    # entanglement
    # ---------------------------------------------------------------------------------------------
    def schmidt_values(self, edge: int) -> torch.Tensor:
        """Schmidt values λ (descending, Σλ² = 1) across ``edges[edge]`` (subtree below vs the rest)."""
        return tree_kernels.schmidt_values(self.tree, self.tensors, self._edge_child(edge))

    def entanglement_profile(self, alpha: float = 1, base="e") -> torch.Tensor:
        """Entropy of every edge (2·n_sites − 2,) float64, aligned with :attr:`edges`, one pass O(n D⁴).

        Entries 0…n−1 are single sites against the rest; the two root edges hold the same value.
        """
        alpha = check_alpha(alpha)
        spectra = tree_kernels.edge_spectra(self.tree, self._canonical())
        scale = log_base(base)
        return torch.tensor([kernels.renyi_from_schmidt(s, alpha) / scale for s in spectra], dtype=torch.float64)

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

    def _edge_child(self, edge) -> int:
        if isinstance(edge, bool) or not isinstance(edge, (int, np.integer)):
            raise TypeError("edge must be an integer index into .edges")
        n_edges = len(self.tree.edges)
        if not 0 <= edge < n_edges:
            raise ValueError(f"edge={edge} out of range 0..{n_edges - 1}")
        return self.tree.edges[int(edge)][0]


def _unit_norm(t: torch.Tensor) -> bool:
    return abs(float(torch.linalg.vector_norm(t)) - 1.0) < 1e-6
