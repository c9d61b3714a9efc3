"""The two-site update both sweep engines share: NLL gradient on a merged tensor, trust-region step,
minibatch draw, and the one rule for samples of (numerically) zero amplitude.

With ψ_i = Ψ(v_i) linear in the merged tensor B and every other tensor an isometry towards it
(‖B‖² = Z), the NLL L = −(1/N) Σ_i ln ψ_i² + ln Z has ∂L/∂B = 2B/‖B‖² − (2/N) Σ_i (∂ψ_i/∂B)/ψ_i.
The engines supply the sample sum Σ_i (∂ψ_i/∂B)/ψ_i for their geometry (:func:`divide_by_amplitudes`
applies the zero-amplitude rule); :class:`LocalUpdate` completes it over processes and takes the steps.
"""
from __future__ import annotations

import math
from typing import Callable

import torch

from .. import distributed


def zero_amplitude_floor(dtype: torch.dtype) -> float:
    """|ψ| at or below this counts as zero amplitude: 1/ψ would overflow (sqrt of the smallest normal)."""
    return math.sqrt(torch.finfo(dtype).tiny)


def divide_by_amplitudes(rows: torch.Tensor, psi: torch.Tensor, samples_axis: int = 0,
                         out: torch.Tensor | None = None) -> tuple[torch.Tensor, int]:
    """``rows[i] / psi[i]`` for samples of non-zero amplitude, rows (N, d) (or (d, N) with
    ``samples_axis=1``); entries of samples with |ψ_i| ≤ :func:`zero_amplitude_floor` become zero (their NLL
    is infinite; they are left out of the gradient and counted). Returns (weighted rows, number left out);
    the weighted rows go into ``out`` (shaped like rows; it may be rows itself) if given."""
    floor = zero_amplitude_floor(psi.dtype)
    shape = (-1, 1) if samples_axis == 0 else (1, -1)
    if psi.numel() and float(psi.abs().min()) > floor:  # the usual case: one host read, no mask
        return torch.div(rows, psi.view(shape), out=out), 0
    ok = psi.abs() > floor
    return torch.mul(rows, (ok / torch.where(ok, psi, 1.0)).view(shape), out=out), int((~ok).sum())


def nll_gradient(merged: torch.Tensor, sample_sum: torch.Tensor, n_used: int) -> torch.Tensor:
    """∂L/∂B = 2B/‖B‖² − (2/n) Σ_i (∂ψ_i/∂B) / ψ_i of a merged tensor B (any shape).

    ``sample_sum``: the sum over the n = ``n_used`` samples (of all processes), shaped like B.
    """
    squared = max(float(torch.linalg.vector_norm(merged)) ** 2, torch.finfo(merged.dtype).tiny)
    return torch.add(merged, sample_sum, alpha=-squared / max(n_used, 1)).mul_(2.0 / squared)


# sample_sum_of(merged, rows, step) → (Σ_i (∂ψ_i/∂B)/ψ_i shaped like merged, n_used, n_zero, ψ (n_rows,)) over
# this rank's samples ``rows`` (local indices, None: all), at gradient step ``step`` of the bond
SampleSum = Callable[[torch.Tensor, "torch.Tensor | None", int], tuple[torch.Tensor, int, int, torch.Tensor]]
# amplitudes_of(direction, rows) → L_iᵀ direction R_i (n_rows,) for the same rows, in the same order
Amplitudes = Callable[[torch.Tensor, "torch.Tensor | None"], torch.Tensor]
#: Step lengths tried by the line search, as fractions of the trust-region radius.
LINE_SEARCH_FRACTIONS = tuple(2.0 ** -k for k in range(16))


def line_search(psi: torch.Tensor, psi_direction: torch.Tensor, n_used: int, norms: tuple[float, float, float],
                eta_max: float) -> float:
    """The step η ∈ {0} ∪ {eta_max · 2^-k, k < 16} that minimises the local NLL along −G,

        f(η) = −(2/n) Σ_i ln|ψ_i − η g_i| + ln ‖B − η G‖²,   ‖B − η G‖² = ‖B‖² − 2η⟨B, G⟩ + η²‖G‖²,

    exactly (ψ is linear in B): ψ (N,) and g = ψ(G) (N,) of this rank's samples, n = ``n_used`` samples of
    all ranks, ``norms`` = (‖B‖², ⟨B, G⟩, ‖G‖²). Samples of zero amplitude are left out, as in the gradient.
    The sums over samples are completed over ranks (one all-reduce), so every rank takes the same η."""
    etas = torch.tensor((0.0,) + tuple(eta_max * f for f in LINE_SEARCH_FRACTIONS), dtype=torch.float64,
                        device=psi.device)
    ok = psi.abs() > zero_amplitude_floor(psi.dtype)
    psi, g = psi[ok].double(), psi_direction[ok].double()
    terms = etas[:, None] * g[None, :]  # one (17, N) buffer: ln|ψ_i − η g_i| in place
    sums = torch.sub(psi[None, :], terms, out=terms).abs_().log_().sum(1)
    distributed.all_reduce_sum(sums)
    bb, bg, gg = norms
    f = -(2.0 / max(n_used, 1)) * sums + torch.log((bb - 2.0 * etas * bg + etas * etas * gg).clamp_min(1e-300))
    f = torch.where(torch.isnan(f), torch.inf, f)
    return float(etas[int(torch.argmin(f))])


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

    def step_size(self, grad_norm: float, search: Callable[[float], float] | None = None) -> float:
        """η = lr while the step's length η·‖∂L/∂B‖ stays within ``max_step``. Beyond it the step is taken
        within the trust region: ``search(eta_max)`` (e.g. :func:`line_search`) picks η ≤ eta_max =
        max_step/‖∂L/∂B‖; without it η = eta_max."""
        if self.max_step is not None:
            length = self.lr * grad_norm
            if length > self.max_step:
                eta_max = self.lr * self.max_step / length
                return eta_max if search is None else search(eta_max)
        return self.lr

    def step(self, merged: torch.Tensor, grad: torch.Tensor, eta: float, where: str) -> torch.Tensor:
        """One normalised step B − η ∂L/∂B; ``FloatingPointError`` if not finite."""
        merged = torch.add(merged, grad, alpha=-eta)
        norm = torch.linalg.vector_norm(merged)
        merged /= norm
        if not math.isfinite(norm):
            raise FloatingPointError(f"non-finite tensor after the gradient step at {where}; "
                                     f"lower lr (now {self.lr}) or max_step, or use float64")
        return merged

    def optimise(self, merged: torch.Tensor, sample_sum_of: SampleSum, amplitudes_of: Amplitudes,
                 part: distributed.Shard, device, where: str) -> tuple[torch.Tensor, int]:
        """``n_steps`` steps on ``merged`` (‖B‖ = 1); returns (B, most zero-amplitude samples of one step).

        The sample sums and counts of all ranks are completed in one all-reduce per step. A step the trust
        region would cut is chosen by :func:`line_search` along −∂L/∂B on the same samples (one more
        amplitude product and one small all-reduce)."""
        zero = 0
        for step in range(self.n_steps):
            idx = self.minibatch(part, device)
            sample_sum, n_used, n_zero, psi = sample_sum_of(merged, idx, step)
            sample_sum, (n_used, n_zero) = distributed.sum_with_counts(sample_sum, n_used, n_zero)
            zero = max(zero, n_zero)
            grad = nll_gradient(merged, sample_sum, n_used)
            grad_norm = float(torch.linalg.vector_norm(grad))

            def search(eta_max):
                norms = (float(torch.linalg.vector_norm(merged)) ** 2, float((merged * grad).sum()), grad_norm ** 2)
                return line_search(psi, amplitudes_of(grad, idx), n_used, norms, eta_max)

            merged = self.step(merged, grad, self.step_size(grad_norm, search), where)
        return merged, zero
