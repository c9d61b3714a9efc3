"""Adaptive tree: two-site tree sweeps that rewire the tree (Harada, Okubo, Kawashima 2024, arXiv:2408.10669).

:class:`RestructuringTreeSweep` is the :class:`~bornmachine.training.tree_sweep.TreeSweep` that
``SweepTrainer(ttn, restructure="nll" | "mi")`` runs. At a step across the edge between node u and its
parent w the merged tensor B[a, b, c, p] (after the gradient steps) has four branches: a, b (u's
children), c (w's other child), p (w's parent leg). Each of the three pairings {a,b}|{c,p} (the current
tree), {a,c}|{b,p} and {b,c}|{a,p} is split by truncated SVD (``max_bond``, ``cutoff``) and scored; the
lowest score wins, but another pairing replaces the current one only when lower by more than 1e-12
relative (ties never churn):

* ``"nll"``: the local NLL of the training rows after the truncated split, −(2/N) Σ_i ln|ψ_i| + ln Σ s²
  (exact: every other tensor is an isometry towards the pair; ψ_i from the environment vectors paired
  accordingly, |ψ_i| floored at the zero-amplitude floor);
* ``"mi"``: the von Neumann entropy −Σ q ln q, q = s²/Σ s², of the new bond (nats): the bond's share of
  the information between the two sides.

A rewiring makes the chosen pair u's children (legs in that order) and the remaining branch w's other child;
the inside/outside vector the tour needs next is formed for the new children. The model gets the new
:class:`~bornmachine.tree.Tree` at once, so tree and tensors always agree.

The tour stays a depth-first tour of the current tree (child 0's subtree before child 1's), with no subtree
lost or visited twice: a step rewires going down when u is w's child 0 (the planned visit of w's other
child becomes one of the new other child), going up when u is w's child 1 (everything below w is done),
and both ways when w's other child is a leaf (a leaf needs no visit). Going down, u becomes w's child 0
and the new other child, if internal, is visited next, after u.
The other crossing of each edge does not rewire. The root step (both root children internal, a matrix
between them) rewires going down to child 0 and coming back up from child 1, so the root's split of the
sites can change too. A rewiring step takes the explicit gradient step (never the implicit update of a large
merged matrix) and the exact or randomized SVD of :func:`~bornmachine.linalg.truncated_svd`.
"""
from __future__ import annotations

import math

import torch

from .. import distributed, linalg
from ..tree import Tree
from .local_update import most, zero_amplitude_floor
from .tree_sweep import TreeSweep, _pair_product

#: Criteria of ``SweepTrainer(restructure=)``.
CRITERIA = ("nll", "mi")
#: The pairings of B[a, b, c, p] as (u's first child, u's second child, w's other child) legs; 0 = current.
PAIRINGS = ((0, 1, 2), (0, 2, 1), (1, 2, 0))


def split_pairing(merged: torch.Tensor, pairing: tuple[int, int, int], max_bond: int, cutoff: float,
                  generator: torch.Generator | None = None):
    """Truncated SVD of B (d_a, d_b, d_c, d_p) as the (d_x·d_y, d_z·d_p) matrix of ``pairing`` = (x, y, z).

    Returns U (d_x·d_y, r), s (r,) and Vh (r, d_z·d_p), s not normalised."""
    x, y, z = pairing
    dims = merged.shape
    mat = merged.permute(x, y, z, 3).reshape(dims[x] * dims[y], dims[z] * dims[3])
    uu, s, vh, _ = linalg.truncated_svd(mat, max_bond, cutoff, method="auto", generator=generator)
    return uu, s, vh


def bond_entropy(s: torch.Tensor) -> float:
    """Von Neumann entropy −Σ q ln q (nats) of q = s²/Σ s² for singular values s (r,)."""
    q = s.double() ** 2
    q = q[q > 0] / q.sum()
    return float(-(q * q.log()).sum())


def local_nll(uu: torch.Tensor, s: torch.Tensor, vh: torch.Tensor, left: torch.Tensor, right: torch.Tensor,
              n_total: int) -> float:
    """−(2/N) Σ_i ln|ψ_i| + ln Σ s² (nats) of the split B = U diag(s) Vh on this rank's rows, summed over ranks
    (N = ``n_total``): ψ_i = left_iᵀ B right_i with left (d_x·d_y, n), right (d_z·d_p, n), samples last."""
    psi = (((uu * s[None, :]).T @ left) * (vh @ right)).sum(0)
    total = psi.abs().clamp_min(zero_amplitude_floor(psi.dtype)).log().sum().double().reshape(1)
    distributed.all_reduce_sum(total)
    return float(-2.0 * total[0] / max(n_total, 1)) + math.log(float((s.double() ** 2).sum()))


class RestructuringTreeSweep(TreeSweep):
    """Tree sweeps that try the three pairings at each rewiring step (see the module docstring).

    ``criterion``: "nll" or "mi". After a sweep ``n_rewired`` holds the number of rewirings it made."""

    reuse_inside = False  # a rewiring recomputes only the vectors its own steps need
    fuse_leaf_pairs = False  # going down into a node with two leaf children may rewire, so the tour goes down and up

    def __init__(self, model, update, max_bond: int, cutoff: float, env_dtype, criterion: str):
        super().__init__(model, update, max_bond, cutoff, env_dtype)
        self.criterion = criterion
        self.n_rewired = 0

    def sweep(self, x: torch.Tensor, part: distributed.Shard) -> int:
        self.n_rewired = 0
        return super().sweep(x, part)

    def _choose(self, umat, vmat, factors):
        """Gradient steps on B = umat @ vmat (d_a·d_b, d_c·d_3), then the best pairing of its legs: (k, (U, s, Vh)
        with s normalised, left, right), left/right the paired environments (·, N) of pairing k."""
        pairs = [(_pair_product(factors[x], factors[y]), _pair_product(factors[z], factors[3]))
                 if k == 0 or self.criterion == "nll" else None for k, (x, y, z) in enumerate(PAIRINGS)]
        merged, n_zero = self._optimise(umat, vmat, *pairs[0])
        self._zero = most(self._zero, n_zero)
        merged = merged.reshape(*(f.shape[0] for f in factors))
        best, best_score, best_split, current = 0, None, None, None
        for k, pairing in enumerate(PAIRINGS):
            split = split_pairing(merged, pairing, self.max_bond, self.cutoff, self.update.generator)
            score = bond_entropy(split[1]) if self.criterion == "mi" else local_nll(*split, *pairs[k], self._part.total)
            if k == 0:
                best_score, best_split, current = score, split, score
            elif score < best_score and score < current - 1e-12 * abs(current):
                best, best_score, best_split = k, score, split
        if pairs[best] is None:
            x, y, z = PAIRINGS[best]
            pairs[best] = (_pair_product(factors[x], factors[y]), _pair_product(factors[z], factors[3]))
        uu, s, vh = best_split
        return best, (uu, s / torch.linalg.vector_norm(s), vh), *pairs[best]

    def _step(self, u: int, down: bool) -> None:
        tree, t = self.model.tree, self.model.tensors
        n = tree.n_sites
        w, j = int(tree.parent[u]), int(tree.slot[u])
        o = int(tree.children[w, 1 - j])
        if not ((j == 0) == down or o < n):  # a rewiring would skip or repeat a visit: the plain step
            return super()._step(u, down)
        self._descents.pop(u, None)  # the environments below may be paired anew
        tu = t[u - n]
        tw = t[w - n] if j == 0 else t[w - n].permute(1, 0, 2)  # (e, c, p)
        a, b, e = tu.shape
        _, c, p = tw.shape
        factors = self._children(u) + (self._get(self._inside, o), self._get(self._outside, w))
        best, (uu, s, vh), left, right = self._choose(tu.reshape(a * b, e), tw.reshape(e, c * p), factors)
        x_, y_ = (uu * s[None, :], vh) if down else (uu, s[:, None] * vh)
        xi, yi, zi = PAIRINGS[best]
        r = x_.shape[1]
        new_w = y_.reshape(r, factors[zi].shape[0], p)
        slot = 0 if down and best else j  # a rewiring going down makes u child 0: the new other child comes next
        t[u - n] = x_.reshape(factors[xi].shape[0], factors[yi].shape[0], r)
        t[w - n] = new_w if slot == 0 else new_w.permute(1, 0, 2).contiguous()
        if down:  # Y = Vh is the isometry towards u
            self._outside[u] = self._keep(y_ @ right)
        else:  # X = U is the isometry towards w
            self._inside[u] = self._keep(x_.T @ left)
        if best:
            nodes = (int(tree.children[u, 0]), int(tree.children[u, 1]), o)
            self._rewire({u: (nodes[xi], nodes[yi]), w: (u, nodes[zi]) if slot == 0 else (nodes[zi], u)})
            if down:
                self._plan_other_child(o, nodes[zi])

    def _root_step(self, mode: str) -> None:
        """The root step; going down to child 0 (nothing below visited yet) and back up from child 1
        (everything visited) it also chooses how the four branches pair across the root bond."""
        if mode == "across":
            return super()._root_step(mode)
        tree, t = self.model.tree, self.model.tensors
        n = tree.n_sites
        r0, r1 = int(tree.children[tree.root, 0]), int(tree.children[tree.root, 1])
        t0, t1, root = t[r0 - n], t[r1 - n], t[tree.root - n]
        a, b, d0 = t0.shape
        c, d, d1 = t1.shape
        factors = self._children(r0) + self._children(r1)
        vmat = root[:, :, 0] @ t1.reshape(c * d, d1).T  # (d0, c·d)
        best, (uu, s, vh), left, right = self._choose(t0.reshape(a * b, d0), vmat, factors)
        xi, yi, zi = PAIRINGS[best]
        r = s.shape[0]
        if mode == "up1":  # root matrix = diag of the Schmidt values between two isometries
            x_, y_, middle = uu, vh, torch.diag(s)
            self._inside[r0] = self._keep(uu.T @ left)
            self._inside[r1] = self._keep(vh @ right)
        else:  # "down0"
            x_, y_, middle = uu * s[None, :], vh, torch.eye(r, dtype=self._dtype, device=self.model.device)
            self._outside[r0] = self._keep(vh @ right)
        t[r0 - n], t[tree.root - n] = x_.reshape(factors[xi].shape[0], factors[yi].shape[0], r), middle.unsqueeze(2)
        t[r1 - n] = y_.T.reshape(factors[zi].shape[0], d, r)
        if best:
            kids = tuple(int(k) for k in tree.children[r0]) + tuple(int(k) for k in tree.children[r1])
            self._rewire({r0: (kids[xi], kids[yi]), r1: (kids[zi], kids[3])})

    def _rewire(self, children: dict[int, tuple[int, int]]) -> None:
        """Give the nodes their new children; the model gets the new Tree."""
        tree = self.model.tree
        new = tree.children.copy()
        for v, pair in children.items():
            new[v] = pair
        self.model.tree = Tree(new[tree.n_sites:])
        self.n_rewired += 1

    def _plan_other_child(self, old: int, new: int) -> None:
        """After a rewiring going down to u (the stack ends with ("up", u), ("visit", u)): the planned visit of
        the parent's old other child (if internal: u is child 0) becomes one of the new other child."""
        n = self.model.tree.n_sites
        actions = self._actions
        top = actions[-2:]
        del actions[-2:]
        if old >= n:
            del actions[-3:]
        if new >= n:
            actions += [("up", new), ("visit", new), ("down", new)]
        actions += top
