"""Matrix product state (MPS) Born machine: p(v) = Ψ(v)² / Z with Ψ a real chain of tensors."""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch

from . import chain_kernels, orderings
from .base import BornMachine, unit_norm
from .io import register_loader
from .validation import parse_sites, check_positive_int


class MPS(BornMachine):
    """Real MPS Born machine over ``n_sites`` binary pixels.

    Parameters
    ----------
    n_sites : int or (H, W)
        Number of sites, or an image shape (sites = H·W pixels, row-major).
    bond_dim : int
        Maximal bond dimension D; bond k gets min(D, 2^(k+1), 2^(n-k-1)).
    ordering : None, str or permutation
        Which pixel sits at each chain position (see :mod:`bornmachine.orderings`):
        ``"row_major"`` (default), ``"snake"``, ``"column_major"``, ``"hilbert"`` or a permutation
        (e.g. ``orderings.from_data(data)``, learned from the data's mutual information).
        Data, ``sites`` arguments and samples always use natural (row-major pixel) indices;
        bonds are chain positions (bond k joins chain positions k and k+1).
    dtype, device : torch dtype and device (float64, CPU by default).
    generator : torch.Generator for the random initial tensors.

    Attributes
    ----------
    tensors : list of (D_{k-1}, 2, D_k) tensors in chain order, D_0 = D_n = 1.
    center : orthogonality centre (chain position) or None when not known to be canonical.
    """

    kind = "MPS"
    sweep_engine = "chain"
    # kernels on (tensors, x in chain order): amplitudes and ln Z differentiable (GradientTrainer)
    amplitude_kernel = staticmethod(chain_kernels.log_amplitude)
    sample_kernel = staticmethod(chain_kernels.sample)  # (tensors, n, generator) → (x, ln p), x in chain order
    log_norm_kernel = staticmethod(chain_kernels.log_norm)
    _conditional_kernel = staticmethod(chain_kernels.conditional_sample)

    def __init__(self, n_sites, bond_dim: int, *, ordering=None, dtype=torch.float64, device=None,
                 generator: torch.Generator | None = None):
        n, shape = parse_sites(n_sites)
        bond_dim = check_positive_int(bond_dim, "bond_dim")
        dims = [1] + [min(bond_dim, 2 ** min(k + 1, n - k - 1, 62)) for k in range(n - 1)] + [1]
        gen_device = generator.device if generator is not None else "cpu"
        tensors = []
        for k in range(n):
            a = torch.randn(dims[k], 2, dims[k + 1], generator=generator, dtype=torch.float64, device=gen_device)
            tensors.append((a / math.sqrt(2 * dims[k])).to(dtype=dtype, device=device))
        self._init(tensors, ordering, shape, center=None)

    # ---------------------------------------------------------------------------------------------
    # construction, basic properties
    # ---------------------------------------------------------------------------------------------
    @classmethod
    def from_tensors(cls, tensors: Sequence[torch.Tensor], *, ordering=None, shape=None) -> "MPS":
        """Build an MPS from tensors (D_{k-1}, 2, D_k) in chain order (D_0 = D_n = 1)."""
        tensors = [torch.as_tensor(t) for t in tensors]
        _check_chain(tensors)
        obj = cls.__new__(cls)
        if shape is not None:
            shape = tuple(int(s) for s in shape)
            if int(np.prod(shape)) != len(tensors):
                raise ValueError(f"shape {shape} has {int(np.prod(shape))} pixels but there are {len(tensors)} tensors")
        obj._init(tensors, ordering, shape, center=None)
        return obj

    def _init(self, tensors, ordering, shape, center):
        self.tensors = list(tensors)
        self.shape = shape
        self.ordering = orderings.resolve(ordering, len(self.tensors), shape)
        self._position = orderings.inverse(self.ordering)
        self.center = center

    @property
    def n_sites(self) -> int:
        return len(self.tensors)

    @property
    def bond_dims(self) -> list[int]:
        return [int(t.shape[2]) for t in self.tensors[:-1]]

    def __repr__(self) -> str:
        return (f"MPS(n_sites={self.n_sites}, max_bond={max(self.bond_dims, default=1)}, "
                f"n_params={self.n_params}, dtype={self.dtype}, device={self.device})")

    def _with_tensors(self, tensors) -> "MPS":
        return MPS.from_tensors(tensors, ordering=self.ordering, shape=self.shape)

    # ---------------------------------------------------------------------------------------------
    # gauge
    # ---------------------------------------------------------------------------------------------
    def _check_center(self, center) -> int:
        return 0 if center is None else self._check_position(center, "center")

    def _center_tensor(self, center: int) -> torch.Tensor:
        return self.tensors[center]

    def _canonicalized(self, center: int):
        return chain_kernels.canonicalize(self.tensors, center)

    # ---------------------------------------------------------------------------------------------
    # probabilities
    # ---------------------------------------------------------------------------------------------
    def _marginal(self, sites: list[int], x_sub: torch.Tensor) -> torch.Tensor:
        pos = self._position[sites]
        order = torch.argsort(pos)
        pos_sorted = pos[order].tolist()
        tensors = self._canonical(pos_sorted[0])
        return chain_kernels.marginal_log_prob(tensors, pos_sorted, x_sub[:, order.to(x_sub.device)])

    # ---------------------------------------------------------------------------------------------
    # entanglement
    # ---------------------------------------------------------------------------------------------
    def schmidt_values(self, bond: int) -> torch.Tensor:
        """Schmidt values λ (descending, Σλ² = 1) across bond k (between chain positions k, k+1)."""
        bond = self._check_bond(bond)
        centre = self._canonical(bond)[bond]
        dl, d, dr = centre.shape
        s = torch.linalg.svdvals(centre.reshape(dl * d, dr))
        return s / torch.linalg.vector_norm(s)

    def _spectra(self) -> list[torch.Tensor]:
        """Schmidt values of every bond, O(n D³): two sweeps (one if canonical at 0)."""
        canonical = self.center == 0 and unit_norm(self.tensors[0])
        return chain_kernels.bond_spectra(self.tensors, right_canonical=canonical)

    def _side_mask(self, sites) -> torch.Tensor:
        in_x = torch.zeros(self.n_sites, dtype=torch.bool)
        in_x[self._position[sites]] = True  # chain positions
        return in_x

    def _renyi2_exact(self, in_x: torch.Tensor) -> float:
        return chain_kernels.renyi2_swap(self.tensors, in_x.tolist())

    # ---------------------------------------------------------------------------------------------
    # I/O and interoperability
    # ---------------------------------------------------------------------------------------------
    def _structure_arrays(self) -> dict:
        return {"ordering": self.ordering.numpy()}

    @staticmethod
    def _n_tensors(n_sites: int) -> int:
        return n_sites

    @classmethod
    def _from_structure(cls, tensors, arrays, shape) -> "MPS":
        return cls.from_tensors(tensors, ordering=arrays["ordering"], shape=shape)

    def to_quimb(self):
        """A ``quimb.tensor.MatrixProductState`` of the same Ψ (chain order, site indices k0, k1, ...)."""
        import quimb.tensor as qtn

        arrays = [t.detach().cpu().numpy() for t in self.tensors]
        arrays[0] = arrays[0][0]  # (2, D) as 'pr'
        arrays[-1] = arrays[-1][..., 0]  # (D, 2) as 'lp'
        if self.n_sites == 1:
            return qtn.MatrixProductState([arrays[0][:, 0] if arrays[0].ndim == 2 else arrays[0]], shape="p")
        return qtn.MatrixProductState(arrays, shape="lpr")

    @classmethod
    def from_quimb(cls, qmps, *, ordering=None, shape=None, dtype=torch.float64) -> "MPS":
        """Build from a real open-boundary ``quimb`` MPS (physical dimension 2)."""
        n = qmps.L
        tensors = []
        for k in range(n):
            t = qmps[k]
            phys = qmps.site_ind(k)
            left = [ix for ix in t.inds if k > 0 and ix in qmps[k - 1].inds]
            right = [ix for ix in t.inds if k < n - 1 and ix in qmps[k + 1].inds]
            t = t.transpose(*left, phys, *right)
            data = np.asarray(t.data)
            if np.iscomplexobj(data):
                if np.abs(data.imag).max() > 0:
                    raise TypeError("complex MPS are not supported: amplitudes must be real")
                data = data.real
            data = data.reshape((1,) * (k == 0) + data.shape + (1,) * (k == n - 1))
            tensors.append(torch.as_tensor(data, dtype=dtype))
        return cls.from_tensors(tensors, ordering=ordering, shape=shape)

    # ---------------------------------------------------------------------------------------------
    # checks
    # ---------------------------------------------------------------------------------------------
    def _check_position(self, k, name) -> int:
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
            raise TypeError(f"{name} must be an integer chain position")
        if not 0 <= k < self.n_sites:
            raise ValueError(f"{name}={k} out of range 0..{self.n_sites - 1}")
        return int(k)

    def _check_bond(self, bond) -> int:
        if isinstance(bond, bool) or not isinstance(bond, (int, np.integer)):
            raise TypeError("bond must be an integer")
        if not 0 <= bond < self.n_sites - 1:
            raise ValueError(f"bond={bond} out of range 0..{self.n_sites - 2}")
        return int(bond)


def _check_chain(tensors):
    if not tensors:
        raise ValueError("an MPS needs at least one tensor")
    for k, t in enumerate(tensors):
        if t.dim() != 3 or t.shape[1] != 2:
            raise ValueError(f"tensor {k} has shape {tuple(t.shape)}; expected (D_left, 2, D_right)")
        if not t.is_floating_point():
            raise TypeError(f"tensor {k} has dtype {t.dtype}; expected a real floating dtype")
        if not torch.isfinite(t).all():
            raise ValueError(f"tensor {k} holds NaN or inf")
    if tensors[0].shape[0] != 1 or tensors[-1].shape[2] != 1:
        raise ValueError("boundary bonds must have dimension 1 (D_0 = D_n = 1)")
    for k in range(len(tensors) - 1):
        if tensors[k].shape[2] != tensors[k + 1].shape[0]:
            raise ValueError(f"bond {k}: tensor {k} right dim {tensors[k].shape[2]} != tensor {k + 1} "
                             f"left dim {tensors[k + 1].shape[0]}")
        if tensors[k].dtype != tensors[k + 1].dtype or tensors[k].device != tensors[k + 1].device:
            raise ValueError("all tensors must share one dtype and device")


register_loader(MPS.kind, MPS._from_saved)
