"""Two-site sweep training of a TTN: the tree version of Han et al.'s DMRG-like algorithm.

:class:`~bornmachine.training.SweepTrainer` dispatches here when its model is a
:class:`~bornmachine.ttn.TTN`; the hyper-parameters (``max_bond``, ``cutoff``, ``lr``, ``n_steps``,
``batch_size``) and the minibatch generator are the trainer's.

One sweep is a depth-first Euler tour from the root that crosses every edge between two internal
nodes twice (down, then back up once the subtree below is done); leaf edges are physical legs. A step
across the edge between node u and its parent w:

1. merges B[a, b, c, p] = Σ_e t_u[a, b, e] t_w[e, c, p] (a, b: u's children; c: w's other child;
   p: w's parent leg), as a (d_a·d_b, d_c·d_p) matrix;
2. takes ``n_steps`` gradient steps B ← (B − η ∂L/∂B)/‖·‖ on the NLL, ∂L/∂B = 2B/‖B‖² − (2/N)
   Σ_i (L_i ⊗ R_i)/ψ_i with L_i = in_a ⊗ in_b, R_i = in_c ⊗ out_w the cached per-sample environments
   (inside vectors of the subtrees, outside vector of w) and ψ_i = L_iᵀ B R_i; ‖B‖² = Z because every
   other tensor is an isometry towards the pair (canonical form). η = ``lr`` unless the relative step
   η‖∂L/∂B‖ would exceed the trainer's ``max_step`` (trust region, as for the MPS). A sample with a
   tiny ψ_i adds a term of norm 1/|ψ_i|, and merged tree tensors have D⁴ entries, so typical |ψ_i| are
   much smaller than in a chain: trees want a tighter region (max_step ≈ 0.3 on MNIST; see the
   benchmarks) than the chain;
3. splits B by truncated SVD (``max_bond``, relative ``cutoff``; randomized for large merged
   matrices, see :func:`bornmachine.tree_kernels.truncated_svd`) and moves the centre across the
   edge: going down, t_w becomes an isometry towards u; going up, t_u an isometry towards w;
4. updates the one environment the tour needs next (O(N D³)): out_u going down, in_u going up.

The root bond. The root tensor (d0, d1, 1) is a matrix, so the two edges under the root are one bond
of Ψ. Merging one root child with the root alone gives a (d_a·d_b, d_other) matrix that can never
grow that bond past the other edge's size, so when both root children are internal the tour instead
merges child 0, the root matrix and child 1 into one (d_a·d_b, d_c·d_d) matrix, three times per sweep:
centre to child 0, from child 0 to child 1 (root matrix = identity meanwhile), back to the root
(root matrix = diag of the Schmidt values).

Environments are kept for every node (inside vectors, N · Σ_v d_v numbers) and along the current
path (outside vectors), stored in the trainer's ``env_dtype``. A step also forms per-sample pair
products in_a ⊗ in_b (N · D² numbers, model dtype), which dominate the memory at large D. A step
costs O(N D⁴) with the explicit gradient; for large merged matrices with ``n_steps = 1`` the update
B − η ∂L/∂B is never formed: the randomized SVD applies it to test matrices in
O(N D² (max_bond + 10)) and ‖∂L/∂B‖ comes from the environments' Gram matrices.

Under torch.distributed x is this rank's block of the rows (``part``, see
:mod:`bornmachine.distributed`): gradient sums, sample counts, the implicit operator's products and
its Gram norm are summed over ranks, minibatches index the global rows, and the randomized SVD draws
the same test matrices everywhere, so every rank computes the same new tensors.
"""
from __future__ import annotations

import math

import torch

from . import distributed, tree_kernels
from .training import nll_gradient


def merged_gradient_sum(merged: torch.Tensor, left: torch.Tensor, right: torch.Tensor,
                        psi: torch.Tensor | None = None):
    """The sample sum Σ_i left_i right_iᵀ / ψ_i in the NLL gradient w.r.t. the merged matrix B (A, C),
    ψ_i = left_iᵀ B right_i, over the given samples.

    left (N, A), right (N, C); ``psi`` (N,) if already known. Samples with ψ_i = 0 are left out.
    Returns (sum (A, C), number of samples used, number left out); see
    :func:`bornmachine.training.nll_gradient` for ∂L/∂B.
    """
    if psi is None:
        psi = ((left @ merged) * right).sum(1)
    ok = psi != 0
    n_used = int(ok.sum())
    weighted = right * torch.where(ok, 1.0 / torch.where(ok, psi, torch.ones_like(psi)), torch.zeros_like(psi))[:, None]
    return left.T @ weighted, n_used, int(psi.shape[0]) - n_used


def _normalised(v: torch.Tensor) -> torch.Tensor:
    return v / torch.linalg.vector_norm(v, dim=1, keepdim=True).clamp_min(torch.finfo(v.dtype).tiny)


def tree_sweep(trainer, x: torch.Tensor, part: distributed.Shard) -> int:
    """One two-site sweep of ``trainer.model`` (a TTN, changed in place) over data x (part.size, n)
    int64, this rank's rows of the ``part.total`` training rows.

    Returns the largest number of zero-amplitude samples met in one gradient step (over all ranks).
    """
    model = trainer.model
    tree = model.tree
    n = tree.n_sites
    if len(tree.internal) < 2:
        raise ValueError("two-site tree training needs two adjacent internal nodes (n_sites >= 3)")
    model.canonicalize(tree.root)
    t = model.tensors
    n_samples = x.shape[0]
    dtype, device = model.dtype, model.device
    env = trainer.env_dtype or dtype  # storage of the environments; arithmetic in the model's dtype
    with torch.no_grad():
        inside, _ = tree_kernels.inside_vectors(tree, t, x)
    inside = [v.to(env) for v in inside]
    outside = {tree.root: torch.ones(n_samples, 1, dtype=env, device=device)}
    zero = 0

    def get(store, v: int) -> torch.Tensor:
        return store[v].to(dtype)

    def keep(v: torch.Tensor) -> torch.Tensor:
        return _normalised(v).to(env)

    def pair(node: int) -> torch.Tensor:
        """in_{child0} ⊗ in_{child1} of a node, (N, d_c0·d_c1)."""
        va, vb = get(inside, int(tree.children[node, 0])), get(inside, int(tree.children[node, 1]))
        return (va[:, :, None] * vb[:, None, :]).reshape(n_samples, -1)

    def update(umat, vmat, left, right, factors):
        nonlocal zero
        if _implicit_cheaper(trainer, umat.shape[0], vmat.shape[1], part.total):
            uu, s, vh, n_zero = _implicit_step_svd(trainer, umat, vmat, left, right, factors, part)
        else:
            merged, n_zero = _optimise(trainer, umat, vmat, left, right, part)
            uu, s, vh, _ = tree_kernels.truncated_svd(merged, trainer.max_bond, trainer.cutoff,
                                                       generator=trainer.generator, start=vmat.T)
        zero = max(zero, n_zero)
        return uu, s / torch.linalg.vector_norm(s), vh

    def step(u: int, down: bool) -> None:
        """Merge internal node u with its parent w; the centre moves to u (down) or w (up)."""
        w = int(tree.parent[u])
        j = int(tree.slot[u])
        o = int(tree.children[w, 1 - j])
        tu = t[u - n]
        tw = t[w - n] if j == 0 else t[w - n].permute(1, 0, 2)  # (e, c, p)
        a, b, e = tu.shape
        _, c, p = tw.shape
        left = pair(u)
        right = (get(inside, o)[:, :, None] * get(outside, w)[:, None, :]).reshape(n_samples, c * p)
        factors = (get(inside, int(tree.children[u, 0])), get(inside, int(tree.children[u, 1])), get(inside, o),
                   get(outside, w))
        uu, s, vh = update(tu.reshape(a * b, e), tw.reshape(e, c * p), left, right, factors)
        r = s.shape[0]
        if down:
            new_u, new_w = (uu * s[None, :]).reshape(a, b, r), vh.reshape(r, c, p)
            outside[u] = keep(right @ vh.T)
        else:
            new_u, new_w = uu.reshape(a, b, r), (s[:, None] * vh).reshape(r, c, p)
            inside[u] = keep(left @ uu)
        t[u - n] = new_u
        t[w - n] = new_w if j == 0 else new_w.permute(1, 0, 2).contiguous()

    def root_step(mode: str) -> None:
        """The root bond: merge child 0, the root matrix R and child 1 (both internal) into one
        (d_a·d_b, d_c·d_d) matrix, so the bond can grow beyond either root edge's current size.
        ``mode``: "down0" (centre to child 0), "across" (child 0 → child 1), "up1" (child 1 → root)."""
        r0, r1 = int(tree.children[tree.root, 0]), int(tree.children[tree.root, 1])
        t0, t1, root = t[r0 - n], t[r1 - n], t[tree.root - n]
        a, b, d0 = t0.shape
        c, d, d1 = t1.shape
        left, right = pair(r0), pair(r1)
        vmat = root[:, :, 0] @ t1.reshape(c * d, d1).T  # (d0, c·d)
        factors = tuple(get(inside, int(tree.children[v, i])) for v in (r0, r1) for i in (0, 1))
        uu, s, vh = update(t0.reshape(a * b, d0), vmat, left, right, factors)
        r = s.shape[0]
        eye = torch.eye(r, dtype=dtype, device=device).unsqueeze(2)
        if mode == "down0":
            t[r0 - n], t[tree.root - n] = (uu * s[None, :]).reshape(a, b, r), eye
            t[r1 - n] = vh.T.reshape(c, d, r)
            outside[r0] = keep(right @ vh.T)
        elif mode == "across":
            t[r0 - n], t[tree.root - n] = uu.reshape(a, b, r), eye
            t[r1 - n] = (s[:, None] * vh).T.reshape(c, d, r)
            inside[r0] = keep(left @ uu)
            outside[r1] = inside[r0]
        else:
            t[r0 - n], t[tree.root - n] = uu.reshape(a, b, r), torch.diag(s).unsqueeze(2)
            t[r1 - n] = vh.T.reshape(c, d, r)
            inside[r0] = keep(left @ uu)
            inside[r1] = keep(right @ vh.T)

    def subtree(v: int) -> list:
        """Actions for the Euler tour below internal node v, in execution order."""
        out = []
        for s in (0, 1):
            child = int(tree.children[v, s])
            if child >= n:
                out += [("down", child), ("visit", child), ("up", child)]
        return out

    r0, r1 = (int(c) for c in tree.children[tree.root])
    if r0 >= n and r1 >= n:
        plan = [("root", "down0"), ("visit", r0), ("root", "across"), ("visit", r1), ("root", "up1")]
    else:
        plan = subtree(tree.root)
    actions = plan[::-1]
    with torch.no_grad():
        while actions:
            kind, v = actions.pop()
            if kind == "visit":
                actions += subtree(v)[::-1]
            elif kind == "root":
                root_step(v)
            else:
                step(v, down=(kind == "down"))
    model.center = tree.root
    return zero


def _step_size(trainer, grad_norm: float) -> float:
    """``trainer.lr``, reduced so that the relative step lr·‖∂L/∂B‖ (‖B‖ = 1) is at most ``trainer.max_step``."""
    lr, max_step = trainer.lr, getattr(trainer, "max_step", None)
    return lr if max_step is None or lr * grad_norm <= max_step else max_step / grad_norm


def _optimise(trainer, umat, vmat, left, right, part):
    """``trainer.n_steps`` normalised gradient steps on B = umat @ vmat (minibatches as in the MPS);
    left, right: this rank's environments (part.size, ·)."""
    merged = umat @ vmat
    scale = torch.linalg.vector_norm(merged)
    merged = merged / scale
    zero = 0
    for k in range(trainer.n_steps):
        idx = _batch(trainer, part, left.device)
        sub_left, sub_right = (left, right) if idx is None else (left[idx], right[idx])
        psi = ((sub_left @ umat) * (sub_right @ vmat.T)).sum(1) / scale if k == 0 else None  # O(N D³) factored
        terms = merged_gradient_sum(merged, sub_left, sub_right, psi)
        sample_sum, (n_used, n_zero) = distributed.sum_with_counts(*terms)  # complete the sums over ranks
        grad = nll_gradient(merged, sample_sum, n_used)
        zero = max(zero, n_zero)
        merged = merged - _step_size(trainer, float(torch.linalg.vector_norm(grad))) * grad
        if not torch.isfinite(merged).all():
            raise FloatingPointError(f"non-finite merged tensor after a gradient step; lower lr (now {trainer.lr}) "
                                     "or max_step, or use float64")
        merged = merged / torch.linalg.vector_norm(merged)
    return merged, zero


def _batch(trainer, part, device):
    """This rank's local row indices of a minibatch of all part.total rows (drawn from the trainer's
    generator, alike on every rank), or None for the full batch."""
    if trainer.batch_size is None or trainer.batch_size >= part.total:
        return None
    return part.local(torch.randperm(part.total, generator=trainer.generator)[: trainer.batch_size]).to(device)


def _implicit_cheaper(trainer, m: int, k: int, n_samples: int) -> bool:
    """One gradient step on a large merged matrix: is the implicit (never formed) update cheaper?

    Forming the gradient costs N·m·k; the randomized SVD of the implicit update 4 products of
    N·(m + k)·r (r = max_bond + 10, one power iteration)."""
    if trainer.n_steps != 1 or not tree_kernels.use_randomized(m, k, trainer.max_bond):
        return False
    n = n_samples if trainer.batch_size is None else min(n_samples, trainer.batch_size)
    r = trainer.max_bond + 10
    return 4 * n * (m + k) * r < n * m * k + 4 * m * k * r


def _weighted_gram_norm2(w: torch.Tensor, factors, others, block: int = 1024) -> torch.Tensor:
    """Σ_ij w_i w_j Π_f (f_i·f_j) from the factors' Gram matrices, O(N N' Σ d_f): i over the rows of
    w (N,) and ``factors`` (N, d_f), j over the rows of ``others`` = (w' (N',), factors' (N', d_f)).
    With others = (w, factors) this is ‖Σ_i w_i ⊗_f f_i‖²."""
    w_all, factors_all = others
    total = w.new_zeros(())
    for start in range(0, w.shape[0], block):
        prod = None
        for f, f_all in zip(factors, factors_all):
            g = f[start:start + block] @ f_all.T
            prod = g if prod is None else prod * g
        total = total + (w[start:start + block, None] * prod * w_all[None, :]).sum()
    return total


def _implicit_step_svd(trainer, umat, vmat, left, right, factors, part):
    """One gradient step B' = B − η ∂L/∂B and its truncated SVD without forming the (m, k) matrices.

    B = umat @ vmat / ‖·‖ and ∂L/∂B = 2B − (2/N) leftᵀ diag(1/ψ) right with left = f₀ ⊗ f₁ and
    right = f₂ ⊗ f₃ (``factors``), so B' = (1 − 2η) B + (2η/N) leftᵀ diag(1/ψ) right is applied to
    test matrices in O(N (m + k) r). ‖∂L/∂B‖² = (4/N²)‖leftᵀ diag(1/ψ) right‖² − 4 comes from the
    factors' Gram matrices (O(N² Σ d)), for the step size η (see :func:`_step_size`). The overall scale
    of B' is irrelevant: the spectrum is normalised after the cut. Under torch.distributed the rows
    are this rank's (``part``); the sums over samples are completed across ranks (the Gram norm pairs
    this rank's rows with the gathered rows of all ranks).
    """
    idx = _batch(trainer, part, left.device)
    if idx is not None:
        left, right, factors = left[idx], right[idx], tuple(f[idx] for f in factors)
    norm = torch.sqrt(((umat.T @ umat) * (vmat @ vmat.T)).sum())
    umat = umat / norm
    psi = ((left @ umat) * (right @ vmat.T)).sum(1)
    ok = psi != 0
    n_used, n_zero = distributed.sum_ints(int(ok.sum()), int(psi.shape[0] - ok.sum()))
    n = max(n_used, 1)
    w = torch.where(ok, 1.0 / torch.where(ok, psi, torch.ones_like(psi)), torch.zeros_like(psi))
    gram = _weighted_gram_norm2(w, factors, (distributed.all_gather_rows(w),
                                             tuple(distributed.all_gather_rows(f) for f in factors)))
    distributed.all_reduce_sum(gram)
    grad_norm2 = 4.0 / n ** 2 * gram - 4.0
    eta = _step_size(trainer, math.sqrt(max(float(grad_norm2), 0.0)))
    c_b, c_g = 1.0 - 2.0 * eta, 2.0 * eta / n
    w = w[:, None]

    def summed(t):
        distributed.all_reduce_sum(t)
        return t

    def matmul(om):
        return c_b * (umat @ (vmat @ om)) + c_g * summed(left.T @ (w * (right @ om)))

    def rmatmul(q):
        return c_b * (vmat.T @ (umat.T @ q)) + c_g * summed(right.T @ (w * (left @ q)))

    uu, s, vh = tree_kernels.randomized_svd(matmul, rmatmul, (umat.shape[0], vmat.shape[1]), trainer.max_bond,
                                            trainer.cutoff, dtype=umat.dtype, device=umat.device,
                                            generator=trainer.generator, start=vmat.T)
    return uu, s, vh, n_zero
