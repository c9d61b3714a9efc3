"""Partition function of an RBM: exact enumeration and (reverse) annealed importance sampling.

All results are natural logs (nats) returned as :class:`~bornmachine.estimate.Estimate` (``value ±
stderr``); exact results carry ``stderr = 0``.

* :func:`exact_log_z` sums the smaller layer out analytically and enumerates the other one, in
  chunks, in float64, with a log-sum-exp over chunks. Cost ``O(2^m · n)`` for ``m = min(n_visible,
  n_hidden) ≤ 26`` enumerated units and ``n`` the other layer's size.
* :func:`ais_log_z` (forward AIS, Salakhutdinov & Murray 2008) anneals from a base-rate model (an
  independent model over visible units, fitted to data) to the RBM. Its estimate of ``Z`` is unbiased,
  so by Jensen's inequality the estimate of ``log Z`` tends to be **too low** (a stochastic lower
  bound).
* :func:`reverse_ais_log_z` (Burda, Grosse & Salakhutdinov 2015) anneals from samples of the RBM back
  to the base model. It estimates ``1/Z`` without bias when its start samples are exact, so its
  ``log Z`` tends to be **too high**. Together they bracket ``log Z``; a wide bracket means more
  betas (or better start samples) are needed.

Intermediate distributions (β from 0 to 1)::

    p*_β(v) = exp((1-β) v·b_A + β v·b_B) · Π_j (1 + exp(β (c_j + (vW)_j)))

with ``b_A`` the base-rate biases and ``(W, b_B, c)`` the RBM; ``p*_0`` is the base model times
``2^n_hidden``, so ``log Z_0 = Σ_i softplus(b_A,i) + n_hidden · ln 2``. Transitions are one block-Gibbs
sweep of the joint model at inverse temperature β (hidden ~ sigmoid(β(c + vW)), visible ~
sigmoid((1-β) b_A + β (b_B + W h))). All chains run in parallel; log-weights accumulate in float64.
``dtype=torch.float32`` runs the chains and products of a float64 model in single precision (about half
the time on CPUs and GPUs); the log-weights still accumulate in float64, and the round-off it adds (below
10⁻² nats at 784 × 1805 units, measured) is far below AIS's own error at usual settings.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from bornmachine.estimate import Estimate
from bornmachine.validation import as_binary, check_float_dtype, check_positive_int

from .model import RBM, base_rate_bias, bernoulli, make_generator, softplus
from .sparse import MaskedProducts

__all__ = ["AISEstimate", "exact_log_z", "ais_log_z", "reverse_ais_log_z", "estimate_log_z", "beta_schedule",
           "base_log_z", "MAX_EXACT_UNITS", "SPARSE_DENSITY"]

#: Largest layer size :func:`exact_log_z` enumerates by default (2^26 ≈ 6.7e7 configurations).
MAX_EXACT_UNITS = 26


@dataclass(frozen=True)
class AISEstimate(Estimate):
    """An AIS estimate of ``log Z`` (nats) with its diagnostics.

    Attributes
    ----------
    value, stderr : log Z and its standard error (delta method on the mean importance weight:
        ``stderr = sd(w) / (sqrt(n_chains) · mean(w))``). Heavy-tailed weights make this error an
        under-statement: compare forward and reverse estimates (:func:`reverse_ais_log_z`).
    log_weights : (n_chains,) float64 numpy array of the chains' log importance weights.
    log_z_base : log partition function of the base-rate model (including ``n_hidden · ln 2``).
    n_betas : number of inverse temperatures (including 0 and 1).
    direction : ``"forward"`` (tends to under-estimate) or ``"reverse"`` (tends to over-estimate).
    final_states : (n_chains, n_visible) 0/1 tensor or None: the forward chains' last states; with the
        weights ``exp(log_weights)`` they are weighted samples of the RBM (``E[w f(v)] ∝ E_p[f]``), which
        :mod:`rbm.tracking` uses to bridge between epochs. None for reverse AIS.
    """

    log_weights: np.ndarray | None = field(default=None, repr=False, compare=False)
    log_z_base: float = 0.0
    n_betas: int = 0
    direction: str = "forward"
    final_states: torch.Tensor | None = field(default=None, repr=False, compare=False)

    @property
    def ess(self) -> float:
        """Effective sample size ``(Σw)² / Σw²`` of the importance weights (1 ≤ ess ≤ n_chains)."""
        lw = np.asarray(self.log_weights, dtype=np.float64)
        w = np.exp(lw - lw.max())
        return float(w.sum() ** 2 / (w ** 2).sum())


# --------------------------------------------------------------------------------------------------
# exact
# --------------------------------------------------------------------------------------------------
def exact_log_z(rbm: RBM, *, max_units: int = MAX_EXACT_UNITS, block_elements: int = 1 << 18) -> Estimate:
    """Exact ``log Z`` by enumerating the smaller layer (float64 throughout).

    ``Z = Σ_h exp(h·c) Π_i (1 + exp(b_i + (W h)_i))`` when ``n_hidden ≤ n_visible`` (else the same with
    the layers' roles swapped). The ``2^m`` configurations are split into a table of low bits and
    chunks of high bits; each chunk's terms are combined with log-sum-exp. ``Σ_i softplus(x_i)`` is
    evaluated as ``Σ_i max(x_i, 0) + log Π_i (1 + e^{-|x_i|})`` (a product of at most 1000 factors in
    (1, 2] cannot overflow), with ``e^{-|x|}`` formed from exponentials precomputed per chunk when the
    pre-activations are moderate (|·| ≤ 300): exact to rounding (≈ 1e-13 relative) and 2-3x faster
    than an elementwise softplus. Only the sum is ever exponentiated inside a log-sum-exp.

    Parameters
    ----------
    rbm : RBM
    max_units : int
        Refuse (``ValueError``) to enumerate more than ``2^max_units`` configurations.
    block_elements : int
        Work-array size per chunk (elements); tunes speed, not results.

    Returns
    -------
    Estimate with ``stderr = 0.0``, nats.
    """
    if not isinstance(rbm, RBM):
        raise TypeError(f"rbm must be an RBM, got {type(rbm).__name__}")
    max_units = check_positive_int(max_units, "max_units")
    W, b, c = (p.to(torch.float64) for p in rbm.parameters())
    if rbm.n_hidden <= rbm.n_visible:
        A, a, d = W.T, c, b  # enumerate hidden units
    else:
        A, a, d = W, b, c  # enumerate visible units
    m = A.shape[0]
    if m > max_units:
        raise ValueError(f"exact_log_z would enumerate 2^{m} configurations of the smaller layer "
                         f"(min(n_visible, n_hidden) = {m} > max_units = {max_units}); use ais_log_z")
    return Estimate(_log_sum_enumerated(A, a, d, block_elements), 0.0)


def _bits(start: int, stop: int, m: int, dtype, device) -> torch.Tensor:
    """Binary expansions of the integers start..stop-1 as (stop-start, m) rows, bit 0 = column 0."""
    idx = torch.arange(start, stop, dtype=torch.int64, device=device)
    return ((idx[:, None] >> torch.arange(m, dtype=torch.int64, device=device)) & 1).to(dtype)


def _sum_softplus(x: torch.Tensor) -> torch.Tensor:
    """``Σ_k softplus(x[..., k])`` over the last axis, exact to rounding (float64)."""
    n = x.shape[-1]
    if n > _MAX_PROD:  # keep the product below 2^1000 (float64 overflows at 2^1024)
        return sum(_sum_softplus(part) for part in torch.split(x, _MAX_PROD, dim=-1))
    pos = x.clamp_min(0.0).sum(-1)
    t = x.abs().neg_().exp_().add_(1.0)
    return pos + torch.log(t.prod(-1))


_MAX_PROD = 1000  # factors in (1, 2] per product
_MAX_EXP_ARG = 300.0  # |p|, |q| bound for the exp-free path (e^±300 · e^±300 stays finite)
_MAX_LOG_PROD = 700.0  # bound on log Π (1 + e^x) for the plain product (float64 overflows above ~709.78)


def _log_sum_enumerated(A: torch.Tensor, a: torch.Tensor, d: torch.Tensor, block_elements: int) -> float:
    """``log Σ_{u ∈ {0,1}^m} exp(u·a + Σ_k softplus(d_k + (uA)_k))`` for A (m, n), a (m,), d (n,).

    The m bits split into m_lo low bits (a table ``q`` of (uA)_k over their 2^m_lo settings) and
    m_hi high bits enumerated in chunks (``p = d + (uA)_k`` per chunk); ``x = p + q``. When all
    ``|p|, |q| ≤ 300`` the exponentials are precomputed per table row and ``e^{-|x|} =
    min(e^p e^q, e^{-p} e^{-q})`` costs two multiplications instead of an ``exp`` per element.
    """
    m, n = A.shape
    dtype, device = A.dtype, A.device
    m_lo = min(m, max(0, int(math.floor(math.log2(max(block_elements // max(n, 1), 1))))))
    m_hi = m - m_lo
    u_lo = _bits(0, 1 << m_lo, m_lo, dtype, device)
    q = u_lo @ A[:m_lo]  # (L, n), L = 2^m_lo
    s_lo = u_lo @ a[:m_lo]  # (L,)
    fast_q = n <= _MAX_PROD and bool(q.abs().max() <= _MAX_EXP_ARG)
    if fast_q:
        eq, eqm = torch.exp(q)[None], torch.exp(-q)[None]
        q_max = q.max(0).values  # (n,)
    rows = max(1, block_elements // ((1 << m_lo) * max(n, 1)))
    parts = []
    for start in range(0, 1 << m_hi, rows):
        stop = min(start + rows, 1 << m_hi)
        u_hi = _bits(start, stop, m_hi, dtype, device)
        p = torch.addmm(d, u_hi, A[m_lo:])  # (B, n)
        s_hi = u_hi @ a[m_lo:]  # (B,)
        if fast_q and bool(p.abs().max() <= _MAX_EXP_ARG):
            if float(softplus(p + q_max).sum(-1).max()) <= _MAX_LOG_PROD:
                # x_k ≤ p_k + max_l q_lk, so Π_k (1 + e^{x_k}) ≤ e^700 stays finite: three passes, no exp
                sp = torch.log((torch.exp(p)[:, None, :] * eq).add_(1.0).prod(-1))
            else:
                x = p[:, None, :] + q[None, :, :]  # (B, L, n)
                r = torch.minimum(torch.exp(p)[:, None, :] * eq, torch.exp(-p)[:, None, :] * eqm)  # e^{-|x|}
                sp = x.clamp_min_(0.0).sum(-1) + torch.log(r.add_(1.0).prod(-1))
        else:
            sp = _sum_softplus(p[:, None, :] + q[None, :, :])
        terms = s_hi[:, None] + s_lo[None, :] + sp
        parts.append(torch.logsumexp(terms.reshape(-1), 0))
    return float(torch.logsumexp(torch.stack(parts), 0))


# --------------------------------------------------------------------------------------------------
# AIS
# --------------------------------------------------------------------------------------------------
def beta_schedule(n_betas: int, *, dtype=torch.float64) -> torch.Tensor:
    """Inverse temperatures 0 = β_0 < ... < β_{K} = 1 (``n_betas`` values, K = n_betas - 1 steps).

    Piecewise uniform as in Salakhutdinov & Murray (2008): of every 14 500 steps, 500 cover
    [0, 0.5], 4 000 cover [0.5, 0.9] and 10 000 cover [0.9, 1], where the free energy changes fastest.
    """
    n_betas = check_positive_int(n_betas, "n_betas")
    if n_betas < 2:
        raise ValueError(f"n_betas must be >= 2 (β = 0 and β = 1), got {n_betas}")
    steps = n_betas - 1
    if steps < 3:
        return torch.linspace(0.0, 1.0, n_betas, dtype=torch.float64).to(dtype)
    fractions = np.array([500.0, 4000.0, 10000.0]) / 14500.0
    counts = np.maximum(1, np.floor(fractions * steps).astype(int))
    counts[-1] = steps - counts[:-1].sum()
    knots = [0.0, 0.5, 0.9, 1.0]
    pieces = [torch.linspace(knots[i], knots[i + 1], int(counts[i]) + 1, dtype=torch.float64)[:-1] for i in range(3)]
    return torch.cat(pieces + [torch.ones(1, dtype=torch.float64)]).to(dtype)


def base_log_z(base_visible_bias: torch.Tensor, n_hidden: int) -> float:
    """``log Z`` of the β = 0 model: ``Σ_i softplus(b_A,i) + n_hidden · ln 2`` (nats)."""
    return float(softplus(base_visible_bias.to(torch.float64)).sum()) + n_hidden * math.log(2.0)


#: Masks with at most this fraction of connections use sparse (CSR) products in AIS and CD training.
SPARSE_DENSITY = 0.1


class _Products:
    """The two products of a Gibbs sweep, ``v ↦ [vW + c, v·b_a, v·b_b]`` and ``h ↦ h Wᵀ``.

    Dense matmuls by default; for sparse masks on the CPU (density ≤ :data:`SPARSE_DENSITY` and at least
    10⁵ weights) CSR products on the nonzero weights (:class:`rbm.sparse.MaskedProducts`), several times
    faster at equal results (up to summation order).
    """

    def __init__(self, W: torch.Tensor, b_a: torch.Tensor, b_b: torch.Tensor, c: torch.Tensor, n_edges: int):
        self.n_hidden = W.shape[1]
        self.sparse = W.numel() >= 100_000 and n_edges <= SPARSE_DENSITY * W.numel() and W.device.type == "cpu"
        if self.sparse:
            self.csr = MaskedProducts(W != 0)
            self.csr.load(W)
            self.c, self.biases = c, torch.stack([b_a, b_b], 1)  # (n_visible, 2)
        else:
            self.a = torch.cat([W, b_a[:, None], b_b[:, None]], dim=1)  # one product gives all three terms
            self.c_aug = torch.cat([c, c.new_zeros(2)])
            self.b = W.T.contiguous()

    def pre(self, v: torch.Tensor) -> torch.Tensor:
        """(N, n_hidden + 2): hidden pre-activations, then v·b_a and v·b_b."""
        if self.sparse:
            return torch.cat([self.csr.hidden(v, self.c), v @ self.biases], 1)
        return torch.addmm(self.c_aug, v, self.a)

    def back(self, h: torch.Tensor, bias: torch.Tensor, beta: float) -> torch.Tensor:
        """(N, n_visible): ``bias + beta · h Wᵀ``."""
        if self.sparse:
            return self.csr.visible(h, bias, beta)
        return torch.addmm(bias, h, self.b, alpha=beta)


def _gibbs(v: torch.Tensor, prods: _Products, b: torch.Tensor, n_steps: int,
           generator: torch.Generator) -> torch.Tensor:
    """``n_steps`` block-Gibbs sweeps of the RBM (β = 1) with precomputed products."""
    n_hidden = prods.n_hidden
    for _ in range(n_steps):
        h = bernoulli(torch.sigmoid(prods.pre(v)[:, :n_hidden]), generator)
        v = bernoulli(torch.sigmoid(prods.back(h, b, 1.0)), generator)
    return v


def _anneal(v: torch.Tensor, betas: torch.Tensor, prods: _Products, b_a: torch.Tensor, b_b: torch.Tensor,
            generator: torch.Generator) -> torch.Tensor:
    """Run AIS chains along ``betas`` (any direction) from start states ``v``; return log-weights.

    ``log w = Σ_k [log p*_{β_k}(v_k) - log p*_{β_{k-1}}(v_k)]`` with ``v_1 = v`` and
    ``v_{k+1} ~ T_{β_k}(v_k)``; ``E[w] = Z_{β_K} / Z_{β_0}``. Pure kernel: no validation.

    Parameters
    ----------
    v : (n_chains, n_visible) 0/1 float tensor, samples of p_{β_0}.
    betas : (K + 1,) float64 tensor.
    prods : the RBM's products (weights W, hidden bias c, base bias b_a, visible bias b_b).
    b_a, b_b : base visible bias and RBM visible bias.

    Returns
    -------
    (n_chains,) float64 tensor of log-weights and the chains' last states (n_chains, n_visible).
    """
    n_hidden = prods.n_hidden
    betas_list = [float(x) for x in betas.to(torch.float64)]
    log_w = torch.zeros(v.shape[0], dtype=torch.float64, device=v.device)

    def log_p_star(beta: float, parts) -> torch.Tensor:
        """log p*_β of the chains, ``(1-β) v·b_a + β v·b_b + Σ_j softplus(β x_j)``, from ``parts`` = (x, max(x, 0),
        |x|, v·b_a, v·b_b), x the hidden pre-activations (float64): :func:`_sum_softplus`'s values to the last
        bit (β ≥ 0 scales max(x, 0) and |x| exactly), shared by the two temperatures of a step."""
        x, positive, magnitude, va, vb = parts
        if n_hidden > _MAX_PROD:
            return (1.0 - beta) * va + beta * vb + _sum_softplus(beta * x)
        log_prod = torch.log(torch.mul(magnitude, -beta).exp_().add_(1.0).prod(-1))
        return (1.0 - beta) * va + beta * vb + ((beta * positive).sum(-1) + log_prod)

    last = len(betas_list) - 1
    for k in range(1, last + 1):
        beta, beta_prev = betas_list[k], betas_list[k - 1]
        xa = prods.pre(v)
        x = xa[:, :n_hidden].to(torch.float64)
        shared = (None, None) if n_hidden > _MAX_PROD else (x.clamp_min(0.0), x.abs())  # unused on the split path
        parts = (x, *shared, xa[:, n_hidden].double(), xa[:, n_hidden + 1].double())
        log_w += log_p_star(beta, parts) - log_p_star(beta_prev, parts)
        if k < last:
            h = bernoulli(torch.sigmoid(beta * xa[:, :n_hidden]), generator)
            v = bernoulli(torch.sigmoid(prods.back(h, (1.0 - beta) * b_a + beta * b_b, beta)), generator)
    return log_w, v


def _finish(log_w: torch.Tensor, log_z0: float, sign: float, n_betas: int, direction: str,
            final_states: torch.Tensor | None = None) -> AISEstimate:
    """Turn log-weights into ``log Z = log Z_0 + sign · log mean(w)`` with its delta-method error."""
    lw = log_w.to(torch.float64)
    n = lw.numel()
    log_mean = float(torch.logsumexp(lw, 0)) - math.log(n)
    w = torch.exp(lw - lw.max())
    stderr = float(w.std() / (math.sqrt(n) * w.mean()))
    if not math.isfinite(log_mean):
        raise ValueError("AIS log-weights are not finite (model parameters too large for this dtype?)")
    return AISEstimate(log_z0 + sign * log_mean, stderr, lw.cpu().numpy(), log_z0, n_betas, direction, final_states)


def _base_bias(rbm: RBM, data, base_visible_bias, pseudocount: float) -> torch.Tensor:
    if data is not None and base_visible_bias is not None:
        raise ValueError("pass either data= or base_visible_bias=, not both")
    if data is not None:
        x = as_binary(data, rbm.n_visible, name="data").to(dtype=rbm.dtype, device=rbm.device)
        return base_rate_bias(x, pseudocount)
    if base_visible_bias is not None:
        t = torch.as_tensor(base_visible_bias)
        if tuple(t.shape) != (rbm.n_visible,):
            raise ValueError(f"base_visible_bias has shape {tuple(t.shape)}; expected ({rbm.n_visible},)")
        t = t.to(dtype=rbm.dtype, device=rbm.device)
        if not torch.isfinite(t).all():
            raise ValueError("base_visible_bias contains NaN or inf")
        return t
    return rbm.b.clone()


def _schedule(n_betas, betas) -> torch.Tensor:
    if betas is None:
        return beta_schedule(n_betas)
    t = torch.as_tensor(betas, dtype=torch.float64).reshape(-1)
    if t.numel() < 2 or float(t[0]) != 0.0 or float(t[-1]) != 1.0 or not bool((t[1:] > t[:-1]).all()):
        raise ValueError("betas must increase strictly from 0.0 to 1.0")
    return t


def ais_log_z(rbm: RBM, n_chains: int = 100, n_betas: int = 10000, *, betas=None, data=None,
              base_visible_bias=None, pseudocount: float = 1.0, generator: torch.Generator | None = None,
              seed: int | None = None, dtype: torch.dtype | None = None) -> AISEstimate:
    """Forward AIS estimate of ``log Z`` (nats) with a standard error; tends to under-estimate.

    Parameters
    ----------
    rbm : RBM
    n_chains : int ≥ 2
        Independent annealing runs (vectorised).
    n_betas : int ≥ 2
        Inverse temperatures including 0 and 1 (see :func:`beta_schedule`); ignored if ``betas`` given.
    betas : 1D increasing array from 0.0 to 1.0, optional
    data : (N, n_visible) binary, optional
        Training data; the base model's visible biases are its smoothed marginal logits
        (:func:`rbm.model.base_rate_bias` with ``pseudocount``). Strongly recommended.
    base_visible_bias : (n_visible,) array, optional
        Explicit base biases instead of ``data``. With neither, the RBM's own visible bias is used.
    generator, seed : source of randomness (a torch.Generator on the model's device, or an int seed).
    dtype : torch.float32 or torch.float64, optional
        Precision of the chains and products (default the model's; see the module docstring).

    Returns
    -------
    AISEstimate (``value ± stderr``, log-weights, ESS).
    """
    if not isinstance(rbm, RBM):
        raise TypeError(f"rbm must be an RBM, got {type(rbm).__name__}")
    n_chains = check_positive_int(n_chains, "n_chains")
    if n_chains < 2:
        raise ValueError("n_chains must be >= 2 to estimate a standard error")
    sched = _schedule(n_betas, betas)
    gen = make_generator(generator, seed, device=rbm.device)
    b_a = _base_bias(rbm, data, base_visible_bias, pseudocount)
    W, b, c = rbm.parameters()
    if check_float_dtype(dtype, "dtype") is not None:
        W, b_a, b, c = (t.to(dtype) for t in (W, b_a, b, c))
    v0 = bernoulli(torch.sigmoid(b_a).expand(n_chains, -1), gen)
    with torch.no_grad():
        log_w, final = _anneal(v0, sched, _Products(W, b_a, b, c, rbm.n_edges), b_a, b, gen)
    return _finish(log_w, base_log_z(b_a, rbm.n_hidden), +1.0, sched.numel(), "forward", final)


def reverse_ais_log_z(rbm: RBM, n_chains: int = 100, n_betas: int = 10000, *, betas=None, samples=None,
                      data=None, n_gibbs: int = 1000, base_visible_bias=None, pseudocount: float = 1.0,
                      generator: torch.Generator | None = None, seed: int | None = None) -> AISEstimate:
    """Reverse AIS estimate of ``log Z`` (nats): anneal from model samples down to the base model.

    With exact samples of the RBM, ``exp(-log Z)`` is estimated without bias, so the returned
    ``log Z`` tends to be **over**-estimated: together with :func:`ais_log_z` it brackets ``log Z``.
    With approximate samples (Gibbs chains) the over-estimate is no longer guaranteed.

    Parameters
    ----------
    rbm : RBM
    n_chains : int ≥ 2
        Number of chains when they start from ``data`` or the base model (ignored with ``samples``).
    n_betas, betas : as in :func:`ais_log_z` (the chains run the schedule backwards).
    samples : (N, n_visible) binary, optional
        Samples of the RBM to start from (e.g. exact ones, or from long Gibbs runs); N ≥ 2 chains.
    data : (N, n_visible) binary, optional
        Used for the base-rate biases and, without ``samples``, as start states: ``n_chains`` rows
        drawn at random, then ``n_gibbs`` Gibbs sweeps under the RBM.
    n_gibbs : int ≥ 1
        Gibbs sweeps that turn data rows (or base-model draws) into approximate model samples.
    base_visible_bias, pseudocount, generator, seed : as in :func:`ais_log_z`.

    Returns
    -------
    AISEstimate with ``direction = "reverse"``.
    """
    if not isinstance(rbm, RBM):
        raise TypeError(f"rbm must be an RBM, got {type(rbm).__name__}")
    sched = _schedule(n_betas, betas)
    gen = make_generator(generator, seed, device=rbm.device)
    b_a = _base_bias(rbm, data, base_visible_bias, pseudocount)
    W, b, c = rbm.parameters()
    with torch.no_grad():
        prods = _Products(W, b_a, b, c, rbm.n_edges)
        if samples is not None:
            v = as_binary(samples, rbm.n_visible, name="samples").to(dtype=rbm.dtype, device=rbm.device)
            if v.shape[0] < 2:
                raise ValueError("samples must hold at least 2 rows (one per chain)")
        else:
            n_chains = check_positive_int(n_chains, "n_chains")
            if n_chains < 2:
                raise ValueError("n_chains must be >= 2 to estimate a standard error")
            n_gibbs = check_positive_int(n_gibbs, "n_gibbs")
            if data is not None:
                x = as_binary(data, rbm.n_visible, name="data").to(dtype=rbm.dtype, device=rbm.device)
                idx = torch.randint(0, x.shape[0], (n_chains,), generator=gen, device=gen.device).to(rbm.device)
                init = x[idx]
            else:
                init = bernoulli(torch.sigmoid(b_a).expand(n_chains, -1), gen)
            v = _gibbs(init, prods, b, n_gibbs, gen)
        log_w, _ = _anneal(v, torch.flip(sched, [0]), prods, b_a, b, gen)
    return _finish(log_w, base_log_z(b_a, rbm.n_hidden), -1.0, sched.numel(), "reverse")


def estimate_log_z(rbm: RBM, method: str = "auto", *, exact_max_units: int = 20, n_chains: int = 100,
                   n_betas: int = 10000, data=None, base_visible_bias=None,
                   generator: torch.Generator | None = None, seed: int | None = None,
                   ais_dtype: torch.dtype | None = None) -> Estimate:
    """``log Z`` by the cheapest trustworthy route: exact when affordable, forward AIS otherwise.

    Parameters
    ----------
    method : {"auto", "exact", "ais"}
        ``"auto"``: :func:`exact_log_z` when ``min(n_visible, n_hidden) ≤ exact_max_units``, else
        :func:`ais_log_z` with ``n_chains``, ``n_betas``, base rates from ``data`` (or the base model's
        ``base_visible_bias``) and ``dtype=ais_dtype``.
    """
    if method not in ("auto", "exact", "ais"):
        raise ValueError(f"method must be 'auto', 'exact' or 'ais', got {method!r}")
    if method == "exact" or (method == "auto" and min(rbm.n_visible, rbm.n_hidden) <= exact_max_units):
        return exact_log_z(rbm)
    return ais_log_z(rbm, n_chains, n_betas, data=data, base_visible_bias=base_visible_bias, generator=generator,
                     seed=seed, dtype=ais_dtype)
