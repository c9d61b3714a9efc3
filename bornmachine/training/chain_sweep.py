"""The chain sweep engine: two-site DMRG-style training of an MPS (Han et al., PRX 8, 031012, 2018).

At each bond: merge B = A_k A_{k+1}; take the local update's gradient steps on B with cached,
per-sample left/right environments (minibatches or the full set); normalise; split at the
truncated-SVD rank (``max_bond``, singular values below ``cutoff``·s_max dropped; by
:func:`~bornmachine.linalg.truncated_split`, an eigendecomposition of the Gram matrix); move the
centre. One sweep = left→right then right→left. Environments are updated incrementally; only the
ones the sweep direction still needs are kept: one per bond (the right environment of a bond
ahead, the left one of a bond behind), N · Σ_k D_k ≤ N · (n − 1) · D numbers (N: this process's
samples), stored in ``env_dtype`` in one buffer kept between sweeps (slot k sized for the larger
of bond k before and after its update, so a growing bond may take up to twice its old size; the
buffer grows with 25 % room; one allocation keeps the heap from fragmenting and spares the page
faults of a fresh one; ``release`` frees it). Once the bonds are near their largest sizes the slots
keep one layout, and the right environments that the right→left pass leaves in them serve the next
sweep as they are. Each bond's samples are sorted by their two-site code and its environments are
stored in that order, so every block of rows is contracted with its own matrix only. The per-bond
sample orders are stored in the narrowest index dtype (2 bytes per sample and bond up to 65536 rows),
the data stay as given (uint8 from the trainers), and every per-sample array of a step lives in
buffers kept between sweeps (O(N · D); temporaries of changing sizes would fragment the heap), so the
environments dominate:
bytes ≈ N · Σ_k D_k · itemsize(env_dtype) + N · n · (1 + itemsize(orders)) + N · D · (8 m + 2 · itemsize(env_dtype))
+ 208 N (m = 1 matrix of the model's dtype, 4 with another env dtype; 208 bytes a row: ψ, amplitude weights, ψ of a
search direction, row norms, three index rows, positions, ones, the line search's 17 float64 terms).
A step works in place in those buffers (no temporary of N rows: they fragment the heap) and reads one value back to
the host: the truncated split's spectrum, carrying the local update's two numbers.
"""
from __future__ import annotations

from typing import NamedTuple

import torch

from .. import distributed, linalg
from .engine import SweepEngine
from .local_update import amplitude_weights, most


def bond_orders(x: torch.Tensor, ordering: torch.Tensor | None = None) -> tuple[torch.Tensor, list[list[int]]]:
    """For every bond k of the chain over configurations x (N, n) (any integer dtype; chain site k is
    column ``ordering[k]``, default: column k): the stable order sorting the samples by their code
    2·x_k + x_{k+1}, as rows of (n − 1, N) in the narrowest index dtype (:func:`~bornmachine.linalg.index_dtype`
    of N: uint16 up to 65536 rows), and the count of each code per bond (n − 1 lists of 4)."""
    n_rows, n_bonds = x.shape[0], x.shape[1] - 1
    columns = torch.arange(x.shape[1]) if ordering is None else ordering
    orders = torch.empty(n_bonds, n_rows, dtype=linalg.index_dtype(n_rows), device=x.device)
    counts = []
    for start in range(0, n_bonds, 64):  # blocks of bonds: temporaries stay small next to the result
        stop = min(start + 64, n_bonds)
        bits = x[:, columns[start:stop + 1].to(x.device)].T  # (≤ 65, N) in x's dtype
        codes = (2 * bits[:-1] + bits[1:]).contiguous()  # sorting contiguous rows: 7× faster than columns
        orders[start:stop] = torch.argsort(codes, dim=1, stable=True)
        counts += torch.stack([(codes == c).sum(1) for c in range(4)], 1).tolist()
    return orders, counts


def split_rows(rows: torch.Tensor, sizes, transpose: bool = False):
    """The blocks of ``sizes`` consecutive rows of ``rows`` (views; ``transpose``: of rowsᵀ, along its
    columns), one operator call. The engine passes a caching twin of this (:meth:`ChainSweep._blocks`)."""
    return torch.split(rows.T, sizes, 1) if transpose else torch.split(rows, sizes)


class StepRows(NamedTuple):
    """One step's samples in a bond's code order (``counts[c]`` of code c = 2·s + t): the left environments
    (N, Dl) with their code blocks and the blocks of their transpose, the right environments (N, Dr), a
    work matrix (N, Dr) with its blocks, columns (N, 1) for ψ and the amplitude weights, and a column of
    Dr ones (row sums as one matrix product: 3× faster than a sum over rows of a few numbers)."""

    counts: list
    lefts: tuple
    lefts_t: tuple
    right: torch.Tensor
    work: torch.Tensor
    works: tuple
    psi: torch.Tensor
    weights: torch.Tensor
    unit: torch.Tensor

    @classmethod
    def of(cls, left, right, counts, work=None, psi=None, weights=None, unit=None, split=split_rows) -> "StepRows":
        """The blocks of left and work by ``split`` (buffers made where not given)."""
        work = torch.empty_like(right) if work is None else work
        psi = right.new_empty(right.shape[0], 1) if psi is None else psi
        weights = torch.empty_like(psi) if weights is None else weights
        unit = right.new_ones(right.shape[1], 1) if unit is None else unit
        return cls(counts, split(left, counts), split(left, counts, True), right, work, split(work, counts), psi,
                   weights, unit)


def _contract(row_blocks, matrices, out_blocks) -> None:
    """``out_blocks[c] = row_blocks[c] @ matrices[c]`` for the non-empty blocks."""
    for rows, mat, out in zip(row_blocks, matrices, out_blocks):
        if rows.numel():
            torch.mm(rows, mat, out=out)


def step_amplitudes(rows: StepRows, merged: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """ψ_i = L_iᵀ B[:, s_i, t_i, :] R_i into ``out`` (N, 1) for a merged tensor B (Dl, 2, 2, Dr) (or a direction
    of it; or any shape of the same numbers, e.g. the (2 Dl, 2 Dr) matrix); ``rows.work`` is overwritten. In
    place (no temporary of N rows)."""
    blocks = merged.reshape(rows.lefts[0].shape[1], 4, rows.right.shape[1]).unbind(1)
    _contract(rows.lefts, blocks, rows.works)
    return torch.mm(rows.work.mul_(rows.right), rows.unit, out=out)


def step_gradient_sum(rows: StepRows, merged: torch.Tensor):
    """The sample sum S (Dl, 2, 2, Dr) (shaped like merged), S[:, s, t, :] = Σ_{i of code 2s+t} L_i R_iᵀ / ψ_i,
    with ψ = rows.psi,
    the number of samples used and left out (0-d tensors: no host read) and ψ (N, 1). Samples of zero
    amplitude are left out by their weights (:func:`~bornmachine.training.local_update.amplitude_weights`,
    into rows.weights); the weighted rows R_i / ψ_i go into rows.work."""
    psi = step_amplitudes(rows, merged, rows.psi)
    torch.mul(rows.right, amplitude_weights(psi, out=rows.weights), out=rows.work)
    grad = merged.new_zeros(rows.lefts[0].shape[1], 4, rows.right.shape[1])
    _contract(rows.lefts_t, rows.works, grad.unbind(1))
    n_used = torch.count_nonzero(rows.weights)
    return grad.view(merged.shape), n_used, psi.shape[0] - n_used, psi


def chain_amplitudes(left: torch.Tensor, merged: torch.Tensor, right: torch.Tensor, counts: list[int],
                     work: torch.Tensor | None = None, out: torch.Tensor | None = None) -> torch.Tensor:
    """ψ_i = L_iᵀ B[:, s_i, t_i, :] R_i (N,) for environments left (N, Dl), right (N, Dr) sorted by the code
    2·s + t (``counts[c]`` samples of code c) and a merged tensor B (Dl, 2, 2, Dr) (or a direction of it).
    ``work`` (N, Dr) is overwritten, ``out`` (N,) takes ψ (buffers a caller reuses)."""
    out = right.new_empty(right.shape[0]) if out is None else out
    rows = StepRows.of(left, right, counts, work, out.view(-1, 1), out.view(-1, 1))
    return step_amplitudes(rows, merged, rows.psi).view(-1)


def nll_gradient_sum(left: torch.Tensor, merged: torch.Tensor, right: torch.Tensor, counts: list[int],
                     work: torch.Tensor | None = None, psi: torch.Tensor | None = None):
    """The sample sum in the NLL gradient w.r.t. the merged tensor B, over the given samples.

    left (N, Dl) and right (N, Dr) environments sorted by code 2·s + t with ``counts[c]`` samples of
    code c; merged (Dl, 2, 2, Dr). With ψ_i = L_iᵀ B[:, s_i, t_i, :] R_i, returns S (Dl, 2, 2, Dr) with
    S[:, s, t, :] = Σ_{i of code 2s+t} L_i R_iᵀ / ψ_i, the number of samples used and the number left out
    (0-d tensors): samples of zero amplitude (:func:`~bornmachine.training.local_update.amplitude_weights`),
    and ψ (N,). Each code block costs two (N_c × Dl × Dr) matmuls. S and the counts are sums over samples, so
    the shards of several processes add up. ``work`` (N, Dr) and ``psi`` (N,): buffers for the per-sample
    products and ψ (a caller's, reused from step to step).
    """
    psi = right.new_empty(right.shape[0]) if psi is None else psi
    grad, n_used, n_zero, psi = step_gradient_sum(StepRows.of(left, right, counts, work, psi.view(-1, 1)), merged)
    return grad, n_used, n_zero, psi.view(-1)


def advance_environments(rows: torch.Tensor, a: torch.Tensor, counts: list[int], side: str,
                         normalize: bool = True, out: torch.Tensor | None = None,
                         norms: torch.Tensor | None = None, split=split_rows) -> torch.Tensor:
    """Per-sample environments one site further, for rows sorted by the two-site code of their bond.

    ``side="left"``: rows L_i (N, D_{k-1}) at bond k (sites k, k+1), ``a`` = A_k → L_i A_k[:, x_k, :] (N, D_k);
    ``side="right"``: rows R_i (N, D_{k+1}), ``a`` = A_{k+1} → A_{k+1}[:, x_{k+1}, :] R_i (N, D_k).
    x_k is the major bit of the code, x_{k+1} the minor one, so every row is multiplied by its own
    matrix only (no wasted branch). ``normalize``: rescale rows to unit norm (the NLL gradient is invariant
    to their scale; with isometric tensors a row shrinks by about sqrt p(x_k | rest) per site).
    ``out`` (N, D) and ``norms`` (N, 1): buffers for the result and the row norms (a caller's, reused);
    ``split``: how rows are cut into code blocks (:func:`split_rows`).
    """
    width = a.shape[2] if side == "left" else a.shape[0]
    out = rows.new_empty(rows.shape[0], width) if out is None else out
    if side == "left":
        sizes = [counts[0] + counts[1], counts[2] + counts[3]]
        _contract(split(rows, sizes), a.unbind(1), split(out, sizes))
    else:
        mats = a.permute(1, 2, 0).unbind(0)  # A_{k+1}[:, t, :]ᵀ
        _contract(split(rows, counts), mats + mats, split(out, counts))
    if normalize:
        out /= torch.linalg.vector_norm(out, dim=1, keepdim=True, out=norms).clamp_min_(torch.finfo(out.dtype).tiny)
    return out


def _merge(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """A (Dl, 2, D) and B (D, 2, Dr) → the two-site tensor as a (2 Dl, 2 Dr) matrix (rows (l, s), columns
    (t, r)), the shape the split takes."""
    return torch.mm(a.reshape(-1, a.shape[2]), b.reshape(b.shape[0], -1))


class ChainSweep(SweepEngine):
    """Two-site sweeps of an MPS; owns the environments' buffer and its slot layout, the right
    environments the last right→left pass left there, the per-bond sample orders of the current rows and
    the per-step buffers (see the module docstring). ``sweep`` = :meth:`_begin`, :meth:`_initial_rights`,
    :meth:`_sweep_right`, :meth:`_sweep_left`.

    A step reads one value back to the host: the truncated split's spectrum, which carries the local
    update's two numbers (:meth:`~bornmachine.training.local_update.LocalUpdate.settle`); the counts of
    zero-amplitude samples stay on the device and are read once a sweep. Views of the buffers (slots,
    per-step matrices, their code blocks) are made once and kept while the buffers are (:meth:`_blocks`)."""

    def __init__(self, model, update, max_bond, cutoff, env_dtype):
        super().__init__(model, update, max_bond, cutoff, env_dtype)
        self._buffer = None  # the environments of a sweep, kept from sweep to sweep
        self._kept_rights = None  # (rows, slot sizes, buffer, tensors) of the right environments in the buffer
        self._orders = None  # (rows, ordering, per-bond sample orders, code counts, the orders' rows)
        self._work = None  # the per-step buffers (:meth:`_workspace`)
        self._views = {}  # views of the buffers, by what they show (cleared when a buffer is replaced)
        self._layout = None  # (buffer, offsets, rows) the slot views of _views belong to
        self._inverse_of = None  # the bond whose inverse sample order is in the index buffer
        self._zero = None  # the most zero-amplitude samples of a step in this sweep (0-d tensor)

    def sweep(self, x: torch.Tensor, part: distributed.Shard) -> int:
        model = self.model
        if model.n_sites < 2:
            raise ValueError("two-site training needs at least 2 sites")
        if model.center != 0:  # after a sweep the model is canonical at 0 already
            model.canonicalize(0)
        self._begin(x)
        self._zero = None
        self._sweep_right(self._initial_rights(x), part)
        self._sweep_left(part)
        model.center = 0
        zero, self._zero = self._zero, None
        return int(zero)  # the sweep's one host read of its own

    # the state of one sweep ------------------------------------------------------------------------
    def _begin(self, data: torch.Tensor) -> None:
        """Sample orders of the rows ``data`` (natural order), the slot layout of the buffer, the per-step buffers."""
        model, t = self.model, self.model.tensors
        n = model.n_sites
        # Per bond k the samples sorted by code 2·x_k + x_{k+1}: each block of rows has one matrix. The
        # environments used at bond k (L_k and R_{k+1}) are stored in this order, so a step reads them as
        # they are and a new environment costs one gather into the next bond's order.
        if self._orders is None or self._orders[0] is not data or self._orders[1] != model.ordering.tolist():
            self._orders = None  # free the old orders first
            orders, counts = bond_orders(data, model.ordering)
            self._orders = (data, model.ordering.tolist(), orders, counts, orders.unbind(0))  # kept: same rows
        self._inverse_of = None
        self._dtype, self._env = model.dtype, self.env_dtype or model.dtype
        # Slot b of one buffer of N · Σ_b cap_b numbers holds bond b's right environment (old D_b) until the
        # left→right pass replaces it by the left one of the updated bond: D_b ≤ min(max_bond, 2 D_{b+1}).
        old = [a.shape[2] for a in t[:-1]] + [1]
        caps = [max(old[b], min(self.max_bond, 2 * old[b + 1])) for b in range(n - 1)]
        # Bonds near their largest possible size (the usual case once training has grown them): slots of that
        # size, a layout that stays the same from sweep to sweep, so the right environments that the last
        # right→left pass left in the buffer serve this sweep's left→right pass as they are.
        largest = [max(cap, min(self.max_bond, 2 ** min(b + 1, n - b - 1, 62))) for b, cap in enumerate(caps)]
        if 4 * sum(largest) <= 5 * sum(caps):
            caps = largest
        offsets = [0]
        for cap in caps:
            offsets.append(offsets[-1] + cap)
        self._caps, self._offsets, self._rows = caps, offsets, data.shape[0]
        most_numbers = self._rows * sum(min(self.max_bond, 2 ** min(b + 1, n - b - 1, 62)) for b in range(n - 1))
        self._store = self._environment_buffer(self._rows * offsets[-1], most_numbers, self._env, model.device)
        self._every = 8 if self._env == self._dtype == torch.float64 else 2  # rows shrink by ~sqrt p per site
        self._workspace(max([self.max_bond] + old))
        if self._layout is None or self._layout[0] is not self._store or self._layout[1:] != (offsets, self._rows) \
                or len(self._views) > 50 * n * (4 + self.max_bond):  # views of widths long gone: start afresh
            self._views = {}
            self._layout = (self._store, offsets, self._rows)
        self._lefts = [None] * n  # lefts[k] = L_k, in bond k's order

    def _workspace(self, width: int) -> None:
        """Per-step buffers for rows of up to ``width`` numbers, kept between sweeps (per-step temporaries of
        varying sizes would fragment the heap): (N, width) matrices in the model's dtype (products and new
        environments; with another env dtype also a gather and the two environments of a step converted),
        two (N, width) spares in the env dtype for right environments that outgrow their slot, columns (N, 1)
        for ψ, the amplitude weights, ψ of a search direction and row norms, and int64 (N,) sample orders,
        their inverse and a permutation; the line search's (17, N) float64 terms when first needed."""
        rows, device = self._rows, self.model.device
        n_mats = 1 if self._env == self._dtype else 4
        work = self._work
        if work is not None and work["mats"].shape == (n_mats, rows * width) and work["mats"].dtype == self._dtype \
                and work["spares"].dtype == self._env and work["mats"].device == torch.device(device):
            return
        self._work = None  # free the old buffers first
        self._views, self._layout = {}, None
        vectors = torch.empty(4, rows, 1, dtype=self._dtype, device=device)
        indices = torch.empty(3, rows, dtype=torch.int64, device=device)
        self._work = {"mats": torch.empty(n_mats, rows * width, dtype=self._dtype, device=device),
                      "spares": torch.empty(2, rows * width, dtype=self._env, device=device),
                      "vectors": vectors, "columns": dict(zip(("psi", "weights", "direction", "norms"), vectors)),
                      "indices": indices.unbind(0), "terms": None,
                      "positions": torch.arange(rows, device=device), "ones": torch.ones(rows, 1, dtype=self._env,
                                                                                           device=device)}

    def _mat(self, i: int, rows: int, width: int, key: str = "mats") -> torch.Tensor:
        """Per-step buffer ``i`` as a contiguous (rows, width) view (made once)."""
        name = (key, i, rows, width)
        view = self._views.get(name)
        if view is None:
            view = self._views[name] = self._work[key][i, :rows * width].view(rows, width)
        return view

    def _blocks(self, rows: torch.Tensor, sizes, transpose: bool = False):
        """:func:`split_rows` of a view of a kept buffer, made once (the views keep nothing else alive)."""
        name = (rows.data_ptr(), rows.shape[1], transpose, *sizes)  # rows of one buffer: N rows, contiguous
        blocks = self._views.get(name)
        if blocks is None:
            blocks = self._views[name] = split_rows(rows, sizes, transpose)
        return blocks

    def _unit(self, width: int) -> torch.Tensor:
        """A (width, 1) column of ones in the model's dtype (made once)."""
        name = ("unit", width)
        view = self._views.get(name)
        if view is None:
            view = self._views[name] = torch.ones(width, 1, dtype=self._dtype, device=self.model.device)
        return view

    def _terms(self) -> torch.Tensor:
        """The line search's (17, N) float64 buffer, made when first needed and kept."""
        if self._work["terms"] is None:
            self._work["terms"] = torch.empty(17, self._rows, dtype=torch.float64, device=self.model.device)
        return self._work["terms"]

    def _in_model_dtype(self, envs: torch.Tensor, i: int) -> torch.Tensor:
        """Stored environments in the model's dtype (themselves, or converted into per-step buffer ``i``)."""
        return envs if envs.dtype == self._dtype else self._mat(i, *envs.shape).copy_(envs)

    def _slot(self, bond: int, width: int) -> torch.Tensor:
        """Slot ``bond`` of the buffer as a contiguous (rows, width) view: rows stay close in memory."""
        assert width <= self._caps[bond], "environment slot overflow"
        name = ("slot", bond, width)
        view = self._views.get(name)
        if view is None:
            start = self._rows * self._offsets[bond]
            view = self._views[name] = self._store[start:start + self._rows * width].view(self._rows, width)
        return view

    def _reorder(self, envs: torch.Tensor, bond: int, to_bond: int, out: torch.Tensor) -> torch.Tensor:
        """Rows in ``bond``'s code order → ``to_bond``'s order, into ``out`` (stored as the env dtype). The
        inverse of ``to_bond``'s order stays in the index buffer for the next move (one scatter a move)."""
        order_rows, (order, inverse, perm), positions = self._orders[4], self._work["indices"], self._work["positions"]
        if self._inverse_of != bond:
            linalg.inverse_permutation(order.copy_(order_rows[bond]), inverse, positions)
        torch.index_select(inverse, 0, order.copy_(order_rows[to_bond]), out=perm)
        linalg.inverse_permutation(order, inverse, positions)
        self._inverse_of = to_bond
        if envs.dtype == out.dtype:
            return torch.index_select(envs, 0, perm, out=out)
        return out.copy_(torch.index_select(envs, 0, perm, out=self._mat(1, *envs.shape)))

    def _right_step(self, envs: torch.Tensor, bond: int, out: torch.Tensor) -> torch.Tensor:
        """R_bond from R_{bond+1} (in bond's order) through site bond + 1, into bond − 1's order."""
        counts, a = self._orders[3], self.model.tensors[bond + 1]
        moved = advance_environments(self._in_model_dtype(envs, 3), a, counts[bond], "right",
                                     (bond + 1) % self._every == 0, self._mat(0, self._rows, a.shape[0]),
                                     self._work["columns"]["norms"], self._blocks)
        return self._reorder(moved, bond, bond - 1, out)

    def _initial_rights(self, data: torch.Tensor) -> list:
        """R_k (sites k+1…, on bond k) in bond k − 1's order for k ≥ 1: those the last right→left pass left
        in the buffer when rows, layout and tensors are the same, else built right to left."""
        t, n = self.model.tensors, self.model.n_sites
        rights = [None] * n
        rights[n - 1] = self._work["ones"]
        kept = self._kept_rights
        if kept is not None and kept[0] is data and kept[1] == self._caps and kept[2] is self._store and \
                all(a is b for a, b in zip(kept[3], t)):
            for k in range(1, n - 1):
                rights[k] = self._slot(k, t[k + 1].shape[0])
        else:
            for k in range(n - 1, 1, -1):  # R_{k-1} from R_k: the same step as right → left below
                rights[k - 1] = self._right_step(rights[k], k - 1, self._slot(k - 1, t[k].shape[0]))
        self._kept_rights = None
        return rights

    # the two passes -----------------------------------------------------------------------------------
    def _sweep_right(self, rights: list, part: distributed.Shard) -> None:
        """Left → right: the centre moves from site k to k+1; the left environments fill the slots."""
        t, n = self.model.tensors, self.model.n_sites
        counts = self._orders[3]
        lefts = self._lefts
        lefts[0] = self._work["ones"]
        for k in range(n - 1):
            left = self._in_model_dtype(lefts[k], 2)
            t[k], t[k + 1] = self._optimise(_merge(t[k], t[k + 1]), left, self._in_model_dtype(rights[k + 1], 3),
                                            counts[k], k, part, "right")
            rights[k + 1] = None
            if k < n - 2:
                width = t[k].shape[2]
                moved = advance_environments(left, t[k], counts[k], "left", k % self._every == 0,
                                             self._mat(0, self._rows, width), self._work["columns"]["norms"],
                                             self._blocks)
                lefts[k + 1] = self._reorder(moved, k, k + 1, self._slot(k, width))

    def _sweep_left(self, part: distributed.Shard) -> None:
        """Right → left: the centre moves from site k+1 to k; the right environments go back into the
        slots, where the next sweep finds them if they fit (else into the two spares, in turn)."""
        t, n = self.model.tensors, self.model.n_sites
        counts = self._orders[3]
        lefts = self._lefts
        right = self._in_model_dtype(self._work["ones"], 3)  # R_{k+1} in bond k's order
        fits = True
        for k in range(n - 2, -1, -1):
            t[k], t[k + 1] = self._optimise(_merge(t[k], t[k + 1]), self._in_model_dtype(lefts[k], 2), right,
                                            counts[k], k, part, "left")
            lefts[k] = None
            if k > 0:  # R_k into slot k (L_{k+1} is used up), where the next sweep looks for it, if it fits
                width = t[k].shape[2]
                fits = fits and width <= self._caps[k]
                out = self._slot(k, width) if width <= self._caps[k] else self._mat(k % 2, self._rows, width, "spares")
                right = self._in_model_dtype(self._right_step(right, k, out), 3)
        if fits:
            self._kept_rights = (self._orders[0], self._caps, self._store, list(t))

    def release(self) -> None:
        self._buffer = self._kept_rights = self._orders = self._store = self._lefts = self._work = None
        self._views, self._layout, self._zero = {}, None, None

    def _environment_buffer(self, size: int, most: int, dtype: torch.dtype, device) -> torch.Tensor:
        """The environments' buffer (≥ ``size`` numbers), kept between sweeps: a fresh one of hundreds of MB
        costs a page fault per 4 KiB on first touch (0.1 s per 100 MB here). When it must grow it is
        reallocated with 25 % room (never beyond ``most``, what the largest bonds could need)."""
        buffer = self._buffer
        if buffer is None or buffer.numel() < size or buffer.dtype != dtype or buffer.device != torch.device(device):
            self._buffer = None  # free the old one (and the views of it) before allocating
            self._views, self._layout = {}, None
            buffer = self._buffer = torch.empty(max(size, min(most, size + size // 4)), dtype=dtype, device=device)
        return buffer

    def _optimise(self, merged, left, right, counts, k, part, absorb):
        """The local update's steps on the merged tensor of bond k (a (2 Dl, 2 Dr) matrix), and its truncated split
        (``absorb`` as in :func:`~bornmachine.linalg.truncated_split`): the new tensors of sites k, k+1.

        left, right: this rank's environments (part.size, D) in bond k's code order, with ``counts`` samples
        of each code. Full batches use the per-step buffers and their kept blocks; a minibatch's rows are
        gathered. The last step is settled from the numbers the split reads (one host read for the bond; a
        step the trust region cuts is searched on the device and split again: one more read).
        """
        dr, update, columns = merged.shape[1] // 2, self.update, self._work["columns"]
        if update.is_full_batch(part):
            everything = StepRows.of(left, right, counts, self._mat(0, left.shape[0], dr), columns["psi"],
                                     columns["weights"], self._unit(dr), self._blocks)
        else:
            rank_of = linalg.inverse_permutation(self._orders[2][k].to(torch.int64))
            edges = torch.tensor(linalg.block_bounds(counts), device=left.device)

        last = [None, None]  # the minibatch of the current step and its rows: gradient and line search share them

        def restrict(idx):  # this rank's rows of a minibatch (None: all), still in code order, and their counts
            if idx is None:
                return everything
            if last[0] is not idx:
                rows = rank_of[idx].sort().values
                cuts = torch.searchsorted(rows, edges).tolist()
                m = rows.shape[0]
                last[:] = idx, StepRows.of(left[rows], right[rows], [b - a for a, b in zip(cuts, cuts[1:])],
                                           self._mat(0, m, dr), columns["psi"][:m], columns["weights"][:m],
                                           self._unit(dr))
            return last[1]

        def sample_sum_of(merged, idx, step):
            rows = restrict(idx)
            return (*step_gradient_sum(rows, merged), rows.weights)

        def amplitudes_of(direction, idx):
            rows = restrict(idx)
            return step_amplitudes(rows, direction, columns["direction"][:rows.psi.shape[0]])

        where = f"bond {k}"
        for step in range(update.n_steps):
            proposal = update.propose(merged, sample_sum_of, part, left.device, step)
            self._zero = most(self._zero, proposal.n_zero)
            if step < update.n_steps - 1:  # a step before the last: settled from a read of its own
                merged, norm = update.settle(proposal, proposal.summary.tolist(), amplitudes_of, where, self._terms)
                if norm is not None:
                    update.check_finite(float(norm), where)
                continue
            split = self._split(proposal.merged, absorb, proposal.summary)
            summary = proposal.summary.tolist() if split is None else split[2]
            merged, norm = update.settle(proposal, summary, amplitudes_of, where, self._terms)
            if norm is not None:  # the line search's step, split again
                split = self._split(merged, absorb, norm.reshape(1))
                update.check_finite(float(norm) if split is None else split[2][0], where)
            if split is None:  # the eigensolver failed on a finite tensor: its own error
                split = self._split(merged, absorb)
        return split[:2]

    def _split(self, merged, absorb, extra=None):
        """The truncated split of merged (2 Dl, 2 Dr) into (Dl, 2, r) and (r, 2, Dr), with the values of
        ``extra`` read with its spectrum; None when the eigensolver fails and ``extra`` is given (a non-finite
        step: the caller reads its numbers and says where)."""
        dl, dr = merged.shape[0] // 2, merged.shape[1] // 2
        try:
            left, right, *values = linalg.truncated_split(merged, self.max_bond, self.cutoff, absorb, extra)
        except RuntimeError:
            if extra is None:
                raise
            return None
        return left.reshape(dl, 2, -1), right.reshape(-1, 2, dr), *values
