"""Matrix product state (MPS) Born machine: p(v) = Ψ(v)² / Z with Ψ a real chain of tensors."""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch

from . import kernels, orderings
from .estimate import BornMachineMethods
from .validation import as_binary, as_sites, check_alpha, check_positive_int, log_base


class MPS(BornMachineMethods):
    """Real MPS Born machine over ``n_sites`` binary pixels.

    Parameters
    ----------
    n_sites : int or (H, W)
        Number of sites, or an image shape (sites = H·W pixels, row-major).
    bond_dim : int
        Maximal bond dimension D; bond k gets min(D, 2^(k+1), 2^(n-k-1)).
    ordering : None, str or permutation
        Which pixel sits at each chain position (see :mod:`bornmachine.orderings`):
        ``"row_major"`` (default), ``"snake"``, ``"column_major"``, ``"hilbert"`` or a permutation.
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
    # differentiable kernels on (tensors, x in internal order), used by GradientTrainer
    amplitude_kernel = staticmethod(kernels.log_amplitude)
    sample_kernel = staticmethod(kernels.sample)  # (tensors, n, generator) → (x, ln p), x in chain order
    log_norm_kernel = staticmethod(kernels.log_norm)

    def __init__(self, n_sites, bond_dim: int, *, ordering=None, dtype=torch.float64, device=None,
                 generator: torch.Generator | None = None):
        n, shape = _parse_sites(n_sites)
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

    @property
    def n_params(self) -> int:
        return int(sum(t.numel() for t in self.tensors))

    @property
    def dtype(self) -> torch.dtype:
        return self.tensors[0].dtype

    @property
    def device(self) -> torch.device:
        return self.tensors[0].device

    def __repr__(self) -> str:
        return (f"MPS(n_sites={self.n_sites}, max_bond={max(self.bond_dims, default=1)}, "
                f"n_params={self.n_params}, dtype={self.dtype}, device={self.device})")

    def to(self, dtype=None, device=None) -> "MPS":
        """A copy with tensors converted to ``dtype`` / moved to ``device``."""
        tensors = [t.to(dtype=dtype or self.dtype, device=device or self.device) for t in self.tensors]
        return MPS.from_tensors(tensors, ordering=self.ordering, shape=self.shape)

    def copy(self) -> "MPS":
        out = MPS.from_tensors([t.clone() for t in self.tensors], ordering=self.ordering, shape=self.shape)
        out.center = self.center
        return out

    # ---------------------------------------------------------------------------------------------
    # gauge
    # ---------------------------------------------------------------------------------------------
    def canonicalize(self, center: int = 0) -> "MPS":
        """Bring the chain in place to mixed-canonical form around ``center``; normalises Ψ (p unchanged)."""
        center = self._check_position(center, "center")
        self.tensors, _ = kernels.canonicalize(self.tensors, center)
        self.center = center
        return self

    def _canonical(self, center: int = 0) -> list[torch.Tensor]:
        """A canonical, unit-norm copy of the tensors (the model is left as it is)."""
        if self.center == center and _unit_norm(self.tensors[center]):
            return self.tensors
        return kernels.canonicalize(self.tensors, center)[0]

    def log_norm(self) -> float:
        """ln Z with Z = Σ_v Ψ(v)²: 2 ln‖centre‖ in canonical form, else one QR sweep, O(n D³)."""
        if self.center is not None:
            norm = float(torch.linalg.vector_norm(self.tensors[self.center]))
            return 2.0 * math.log(norm) if norm > 0 else -math.inf
        return 2.0 * kernels.canonicalize(self.tensors, self.n_sites - 1)[1]

    # ---------------------------------------------------------------------------------------------
    # probabilities
    # ---------------------------------------------------------------------------------------------
    def _chain_data(self, x, name="x") -> torch.Tensor:
        x = as_binary(x, self.n_sites, name=name, device=self.device, shape=self.shape)
        return x[:, self.ordering]

    def log_amplitude(self, x) -> tuple[torch.Tensor, torch.Tensor]:
        """(sign, ln|Ψ(x)|) of the stored tensors for x (N, n_sites) in natural order; like slogdet."""
        return kernels.log_amplitude(self.tensors, self._chain_data(x))

    def log_prob(self, x) -> torch.Tensor:
        """Exact normalised ln p(x) (N,), nats. O(N n D²)."""
        _, log_abs = self.log_amplitude(x)
        return 2.0 * log_abs - self.log_norm()

    def nll(self, x) -> float:
        """Mean negative log-likelihood, nats per sample."""
        return float(-self.log_prob(x).mean())

    def sample(self, n: int, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """n exact independent samples: (uint8 (n, n_sites) in natural order, ln p (n,))."""
        n = check_positive_int(n, "n")
        chain_x, logp = kernels.sample(self._canonical(0), n, generator)
        return self._to_natural(chain_x).to(torch.uint8), logp.to(self.dtype)

    def _to_natural(self, chain_x: torch.Tensor) -> torch.Tensor:
        out = torch.empty_like(chain_x)
        out[:, self.ordering.to(chain_x.device)] = chain_x
        return out

    def marginal_log_prob(self, x_sub, sites) -> torch.Tensor:
        """ln p(x_S) = ln Σ_{v ∖ S} p(v) (N,) for pixel indices ``sites`` and values x_sub (N, |S|)."""
        sites = as_sites(sites, self.n_sites)
        x_sub = as_binary(x_sub, len(sites), name="x_sub", device=self.device)
        pos = self._position[sites]
        order = torch.argsort(pos)
        pos_sorted = pos[order].tolist()
        tensors = self._canonical(pos_sorted[0])
        return kernels.marginal_log_prob(tensors, pos_sorted, x_sub[:, order.to(x_sub.device)])

    def conditional_sample(self, x, known_mask, generator: torch.Generator | None = None):
        """Inpainting: keep pixels where ``known_mask`` is True, sample the rest exactly.

        x (N, n_sites) or (N, H, W); known_mask bool (n_sites,) or (N, n_sites). Returns
        (uint8 (N, n_sites) in natural order, ln p(x_unknown | x_known) (N,)).
        """
        known = torch.as_tensor(np.asarray(known_mask) if not isinstance(known_mask, torch.Tensor) else known_mask)
        if known.dtype != torch.bool:
            raise TypeError(f"known_mask must be boolean, got {known.dtype}")
        x_chain = self._chain_data(x)
        known = known.reshape(-1, self.n_sites) if known.numel() % self.n_sites == 0 else known
        if known.dim() != 2 or known.shape[1] != self.n_sites or known.shape[0] not in (1, x_chain.shape[0]):
            raise ValueError(f"known_mask has shape {tuple(known.shape)}; expected ({self.n_sites},) "
                             f"or ({x_chain.shape[0]}, {self.n_sites})")
        known = known.expand(x_chain.shape[0], -1).to(self.device)[:, self.ordering]
        out, logp = kernels.conditional_sample(self._canonical(0), x_chain, known, generator)
        return self._to_natural(out).to(torch.uint8), logp.to(self.dtype)

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

    def entanglement_profile(self, alpha: float = 1, base="e") -> torch.Tensor:
        """Entropy of every bond (n_sites − 1,) float64, O(n D³): two sweeps (one if canonical at 0)."""
        alpha = check_alpha(alpha)
        canonical = self.center == 0 and _unit_norm(self.tensors[0])
        spectra = kernels.bond_spectra(self.tensors, right_canonical=canonical)
        scale = log_base(base)
        return torch.tensor([kernels.renyi_from_schmidt(s, alpha) / scale for s in spectra], dtype=torch.float64)

    def _side_mask(self, sites) -> torch.Tensor:
        in_x = torch.zeros(self.n_sites, dtype=torch.bool)
        in_x[self._position[sites]] = True  # chain positions
        return in_x

    def _renyi2_exact(self, in_x: torch.Tensor) -> float:
        return kernels.renyi2_swap(self.tensors, in_x.tolist())

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


def _parse_sites(n_sites):
    if isinstance(n_sites, (tuple, list)):
        shape = tuple(check_positive_int(int(s) if isinstance(s, np.integer) else s, "shape entry") for s in n_sites)
        return int(np.prod(shape)), shape
    return check_positive_int(n_sites, "n_sites"), None


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


def _unit_norm(t: torch.Tensor) -> bool:
    return abs(float(torch.linalg.vector_norm(t)) - 1.0) < 1e-6
