"""Two-site sweep training of a TTN: the tree version of Han et al.'s DMRG-like algorithm.

:class:`TreeSweep` is the engine a :class:`~bornmachine.ttn.TTN` names (``sweep_engine = "tree"``); the
truncation (``max_bond``, ``cutoff``) is the engine's, the gradient steps and minibatches are its
:class:`~bornmachine.training.local_update.LocalUpdate`'s.

One sweep is a depth-first Euler tour from the root that crosses every edge between two internal
nodes twice (down, then back up once the subtree below is done; once, with twice the gradient steps, into a
node whose children are both leaves, see below); leaf edges are physical legs. A step
across the edge between node u and its parent w:

1. merges B[a, b, c, p] = Σ_e t_u[a, b, e] t_w[e, c, p] (a, b: u's children; c: w's other child;
   p: w's parent leg), as a (d_a·d_b, d_c·d_p) matrix;
2. takes ``n_steps`` gradient steps B ← (B − η ∂L/∂B)/‖·‖ on the NLL, ∂L/∂B = 2B/‖B‖² − (2/N)
   Σ_i (L_i ⊗ R_i)/ψ_i with L_i = in_a ⊗ in_b, R_i = in_c ⊗ out_w the cached per-sample environments
   (inside vectors of the subtrees, outside vector of w) and ψ_i = L_iᵀ B R_i; ‖B‖² = Z because every
   other tensor is an isometry towards the pair (canonical form). η = ``lr`` unless the relative step
   η‖∂L/∂B‖ would exceed ``max_step``; then η comes from the exact line search of the local NLL along
   −∂L/∂B within that trust region (the local update's rule, as for the MPS). A sample with a tiny ψ_i adds
   a term of norm 1/|ψ_i|: on a large training set a few such rows dominate the gradient of many steps, and
   a step of the full trust-region length then overshoots (on 4000 digits at D = 8 about half the steps,
   which stalled training at ~127 nats); the line search takes the best shorter step instead;
3. splits B by truncated SVD (``max_bond``, relative ``cutoff``; randomized for large merged
   matrices: :func:`bornmachine.linalg.truncated_svd` with ``method="auto"``) and moves the centre across the
   edge: going down, t_w becomes an isometry towards u; going up, t_u an isometry towards w;
4. updates the one environment the tour needs next (O(N D³)): out_u going down, in_u going up.

Two leaf children make L_i the one-hot vector of the 2-bit code 2·x_a + x_b (no pair product). The tour
would come straight back up from such a node u (no edge below it): down to u and up again are two updates of
the same merged tensor with the same environments, so they are one update with 2·``n_steps`` gradient steps
and one split, the centre back at w (the same gradient steps per sweep, one truncation instead of two; half the
internal nodes of an image bisection tree are such pairs). Going up from a node with an internal child, the
first step's amplitudes take t_w·R_i from the outside vector the down step formed (t_w is unchanged in
between), which is then dropped.

The first sweep of a fresh run (``first_sweep``, set by the trainer at epoch 0) descends by gauge moves only:
going down, t_w = Rᵀ Qᵀ (QR of t_wᵀ), t_w ← Qᵀ, t_u ← t_u Rᵀ, no gradient step. Its down steps would optimise
against inside vectors of the random initial tensors below (only the leaves hold data) and allocate bonds on
them; the up steps then find the environments below trained. On mnist5k (4000 / 1000 images, trainer defaults
of then (lr 0.05), 6 sweeps, init seeds 0 / 1) test NLL 121.2 / 119.3 instead of 121.3 / 121.9 at D = 4,
106.2 / 105.8 instead of 107.3 / 106.8 at D = 8, 96.1 instead of 98.4 at D = 16 (seed 0).

The root bond. The root tensor (d0, d1, 1) is a matrix, so the two edges under the root are one bond
of Ψ. Merging one root child with the root alone gives a (d_a·d_b, d_other) matrix that can never
grow that bond past the other edge's size, so when both root children are internal the tour instead
merges child 0, the root matrix and child 1 into one (d_a·d_b, d_c·d_d) matrix, three times per sweep:
centre to child 0, from child 0 to child 1 (root matrix = identity meanwhile), back to the root
(root matrix = diag of the Schmidt values).

Environments are kept for every internal node (inside vectors, N · Σ_v d_v numbers; a leaf's one-hot
vector is made from the rows, uint8, where it is used) and along the current path (outside vectors),
stored in ``env_dtype``. A step also forms per-sample pair
products in_a ⊗ in_b (N · D² numbers, model dtype), which dominate the memory at large D. A step
costs O(N D⁴) with the explicit gradient; for large merged matrices with ``n_steps = 1`` the update
B − η ∂L/∂B is never formed when that is cheaper (few rows per step, e.g. minibatches): the randomized
SVD applies it to test matrices in O(N D² (max_bond + 10)), and ‖∂L/∂B‖ and the line search's amplitudes
come from the environments' Gram matrices, O(N² D).

Under torch.distributed x is this rank's block of the rows (``part``, see
:mod:`bornmachine.distributed`): gradient sums, sample counts, the implicit operator's products and
its Gram norm are summed over ranks, minibatches index the global rows, and the randomized SVD draws
the same test matrices everywhere, so every rank computes the same new tensors.
"""
from __future__ import annotations

import math

import torch

from .. import distributed, linalg
from .engine import SweepEngine
from .local_update import amplitude_weights, divide_by_amplitudes, line_search, most


def merged_gradient_sum(merged: torch.Tensor, left: torch.Tensor, right: torch.Tensor,
                        psi: torch.Tensor | None = None):
    """The sample sum Σ_i left_i right_iᵀ / ψ_i in the NLL gradient w.r.t. the merged matrix B (A, C),
    ψ_i = left_iᵀ B right_i, over the given samples.

    left (A, N), right (C, N), samples along the last axis; ``psi`` (N,) if already known. Samples of zero
    amplitude are left out (:func:`~bornmachine.training.local_update.amplitude_weights`).
    Returns (sum (A, C), number of samples used, number left out (0-d tensors: no host read), ψ (N,),
    the amplitude weights (N,)).
    """
    if psi is None:
        psi = amplitudes(merged, left, right)
    weights = amplitude_weights(psi)
    n_used = torch.count_nonzero(weights)
    return torch.mm(left, torch.mul(right, weights).T), n_used, psi.shape[0] - n_used, psi, weights


def amplitudes(merged: torch.Tensor, left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
    """ψ_i = left_iᵀ B right_i (N,) for B (A, C), left (A, N), right (C, N)."""
    return ((merged.T @ left) * right).sum(0)


def _normalised(v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Columns (samples) of v (d, N) scaled to unit norm, in place; returns (v, the scales 1/‖v_i‖ (1, N))."""
    scales = (v * v).sum(0, keepdim=True).clamp_min_(torch.finfo(v.dtype).tiny).rsqrt_()
    return v.mul_(scales), scales


def _pair_product(va: torch.Tensor, vb: torch.Tensor) -> torch.Tensor:
    """va ⊗ vb per sample: (d_a, N), (d_b, N) → (d_a·d_b, N)."""
    return (va[:, None, :] * vb[None, :, :]).reshape(va.shape[0] * vb.shape[0], va.shape[1])


def weighted_gram_rows(factors, others, block: int = 1024) -> torch.Tensor:
    """h_i = Σ_j w'_j Π_f (f_i·f'_j) (N,) from the factors' Gram matrices, O(N N' Σ d_f): i over the samples of
    ``factors`` (d_f, N), j over those of ``others`` = (w' (N',), factors' (d_f, N')). With L_i = f₀ ⊗ f₁
    and R_i = f₂ ⊗ f₃, h_i = L_iᵀ (Σ_j w'_j L_j R_jᵀ) R_i."""
    w_all, factors_all = others
    out = []
    for start in range(0, factors[0].shape[1], block):
        prod = None
        for f, f_all in zip(factors, factors_all):
            g = f[:, start:start + block].T @ f_all
            prod = g if prod is None else prod * g
        out.append(prod @ w_all)
    return torch.cat(out) if out else w_all.new_zeros(0)


class TreeSweep(SweepEngine):
    """Two-site sweeps of a TTN along a depth-first tour (see the module docstring). During a sweep it
    holds the inside vectors of every node and the outside vectors along the current path.

    The tour recomputes every inside vector from the node's final tensor (its up step), so at the end
    of a sweep they are those of the trained model: the next sweep over the same rows starts from them
    (kept until :meth:`release`, checked against the rows, the tree and every tensor's version). They
    are computed by one expression (:meth:`_inside_of`) both ways, so a sweep that starts from kept
    vectors and one that recomputes them (a resumed run) give bit-identical results."""

    #: Keep the inside vectors from one sweep to the next (engines that rewire the tree do not).
    reuse_inside = True
    #: One update (2·n_steps gradient steps) into a node whose children are both leaves, not down and up.
    fuse_leaf_pairs = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._kept = None  # (key, inside vectors) after a sweep

    def release(self) -> None:
        self._kept = None

    def _inside_key(self, x: torch.Tensor) -> tuple:
        """What the inside vectors depend on: the rows, the tree and every tensor (object and in-place version)."""
        model = self.model
        return (id(x), x.data_ptr(), tuple(x.shape), x._version, id(model.tree), self._env,
                tuple((id(t), t._version) for t in model.tensors))

    def _fresh_inside(self, x: torch.Tensor) -> list:
        """Inside vectors (d_v, N) of every internal node for rows x, bottom-up by :meth:`_inside_of` (a leaf's,
        the one-hot (2, N) of its pixel, is made from the rows where it is used: :meth:`_get`)."""
        tree = self.model.tree
        inside: list = [None] * (2 * tree.n_sites - 1)
        self._inside, self._sites = inside, x.T.contiguous()
        for v in tree.internal:
            if v != tree.root:
                inside[v] = self._inside_of(v, self._below(v)[1])
        return inside

    def _inside_of(self, node: int, left: torch.Tensor) -> torch.Tensor:
        """The stored inside vector of internal node ``node`` from its tensor and left = in_c0 ⊗ in_c1."""
        t = self.model.tensors[node - self.model.tree.n_sites]
        return self._keep(t.reshape(-1, t.shape[2]).T @ left)

    def sweep(self, x: torch.Tensor, part: distributed.Shard) -> int:
        model = self.model
        tree = model.tree
        if len(tree.internal) < 2:
            raise ValueError("two-site tree training needs two adjacent internal nodes (n_sites >= 3)")
        if model.center != tree.root:  # after a sweep the model is canonical at the root already
            model.canonicalize(tree.root)
        self._part, self._sites = part, x.T.contiguous()  # (n, N): a leaf's row is contiguous
        self._dtype = model.dtype
        self._env = self.env_dtype or model.dtype  # storage of the environments; arithmetic in the model's dtype
        kept, self._kept = self._kept, None
        with torch.no_grad():
            if kept is not None and kept[0] == self._inside_key(x):
                self._inside = kept[1]
            else:
                self._fresh_inside(x)
        self._outside = {tree.root: torch.ones(1, x.shape[0], dtype=self._env, device=model.device)}
        self._zero = None  # the most zero-amplitude samples of a step (int or 0-d tensor)
        # node u → (tree, t_w, the scales of outside[u]) left by the down step to u for the up step from u; valid
        # while tree and t_w are the same
        self._descents = {}
        n = tree.n_sites
        r0, r1 = (int(c) for c in tree.children[tree.root])
        if r0 >= n and r1 >= n:
            plan = [("root", "down0"), ("visit", r0), ("root", "across"), ("visit", r1), ("root", "up1")]
        else:
            plan = self._subtree(tree.root)
        self._actions = actions = plan[::-1]  # a stack; a rewiring step edits it
        try:
            with torch.no_grad():
                while actions:
                    kind, v = actions.pop()
                    if kind == "visit":
                        actions += self._subtree(v)[::-1]
                    elif kind == "root":
                        self._root_step(v)
                    elif kind == "pair":
                        self._step(v, down=False, n_steps=2 * self.update.n_steps)
                    else:
                        self._step(v, down=(kind == "down"))
            model.center = tree.root
            if self.reuse_inside:
                self._kept = (self._inside_key(x), self._inside)
        finally:
            self._inside = self._outside = self._sites = self._descents = None
        return 0 if self._zero is None else int(self._zero)

    # environments -----------------------------------------------------------------------------------
    def _get(self, store, v: int) -> torch.Tensor:
        """The stored vector (d_v, N) of node v in the model's dtype; a leaf's inside vector from the rows
        (no (n, 2, N) copy of the data in floats)."""
        if store is self._inside and v < self.model.tree.n_sites:
            return self._one_hot(self._sites[v], 2)
        return self._in_model_dtype(store[v])

    def _in_model_dtype(self, vec: torch.Tensor) -> torch.Tensor:
        return vec if vec.dtype == self._dtype else vec.to(self._dtype)

    def _keep(self, v: torch.Tensor, scales: bool = False):
        """v (d, N) with unit columns, stored in the env dtype (and the scales 1/‖v_i‖ (1, N) if ``scales``)."""
        v, inverse_norms = _normalised(v)
        v = v if v.dtype == self._env else v.to(self._env)
        return (v, inverse_norms) if scales else v

    def _children(self, node: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The inside vectors (d, N) of a node's two children."""
        tree = self.model.tree
        return self._get(self._inside, int(tree.children[node, 0])), self._get(self._inside, int(tree.children[node, 1]))

    def _one_hot(self, codes: torch.Tensor, size: int) -> torch.Tensor:
        """(size, N) one-hot columns of integer codes (N,) in the model's dtype."""
        out = torch.zeros(size, codes.shape[0], dtype=self._dtype, device=self.model.device)
        return out.scatter_(0, codes.long()[None], 1.0)

    def _below(self, node: int) -> tuple[tuple, torch.Tensor]:
        """(factors, left): left = in_c0 ⊗ in_c1 (d_c0·d_c1, N) of a node's two children and the factors whose
        per-sample Kronecker product it is. Two leaf children: left is the one-hot of the code 2·x_c0 + x_c1,
        its own one factor (no pair product)."""
        tree = self.model.tree
        c0, c1 = int(tree.children[node, 0]), int(tree.children[node, 1])
        if c0 < tree.n_sites and c1 < tree.n_sites:
            left = self._one_hot(torch.add(self._sites[c1], self._sites[c0], alpha=2), 4)
            return (left,), left
        factors = self._children(node)
        return factors, _pair_product(*factors)

    def _subtree(self, v: int) -> list:
        """Actions for the Euler tour below internal node v, in execution order."""
        tree, out = self.model.tree, []
        for s in (0, 1):
            child = int(tree.children[v, s])
            if child >= tree.n_sites and self.fuse_leaf_pairs and tree.height[child] == 1:
                out.append(("pair", child))
            elif child >= tree.n_sites:
                out += [("down", child), ("visit", child), ("up", child)]
        return out

    # steps --------------------------------------------------------------------------------------------
    def _update(self, umat, vmat, left, right, factors, absorb: str | None, image: torch.Tensor | None = None,
                n_steps: int | None = None):
        """``n_steps`` (default: the update's) gradient steps on B = umat @ vmat, then its truncated split B ≈ X Y
        (in the first sweep a step down, ``absorb="left"``, is the exact gauge move B = (umat Rᵀ) Qᵀ alone):
        ``absorb="left"``: Y has orthonormal rows and X the (unit-norm) weight; ``"right"``: X orthonormal columns,
        Y the weight;
        None: (U, s, Vh) with s normalised. On the CPU a matrix with both sides ≥ 32 below the randomized
        SVD's sizes whose bond is at ``max_bond`` is split by :func:`~bornmachine.linalg.subspace_split` started
        from the isometry side's previous space (umat's columns or vmat's rows: one step moves it little), 2–4×
        faster than an eigendecomposition (a bond still growing takes the exact split, which finds its new
        directions best); another small explicit matrix whose isometry side is its smaller side by
        :func:`~bornmachine.linalg.truncated_split` (an eigendecomposition of the smaller Gram matrix, about
        twice as fast as an SVD there). ``image``: vmat @ right (e, N) if known (the first step's
        amplitudes then cost one product less)."""
        if absorb == "left" and self.first_sweep:  # a gauge move: B = umat (Q R)ᵀ = (umat Rᵀ) Qᵀ, exact
            q, r = torch.linalg.qr(vmat.T)
            x_ = torch.mm(umat, r.T)
            return x_.div_(torch.linalg.vector_norm(x_).clamp_min_(torch.finfo(x_.dtype).tiny)), q.T
        if (n_steps in (None, self.update.n_steps)
                and self._implicit_cheaper(umat.shape[0], vmat.shape[1], sum(f.shape[0] for f in factors),
                                           self._part.total)):
            uu, s, vh, n_zero = self._implicit_step_svd(umat, vmat, left, right, factors)
            self._zero = most(self._zero, n_zero)
        else:
            merged, n_zero = self._optimise(umat, vmat, left, right, image, n_steps)
            self._zero = most(self._zero, n_zero)
            m, k = merged.shape
            randomized = linalg.randomized_pays(m, k, self.max_bond)
            if (not randomized and merged.device.type == "cpu" and umat.shape[1] >= self.max_bond
                    and linalg.subspace_pays(m, k, absorb, self.max_bond)):
                start = umat if absorb == "right" else vmat.T  # the isometry side's space before the step
                return linalg.subspace_split(merged, start, self.max_bond, self.cutoff, absorb,
                                             generator=self.update.generator)
            gram_side_smaller = (absorb == "right" and m <= k) or (absorb == "left" and k <= m)
            if gram_side_smaller and not randomized:
                return linalg.truncated_split(merged, self.max_bond, self.cutoff, absorb)
            uu, s, vh, _ = linalg.truncated_svd(merged, self.max_bond, self.cutoff, method="auto",
                                                generator=self.update.generator, start=vmat.T)
        s = s / torch.linalg.vector_norm(s)
        if absorb == "left":
            return uu * s[None, :], vh
        if absorb == "right":
            return uu, s[:, None] * vh
        return uu, s, vh

    def _step(self, u: int, down: bool, n_steps: int | None = None) -> None:
        """Merge internal node u with its parent w (``n_steps`` gradient steps, default the update's); the centre
        moves to u (down) or w (up)."""
        tree, t = self.model.tree, self.model.tensors
        n = tree.n_sites
        w = int(tree.parent[u])
        j = int(tree.slot[u])
        o = int(tree.children[w, 1 - j])
        tu = t[u - n]
        tw = t[w - n] if j == 0 else t[w - n].permute(1, 0, 2)  # (e, c, p)
        a, b, e = tu.shape
        _, c, p = tw.shape
        inside, outside = self._inside, self._outside
        image = None  # vmat @ right (e, N): the down step's outside vector of u, unnormalised
        if not down:
            descent, outgoing = self._descents.pop(u, None), outside.pop(u, None)
            if descent is not None and descent[0] is tree and descent[1] is t[w - n]:
                image = self._in_model_dtype(outgoing) / descent[2]
        below, left = self._below(u)
        other = (self._get(inside, o), self._get(outside, w))
        factors, right = below + other, _pair_product(*other)
        x_, y_ = self._update(tu.reshape(a * b, e), tw.reshape(e, c * p), left, right, factors,
                              absorb="left" if down else "right", image=image, n_steps=n_steps)
        r = x_.shape[1]
        new_u, new_w = x_.reshape(a, b, r).contiguous(), y_.reshape(r, c, p)
        t[u - n] = new_u
        t[w - n] = new_w.contiguous() if j == 0 else new_w.permute(1, 0, 2).contiguous()
        if down and tree.height[u] > 1:  # an internal child: Y = Vh is the isometry towards u
            outside[u], scales = self._keep(torch.mm(y_, right), scales=True)
            self._descents[u] = (tree, t[w - n], scales)
        elif not down:  # X = U is the isometry towards w
            inside[u] = self._inside_of(u, left)

    def _root_step(self, mode: str) -> None:
        """The root bond: merge child 0, the root matrix R and child 1 (both internal) into one
        (d_a·d_b, d_c·d_d) matrix, so the bond can grow beyond either root edge's current size.
        ``mode``: "down0" (centre to child 0), "across" (child 0 → child 1), "up1" (child 1 → root)."""
        tree, t = self.model.tree, self.model.tensors
        n = tree.n_sites
        inside, outside = self._inside, self._outside
        r0, r1 = int(tree.children[tree.root, 0]), int(tree.children[tree.root, 1])
        t0, t1, root = t[r0 - n], t[r1 - n], t[tree.root - n]
        a, b, d0 = t0.shape
        c, d, d1 = t1.shape
        factors = self._children(r0) + self._children(r1)
        left, right = _pair_product(*factors[:2]), _pair_product(*factors[2:])
        vmat = root[:, :, 0] @ t1.reshape(c * d, d1).T  # (d0, c·d)
        if mode == "up1":  # root matrix = diag of the Schmidt values between two isometries
            uu, s, vh = self._update(t0.reshape(a * b, d0), vmat, left, right, factors, absorb=None)
            t[r0 - n], t[tree.root - n] = uu.reshape(a, b, -1).contiguous(), torch.diag(s).unsqueeze(2)
            t[r1 - n] = vh.T.reshape(c, d, -1).contiguous()
            inside[r0] = self._inside_of(r0, left)
            inside[r1] = self._inside_of(r1, right)
            return
        x_, y_ = self._update(t0.reshape(a * b, d0), vmat, left, right, factors,
                              absorb="left" if mode == "down0" else "right")
        r = x_.shape[1]
        t[r0 - n], t[tree.root - n] = x_.reshape(a, b, r).contiguous(), torch.eye(r, dtype=self._dtype,
                                                                                    device=self.model.device).unsqueeze(2)
        t[r1 - n] = y_.T.reshape(c, d, r).contiguous()
        if mode == "down0":
            outside[r0] = self._keep(y_ @ right)
        else:  # "across"
            inside[r0] = self._inside_of(r0, left)
            outside[r1] = inside[r0]

    # the local update, explicit and implicit -----------------------------------------------------------
    def _optimise(self, umat, vmat, left, right, image=None, n_steps: int | None = None):
        """The local update's steps (``n_steps``, default its own) on B = umat @ vmat (normalised); left, right:
        this rank's environments (part.size, ·). The first step's amplitudes come factored, O(N D³)."""
        merged = torch.mm(umat, vmat)
        scale = torch.linalg.vector_norm(merged)
        merged = merged.div_(scale)

        def rows(idx):
            return (left, right) if idx is None else (left[:, idx], right[:, idx])

        def sample_sum_of(merged, idx, step):
            sub_left, sub_right = rows(idx)
            if step == 0:
                product = torch.mm(vmat, sub_right) if image is None else image if idx is None else image[:, idx]
                psi = torch.mm(umat.T, sub_left).mul_(product).sum(0).div_(scale)
            else:
                psi = None
            return merged_gradient_sum(merged, sub_left, sub_right, psi)

        def amplitudes_of(direction, idx):
            return amplitudes(direction, *rows(idx))

        return self.update.optimise(merged, sample_sum_of, amplitudes_of, self._part, left.device, "a tree edge",
                                    n_steps)

    def _implicit_cheaper(self, m: int, k: int, factor_dims: int, n_samples: int) -> bool:
        """One gradient step on a large merged (m, k) matrix: is the implicit (never formed) update cheaper?

        Forming the gradient costs N·m·k; the randomized SVD of the implicit update 4 products of
        N·(m + k)·r (r = max_bond + 10, one power iteration) plus the Gram rows of the step size, N²·(Σ d_f + 2)
        for factors of total dimension ``factor_dims`` (N: the rows of a step, all ranks)."""
        update = self.update
        if update.n_steps != 1 or not linalg.randomized_pays(m, k, self.max_bond):
            return False
        n = n_samples if update.batch_size is None else min(n_samples, update.batch_size)
        r = self.max_bond + 10
        return 4 * n * (m + k) * r + n * n * (factor_dims + 2) < n * m * k + 4 * m * k * r

    def _implicit_step_svd(self, umat, vmat, left, right, factors):
        """One gradient step B' = B − η ∂L/∂B and its truncated SVD without forming the (m, k) matrices.

        B = umat @ vmat / ‖·‖ and ∂L/∂B = 2B − (2/N) leftᵀ diag(1/ψ) right with left = f₀ ⊗ f₁ and
        right = f₂ ⊗ f₃ (``factors``), so B' = (1 − 2η) B + (2η/N) leftᵀ diag(1/ψ) right is applied to
        test matrices in O(N (m + k) r). ‖∂L/∂B‖² = (4/N²)‖leftᵀ diag(1/ψ) right‖² − 4 comes from the
        factors' Gram matrices (O(N² Σ d)), for the step size η. The overall scale of B' is irrelevant:
        the spectrum is normalised after the cut. Under torch.distributed the rows are this rank's; the
        sums over samples are completed across ranks (the Gram norm pairs this rank's rows with the
        gathered rows of all ranks).
        """
        idx = self.update.minibatch(self._part, left.device)
        if idx is not None:
            left, right, factors = left[:, idx], right[:, idx], tuple(f[:, idx] for f in factors)
        norm = torch.sqrt(((umat.T @ umat) * (vmat @ vmat.T)).sum())
        umat = umat / norm
        psi = ((umat.T @ left) * (vmat @ right)).sum(0)
        w, n_zero_local = divide_by_amplitudes(torch.ones_like(psi)[:, None], psi)
        w = w[:, 0]
        n_used, n_zero = distributed.sum_ints(int(psi.shape[0]) - n_zero_local, n_zero_local)
        n = max(n_used, 1)
        # h_i = L_iᵀ S R_i with S = Σ_j w_j L_j R_jᵀ over all ranks' rows: ‖S‖² = Σ_i w_i h_i, and along
        # G = 2B − (2/n) S the amplitudes move by g_i = L_iᵀ G R_i = 2ψ_i − (2/n) h_i (for the line search)
        h = weighted_gram_rows(factors, (distributed.all_gather_rows(w),
                                         tuple(distributed.all_gather_rows(f.T).T for f in factors)))
        gram = (w * h).sum()
        distributed.all_reduce_sum(gram)
        grad_norm2 = max(float(4.0 / n ** 2 * gram - 4.0), 0.0)  # ‖G‖² = 4 − 8⟨B, S⟩/n + 4‖S‖²/n², ⟨B, S⟩ = n

        def search(eta_max):  # ⟨B, G⟩ = 2‖B‖² − (2/n) Σ_i w_i ψ_i = 0
            return line_search(psi, 2.0 * psi - (2.0 / n) * h, n_used, (1.0, 0.0, grad_norm2), eta_max)

        eta = self.update.step_size(math.sqrt(grad_norm2), search)
        c_b, c_g = 1.0 - 2.0 * eta, 2.0 * eta / n
        w = w[:, None]

        def summed(t):
            distributed.all_reduce_sum(t)
            return t

        def matmul(om):
            return c_b * (umat @ (vmat @ om)) + c_g * summed(left @ (w * (right.T @ om)))

        def rmatmul(q):
            return c_b * (vmat.T @ (umat.T @ q)) + c_g * summed(right @ (w * (left.T @ q)))

        uu, s, vh = linalg.randomized_svd(matmul, rmatmul, (umat.shape[0], vmat.shape[1]), self.max_bond,
                                          self.cutoff, dtype=umat.dtype, device=umat.device,
                                          generator=self.update.generator, start=vmat.T)
        return uu, s, vh, n_zero
