"""A Monte Carlo estimate with its standard error, and the estimators every Born machine shares."""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .validation import as_sites, check_positive_int, log_base


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
    """Estimators written once for every Born machine (MPS, TTN) on top of its exact primitives:
    ``sample``, ``log_prob``-consistent sample log-probabilities and ``marginal_log_prob``."""

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
