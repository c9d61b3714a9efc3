"""The Born machine interface: p(v) = Ψ(v)² / Z, written once for every geometry (chain, tree).

:class:`BornMachine` holds what MPS and TTN share — probabilities, sampling, inpainting, entropies,
Rényi-2 of any pixel set, the model's own mutual information, copies and files — on top of a few
hooks that each geometry implements (listed in the class docstring). Logs are natural (nats).
"""
from __future__ import annotations

import math
from abc import ABC, abstractmethod

import numpy as np
import torch

from .estimate import Estimate
from .io import write_npz
from .linalg import renyi_from_schmidt
from .validation import as_binary, as_sites, check_alpha, check_positive_int, log_base


def unit_norm(t: torch.Tensor) -> bool:
    """Whether ``t`` has Frobenius norm 1 (to 1e-6): the centre of a normalised canonical form."""
    return abs(float(torch.linalg.vector_norm(t)) - 1.0) < 1e-6


class BornMachine(ABC):
    """A real tensor-network Born machine over ``n_sites`` binary sites.

    State: ``tensors`` (list), ``shape`` (image shape or None), ``ordering`` (int64 (n_sites,): the pixel
    at each internal site position; the identity for trees), ``center`` (orthogonality centre or None).

    Class attributes: ``kind`` (file tag) and ``sweep_engine`` (the name of the two-site sweep engine
    that trains this geometry, see :mod:`bornmachine.training`).

    Hooks each geometry implements (x in the internal site order):
    ``n_sites``; ``amplitude_kernel(tensors, x)`` → (sign, ln|Ψ|) and ``log_norm_kernel(tensors)`` → ln Z,
    both differentiable; ``sample_kernel(tensors, n, generator)`` → (x, ln p) of canonical tensors;
    ``_conditional_kernel(tensors, x, known, generator)``; ``_marginal(sites, x_sub)``;
    ``_check_center(center)`` (None → the default centre) and ``_center_tensor(center)``;
    ``_canonicalized(center)`` → (canonical unit-norm copy of the tensors, ln‖Ψ‖); ``_spectra()`` (Schmidt
    values of every bond/edge); ``_side_mask(sites)``; ``_renyi2_exact(in_x)``; ``_with_tensors(tensors)``
    (a model of the same structure); ``_structure_arrays()``, ``_from_structure(tensors, arrays, shape)``
    and ``_n_tensors(n_sites)`` for files.
    """

    kind = "BornMachine"
    sweep_engine: str

    # ---------------------------------------------------------------------------------------------
    # hooks
    # ---------------------------------------------------------------------------------------------
    @property
    @abstractmethod
    def n_sites(self) -> int: ...

    @abstractmethod
    def amplitude_kernel(self, tensors, x): ...

    @abstractmethod
    def log_norm_kernel(self, tensors): ...

    @abstractmethod
    def sample_kernel(self, tensors, n, generator): ...

    @abstractmethod
    def _conditional_kernel(self, tensors, x, known, generator): ...

    @abstractmethod
    def _marginal(self, sites: list[int], x_sub: torch.Tensor) -> torch.Tensor: ...

    @abstractmethod
    def _check_center(self, center) -> int: ...

    @abstractmethod
    def _center_tensor(self, center: int) -> torch.Tensor: ...

    @abstractmethod
    def _canonicalized(self, center: int) -> tuple[list, float]: ...

    @abstractmethod
    def _spectra(self) -> list[torch.Tensor]: ...

    @abstractmethod
    def _side_mask(self, sites: list[int]) -> torch.Tensor: ...

    @abstractmethod
    def _renyi2_exact(self, in_x: torch.Tensor) -> float: ...

    @abstractmethod
    def _with_tensors(self, tensors) -> "BornMachine": ...

    @abstractmethod
    def _structure_arrays(self) -> dict: ...

    # ---------------------------------------------------------------------------------------------
    # basic properties, copies
    # ---------------------------------------------------------------------------------------------
    @property
    def n_params(self) -> int:
        return int(sum(t.numel() for t in self.tensors))

    @property
    def dtype(self) -> torch.dtype:
        return self.tensors[0].dtype

    @property
    def device(self) -> torch.device:
        return self.tensors[0].device

    def to(self, dtype=None, device=None) -> "BornMachine":
        """A copy with tensors converted to ``dtype`` / moved to ``device``."""
        return self._with_tensors([t.to(dtype=dtype or self.dtype, device=device or self.device)
                                   for t in self.tensors])

    def copy(self) -> "BornMachine":
        """An independent copy (tensors cloned, same structure and gauge)."""
        out = self._with_tensors([t.clone() for t in self.tensors])
        out.center = self.center
        return out

    # ---------------------------------------------------------------------------------------------
    # gauge
    # ---------------------------------------------------------------------------------------------
    def canonicalize(self, center=None) -> "BornMachine":
        """Bring the network in place to canonical form around ``center`` (default: MPS site 0, TTN root):
        every other tensor an isometry towards it; Ψ is normalised (p unchanged)."""
        center = self._check_center(center)
        self.tensors, _ = self._canonicalized(center)
        self.center = center
        return self

    def _canonical(self, center=None) -> list[torch.Tensor]:
        """A canonical, unit-norm copy of the tensors around ``center`` (the model is left as it is)."""
        center = self._check_center(center)
        if self.center == center and unit_norm(self._center_tensor(center)):
            return self.tensors
        return self._canonicalized(center)[0]

    def log_norm(self) -> float:
        """ln Z with Z = Σ_v Ψ(v)²: 2 ln‖centre‖ in canonical form (−inf for a zero state), else one
        canonicalising sweep."""
        if self.center is not None:
            norm = float(torch.linalg.vector_norm(self._center_tensor(self.center)))
            return 2.0 * math.log(norm) if norm > 0 else -math.inf
        return 2.0 * self._canonicalized(self._check_center(None))[1]

    # ---------------------------------------------------------------------------------------------
    # probabilities, sampling
    # ---------------------------------------------------------------------------------------------
    def _natural_order(self) -> bool:
        return bool(torch.equal(self.ordering, torch.arange(self.n_sites)))

    def _internal(self, x, name: str = "x") -> torch.Tensor:
        """Binary data (N, n_sites) or images (N, H, W) in natural pixel order → int64 (N, n_sites) in the
        internal site order, on the model's device (the kernels index with it)."""
        x = as_binary(x, self.n_sites, name=name, device=self.device, shape=self.shape)
        return (x if self._natural_order() else x[:, self.ordering]).to(torch.int64)

    def _to_natural(self, x: torch.Tensor) -> torch.Tensor:
        """Configurations (N, n_sites) in internal order → natural pixel order."""
        if self._natural_order():
            return x
        out = torch.empty_like(x)
        out[:, self.ordering.to(x.device)] = x
        return out

    def log_amplitude(self, x) -> tuple[torch.Tensor, torch.Tensor]:
        """(sign, ln|Ψ(x)|) (N,), (N,) of the stored tensors for x (N, n_sites) or (N, H, W); like slogdet."""
        return self.amplitude_kernel(self.tensors, self._internal(x))

    def log_prob(self, x) -> torch.Tensor:
        """Exact normalised ln p(x) (N,), nats."""
        _, log_abs = self.log_amplitude(x)
        return 2.0 * log_abs - self.log_norm()

    def nll(self, x) -> float:
        """Mean negative log-likelihood, nats per sample."""
        return float(-self.log_prob(x).mean())

    def sample(self, n: int, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """n exact independent samples: (uint8 (n, n_sites) in natural order, ln p (n,))."""
        n = check_positive_int(n, "n")
        x, logp = self.sample_kernel(self._canonical(), n, generator)
        return self._to_natural(x).to(torch.uint8), logp.to(self.dtype)

    def marginal_log_prob(self, x_sub, sites) -> torch.Tensor:
        """ln p(x_S) = ln Σ_{v ∖ S} p(v) (N,) for pixel indices ``sites`` and values x_sub (N, |S|)."""
        sites = as_sites(sites, self.n_sites)
        x_sub = as_binary(x_sub, len(sites), name="x_sub", device=self.device).to(torch.int64)
        return self._marginal(sites, x_sub)

    def conditional_sample(self, x, known_mask, generator: torch.Generator | None = None):
        """Inpainting: keep pixels where ``known_mask`` is True, sample the rest exactly.

        x (N, n_sites) or (N, H, W); known_mask bool (n_sites,), (N, n_sites) or the image shape, as a
        tensor, array or nested list. Returns (uint8 (N, n_sites) in natural order,
        ln p(x_unknown | x_known) (N,)).
        """
        known = known_mask if isinstance(known_mask, torch.Tensor) else torch.as_tensor(np.asarray(known_mask))
        if known.dtype != torch.bool:
            raise TypeError(f"known_mask must be boolean, got {known.dtype}")
        x = self._internal(x)
        rows = known.reshape(-1, self.n_sites) if known.numel() % self.n_sites == 0 else known
        if rows.dim() != 2 or rows.shape[1] != self.n_sites or rows.shape[0] not in (1, x.shape[0]):
            raise ValueError(f"known_mask has shape {tuple(known.shape)}; expected ({self.n_sites},) "
                             f"or ({x.shape[0]}, {self.n_sites})")
        rows = rows.expand(x.shape[0], -1).to(self.device)
        if not self._natural_order():
            rows = rows[:, self.ordering]
        out, logp = self._conditional_kernel(self._canonical(), x, rows, generator)
        return self._to_natural(out).to(torch.uint8), logp.to(self.dtype)

    # ---------------------------------------------------------------------------------------------
    # entanglement and information
    # ---------------------------------------------------------------------------------------------
    def entropy(self, cut, alpha: float = 1, base="e") -> float:
        """Rényi-α entanglement entropy across a bond (MPS) or edge (TTN) from :meth:`schmidt_values`
        (α = 1: von Neumann, any α > 0, inf)."""
        alpha = check_alpha(alpha)
        return renyi_from_schmidt(self.schmidt_values(cut), alpha) / log_base(base)

    def entanglement_profile(self, alpha: float = 1, base="e") -> torch.Tensor:
        """Rényi-α entropy of every bond (MPS, (n_sites − 1,)) or edge (TTN, (2·n_sites − 2,), aligned
        with ``edges``), float64, in one pass."""
        alpha = check_alpha(alpha)
        scale = log_base(base)
        return torch.tensor([renyi_from_schmidt(s, alpha) / scale for s in self._spectra()], dtype=torch.float64)

    def renyi2(self, sites_X, method: str = "exact", n_samples: int = 10000,
               generator: torch.Generator | None = None, base="e") -> Estimate:
        """Second Rényi entropy S₂ = −ln Tr ρ_X² of any pixel set X.

        ``method="exact"``: swap contraction of four copies of the network (stderr 0). MPS: O(m D⁵)
        time and O(D⁴) memory, m the number of chain positions between the first and last change of
        side. TTN: subtrees on one side cost nothing, mixed nodes up to O(D⁸); raises ``ValueError``
        (suggesting "mc") when the estimated cost is above ~2·10¹⁰ flops.
        ``method="mc"``: swap estimator (Eq. 6 of Cheng et al. 2018) on 2·n_samples exact samples,
        S₂ = −ln E_{v,v'∼p}[Ψ(x',y)Ψ(x,y') / (Ψ(x,y)Ψ(x',y'))], stderr by the delta method.
        """
        in_x = self._side_mask(as_sites(sites_X, self.n_sites, name="sites_X"))
        scale = log_base(base)
        if method == "exact":
            return Estimate(self._renyi2_exact(in_x) / scale, 0.0)
        if method != "mc":
            raise ValueError(f"method must be 'exact' or 'mc', got {method!r}")
        return self._renyi2_swap_mc(in_x, n_samples, generator, scale)

    def _renyi2_swap_mc(self, in_x: torch.Tensor, n_samples: int, generator, scale: float) -> Estimate:
        """Swap estimator S₂ = −ln E_{v,v'∼p}[Ψ(x',y)Ψ(x,y') / (Ψ(x,y)Ψ(x',y'))] on 2·n_samples exact samples.

        in_x: bool (n_sites,) in the model's internal site order (what its kernels take).
        """
        n_samples = check_positive_int(n_samples, "n_samples")
        tensors = self._canonical()
        a, _ = self.sample_kernel(tensors, n_samples, generator)
        b, _ = self.sample_kernel(tensors, n_samples, generator)
        mask = in_x.to(a.device)[None, :]
        ab = torch.where(mask, b, a)  # (x', y)
        ba = torch.where(mask, a, b)  # (x, y')
        s1, l1 = self.amplitude_kernel(tensors, ab)
        s2, l2 = self.amplitude_kernel(tensors, ba)
        s3, l3 = self.amplitude_kernel(tensors, a)
        s4, l4 = self.amplitude_kernel(tensors, b)
        ratio = (s1 * s2 * s3 * s4).double() * torch.exp((l1 + l2 - l3 - l4).double())
        mean = float(ratio.mean())
        if not mean > 0:
            raise ValueError(f"swap estimator mean is {mean:.3g} ≤ 0: too few samples for this bipartition; "
                             "increase n_samples or use method='exact'")
        stderr = float(ratio.std() / math.sqrt(ratio.numel())) / mean
        return Estimate(-math.log(mean) / scale, stderr / scale)

    def mutual_information(self, sites_X, n_samples: int = 1000, generator: torch.Generator | None = None,
                           base="e") -> Estimate:
        """I(X:Y) of the model's own p via exact samples and exact marginals, ± one standard error."""
        sites = as_sites(sites_X, self.n_sites, name="sites_X")
        if len(sites) == self.n_sites:
            raise ValueError("sites_X covers every site: the other side Y is empty")
        n_samples = check_positive_int(n_samples, "n_samples")
        other = sorted(set(range(self.n_sites)) - set(sites))
        v, logp = self.sample(n_samples, generator)
        terms = (logp.double() - self.marginal_log_prob(v[:, sites], sites).double()
                 - self.marginal_log_prob(v[:, other], other).double())
        scale = log_base(base)
        stderr = float(terms.std() / math.sqrt(n_samples)) if n_samples > 1 else float("inf")
        return Estimate(float(terms.mean()) / scale, stderr / scale)

    # ---------------------------------------------------------------------------------------------
    # files
    # ---------------------------------------------------------------------------------------------
    def save(self, path) -> None:
        """Write the model atomically to ``path`` (npz; see :mod:`bornmachine.io`)."""
        meta = {"n_sites": self.n_sites, "shape": list(self.shape) if self.shape else None,
                "dtype": str(self.dtype).replace("torch.", "")}
        arrays = {f"tensor_{k}": t.detach().cpu().numpy() for k, t in enumerate(self.tensors)}
        arrays.update(self._structure_arrays())
        write_npz(path, self.kind, meta, arrays)

    @classmethod
    def _from_saved(cls, meta, arrays, path):
        """The model in a file read by :func:`bornmachine.io.read_npz`; ``ValueError`` if it is corrupt."""
        try:
            n = int(meta["n_sites"])
            tensors = [torch.from_numpy(arrays[f"tensor_{k}"]) for k in range(cls._n_tensors(n))]
            shape = tuple(meta["shape"]) if meta.get("shape") else None
            return cls._from_structure(tensors, arrays, shape)
        except KeyError as err:
            raise ValueError(f"{path!r} is a corrupt {cls.kind} file (missing {err})") from err
        except (ValueError, TypeError) as err:
            raise ValueError(f"{path!r} is a corrupt {cls.kind} file: {err}") from err
