"""The two-site update both sweep engines share: NLL gradient on a merged tensor, trust-region step,
minibatch draw, and the one rule for samples of (numerically) zero amplitude.

With ψ_i = Ψ(v_i) linear in the merged tensor B and every other tensor an isometry towards it
(‖B‖² = Z), the NLL L = −(1/N) Σ_i ln ψ_i² + ln Z has ∂L/∂B = 2B/‖B‖² − (2/N) Σ_i (∂ψ_i/∂B)/ψ_i.
The engines supply the sample sum Σ_i (∂ψ_i/∂B)/ψ_i for their geometry (:func:`amplitude_weights`
applies the zero-amplitude rule); :class:`LocalUpdate` completes it over processes and takes the steps.

A step is taken on the device without reading a value back (:meth:`LocalUpdate.propose`: the gradient, its
norm and the plain step B − lr ∂L/∂B, normalised) and then settled from two numbers read on the host
(:meth:`LocalUpdate.settle`: keep the plain step, or replace it by the line search's step when the trust
region cuts it; ``FloatingPointError`` when not finite). An engine can carry those two numbers in the read it
makes anyway (the chain's truncated split), so the usual step costs no host read of its own.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch

from .. import distributed


def zero_amplitude_floor(dtype: torch.dtype) -> float:
    """|ψ| at or below this counts as zero amplitude: 1/ψ would overflow (sqrt of the smallest normal)."""
    return math.sqrt(torch.finfo(dtype).tiny)


def amplitude_weights(psi: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
    """w_i = 1/ψ_i for samples of non-zero amplitude and 0 for those with |ψ_i| ≤ :func:`zero_amplitude_floor`
    (or ψ_i NaN): their NLL is infinite, they are left out of the gradient. No host read, no mask: the
    number of samples used is ``count_nonzero(w)``. Into ``out`` (shaped like ψ) if given."""
    floor = zero_amplitude_floor(psi.dtype)
    w = torch.hardshrink(psi, floor) if out is None else torch.hardshrink(psi, floor, out=out)  # 0 at the floor
    return w.reciprocal_().nan_to_num_(0.0, 0.0, 0.0)  # 1/±0 = ±inf → 0, NaN → 0


def divide_by_amplitudes(rows: torch.Tensor, psi: torch.Tensor, samples_axis: int = 0,
                         out: torch.Tensor | None = None) -> tuple[torch.Tensor, int]:
    """``rows[i] / psi[i]`` for samples of non-zero amplitude, rows (N, d) (or (d, N) with
    ``samples_axis=1``); entries of samples of zero amplitude (:func:`amplitude_weights`) become zero. Returns
    (weighted rows, number left out: one host read); the weighted rows go into ``out`` (shaped like rows; it
    may be rows itself) if given."""
    w = amplitude_weights(psi)
    n_zero = psi.numel() - int(torch.count_nonzero(w))
    return torch.mul(rows, w.view((-1, 1) if samples_axis == 0 else (1, -1)), out=out), n_zero


def nll_gradient(merged: torch.Tensor, sample_sum: torch.Tensor, n_used) -> torch.Tensor:
    """∂L/∂B = 2B/‖B‖² − (2/n) Σ_i (∂ψ_i/∂B) / ψ_i of a merged tensor B (any shape), on the device.

    ``sample_sum``: the sum over the n = ``n_used`` samples (of all processes), shaped like B; ``n_used`` an
    int or a 0-d tensor (at least 1 is used).
    """
    squared = torch.linalg.vector_norm(merged).square_().clamp_min_(torch.finfo(merged.dtype).tiny)
    grad = torch.div(merged, squared).mul_(2.0)
    if isinstance(n_used, torch.Tensor):
        return grad.addcdiv_(sample_sum, n_used.clamp_min(1), value=-2.0)
    return grad.add_(sample_sum, alpha=-2.0 / max(n_used, 1))


# sample_sum_of(merged, rows, step) → (Σ_i (∂ψ_i/∂B)/ψ_i shaped like merged, n_used, n_zero, ψ (n_rows,)) over
# this rank's samples ``rows`` (local indices, None: all), at gradient step ``step`` of the bond; the counts
# are ints or 0-d tensors (kept on the device); a fifth item, the samples' amplitude_weights, may follow
SampleSum = Callable[[torch.Tensor, "torch.Tensor | None", int], tuple[torch.Tensor, int, int, torch.Tensor]]
# amplitudes_of(direction, rows) → L_iᵀ direction R_i (n_rows,) for the same rows, in the same order
Amplitudes = Callable[[torch.Tensor, "torch.Tensor | None"], torch.Tensor]
#: Step lengths tried by the line search, as fractions of the trust-region radius.
LINE_SEARCH_FRACTIONS = tuple(2.0 ** -k for k in range(16))


def line_search_step(psi: torch.Tensor, psi_direction: torch.Tensor, n_used, norms, eta_max, *,
                     weights: torch.Tensor | None = None, out: torch.Tensor | None = None) -> torch.Tensor:
    """:func:`line_search` on the device: the chosen η as a 0-d float64 tensor (no host read).

    ``n_used``, the ``norms`` and ``eta_max`` may be numbers or 0-d tensors. ``weights``: the samples'
    :func:`amplitude_weights` if at hand (zero marks the samples left out), else taken from ψ. ``out``: a
    float64 buffer of at least (17, N) for the terms ln|ψ_i − η g_i| (else one is allocated)."""
    n = psi.numel()
    etas = torch.tensor((0.0,) + LINE_SEARCH_FRACTIONS, dtype=torch.float64, device=psi.device).mul_(eta_max)
    terms = torch.empty(len(etas), n, dtype=torch.float64, device=psi.device) if out is None else out[:, :n]
    torch.mul(etas[:, None], psi_direction.reshape(1, n), out=terms)
    torch.sub(psi.reshape(1, n), terms, out=terms).abs_().log_()  # ln|ψ_i − η g_i|, (17, N) in place
    left_out = torch.eq(amplitude_weights(psi) if weights is None else weights.reshape(n), 0)
    sums = terms.masked_fill_(left_out, 0.0).sum(1)  # samples of zero amplitude left out, as in the gradient
    distributed.all_reduce_sum(sums)
    bb, bg, gg = norms
    n_used = n_used.clamp_min(1) if isinstance(n_used, torch.Tensor) else max(n_used, 1)
    f = sums.mul_(-2.0).div_(n_used) + torch.log((bb - 2.0 * etas * bg + etas * etas * gg).clamp_min(1e-300))
    return etas[torch.argmin(f.nan_to_num_(torch.inf))]


def line_search(psi: torch.Tensor, psi_direction: torch.Tensor, n_used: int, norms: tuple[float, float, float],
                eta_max: float) -> float:
    """The step η ∈ {0} ∪ {eta_max · 2^-k, k < 16} that minimises the local NLL along −G,

        f(η) = −(2/n) Σ_i ln|ψ_i − η g_i| + ln ‖B − η G‖²,   ‖B − η G‖² = ‖B‖² − 2η⟨B, G⟩ + η²‖G‖²,

    exactly (ψ is linear in B): ψ (N,) and g = ψ(G) (N,) of this rank's samples, n = ``n_used`` samples of
    all ranks, ``norms`` = (‖B‖², ⟨B, G⟩, ‖G‖²). Samples of zero amplitude are left out, as in the gradient.
    The sums over samples are completed over ranks (one all-reduce), so every rank takes the same η."""
    return float(line_search_step(psi, psi_direction, n_used, norms, eta_max))


@dataclass
class Proposal:
    """A gradient step taken on the device (:meth:`LocalUpdate.propose`), not yet settled.

    ``merged``: (B − lr G)/‖·‖; ``summary``: (‖G‖, ‖B − lr G‖) (2,), what :meth:`LocalUpdate.settle` reads;
    ``start``: B; ``grad``: G; ``psi``, ``weights``: this rank's amplitudes and :func:`amplitude_weights` (or
    None); ``n_used``, ``n_zero``: counts over all ranks; ``rows``: the minibatch (None: all)."""

    merged: torch.Tensor
    summary: torch.Tensor
    start: torch.Tensor
    grad: torch.Tensor
    psi: torch.Tensor
    weights: "torch.Tensor | None"
    n_used: "int | torch.Tensor"
    n_zero: "int | torch.Tensor"
    rows: "torch.Tensor | None"


class LocalUpdate:
    """``n_steps`` normalised gradient steps B ← (B − η ∂L/∂B)/‖·‖ on a merged tensor.

    Parameters
    ----------
    lr : step size η. n_steps : steps per merged tensor. batch_size : int or None (full batch).
    max_step : float or None, trust region (‖B‖ = 1): a step with lr‖∂L/∂B‖ > max_step is replaced by the
        step of length ≤ max_step that minimises the local NLL along −∂L/∂B (:func:`line_search`), so a
        sample of tiny amplitude (∂L/∂B ∝ 1/ψ) cannot wipe out the tensor in one step; None: plain steps.
    generator : torch.Generator of the minibatch draws (alike on every rank).
    """

    def __init__(self, lr: float, n_steps: int, batch_size: int | None, max_step: float | None,
                 generator: torch.Generator):
        self.lr, self.n_steps, self.batch_size, self.max_step = lr, n_steps, batch_size, max_step
        self.generator = generator

    def is_full_batch(self, part: distributed.Shard) -> bool:
        return self.batch_size is None or self.batch_size >= part.total

    def minibatch(self, part: distributed.Shard, device) -> torch.Tensor | None:
        """This rank's local row indices of a minibatch of all ``part.total`` rows (drawn alike on every
        rank, so minibatches index the global data set), or None for the full batch."""
        if self.is_full_batch(part):
            return None
        return part.local(torch.randperm(part.total, generator=self.generator)[: self.batch_size]).to(device)

    def trust_radius(self, grad_norm: float) -> float | None:
        """eta_max = max_step/‖∂L/∂B‖ when the step lr·‖∂L/∂B‖ would leave the trust region, else None."""
        if self.max_step is not None and self.lr * grad_norm > self.max_step:
            return self.lr * self.max_step / (self.lr * grad_norm)
        return None

    def step_size(self, grad_norm: float, search: Callable[[float], float] | None = None) -> float:
        """η = lr while the step's length η·‖∂L/∂B‖ stays within ``max_step``. Beyond it the step is taken
        within the trust region: ``search(eta_max)`` (e.g. :func:`line_search`) picks η ≤ eta_max =
        max_step/‖∂L/∂B‖; without it η = eta_max."""
        eta_max = self.trust_radius(grad_norm)
        if eta_max is None:
            return self.lr
        return eta_max if search is None else search(eta_max)

    def propose(self, merged: torch.Tensor, sample_sum_of: SampleSum, part: distributed.Shard, device,
                step: int = 0) -> Proposal:
        """One gradient step on ``merged`` (‖B‖ = 1) with η = lr, on the device (no host read): the sample
        sums and counts of all ranks are completed in one all-reduce; the result is settled by :meth:`settle`."""
        rows = self.minibatch(part, device)
        found = sample_sum_of(merged, rows, step)
        sample_sum, n_used, n_zero, psi = found[:4]
        sample_sum, (n_used, n_zero) = distributed.sum_with_counts(sample_sum, n_used, n_zero)
        grad = nll_gradient(merged, sample_sum, n_used)
        stepped = torch.add(merged, grad, alpha=-self.lr)
        norm = torch.linalg.vector_norm(stepped)
        summary = torch.stack([torch.linalg.vector_norm(grad), norm])
        stepped /= norm
        return Proposal(stepped, summary, merged, grad, psi, found[4] if len(found) > 4 else None, n_used, n_zero,
                        rows)

    def settle(self, proposal: Proposal, summary: list[float], amplitudes_of: Amplitudes, where: str,
               buffer: Callable[[], torch.Tensor] | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The step of ``proposal`` from its ``summary`` read on the host (‖G‖, ‖B − lr G‖): (the proposal's
        tensor, None) when the trust region keeps it (``FloatingPointError`` if not finite); else the line
        search's step (:func:`line_search_step` on the same samples, on the device; ``buffer()`` gives its
        terms' buffer) as (B − η G)/‖·‖ and the norm ‖B − η G‖ (0-d) the caller must check (:meth:`check_finite`)."""
        grad_norm, norm = summary
        eta_max = self.trust_radius(grad_norm)
        if eta_max is None:
            self.check_finite(norm, where)
            return proposal.merged, None
        start, grad = proposal.start, proposal.grad
        norms = (torch.linalg.vector_norm(start).square_(), torch.tensordot(start, grad, dims=start.dim()),
                 grad_norm ** 2)
        eta = line_search_step(proposal.psi, amplitudes_of(grad, proposal.rows), proposal.n_used, norms, eta_max,
                               weights=proposal.weights, out=None if buffer is None else buffer())
        merged = torch.sub(start, grad * eta)
        norm = torch.linalg.vector_norm(merged)
        return merged.div_(norm), norm

    def check_finite(self, norm: float, where: str) -> None:
        """``FloatingPointError`` when the norm of a step's tensor (read on the host) is not finite."""
        if not math.isfinite(norm):
            raise FloatingPointError(f"non-finite tensor after the gradient step at {where}; "
                                     f"lower lr (now {self.lr}) or max_step, or use float64")

    def optimise(self, merged: torch.Tensor, sample_sum_of: SampleSum, amplitudes_of: Amplitudes,
                 part: distributed.Shard, device, where: str, n_steps: int | None = None):
        """``n_steps`` (default: the update's) steps on ``merged`` (‖B‖ = 1); returns (B, most zero-amplitude
        samples of one step: an int, or a 0-d tensor when ``sample_sum_of`` counts on the device).

        Each step: :meth:`propose`, one host read of its summary, :meth:`settle` (a step the trust region
        cuts: one more amplitude product, a small all-reduce and one more read)."""
        zero = None
        for step in range(self.n_steps if n_steps is None else n_steps):
            proposal = self.propose(merged, sample_sum_of, part, device, step)
            zero = most(zero, proposal.n_zero)
            merged, norm = self.settle(proposal, proposal.summary.tolist(), amplitudes_of, where)
            if norm is not None:
                self.check_finite(float(norm), where)
        return merged, zero


def most(a, b):
    """The larger of two counts (ints or 0-d tensors; ``a`` None: ``b``), on the device when either is a tensor."""
    if a is None:
        return b
    if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor):
        return torch.maximum(a, b)
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        tensor, number = (a, b) if isinstance(a, torch.Tensor) else (b, a)
        return torch.clamp_min(tensor, number)
    return max(a, b)
