"""Trainers for Born machines: two-site sweeps (Han et al., PRX 8, 031012, 2018) and Adam on all tensors.

Both minimise the NLL  L = −(1/N) Σ_i ln |Ψ(v_i)|² + ln Z  and share the ``fit`` contract: a
history (one record per sweep/epoch: train/valid NLL in nats, max bond, seconds), a tqdm progress
bar, a checkpoint written atomically after every sweep, and exact resumption from that checkpoint.

Data parallelism: under ``torchrun`` (an initialised torch.distributed process group, see
:mod:`bornmachine.distributed`) every rank passes the whole data set to ``fit`` and keeps a contiguous
block of it (and the environments of that block); the sums over samples (merged-tensor gradient,
sample counts, NLL) are all-reduced, random numbers are drawn identically on every rank (minibatches
index the global data set), and only rank 0 writes checkpoints, warnings and progress. The result
equals the single-process run to floating-point round-off.
"""
from __future__ import annotations

import json
import math
import os
import time
import warnings
from typing import Callable

import numpy as np
import torch
from tqdm.auto import tqdm

from . import distributed, kernels
from .io import read_npz, write_npz
from .mps import MPS
from .ttn import TTN  # TTN support: SweepTrainer dispatches to tree_training.tree_sweep
from .validation import as_binary, check_positive_int


class ZeroProbabilityWarning(RuntimeWarning):
    """Training samples with Ψ(v) = 0 were excluded from a gradient step (their NLL is infinite)."""


# ------------------------------------------------------------------------------------------------
# pure kernels of the two-site step
# ------------------------------------------------------------------------------------------------
def bond_orders(x: torch.Tensor) -> tuple[torch.Tensor, list[list[int]]]:
    """For every bond k of configurations x (N, n): the stable order sorting the samples by their code
    2·x_k + x_{k+1}, as rows of (n − 1, N) int64, and the count of each code per bond (n − 1 lists of 4)."""
    n_bonds = x.shape[1] - 1
    orders = torch.empty(n_bonds, x.shape[0], dtype=torch.int64, device=x.device)
    counts = []
    for start in range(0, n_bonds, 64):  # blocks of bonds: temporaries stay small next to the result
        stop = min(start + 64, n_bonds)
        codes = 2 * x[:, start:stop] + x[:, start + 1:stop + 1]
        orders[start:stop] = torch.argsort(codes, dim=0, stable=True).T
        counts += torch.stack([(codes == c).sum(0) for c in range(4)], 1).tolist()
    return orders, counts


def nll_gradient_sum(left: torch.Tensor, merged: torch.Tensor, right: torch.Tensor, counts: list[int]):
    """The sample sum in the NLL gradient w.r.t. the merged tensor B, over the given samples.

    left (N, Dl) and right (N, Dr) environments sorted by code 2·s + t with ``counts[c]`` samples of
    code c; merged (Dl, 2, 2, Dr). With ψ_i = L_iᵀ B[:, s_i, t_i, :] R_i, returns S (4, Dl, Dr) with
    S[2s + t] = Σ_{i of code 2s+t} L_i R_iᵀ / ψ_i, the number of samples used and the number left out:
    samples with |ψ_i| < sqrt(tiny) (numerically zero probability; their contribution is infinite).
    Each code block costs two (N_c × Dl × Dr) matmuls. S and the counts are sums over samples, so the
    shards of several processes add up (see :func:`nll_gradient`).
    """
    floor = math.sqrt(torch.finfo(merged.dtype).tiny)  # |ψ| below this counts as zero: 1/ψ would overflow
    dl, dr = merged.shape[0], merged.shape[3]
    bounds = kernels.block_bounds(counts)
    blocks = merged.permute(1, 2, 0, 3).reshape(4, dl, dr).unbind(0)
    psi = torch.linalg.vecdot(kernels.contract_blocks(left, blocks, bounds, torch.empty_like(right)), right)
    n_zero = 0
    if psi.numel() and float(psi.abs().min()) > floor:
        weighted = right / psi[:, None]  # R_i / ψ_i
    else:  # some (or no) samples of zero amplitude: leave them out
        ok = psi.abs() > floor
        weighted = right * (ok / torch.where(ok, psi, 1.0))[:, None]
        n_zero = int((~ok).sum())
    grad = merged.new_zeros(4, dl, dr)
    for c, (a, b) in enumerate(zip(bounds, bounds[1:])):
        if b > a:
            torch.mm(left[a:b].T, weighted[a:b], out=grad[c])
    return grad, int(psi.shape[0]) - n_zero, n_zero


def nll_gradient(merged: torch.Tensor, sample_sum: torch.Tensor, n_used: int) -> torch.Tensor:
    """∂L/∂B = 2B/‖B‖² − (2/n) Σ_i (∂ψ_i/∂B) / ψ_i of a merged tensor B (any shape).

    ``sample_sum``: the sum over the n = ``n_used`` samples (of all processes), shaped like B.
    """
    squared = max(float(torch.linalg.vector_norm(merged)) ** 2, torch.finfo(merged.dtype).tiny)
    return torch.add(merged, sample_sum, alpha=-squared / max(n_used, 1)).mul_(2.0 / squared)


def advance_environments(rows: torch.Tensor, a: torch.Tensor, counts: list[int], side: str,
                         normalize: bool = True) -> torch.Tensor:
    """Per-sample environments one site further, for rows sorted by the two-site code of their bond.

    ``side="left"``: rows L_i (N, D_{k-1}) at bond k (sites k, k+1), ``a`` = A_k → L_i A_k[:, x_k, :] (N, D_k);
    ``side="right"``: rows R_i (N, D_{k+1}), ``a`` = A_{k+1} → A_{k+1}[:, x_{k+1}, :] R_i (N, D_k).
    x_k is the major bit of the code, x_{k+1} the minor one, so every row is multiplied by its own
    matrix only (no wasted branch). ``normalize``: rescale rows to unit norm (the NLL gradient is invariant
    to their scale; with isometric tensors a row shrinks by about sqrt p(x_k | rest) per site).
    """
    if side == "left":
        out = kernels.contract_blocks(rows, (a[:, 0, :], a[:, 1, :]), [0, counts[0] + counts[1], rows.shape[0]],
                              rows.new_empty(rows.shape[0], a.shape[2]))
    else:
        mats = (a[:, 0, :].T, a[:, 1, :].T)
        out = kernels.contract_blocks(rows, mats + mats, kernels.block_bounds(counts),
                                      rows.new_empty(rows.shape[0], a.shape[0]))
    if normalize:
        out /= torch.linalg.vector_norm(out, dim=1, keepdim=True).clamp_min(torch.finfo(out.dtype).tiny)
    return out


def _merge(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """A (Dl, 2, D) and B (D, 2, Dr) → the two-site tensor (Dl, 2, 2, Dr)."""
    return (a.reshape(-1, a.shape[2]) @ b.reshape(b.shape[0], -1)).view(a.shape[0], 2, 2, b.shape[2])


# ------------------------------------------------------------------------------------------------
# shared fit loop: history, progress, checkpoints
# ------------------------------------------------------------------------------------------------
class _Trainer:
    _kind = "trainer"

    def _hyper(self) -> dict:
        raise NotImplementedError

    def fit(self, train, valid=None, callback: Callable[[dict], None] | None = None, checkpoint=None,
            progress: bool = True) -> list[dict]:
        """Train for the configured number of sweeps/epochs; return the history.

        train, valid: binary data (N, n_sites) or (N, H, W). ``checkpoint``: a path written after every
        sweep; if it exists when ``fit`` starts, training resumes from it (same result as an
        uninterrupted run). ``callback(record)`` is called after every sweep.
        Each record: ``{"sweep", "train_nll", "valid_nll", "max_bond", "seconds", "zero_prob"}`` (nats).

        Under torch.distributed every rank passes the same data and model (rank 0's parameters are
        broadcast at the start); each trains on its block of the rows, every rank reads the checkpoint
        (which must be on a file system all ranks see; rank 0 decides whether it exists) and receives
        the same records and callbacks, and only rank 0 writes the checkpoint, warns and shows progress.
        """
        model = self.model
        x_train = as_binary(train, model.n_sites, name="train", device=model.device, shape=model.shape)
        x_valid = None if valid is None else as_binary(valid, model.n_sites, name="valid", device=model.device,
                                                         shape=model.shape)
        for name, data in (("train", x_train), ("valid", x_valid)):
            if data is not None and data.shape[0] == 0:
                raise ValueError(f"{name} data is empty (0 samples)")
        part = distributed.shard(x_train.shape[0], name="train")
        x_train = x_train[part.start:part.stop]
        if x_valid is not None:
            part_valid = distributed.shard(x_valid.shape[0], name="valid")
            x_valid = x_valid[part_valid.start:part_valid.stop]
        history: list[dict] = []
        start = 0
        if checkpoint is not None and distributed.broadcast_flag(os.path.exists(checkpoint)):
            history = self._restore(checkpoint)
            start = len(history)
        distributed.broadcast_(*self._parameters())
        main = distributed.is_main()
        bar = tqdm(range(start, self.n_sweeps), desc=self._kind, unit=self._unit, disable=not (progress and main),
                   initial=start, total=self.n_sweeps)
        try:
            self._train(model, x_train, x_valid, part, history, bar, main, checkpoint, callback)
        finally:
            self._release()
        return history

    def _train(self, model, x_train, x_valid, part, history, bar, main, checkpoint, callback):
        """The sweep loop of :meth:`fit` (appends to ``history``)."""
        for sweep in bar:
            t0 = time.perf_counter()
            zero = self._run_one(x_train, sweep, part)
            seconds = time.perf_counter() - t0
            record = {"sweep": sweep + 1, "train_nll": _finite_nll(model, x_train),
                      "valid_nll": None if x_valid is None else _finite_nll(model, x_valid),
                      "max_bond": max(_bond_dims(model), default=1), "seconds": seconds, "zero_prob": zero}
            history.append(record)
            if zero and main:
                warnings.warn(f"sweep {sweep + 1}: {zero} training samples had zero probability and were left "
                              "out of the gradient", ZeroProbabilityWarning, stacklevel=3)
            bar.set_postfix(train=f"{record['train_nll']:.3f}", valid="-" if x_valid is None
                            else f"{record['valid_nll']:.3f}", D=record["max_bond"])
            if checkpoint is not None and main:
                self._save(checkpoint, history)
            if callback is not None:
                callback(record)

    def _release(self) -> None:
        """Free what ``fit`` keeps from sweep to sweep (buffers, cached orders)."""

    # checkpoints ----------------------------------------------------------------------------------
    def _save(self, path, history):
        model = self.model
        state = self.generator.get_state().numpy()
        arrays = {f"tensor_{k}": t.detach().cpu().numpy() for k, t in enumerate(model.tensors)}
        arrays["generator_state"] = state
        arrays.update(self._extra_state())
        meta = {"trainer": self._kind, "hyper": self._hyper(), "history": history, "n_sites": model.n_sites,
                "center": getattr(model, "center", None)}  # the saved tensors are exact: so is their gauge
        write_npz(path, "checkpoint", meta, arrays)

    def _restore(self, path) -> list[dict]:
        meta, arrays = read_npz(path)
        if meta.get("kind") != "checkpoint" or meta.get("trainer") != self._kind:
            raise ValueError(f"{os.fspath(path)!r} is not a {self._kind} checkpoint")
        if meta.get("n_sites") != self.model.n_sites or meta.get("hyper") != json.loads(json.dumps(self._hyper())):
            # the total number of sweeps is not a setting: a finished run can be extended
            raise ValueError(f"checkpoint {os.fspath(path)!r} was written with other settings "
                             f"({meta.get('hyper')}); refusing to resume with {self._hyper()}")
        self.model.tensors = [torch.from_numpy(arrays[f"tensor_{k}"]).to(self.model.device)
                              for k in range(len(self.model.tensors))]
        center = meta.get("center")
        self.model.center = center if isinstance(center, int) and 0 <= center < self.model.n_sites else None
        self.generator.set_state(torch.from_numpy(arrays["generator_state"]))
        self._load_extra_state(arrays)
        return list(meta["history"])

    def _parameters(self) -> list[torch.Tensor]:
        """The tensors that training updates (kept identical on every rank)."""
        return self.model.tensors

    def _extra_state(self) -> dict:
        return {}

    def _load_extra_state(self, arrays) -> None:
        pass


def _bond_dims(model):
    return model.bond_dims


def _finite_nll(model, x, chunk: int = 4096) -> float:
    """Mean NLL over samples of non-zero probability (zero-probability ones are counted in the record),
    over the rows of all ranks (x: this rank's block)."""
    parts = [model.log_prob(x[i:i + chunk]) for i in range(0, x.shape[0], chunk)]
    logp = torch.cat(parts)
    finite = torch.isfinite(logp)
    total = torch.stack([-logp[finite].sum().double(), finite.sum().double()])
    distributed.all_reduce_sum(total)
    return float(total[0] / total[1]) if total[1] > 0 else float("inf")


# ------------------------------------------------------------------------------------------------
# two-site sweep trainer
# ------------------------------------------------------------------------------------------------
class SweepTrainer(_Trainer):
    """Two-site DMRG-style training (Han et al. 2018).

    At each bond: merge B = A_k A_{k+1}; take ``n_steps`` gradient steps B ← B − lr ∇_B L (with cached,
    per-sample left/right environments, minibatches of ``batch_size`` or the full set); normalise;
    split at the truncated-SVD rank (``max_bond``, singular values below ``cutoff``·s_max dropped; by
    :func:`~bornmachine.kernels.truncated_split`, an eigendecomposition of the Gram matrix); move the
    centre. One sweep = left→right then right→left. Environments are updated incrementally; only the
    ones the sweep direction still needs are kept: one per bond (the right environment of a bond
    ahead, the left one of a bond behind), N · Σ_k D_k ≤ N · (n − 1) · D numbers (N: this process's
    samples), stored in ``env_dtype`` in one buffer kept between sweeps (slot k sized for the larger
    of bond k before and after its update, so a growing bond may take up to twice its old size; the
    buffer grows with 25 % room; one allocation keeps the heap from fragmenting and spares the page
    faults of a fresh one; ``fit`` frees it when it returns). Once the bonds are near their largest
    sizes the slots keep one layout, and the right environments that the right→left pass leaves in
    them serve the next sweep as they are. Each bond's samples are sorted by their two-site code and its
    environments are stored in that order, so every block of rows is contracted with its own matrix only. Every
    other per-sample array of a step is O(N · D), so the environments dominate:
    bytes ≈ N · Σ_k D_k · itemsize(env_dtype) (× ≤ 1.25 while bonds grow) + 24 · N · n (the data, int64,
    twice, and the per-bond sample orders).

    Parameters
    ----------
    model : MPS (changed in place).
    max_bond : int, bond-dimension cap. cutoff : float, relative singular-value cutoff.
    lr : float, step size. n_steps : gradient steps per bond. batch_size : int or None (full batch).
    n_sweeps : int (a finished checkpoint can be resumed with a larger n_sweeps). seed : int (minibatch order).
    max_step : float or None, trust region: the step lr·∇ is scaled down to this length (‖B‖ = 1), so a
        sample of tiny amplitude (∇ ∝ 1/ψ) cannot wipe out the merged tensor in one step; None = plain step.
    env_dtype : torch dtype or None, storage of the cached per-sample environments (None: the model's
        dtype). ``torch.float32`` halves their memory for a float64 model; every contraction, the
        merged tensor, its gradient and the split stay in the model's dtype (environments are converted
        on use). Like the device, not a checkpointed setting.
    """

    _kind = "sweep"
    _unit = "sweep"

    def __init__(self, model: MPS, *, max_bond: int = 32, cutoff: float = 1e-7, lr: float = 0.05,
                 n_steps: int = 1, batch_size: int | None = None, n_sweeps: int = 4, seed: int = 0,
                 max_step: float | None = 0.3, env_dtype: torch.dtype | None = None):
        if not isinstance(model, (MPS, TTN)):
            raise TypeError(f"SweepTrainer trains an MPS or a TTN, got {type(model).__name__}")
        self.model = model
        self.max_bond = check_positive_int(max_bond, "max_bond")
        if not (isinstance(cutoff, (int, float)) and 0.0 <= cutoff < 1.0):
            raise ValueError(f"cutoff must be in [0, 1), got {cutoff!r}")
        if not (isinstance(lr, (int, float)) and lr > 0 and math.isfinite(lr)):
            raise ValueError(f"lr must be a positive number, got {lr!r}")
        self.cutoff, self.lr = float(cutoff), float(lr)
        self.n_steps = check_positive_int(n_steps, "n_steps")
        self.batch_size = None if batch_size is None else check_positive_int(batch_size, "batch_size")
        self.n_sweeps = check_positive_int(n_sweeps, "n_sweeps")
        if max_step is not None and not (isinstance(max_step, (int, float)) and max_step > 0):
            raise ValueError(f"max_step must be a positive number or None, got {max_step!r}")
        self.max_step = None if max_step is None else float(max_step)
        if env_dtype is not None and not isinstance(env_dtype, torch.dtype):
            raise TypeError(f"env_dtype must be a torch dtype or None, got {type(env_dtype).__name__}")
        if env_dtype is not None and env_dtype not in (torch.float32, torch.float64):
            raise ValueError(f"env_dtype must be torch.float32 or torch.float64, got {env_dtype}")
        self.env_dtype = env_dtype
        self._buffer = None  # the environments of a sweep, kept from sweep to sweep within fit
        self._kept_rights = None  # (rows, slot sizes, buffer, tensors) of the right environments in the buffer
        self._orders = None  # (rows, ordering, per-bond sample orders, code counts)
        self.seed = int(seed)
        self.generator = torch.Generator().manual_seed(self.seed)

    def _hyper(self):
        return {"max_bond": self.max_bond, "cutoff": self.cutoff, "lr": self.lr, "n_steps": self.n_steps,
                "batch_size": self.batch_size, "max_step": self.max_step, "seed": self.seed}

    # one sweep ------------------------------------------------------------------------------------
    def _run_one(self, x, sweep: int, part: distributed.Shard) -> int:
        """One sweep over this rank's rows x (part.size, n) of the ``part.total`` training rows."""
        model = self.model
        if isinstance(model, TTN):  # tree version of the two-site sweep
            from .tree_training import tree_sweep

            return tree_sweep(self, x, part)
        data = x
        x = x[:, model.ordering.to(x.device)]
        n = model.n_sites
        if n < 2:
            raise ValueError("two-site training needs at least 2 sites")
        if model.center != 0:  # after a sweep the model is canonical at 0 already
            model.canonicalize(0)
        t = model.tensors
        dtype, env = model.dtype, self.env_dtype or model.dtype
        # Per bond k the samples sorted by code 2·x_k + x_{k+1}: each block of rows has one matrix. The
        # environments used at bond k (L_k and R_{k+1}) are stored in this order, so a step reads them as
        # they are and a new environment costs one gather into the next bond's order.
        if self._orders is None or self._orders[0] is not data or self._orders[1] != model.ordering.tolist():
            self._orders = (data, model.ordering.tolist(), *bond_orders(x))  # kept: the rows stay the same
        orders, counts = self._orders[2:]

        def reorder(envs, bond, to_bond, out):  # rows in bond's order → to_bond's order, stored as env dtype
            perm = kernels.inverse_permutation(orders[bond]).index_select(0, orders[to_bond])
            if envs.dtype == out.dtype:
                return torch.index_select(envs, 0, perm, out=out)
            return out.copy_(envs.index_select(0, perm))

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
        rows = x.shape[0]
        most = rows * sum(min(self.max_bond, 2 ** min(b + 1, n - b - 1, 62)) for b in range(n - 1))
        store = self._environment_buffer(rows * offsets[-1], most, env, model.device)

        def slot(bond: int, width: int) -> torch.Tensor:  # contiguous (rows, width): rows stay close in memory
            assert width <= caps[bond], "environment slot overflow"
            start = rows * offsets[bond]
            return store[start:start + rows * width].view(rows, width)

        ones = torch.ones(x.shape[0], 1, dtype=env, device=model.device)
        rights: list[torch.Tensor | None] = [None] * n  # R_k (sites k+1…, on bond k), in bond k − 1's order
        rights[n - 1] = ones
        every = 8 if env == dtype == torch.float64 else 2  # rows shrink by ~sqrt p per site: rescale in time

        def right_step(envs, bond, out):
            """R_bond from R_{bond+1} (in bond's order) through site bond + 1, into bond − 1's order."""
            return reorder(advance_environments(envs.to(dtype), t[bond + 1], counts[bond], "right",
                                                (bond + 1) % every == 0), bond, bond - 1, out)

        kept = self._kept_rights
        if kept is not None and kept[0] is data and kept[1] == caps and kept[2] is store and \
                all(a is b for a, b in zip(kept[3], t)):  # same rows, layout and tensors as the last pass left
            for k in range(1, n - 1):
                rights[k] = slot(k, t[k + 1].shape[0])
        else:
            for k in range(n - 1, 1, -1):  # R_{k-1} from R_k: the same step as right → left below
                rights[k - 1] = right_step(rights[k], k - 1, slot(k - 1, t[k].shape[0]))
        self._kept_rights = None
        lefts: list[torch.Tensor | None] = [None] * n  # lefts[k] = L_k, in bond k's order
        lefts[0] = ones
        zero = 0
        for k in range(n - 1):  # left → right: the centre moves from site k to k+1
            left = lefts[k].to(dtype)
            merged, n_zero = self._optimise(_merge(t[k], t[k + 1]), left,
                                            rights[k + 1].to(dtype), counts[k], orders[k], k, part)
            zero = max(zero, n_zero)
            t[k], t[k + 1] = self._split(merged, absorb="right")
            rights[k + 1] = None
            if k < n - 2:
                lefts[k + 1] = reorder(advance_environments(left, t[k], counts[k], "left", k % every == 0), k,
                                       k + 1, slot(k, t[k].shape[2]))
        right = ones.to(dtype)  # R_{k+1} in bond k's order
        fits = True
        for k in range(n - 2, -1, -1):  # right → left: the centre moves from site k+1 to k
            merged, n_zero = self._optimise(_merge(t[k], t[k + 1]), lefts[k].to(dtype), right,
                                            counts[k], orders[k], k, part)
            zero = max(zero, n_zero)
            t[k], t[k + 1] = self._split(merged, absorb="left")
            lefts[k] = None
            if k > 0:  # R_k into slot k (L_{k+1} is used up), where the next sweep looks for it, if it fits
                width = t[k].shape[2]
                fits = fits and width <= caps[k]
                out = slot(k, width) if width <= caps[k] else torch.empty(rows, width, dtype=env, device=model.device)
                right = right_step(right, k, out).to(dtype)
        model.center = 0
        if fits:
            self._kept_rights = (data, caps, store, list(t))
        return zero

    def _release(self) -> None:
        self._buffer = self._kept_rights = self._orders = None

    def _environment_buffer(self, size: int, most: int, dtype: torch.dtype, device) -> torch.Tensor:
        """The environments' buffer (≥ ``size`` numbers), kept between sweeps: a fresh one of hundreds of MB
        costs a page fault per 4 KiB on first touch (0.1 s per 100 MB here). When it must grow it is
        reallocated with 25 % room (never beyond ``most``, what the largest bonds could need)."""
        buffer = self._buffer
        if buffer is None or buffer.numel() < size or buffer.dtype != dtype or buffer.device != torch.device(device):
            self._buffer = None  # free the old one before allocating
            buffer = self._buffer = torch.empty(max(size, min(most, size + size // 4)), dtype=dtype, device=device)
        return buffer

    def _optimise(self, merged, left, right, counts, order, k, part):
        """``n_steps`` normalised gradient steps on the merged tensor of bond k.

        left, right: this rank's environments (part.size, D) in the bond's code order ``order`` (sample
        indices), with ``counts`` samples of each code.
        """
        dl, dr = merged.shape[0], merged.shape[3]
        full = self.batch_size is None or self.batch_size >= part.total
        if not full:
            rank_of = kernels.inverse_permutation(order)
            edges = torch.tensor(kernels.block_bounds(counts), device=order.device)
        zero = 0
        for _ in range(self.n_steps):
            if full:
                terms = nll_gradient_sum(left, merged, right, counts)
            else:  # a minibatch of the global rows, drawn alike on every rank; this rank's part of it
                idx = part.local(torch.randperm(part.total, generator=self.generator)[: self.batch_size])
                rows = rank_of[idx.to(order.device)].sort().values  # the minibatch's rows, still in code order
                cuts = torch.searchsorted(rows, edges).tolist()
                terms = nll_gradient_sum(left[rows], merged, right[rows], [b - a for a, b in zip(cuts, cuts[1:])])
            sample_sum, (n_used, n_zero) = distributed.sum_with_counts(*terms)  # complete the sums over ranks
            grad = nll_gradient(merged, sample_sum.view(2, 2, dl, dr).permute(2, 0, 1, 3), n_used)
            zero = max(zero, n_zero)
            scale = self.lr
            if self.max_step is not None:  # trust region: ‖B‖ = 1, so cap the step's length
                length = self.lr * float(torch.linalg.vector_norm(grad))
                if length > self.max_step:
                    scale = self.lr * self.max_step / length
            merged = torch.add(merged, grad, alpha=-scale)
            norm = torch.linalg.vector_norm(merged)
            merged /= norm
            if not math.isfinite(norm):
                raise FloatingPointError(f"non-finite tensor after the gradient step at bond {k}; "
                                         f"lower lr (now {self.lr}) or use float64")
        return merged, zero

    def _split(self, merged, absorb):
        dl, _, _, dr = merged.shape
        left, right = kernels.truncated_split(merged.reshape(dl * 2, 2 * dr), self.max_bond, self.cutoff, absorb)
        return left.reshape(dl, 2, -1), right.reshape(-1, 2, dr)


# ------------------------------------------------------------------------------------------------
# gradient trainer (autodiff, fixed bonds)
# ------------------------------------------------------------------------------------------------
class GradientTrainer(_Trainer):
    """Adam on all MPS tensors by autodiff at fixed bond dimensions, minibatches, any device.

    Parameters
    ----------
    model : MPS (changed in place; moved to ``device`` if given).
    lr : Adam step size. batch_size : minibatch size. n_epochs : passes over the data.
    seed : int (minibatch order). device : e.g. "cuda"; default the model's device.
    """

    _kind = "gradient"
    _unit = "epoch"

    def __init__(self, model: MPS, *, lr: float = 1e-3, batch_size: int = 100, n_epochs: int = 10,
                 seed: int = 0, device=None):
        if not isinstance(model, (MPS, TTN)):
            raise TypeError(f"GradientTrainer trains an MPS or a TTN, got {type(model).__name__}")
        if not (isinstance(lr, (int, float)) and lr > 0 and math.isfinite(lr)):
            raise ValueError(f"lr must be a positive number, got {lr!r}")
        if device is not None:
            model.tensors = [t.to(device) for t in model.tensors]
        self.model = model
        self.lr = float(lr)
        self.batch_size = check_positive_int(batch_size, "batch_size")
        self.n_sweeps = check_positive_int(n_epochs, "n_epochs")
        self.seed = int(seed)
        self.generator = torch.Generator().manual_seed(self.seed)
        self._params = [t.detach().clone().requires_grad_(True) for t in model.tensors]
        self._optimizer = torch.optim.Adam(self._params, lr=self.lr)

    def _hyper(self):
        return {"lr": self.lr, "batch_size": self.batch_size, "seed": self.seed}

    def _parameters(self):
        return self._params

    def _run_one(self, x, epoch: int, part: distributed.Shard) -> int:
        """One epoch over this rank's rows x (part.size, n); minibatches index all part.total rows."""
        model = self.model
        x = x[:, model.ordering.to(x.device)]
        perm = torch.randperm(part.total, generator=self.generator)
        zero = 0
        for i in range(0, part.total, self.batch_size):
            batch = x[part.local(perm[i:i + self.batch_size]).to(x.device)]
            self._optimizer.zero_grad(set_to_none=True)
            with torch.no_grad():  # drop Ψ = 0 samples first: ∂ ln|Ψ| at Ψ = 0 would poison the gradient with NaN
                finite = torch.isfinite(model.amplitude_kernel(self._params, batch)[1])
            n_bad = int((~finite).sum())
            n_used, n_bad_all = distributed.sum_ints(batch.shape[0] - n_bad, n_bad)
            zero += n_bad_all
            if n_used == 0:
                continue
            if n_bad:
                batch = batch[finite]
            _, log_abs = model.amplitude_kernel(self._params, batch)
            loss = log_abs.sum() * (-2.0 / n_used)  # this rank's share of −(2/n) Σ ln|Ψ|
            if distributed.is_main():  # ln Z once, not once per rank
                loss = loss + model.log_norm_kernel(self._params)
            loss.backward()
            distributed.all_reduce_grads(self._params)
            self._optimizer.step()
            with torch.no_grad():  # keep the scale of Ψ near 1 (p is unchanged by a global factor)
                log_z = float(model.log_norm_kernel(self._params))
                factor = math.exp(-log_z / (2 * len(self._params)))
                for p in self._params:
                    p.mul_(factor)
        model.tensors = [p.detach().clone() for p in self._params]
        model.center = None
        return zero

    def _extra_state(self):
        state = self._optimizer.state_dict()
        arrays = {"adam_step": np.array([float(state["state"][i]["step"]) if i in state["state"] else 0.0
                                         for i in range(len(self._params))])}
        for i in range(len(self._params)):
            if i in state["state"]:
                arrays[f"adam_m_{i}"] = state["state"][i]["exp_avg"].detach().cpu().numpy()
                arrays[f"adam_v_{i}"] = state["state"][i]["exp_avg_sq"].detach().cpu().numpy()
        return arrays

    def _load_extra_state(self, arrays):
        device = self.model.device
        self._params = [t.detach().clone().requires_grad_(True) for t in self.model.tensors]
        self._optimizer = torch.optim.Adam(self._params, lr=self.lr)
        state = self._optimizer.state_dict()
        for i in range(len(self._params)):
            if f"adam_m_{i}" in arrays:
                state["state"][i] = {"step": torch.tensor(float(arrays["adam_step"][i])),
                                     "exp_avg": torch.from_numpy(arrays[f"adam_m_{i}"]).to(device),
                                     "exp_avg_sq": torch.from_numpy(arrays[f"adam_v_{i}"]).to(device)}
        self._optimizer.load_state_dict(state)
