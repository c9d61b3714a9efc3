"""A Monte Carlo estimate with its standard error, and the methods every Born machine shares."""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .io import write_npz
from .kernels import renyi_from_schmidt
from .validation import as_sites, check_alpha, check_positive_int, log_base


@dataclass(frozen=True)
class Estimate:
    """``value ± stderr`` (one standard error). Exact results carry ``stderr = 0.0``."""

    value: float
    stderr: float = 0.0

    def __float__(self) -> float:
        return float(self.value)

    def __str__(self) -> str:
        return f"{self.value:.6g} ± {self.stderr:.2g}"


class BornMachineMethods:
    """Methods written once for every Born machine (MPS, TTN) on top of its exact primitives
    (``sample``, ``marginal_log_prob``, ``schmidt_values``, the kernels) and a few hooks:
    ``_side_mask(sites)`` (bool (n_sites,) in the model's internal site order), ``_renyi2_exact(in_x)``,
    ``_structure_arrays()`` / ``_from_structure(tensors, arrays, shape)`` and ``_n_tensors(n_sites)`` for files."""

    def entropy(self, cut: int, alpha: float = 1, base="e") -> float:
        """Rényi-α entanglement entropy across a bond (MPS) or edge (TTN) from :meth:`schmidt_values`
        (α = 1: von Neumann, any α > 0, inf)."""
        alpha = check_alpha(alpha)
        return renyi_from_schmidt(self.schmidt_values(cut), alpha) / log_base(base)

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

