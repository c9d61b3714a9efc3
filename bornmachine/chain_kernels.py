"""Pure tensor kernels for chains of 3-leg tensors (MPS), shared by models and trainers.

Conventions: a chain is a list of tensors ``A[k]`` of shape (D_{k-1}, 2, D_k) with D_0 = D_n = 1;
configurations ``x`` are int64 tensors (N, n) in chain order. Every function works on any device and
real dtype, keeps running log-norms (no raw products of many factors) and does not modify its inputs.
Logs are natural.
"""
from __future__ import annotations

import math

import torch

from . import linalg
from .linalg import generator_device

Chain = list  # list[torch.Tensor], A[k] of shape (D_{k-1}, 2, D_k)


# --------------------------------------------------------------------------------------------------
# Canonical forms
# --------------------------------------------------------------------------------------------------
def _qr_left(a: torch.Tensor):
    """QR of a (Dl, 2, Dr) tensor grouped as (Dl·2, Dr): returns Q (Dl, 2, r), R (r, Dr)."""
    dl, d, dr = a.shape
    q, r = torch.linalg.qr(a.reshape(dl * d, dr))
    return q.reshape(dl, d, -1), r


def _qr_right(a: torch.Tensor):
    """LQ of a (Dl, 2, Dr) tensor grouped as (Dl, 2·Dr): returns L (Dl, r), Q (r, 2, Dr)."""
    dl, d, dr = a.shape
    q, r = torch.linalg.qr(a.reshape(dl, d * dr).T)
    return r.T, q.T.reshape(-1, d, dr)


def canonicalize(tensors: Chain, center: int) -> tuple[Chain, float]:
    """Mixed-canonical form with orthogonality centre ``center`` and unit norm.

    Sites left of the centre become left-isometric (Σ_s A_sᵀA_s = I), sites right of it
    right-isometric (Σ_s A_s A_sᵀ = I); the centre tensor is scaled to unit Frobenius norm.
    Bond dimensions never grow (QR is reduced). Returns the new chain and ln‖Ψ‖ of the input
    (so ln Z = 2 · returned value), computed with running log-norms.
    """
    n = len(tensors)
    out = list(tensors)
    log_scale = 0.0
    for k in range(center):
        q, r = _qr_left(out[k])
        norm = torch.linalg.matrix_norm(r)
        log_scale += math.log(norm.item()) if norm > 0 else -math.inf
        out[k] = q
        out[k + 1] = torch.tensordot(r / norm.clamp_min(torch.finfo(r.dtype).tiny), out[k + 1], dims=1)
    for k in range(n - 1, center, -1):
        l_, q = _qr_right(out[k])
        norm = torch.linalg.matrix_norm(l_)
        log_scale += math.log(norm.item()) if norm > 0 else -math.inf
        out[k] = q
        out[k - 1] = torch.tensordot(out[k - 1], l_ / norm.clamp_min(torch.finfo(l_.dtype).tiny), dims=1)
    norm = torch.linalg.vector_norm(out[center])
    log_scale += math.log(norm.item()) if norm > 0 else -math.inf
    out[center] = out[center] / norm.clamp_min(torch.finfo(norm.dtype).tiny)
    return out, log_scale


def log_norm(tensors: Chain) -> torch.Tensor:
    """ln Z (Z = Σ_v Ψ(v)²) by transfer matrices with running trace normalisation; differentiable, O(n D³)."""
    env = torch.einsum("asb,asc->bc", tensors[0], tensors[0])
    log_z = torch.zeros((), dtype=env.dtype, device=env.device)
    for a in tensors[1:]:
        tr = torch.diagonal(env).sum()
        log_z = log_z + torch.log(tr)
        env = torch.einsum("ab,asc,bsd->cd", env / tr, a, a)
    return log_z + torch.log(torch.diagonal(env).sum())


def bond_spectra(tensors: Chain, right_canonical: bool = False) -> list[torch.Tensor]:
    """Schmidt values of every bond, ``[λ_0, …, λ_{n-2}]`` (each descending, Σλ² = 1), in O(n D³).

    Any gauge and norm. A left-to-right R-only QR sweep writes the sites left of bond k as Q_k R_k
    (Q_k isometric, never formed). If ``right_canonical`` (every site right of site 0 right-isometric)
    λ_k are the singular values of R_k, to full relative precision. Otherwise a right-to-left transfer
    sweep gives the Gram matrix G_k of the sites right of bond k, and λ_k² are the eigenvalues of
    R_k G_k R_kᵀ: each λ² then carries an absolute error of order machine epsilon times the largest
    (entropies exact to round-off; λ below ~1e-8 of the largest are noise). All bonds go in one batched
    call on zero-padded matrices (padding adds only zeros; at most min(rank left, rank right) values kept).
    """
    n = len(tensors)
    if n < 2:
        return []
    tiny = torch.finfo(tensors[0].dtype).tiny
    rs, ranks = [], []
    carry, rank = tensors[0], 1
    for k in range(n - 1):
        dl, d, dr = carry.shape
        r = torch.linalg.qr(carry.reshape(dl * d, dr), mode="r").R  # Q is never formed
        r = r / torch.linalg.matrix_norm(r).clamp_min(tiny)  # running scale: only the spectrum's shape counts
        rs.append(r)
        rank = min(2 * rank, dr)
        ranks.append(rank)
        carry = (r @ tensors[k + 1].reshape(dr, -1)).view(r.shape[0], d, -1)
    m = max(max(r.shape) for r in rs)
    padded = rs[0].new_zeros(n - 1, m, m)
    for k, r in enumerate(rs):
        padded[k, : r.shape[0], : r.shape[1]] = r
    if right_canonical:
        values = torch.linalg.svdvals(padded)
    else:
        grams = padded.new_zeros(n - 1, m, m)
        g, rank = tensors[n - 1].new_ones(1, 1), 1
        for k in range(n - 2, -1, -1):  # G_k = Σ_s A_s G_{k+1} A_sᵀ with A = site k+1, trace-normalised
            a = tensors[k + 1]
            dl, d, dr = a.shape
            t = (a.reshape(dl * d, dr) @ g).view(dl, d * dr)
            g = t @ a.reshape(dl, d * dr).T
            g = g / torch.diagonal(g).sum().clamp_min(tiny)
            grams[k, :dl, :dl] = g
            rank = min(2 * rank, dl)
            ranks[k] = min(ranks[k], rank)
        values = torch.linalg.eigvalsh(padded @ grams @ padded.mT).flip(-1).clamp_min(0).sqrt()
    spectra = []
    for k, rank in enumerate(ranks):
        s = values[k, :rank]
        spectra.append(s / torch.linalg.vector_norm(s))
    return spectra


# --------------------------------------------------------------------------------------------------
# Amplitudes and sampling
# --------------------------------------------------------------------------------------------------
def _select(w: torch.Tensor, x_k: torch.Tensor) -> torch.Tensor:
    """From w (N, 2, D) pick w[i, x_k[i]] → (N, D)."""
    return torch.where(x_k[:, None] == 1, w[:, 1], w[:, 0])


def log_amplitude(tensors: Chain, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Sign and ln|Ψ(x)| for a batch ``x`` (N, n) in chain order, O(N n D² / 2 + n D³).

    Contracts left to right two sites at a time: the rows are regrouped by their pair of bits
    (x_k, x_{k+1}) (``order`` tracks the permutation) and each group is multiplied by its own two-site
    matrix A_k[:, s, :] A_{k+1}[:, t, :], so a pair costs one row-vector × matrix product per sample
    (half of site by site, and no wasted branch). Running log-norms every few sites keep any length in
    range. Differentiable (autograd) when the tensors require grad. A zero amplitude gives sign 0 and -inf.
    """
    n_samples, n_sites = x.shape
    dtype, device = tensors[0].dtype, tensors[0].device
    tiny = torch.finfo(dtype).tiny
    renorm_every = 4 if dtype == torch.float64 else 1  # in pairs: |v| may change by ~1e±30 per 8 sites in float64
    autograd = torch.is_grad_enabled() and any(t.requires_grad for t in tensors)
    codes = 2 * x[:, 1:-1:2] + x[:, 2::2]  # (N, pairs): the code of pair (k, k+1) for k = 1, 3, …
    order = torch.arange(n_samples, device=device)  # row i of v is sample order[i]
    v = tensors[0][0].index_select(0, x[:, 0])  # (N, D_1)
    log_abs = torch.zeros(n_samples, dtype=dtype, device=device)  # indexed by sample
    for pair in range(codes.shape[1]):
        k = 2 * pair + 1
        if pair % renorm_every == renorm_every - 1:
            norm = torch.linalg.vector_norm(v, dim=1)
            log_abs = log_abs.index_add(0, order, torch.log(norm))
            v = v / norm.clamp_min(tiny)[:, None]
        code = codes[:, pair].index_select(0, order)
        regroup = torch.argsort(code, stable=True)
        bounds = linalg.block_bounds(torch.bincount(code, minlength=4).tolist())
        order = order.index_select(0, regroup)
        v = v.index_select(0, regroup)
        a, b = tensors[k], tensors[k + 1]
        pair_matrices = (a.reshape(-1, a.shape[2]) @ b.reshape(b.shape[0], -1)).view(a.shape[0], 4, b.shape[2])
        if autograd:
            parts = [v[lo:hi] @ pair_matrices[:, c, :] for c, (lo, hi) in enumerate(zip(bounds, bounds[1:])) if hi > lo]
            v = torch.cat(parts) if parts else v.new_zeros(0, b.shape[2])
        else:
            matrices = pair_matrices.permute(1, 0, 2).contiguous()  # (4, D_k-1, D_k+1)
            v = linalg.contract_blocks(v, matrices, bounds, v.new_empty(n_samples, b.shape[2]))
    if n_sites % 2 == 0:  # a last single site
        a = tensors[-1]
        v = (v[:, :, None] * a.permute(1, 0, 2)[x[:, -1].index_select(0, order)]).sum(1)
    amp = v[:, 0]
    log_abs = log_abs.index_add(0, order, torch.log(amp.abs()))
    sign = torch.empty_like(amp).index_copy(0, order, torch.sign(amp))
    return sign, log_abs


def sample(tensors: Chain, n: int, generator: torch.Generator | None = None, chunk: int = 8192):
    """Exact independent samples from p = Ψ² of a right-canonical, unit-norm chain (centre 0).

    Returns ``x`` (n, n_sites) int64 in chain order and ln p(x) (n,) float64. Vectorised over
    samples, processed in chunks of ``chunk`` rows; O(n_sites · n · D²). The uniforms are drawn once,
    (n, n_sites) in float64 from ``generator``, so results do not depend on ``chunk`` (up to round-off).
    """
    device = tensors[0].device
    u = torch.rand(n, len(tensors), generator=generator, dtype=torch.float64,
                   device=generator_device(generator, device)).to(device)
    first = [0] * len(tensors)  # the branch computed for every row at each site: the more frequent bit so far
    parts = []
    for i in range(0, n, chunk):
        parts.append(_sample_block(tensors, u[i:i + chunk], first))
        first = (parts[-1][0].double().mean(0) > 0.5).long().tolist()
    return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])


def _sample_block(tensors: Chain, u: torch.Tensor, first: list[int]):
    """Sequential exact sampling of one block. With right-canonical tensors Σ_s A_s A_sᵀ = I, so
    ‖v A_0‖² + ‖v A_1‖² = ‖v‖² = p(x_<k)-weight of the row: the branch ``first[k]`` is contracted for all
    rows, its weight decides the bit, and only the rows that draw the other bit contract the other
    matrix (about 1.5 instead of 2 row-matmuls per site; the chosen weight is always computed directly)."""
    dtype, device = tensors[0].dtype, tensors[0].device
    n, n_sites = u.shape
    tiny = torch.finfo(dtype).tiny
    renorm_every = 16 if dtype == torch.float64 else 4  # v shrinks by sqrt(p) per site: rescale before underflow
    u_by_site = u.T.to(dtype).contiguous()  # (n_sites, n)
    x = torch.empty(n_sites, n, dtype=torch.bool, device=device)
    cond = torch.empty(n_sites, n, dtype=dtype, device=device)  # p(x_k | x_<k) of the drawn bit
    v = torch.ones(n, 1, dtype=dtype, device=device)
    total = torch.ones(n, dtype=dtype, device=device)  # ‖v‖²
    for k, a in enumerate(tensors):
        b = first[k]
        w = v @ a[:, b, :]
        weight = torch.linalg.vecdot(w, w)  # ‖v A_b‖²
        # bit = 1 iff u · total < weight of branch 1 (branch 0 decides through total − weight)
        other = u_by_site[k] * total >= weight if b == 1 else u_by_site[k] * total < total - weight
        rows = other.nonzero().squeeze(1)
        if rows.numel():  # these rows (and only these) have both weights: decide them again exactly
            w_other = v.index_select(0, rows) @ a[:, 1 - b, :]
            weight_other, weight_b = torch.linalg.vecdot(w_other, w_other), weight.index_select(0, rows)
            draw = u_by_site[k].index_select(0, rows) * (weight_b + weight_other)
            stays = draw < weight_other if b == 0 else draw >= weight_b  # bit 1 iff u · (w_0 + w_1) < w_1
            other.index_copy_(0, rows, stays)  # round-off in total − weight may misplace a few: never a p = 0 bit
            w.index_copy_(0, rows, torch.where(stays[:, None], w_other, w.index_select(0, rows)))
            weight.index_copy_(0, rows, torch.where(stays, weight_other, weight_b))
        x[k] = other if b == 0 else ~other
        torch.div(weight, total, out=cond[k])
        v, total = w, weight
        if k % renorm_every == renorm_every - 1:
            v = v / total.sqrt().clamp_min(tiny)[:, None]
            total = torch.linalg.vecdot(v, v)
    return x.T.long(), torch.log(cond.double()).sum(0)


# --------------------------------------------------------------------------------------------------
# Marginals (known runs as factors, the rest as density environments) and conditionals
# --------------------------------------------------------------------------------------------------
def _env_step_right(env: torch.Tensor, a: torch.Tensor, values: torch.Tensor | None, known: torch.Tensor | None):
    """Right-to-left environment update R_{k-1} = Σ_s A_s R_k A_sᵀ (summed where unknown).

    env (N, Dr, Dr); values/known (N,) or None (all summed). Returns (N, Dl, Dl).
    """
    a0, a1 = a[:, 0, :], a[:, 1, :]
    m0 = a0 @ env @ a0.T
    m1 = a1 @ env @ a1.T
    if known is None:
        return m0 + m1
    fixed = torch.where(values[:, None, None] == 1, m1, m0)
    return torch.where(known[:, None, None], fixed, m0 + m1)


def _transfer_left(env: torch.Tensor, a: torch.Tensor, values: torch.Tensor | None) -> torch.Tensor:
    """E'_n = Σ_s A_sᵀ E_n A_s (``values`` None) or A_{v_n}ᵀ E_n A_{v_n}, as large matmuls without copies.

    env (Dl, N, Dl) holds the symmetric E_n as env[j, n, i] = E_n[j, i] (samples in the middle: both products
    are then plain (·, Dl)-matrix GEMMs of contiguous blocks); a (Dl, 2, Dr); values (N,) int64 or None. Returns
    (Dr, N, Dr) in the same layout: U_s = A_sᵀ E (Dr, N·Dl) as [l, (n, i)], then E'[l, n, k] = Σ_s U_s A_s.
    With ``values`` the samples of each value go through their own matrix only (a gather and a scatter along
    the samples; half the flops).
    """
    dl, n, _ = env.shape
    dr = a.shape[2]
    if values is None:
        u = torch.mm(a.reshape(dl, 2 * dr).T, env.reshape(dl, n * dl)).view(2, dr * n, dl)
        out = torch.mm(u[0], a[:, 0, :])
        return out.addmm_(u[1], a[:, 1, :]).view(dr, n, dr)
    out = env.new_empty(dr, n, dr)
    for s in (0, 1):
        rows = torch.nonzero(values == s).squeeze(1)
        m = rows.shape[0]
        if m == 0:
            continue
        a_s = a[:, s, :]
        u = torch.mm(a_s.T, env.index_select(1, rows).view(dl, m * dl)).view(dr * m, dl)
        out.index_copy_(1, rows, torch.mm(u, a_s).view(dr, m, dr))
    return out


def _trace(env: torch.Tensor) -> torch.Tensor:
    """Tr E_n (N,) of env (D, N, D) in the layout of :func:`_transfer_left`."""
    return torch.diagonal(env, dim1=0, dim2=2).sum(-1)


def _factor_step(phi: torch.Tensor, a: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """Φ'_n = Φ_n A_{v_n}: phi (N, r, Dl), a (Dl, 2, Dr), values (N,) int64 → (N, r, Dr).

    The samples of each value go through their own matrix as one (m·r, Dl) × (Dl, Dr) GEMM."""
    n, r, dl = phi.shape
    out = phi.new_empty(n, r, a.shape[2])
    for s in (0, 1):
        rows = torch.nonzero(values == s).squeeze(1)
        if rows.numel():
            m = rows.shape[0]
            out.index_copy_(0, rows, torch.mm(phi.index_select(0, rows).view(m * r, dl), a[:, s, :]).view(m, r, -1))
    return out


def _known_factor(tensors: Chain, values: torch.Tensor, reverse: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """A factor Φ (N, r, D) of the environment ΦᵀΦ after a run of known sites, and the environment's ln scale (N,).

    The run starts from the identity on its first bond (r = that bond's dimension: the canonical form's
    environment there); ``tensors`` the run's sites in chain order, values (N, len) int64. ``reverse``: the
    run is read from its last site leftwards (Φ then acts on the bond left of the run). O(N r Dl Dr) per site,
    against O(N D³) for the density environment.
    """
    if reverse:
        tensors, values = [a.permute(2, 1, 0) for a in reversed(tensors)], values.flip(1)
    a0 = tensors[0]
    n_samples, r = values.shape[0], a0.shape[0]
    tiny = torch.finfo(a0.dtype).tiny
    phi = torch.eye(r, dtype=a0.dtype, device=a0.device).expand(n_samples, r, r)
    log_scale = torch.zeros(n_samples, dtype=a0.dtype, device=a0.device)
    for k, a in enumerate(tensors):
        phi = _factor_step(phi, a, values[:, k])
        norm = torch.linalg.vector_norm(phi, dim=(1, 2))
        log_scale = log_scale + 2 * torch.log(norm)
        phi = phi.div_(norm.clamp_min(tiny)[:, None, None])
    return phi, log_scale


def marginal_log_prob(tensors: Chain, positions: list[int], values: torch.Tensor) -> torch.Tensor:
    """ln p(x_S) = ln Σ_{other sites} Ψ² for a canonical, unit-norm chain with centre at min(S).

    positions: sorted distinct chain positions S; values (N, |S|) int64 in that order.
    Sites outside [min S, max S] contract to identities (canonical form). The known runs at both ends of
    [min S, max S] are carried as factors Φ of the environment ΦᵀΦ (rank = the outer bond's dimension, 1 at
    the chain's ends: a prefix or suffix of the chain costs as little as an amplitude), the sites between the
    first and last summed one as density environments, O(N D³) per site.
    """
    dtype, device = tensors[0].dtype, tensors[0].device
    tiny = torch.finfo(dtype).tiny
    first, last = positions[0], positions[-1]
    full = torch.zeros(values.shape[0], last + 1, dtype=torch.int64, device=device)
    full[:, positions] = values
    known = torch.zeros(last + 1, dtype=torch.bool)
    known[positions] = True
    summed = (~known[first:]).nonzero().squeeze(1)
    if summed.numel() == 0:  # one known run: a factor from the end with the smaller boundary bond
        reverse = tensors[last].shape[2] < tensors[first].shape[0]
        return _known_factor(tensors[first:last + 1], full[:, first:], reverse)[1]  # Φ has unit norm: p = its scale
    lo, hi = first + int(summed[0]), first + int(summed[-1])  # first and last summed site
    left, logp = _known_factor(tensors[first:lo], full[:, first:lo])
    env = torch.einsum("nrj,nri->jni", left, left)  # (D, N, D) layout of _transfer_left
    for k in range(lo, hi + 1):
        env = _transfer_left(env, tensors[k], full[:, k] if known[k] else None)
        tr = _trace(env)
        logp = logp + torch.log(tr)
        env = env.div_(tr.clamp_min(tiny)[None, :, None])
    if hi == last:
        return logp
    right, log_right = _known_factor(tensors[hi + 1:last + 1], full[:, hi + 1:], reverse=True)  # (N, r, D)
    closing = torch.einsum("nrj,jni,nri->n", right, env, right)
    return logp + log_right + torch.log(closing)


def conditional_sample(tensors: Chain, x: torch.Tensor, known: torch.Tensor,
                       generator: torch.Generator | None = None, chunk: int = 256):
    """Sample the unknown sites of each row exactly from p(x_unknown | x_known).

    ``tensors`` right-canonical with unit-norm centre 0; x (N, n) int64 chain order (values at
    unknown sites ignored); known (N, n) bool. Returns the completed x (N, n) and
    ln p(x_unknown | x_known) (N,) float64. Rows are processed in chunks of ``chunk``: memory
    O(chunk · n · D²) for the right environments, time O(N n D³).
    """
    device = tensors[0].device
    u = torch.rand(x.shape[0], x.shape[1], generator=generator, dtype=torch.float64,
                   device=generator_device(generator, device)).to(device)
    parts = [_conditional_block(tensors, x[i:i + chunk], known[i:i + chunk], u[i:i + chunk])
             for i in range(0, x.shape[0], chunk)]
    return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])


def _conditional_block(tensors: Chain, x: torch.Tensor, known: torch.Tensor, u: torch.Tensor):
    dtype, device = tensors[0].dtype, tensors[0].device
    n_samples, n_sites = x.shape
    tiny = torch.finfo(dtype).tiny
    # Right environments: R[k] acts on bond k (right of site k); R[n-1] = 1. Beyond the last known
    # site of every row the chain is right-isometric, so R = identity there.
    last_known = int(known.any(0).nonzero().max().item()) if known.any() else -1
    rights: list[torch.Tensor | None] = [None] * n_sites
    env = None
    for k in range(n_sites - 1, 0, -1):
        if k > last_known:
            continue
        if env is None:
            dim = tensors[k].shape[2]
            env = torch.eye(dim, dtype=dtype, device=device).expand(n_samples, dim, dim)
        env = _env_step_right(env, tensors[k], x[:, k], known[:, k])
        tr = torch.diagonal(env, dim1=1, dim2=2).sum(-1)
        env = env / tr.clamp_min(tiny)[:, None, None]
        rights[k - 1] = env
    out = x.clone()
    logp = torch.zeros(n_samples, dtype=torch.float64, device=device)
    v = torch.ones(n_samples, 1, dtype=dtype, device=device)
    for k, a in enumerate(tensors):
        w = (v @ a.reshape(a.shape[0], -1)).view(n_samples, 2, a.shape[2])
        r = rights[k]
        if r is None:
            weights = (w * w).sum(-1)
        else:
            weights = torch.einsum("nsd,nde,nse->ns", w, r, w)
        weights = weights.clamp_min(0)
        total = weights.sum(-1)
        p1 = (weights[:, 1] / total.clamp_min(tiny)).double()
        drawn = (u[:, k] < p1).long()
        bit = torch.where(known[:, k], x[:, k], drawn)
        out[:, k] = bit
        chosen = torch.where(bit == 1, weights[:, 1], weights[:, 0])
        step = (torch.log(chosen) - torch.log(total)).double()
        logp += torch.where(known[:, k], torch.zeros_like(step), step)
        v = _select(w, bit)
        v = v / torch.linalg.vector_norm(v, dim=1).clamp_min(tiny)[:, None]
    return out, logp


# --------------------------------------------------------------------------------------------------
# Rényi-2 of an arbitrary subset by swap contraction of four copies
# --------------------------------------------------------------------------------------------------
def _pair_transfer(env: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """X ↦ Σ_s A_sᵀ X A_s on the two leading legs of env (Dl, Dl, M) (the trailing M values ride along) → (Dr, Dr, M).

    One (2Dr, Dl) × (Dl, Dl·M) GEMM, then per output row a batched (Dr, Dl) × (Dl, M) product per physical value:
    every product is a large matmul over M, and no copy of env is made."""
    dl, _, m = env.shape
    dr = a.shape[2]
    u = torch.mm(a.reshape(dl, 2 * dr).T, env.reshape(dl, dl * m)).view(2, dr, dl, m)  # u[s, p', q, ·]
    out = torch.bmm(a[:, 0, :].T.expand(dr, dr, dl), u[0])
    return out.baddbmm_(a[:, 1, :].T.expand(dr, dr, dl), u[1])


# The four copies' legs of the swap contraction: ket and bra of replica 1, ket and bra of replica 2. A site off X
# pairs each replica's ket with its own bra; a site on X pairs each ket with the other replica's bra.
_PAIRS_OFF_X, _PAIRS_ON_X = ((0, 1), (2, 3)), ((0, 3), (2, 1))


def _swap_site(env: torch.Tensor, legs: list[int], a: torch.Tensor, in_x: bool) -> tuple[torch.Tensor, list[int]]:
    """Carry the four-copy environment env (legs in the order ``legs``) over a site a (Dl, 2, Dr).

    Each pair of legs that share the physical index goes through :func:`_pair_transfer` once it leads; a pair
    that does not lead is brought to the front by one permutation (D⁴ values), and the pair already in front
    goes first, so a run of sites on one side costs one permutation per site. Returns env and its leg order."""
    pairs = _PAIRS_ON_X if in_x else _PAIRS_OFF_X
    if set(legs[:2]) == set(pairs[1]):
        pairs = pairs[::-1]
    for pair in pairs:
        if set(legs[:2]) != set(pair):
            order = [legs.index(pair[0]), legs.index(pair[1])] + [i for i, leg in enumerate(legs) if leg not in pair]
            env, legs = env.permute(order).contiguous(), [legs[i] for i in order]
        rest = env.shape[2:]
        env = _pair_transfer(env.reshape(env.shape[0], env.shape[1], -1), a).view(a.shape[2], a.shape[2], *rest)
    return env, legs


def renyi2_swap(tensors: Chain, in_x: list[bool]) -> float:
    """S₂ = −ln Tr ρ_X² for the set X of chain positions flagged in ``in_x`` (exact, nats).

    Contracts four copies of the chain (ket₁ bra₁ ket₂ bra₂); on X sites the bras are exchanged.
    Leading and trailing runs of sites on one side contract to identities in canonical form, so
    only the middle segment of m sites is contracted, at cost O(m D⁵) time and O(D⁴) memory.
    """
    n = len(in_x)
    if all(in_x) or not any(in_x):
        return 0.0
    lo = 0
    while lo + 1 < n and in_x[lo + 1] == in_x[0]:
        lo += 1
    start = lo + 1  # first site whose side differs from site 0
    hi = n - 1
    while hi - 1 >= 0 and in_x[hi - 1] == in_x[n - 1]:
        hi -= 1
    stop = max(start, hi - 1)  # last site contracted explicitly
    chain, _ = canonicalize(tensors, start)
    dtype, device = chain[0].dtype, chain[0].device
    d = chain[start].shape[0]
    eye = torch.eye(d, dtype=dtype, device=device)
    # env[a, b, c, e]: ket1, bra1, ket2, bra2. Prefix of type "not X" pairs (ket1,bra1),(ket2,bra2).
    if in_x[0]:
        env = torch.einsum("ae,cb->abce", eye, eye)
    else:
        env = torch.einsum("ab,ce->abce", eye, eye)
    legs = [0, 1, 2, 3]
    log_scale = 0.0
    for k in range(start, stop + 1):
        env, legs = _swap_site(env, legs, chain[k], in_x[k])
        scale = torch.linalg.vector_norm(env)
        log_scale += math.log(scale.item())
        env = env / scale
    env = env.permute([legs.index(leg) for leg in range(4)])
    d = env.shape[0]
    eye = torch.eye(d, dtype=dtype, device=device)
    if in_x[n - 1]:
        closing = torch.einsum("ae,cb->abce", eye, eye)
    else:
        closing = torch.einsum("ab,ce->abce", eye, eye)
    value = (env * closing).sum()
    return -(log_scale + math.log(value.item()))
