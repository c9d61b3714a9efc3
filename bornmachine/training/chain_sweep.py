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
bytes ≈ N · Σ_k D_k · itemsize(env_dtype) + N · n · (1 + itemsize(orders)) + N · D · (8 · itemsize(env_dtype)).
"""
from __future__ import annotations

import torch

from .. import distributed, linalg
from .engine import SweepEngine
from .local_update import divide_by_amplitudes


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


def chain_amplitudes(left: torch.Tensor, merged: torch.Tensor, right: torch.Tensor, counts: list[int],
                     work: torch.Tensor | None = None, out: torch.Tensor | None = None) -> torch.Tensor:
    """ψ_i = L_iᵀ B[:, s_i, t_i, :] R_i (N,) for environments left (N, Dl), right (N, Dr) sorted by the code
    2·s + t (``counts[c]`` samples of code c) and a merged tensor B (Dl, 2, 2, Dr) (or a direction of it).
    ``work`` (N, Dr) holds L_iᵀ B[:, s_i, t_i, :] afterwards, ``out`` (N,) ψ (buffers a caller reuses)."""
    dl, dr = merged.shape[0], merged.shape[3]
    blocks = merged.permute(1, 2, 0, 3).reshape(4, dl, dr).unbind(0)
    bounds = linalg.block_bounds(counts)
    work = torch.empty_like(right) if work is None else work
    return torch.linalg.vecdot(linalg.contract_blocks(left, blocks, bounds, work), right, out=out)


def nll_gradient_sum(left: torch.Tensor, merged: torch.Tensor, right: torch.Tensor, counts: list[int],
                     work: torch.Tensor | None = None, psi: torch.Tensor | None = None):
    """The sample sum in the NLL gradient w.r.t. the merged tensor B, over the given samples.

    left (N, Dl) and right (N, Dr) environments sorted by code 2·s + t with ``counts[c]`` samples of
    code c; merged (Dl, 2, 2, Dr). With ψ_i = L_iᵀ B[:, s_i, t_i, :] R_i, returns S (4, Dl, Dr) with
    S[2s + t] = Σ_{i of code 2s+t} L_i R_iᵀ / ψ_i, the number of samples used and the number left out:
    samples of zero amplitude (:func:`~bornmachine.training.local_update.divide_by_amplitudes`), and ψ (N,).
    Each code block costs two (N_c × Dl × Dr) matmuls. S and the counts are sums over samples, so the
    shards of several processes add up. ``work`` (N, Dr) and ``psi`` (N,): buffers for the per-sample
    products and ψ (a caller's, reused from step to step).
    """
    dl, dr = merged.shape[0], merged.shape[3]
    psi = chain_amplitudes(left, merged, right, counts, work, psi)
    weighted, n_zero = divide_by_amplitudes(right, psi, out=work)  # R_i / ψ_i, zero-amplitude samples left out
    grad = merged.new_zeros(4, dl, dr)
    bounds = linalg.block_bounds(counts)
    for c, (a, b) in enumerate(zip(bounds, bounds[1:])):
        if b > a:
            torch.mm(left[a:b].T, weighted[a:b], out=grad[c])
    return grad, int(psi.shape[0]) - n_zero, n_zero, psi


def advance_environments(rows: torch.Tensor, a: torch.Tensor, counts: list[int], side: str,
                         normalize: bool = True, out: torch.Tensor | None = None,
                         norms: torch.Tensor | None = None) -> torch.Tensor:
    """Per-sample environments one site further, for rows sorted by the two-site code of their bond.

    ``side="left"``: rows L_i (N, D_{k-1}) at bond k (sites k, k+1), ``a`` = A_k → L_i A_k[:, x_k, :] (N, D_k);
    ``side="right"``: rows R_i (N, D_{k+1}), ``a`` = A_{k+1} → A_{k+1}[:, x_{k+1}, :] R_i (N, D_k).
    x_k is the major bit of the code, x_{k+1} the minor one, so every row is multiplied by its own
    matrix only (no wasted branch). ``normalize``: rescale rows to unit norm (the NLL gradient is invariant
    to their scale; with isometric tensors a row shrinks by about sqrt p(x_k | rest) per site).
    ``out`` (N, D) and ``norms`` (N, 1): buffers for the result and the row norms (a caller's, reused).
    """
    width = a.shape[2] if side == "left" else a.shape[0]
    out = rows.new_empty(rows.shape[0], width) if out is None else out
    if side == "left":
        linalg.contract_blocks(rows, (a[:, 0, :], a[:, 1, :]), [0, counts[0] + counts[1], rows.shape[0]], out)
    else:
        mats = (a[:, 0, :].T, a[:, 1, :].T)
        linalg.contract_blocks(rows, mats + mats, linalg.block_bounds(counts), out)
    if normalize:
        out /= torch.linalg.vector_norm(out, dim=1, keepdim=True, out=norms).clamp_min_(torch.finfo(out.dtype).tiny)
    return out


def _merge(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """A (Dl, 2, D) and B (D, 2, Dr) → the two-site tensor (Dl, 2, 2, Dr)."""
    return (a.reshape(-1, a.shape[2]) @ b.reshape(b.shape[0], -1)).view(a.shape[0], 2, 2, b.shape[2])


class ChainSweep(SweepEngine):
    """Two-site sweeps of an MPS; owns the environments' buffer and its slot layout, the right
    environments the last right→left pass left there, the per-bond sample orders of the current rows and
    the per-step buffers (see the module docstring). ``sweep`` = :meth:`_begin`, :meth:`_initial_rights`,
    :meth:`_sweep_right`, :meth:`_sweep_left`."""

    def __init__(self, model, update, max_bond, cutoff, env_dtype):
        super().__init__(model, update, max_bond, cutoff, env_dtype)
        self._buffer = None  # the environments of a sweep, kept from sweep to sweep
        self._kept_rights = None  # (rows, slot sizes, buffer, tensors) of the right environments in the buffer
        self._orders = None  # (rows, ordering, per-bond sample orders, code counts)
        self._work = None  # the per-step buffers (:meth:`_workspace`)

    def sweep(self, x: torch.Tensor, part: distributed.Shard) -> int:
        model = self.model
        if model.n_sites < 2:
            raise ValueError("two-site training needs at least 2 sites")
        if model.center != 0:  # after a sweep the model is canonical at 0 already
            model.canonicalize(0)
        self._begin(x)
        zero = self._sweep_right(self._initial_rights(x), part)
        zero = max(zero, self._sweep_left(part))
        model.center = 0
        return zero

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
            self._orders = (data, model.ordering.tolist(), *bond_orders(data, model.ordering))  # kept: same rows
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
        most = self._rows * sum(min(self.max_bond, 2 ** min(b + 1, n - b - 1, 62)) for b in range(n - 1))
        self._store = self._environment_buffer(self._rows * offsets[-1], most, self._env, model.device)
        self._every = 8 if self._env == self._dtype == torch.float64 else 2  # rows shrink by ~sqrt p per site
        self._workspace(max([self.max_bond] + old))
        self._lefts = [None] * n  # lefts[k] = L_k, in bond k's order

    def _workspace(self, width: int) -> None:
        """Per-step buffers for rows of up to ``width`` numbers, kept between sweeps (per-step temporaries of
        varying sizes would fragment the heap): (N, width) matrices in the model's dtype (products and new
        environments; with another env dtype also a gather and the two environments of a step converted),
        two (N, width) spares in the env dtype for right environments that outgrow their slot, ψ, ψ of a
        search direction and row norms (N,), and int64 (N,) sample orders, their inverse and a permutation."""
        rows, device = self._rows, self.model.device
        n_mats = 1 if self._env == self._dtype else 4
        work = self._work
        if work is not None and work["mats"].shape == (n_mats, rows * width) and work["mats"].dtype == self._dtype \
                and work["spares"].dtype == self._env and work["mats"].device == torch.device(device):
            return
        self._work = None  # free the old buffers first
        self._work = {"mats": torch.empty(n_mats, rows * width, dtype=self._dtype, device=device),
                      "spares": torch.empty(2, rows * width, dtype=self._env, device=device),
                      "vectors": torch.empty(3, rows, dtype=self._dtype, device=device),
                      "indices": torch.empty(3, rows, dtype=torch.int64, device=device),
                      "positions": torch.arange(rows, device=device), "ones": torch.ones(rows, 1, dtype=self._env,
                                                                                           device=device)}

    def _mat(self, i: int, rows: int, width: int, key: str = "mats") -> torch.Tensor:
        """Per-step buffer ``i`` as a contiguous (rows, width) view."""
        return self._work[key][i, :rows * width].view(rows, width)

    def _in_model_dtype(self, envs: torch.Tensor, i: int) -> torch.Tensor:
        """Stored environments in the model's dtype (themselves, or converted into per-step buffer ``i``)."""
        return envs if envs.dtype == self._dtype else self._mat(i, *envs.shape).copy_(envs)

    def _slot(self, bond: int, width: int) -> torch.Tensor:
        """Slot ``bond`` of the buffer as a contiguous (rows, width) view: rows stay close in memory."""
        assert width <= self._caps[bond], "environment slot overflow"
        start = self._rows * self._offsets[bond]
        return self._store[start:start + self._rows * width].view(self._rows, width)

    def _reorder(self, envs: torch.Tensor, bond: int, to_bond: int, out: torch.Tensor) -> torch.Tensor:
        """Rows in ``bond``'s code order → ``to_bond``'s order, into ``out`` (stored as the env dtype)."""
        orders, (order, inverse, perm) = self._orders[2], self._work["indices"]
        linalg.inverse_permutation(order.copy_(orders[bond]), inverse, self._work["positions"])
        torch.index_select(inverse, 0, order.copy_(orders[to_bond]), out=perm)
        if envs.dtype == out.dtype:
            return torch.index_select(envs, 0, perm, out=out)
        return out.copy_(torch.index_select(envs, 0, perm, out=self._mat(1, *envs.shape)))

    def _right_step(self, envs: torch.Tensor, bond: int, out: torch.Tensor) -> torch.Tensor:
        """R_bond from R_{bond+1} (in bond's order) through site bond + 1, into bond − 1's order."""
        counts, a = self._orders[3], self.model.tensors[bond + 1]
        moved = advance_environments(self._in_model_dtype(envs, 3), a, counts[bond], "right",
                                     (bond + 1) % self._every == 0, self._mat(0, self._rows, a.shape[0]),
                                     self._mat(2, self._rows, 1, "vectors"))
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
    def _sweep_right(self, rights: list, part: distributed.Shard) -> int:
        """Left → right: the centre moves from site k to k+1; the left environments fill the slots."""
        t, n = self.model.tensors, self.model.n_sites
        counts = self._orders[3]
        lefts = self._lefts
        lefts[0] = self._work["ones"]
        zero = 0
        for k in range(n - 1):
            left = self._in_model_dtype(lefts[k], 2)
            merged, n_zero = self._optimise(_merge(t[k], t[k + 1]), left, self._in_model_dtype(rights[k + 1], 3),
                                            counts[k], k, part)
            zero = max(zero, n_zero)
            t[k], t[k + 1] = self._split(merged, absorb="right")
            rights[k + 1] = None
            if k < n - 2:
                width = t[k].shape[2]
                moved = advance_environments(left, t[k], counts[k], "left", k % self._every == 0,
                                             self._mat(0, self._rows, width), self._mat(2, self._rows, 1, "vectors"))
                lefts[k + 1] = self._reorder(moved, k, k + 1, self._slot(k, width))
        return zero

    def _sweep_left(self, part: distributed.Shard) -> int:
        """Right → left: the centre moves from site k+1 to k; the right environments go back into the
        slots, where the next sweep finds them if they fit (else into the two spares, in turn)."""
        t, n = self.model.tensors, self.model.n_sites
        counts = self._orders[3]
        lefts = self._lefts
        right = self._in_model_dtype(self._work["ones"], 3)  # R_{k+1} in bond k's order
        fits = True
        zero = 0
        for k in range(n - 2, -1, -1):
            merged, n_zero = self._optimise(_merge(t[k], t[k + 1]), self._in_model_dtype(lefts[k], 2), right,
                                            counts[k], k, part)
            zero = max(zero, n_zero)
            t[k], t[k + 1] = self._split(merged, absorb="left")
            lefts[k] = None
            if k > 0:  # R_k into slot k (L_{k+1} is used up), where the next sweep looks for it, if it fits
                width = t[k].shape[2]
                fits = fits and width <= self._caps[k]
                out = self._slot(k, width) if width <= self._caps[k] else self._mat(k % 2, self._rows, width, "spares")
                right = self._in_model_dtype(self._right_step(right, k, out), 3)
        if fits:
            self._kept_rights = (self._orders[0], self._caps, self._store, list(t))
        return zero

    def release(self) -> None:
        self._buffer = self._kept_rights = self._orders = self._store = self._lefts = self._work = None

    def _environment_buffer(self, size: int, most: int, dtype: torch.dtype, device) -> torch.Tensor:
        """The environments' buffer (≥ ``size`` numbers), kept between sweeps: a fresh one of hundreds of MB
        costs a page fault per 4 KiB on first touch (0.1 s per 100 MB here). When it must grow it is
        reallocated with 25 % room (never beyond ``most``, what the largest bonds could need)."""
        buffer = self._buffer
        if buffer is None or buffer.numel() < size or buffer.dtype != dtype or buffer.device != torch.device(device):
            self._buffer = None  # free the old one before allocating
            buffer = self._buffer = torch.empty(max(size, min(most, size + size // 4)), dtype=dtype, device=device)
        return buffer

    def _optimise(self, merged, left, right, counts, k, part):
        """The local update's steps on the merged tensor (Dl, 2, 2, Dr) of bond k.

        left, right: this rank's environments (part.size, D) in bond k's code order, with ``counts`` samples
        of each code. Full batches use the per-step buffers for ψ, the products and ψ of a search direction.
        """
        dl, dr = merged.shape[0], merged.shape[3]
        if not self.update.is_full_batch(part):
            rank_of = linalg.inverse_permutation(self._orders[2][k].to(torch.int64))
            edges = torch.tensor(linalg.block_bounds(counts), device=left.device)

        last = [None, None]  # the minibatch of the current step and its rows: gradient and line search share them

        def restrict(idx):  # this rank's rows of a minibatch (None: all), still in code order, and their counts
            if idx is None:
                return left, right, counts
            if last[0] is not idx:
                rows = rank_of[idx].sort().values
                cuts = torch.searchsorted(rows, edges).tolist()
                last[:] = idx, (left[rows], right[rows], [b - a for a, b in zip(cuts, cuts[1:])])
            return last[1]

        def buffers(rows, vector):  # (rows, Dr) products and ψ (rows,) in the per-step buffers
            return self._mat(0, rows, dr), self._work["vectors"][vector, :rows]

        def sample_sum_of(merged, idx, step):
            sub_left, sub_right, sub_counts = restrict(idx)
            grad_sum, n_used, n_zero, psi = nll_gradient_sum(sub_left, merged, sub_right, sub_counts,
                                                             *buffers(sub_left.shape[0], 0))
            return grad_sum.view(2, 2, dl, dr).permute(2, 0, 1, 3), n_used, n_zero, psi

        def amplitudes_of(direction, idx):
            sub_left, sub_right, sub_counts = restrict(idx)
            return chain_amplitudes(sub_left, direction, sub_right, sub_counts, *buffers(sub_left.shape[0], 1))

        return self.update.optimise(merged, sample_sum_of, amplitudes_of, part, left.device, f"bond {k}")

    def _split(self, merged, absorb):
        dl, _, _, dr = merged.shape
        left, right = linalg.truncated_split(merged.reshape(dl * 2, 2 * dr), self.max_bond, self.cutoff, absorb)
        return left.reshape(dl, 2, -1), right.reshape(-1, 2, dr)
