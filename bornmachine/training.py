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
def group_by_code(code: torch.Tensor) -> tuple[torch.Tensor, list[int]]:
    """Stable order that sorts samples by their two-site code 2·s + t, and the count of each code."""
    return torch.argsort(code, stable=True), torch.bincount(code, minlength=4).tolist()


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
    blocks = merged.permute(1, 2, 0, 3).reshape(4, dl, dr)
    bounds = [0]
    for count in counts:
        bounds.append(bounds[-1] + count)
    parts = [((left[a:b] @ blocks[c]) * right[a:b]).sum(-1) for c, (a, b) in enumerate(zip(bounds, bounds[1:]))
             if b > a]
    psi = torch.cat(parts) if parts else merged.new_zeros(0)  # a minibatch may miss this shard
    ok = psi.abs() > floor
    weighted = right * (ok / torch.where(ok, psi, 1.0))[:, None]  # R_i / ψ_i, 0 where ψ_i ≈ 0
    grad = merged.new_zeros(4, dl, dr)
    for c, (a, b) in enumerate(zip(bounds, bounds[1:])):
        if b > a:
            torch.mm(left[a:b].T, weighted[a:b], out=grad[c])
    n_used = int(ok.sum())
    return grad, n_used, int(psi.shape[0]) - n_used


def nll_gradient(merged: torch.Tensor, sample_sum: torch.Tensor, n_used: int) -> torch.Tensor:
    """∂L/∂B = 2B/‖B‖² − (2/n) Σ_i (∂ψ_i/∂B) / ψ_i of a merged tensor B (any shape).

    ``sample_sum``: the sum over the n = ``n_used`` samples (of all processes), shaped like B.
    """
    return 2.0 * merged / (merged * merged).sum() - (2.0 / max(n_used, 1)) * sample_sum


def _advance_left(left: torch.Tensor, a: torch.Tensor, bits: torch.Tensor, out=None) -> torch.Tensor:
    """Normalised L_{k+1} = L_k A_k[:, x_k, :] (N, D_k), written into ``out`` (N, D_k) if given."""
    w = (left @ a.reshape(a.shape[0], -1)).view(-1, 2, a.shape[2])
    step = torch.where(bits[:, None] == 1, w[:, 1], w[:, 0])
    norm = torch.linalg.vector_norm(step, dim=1, keepdim=True).clamp_min(torch.finfo(step.dtype).tiny)
    return torch.div(step, norm, out=out)


def _advance_right(right: torch.Tensor, a: torch.Tensor, bits: torch.Tensor, out=None) -> torch.Tensor:
    """Normalised R_{k-1} = A_k[:, x_k, :] R_k (N, D_{k-1}), written into ``out`` (N, D_{k-1}) if given."""
    w = (right @ a.permute(2, 1, 0).reshape(a.shape[2], -1)).view(-1, 2, a.shape[0])
    step = torch.where(bits[:, None] == 1, w[:, 1], w[:, 0])
    norm = torch.linalg.vector_norm(step, dim=1, keepdim=True).clamp_min(torch.finfo(step.dtype).tiny)
    return torch.div(step, norm, out=out)


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
                              "out of the gradient", ZeroProbabilityWarning, stacklevel=2)
            bar.set_postfix(train=f"{record['train_nll']:.3f}", valid="-" if x_valid is None
                            else f"{record['valid_nll']:.3f}", D=record["max_bond"])
            if checkpoint is not None and main:
                self._save(checkpoint, history)
            if callback is not None:
                callback(record)
        return history

    # checkpoints ----------------------------------------------------------------------------------
    def _save(self, path, history):
        model = self.model
        state = self.generator.get_state().numpy()
        arrays = {f"tensor_{k}": t.detach().cpu().numpy() for k, t in enumerate(model.tensors)}
        arrays["generator_state"] = state
        arrays.update(self._extra_state())
        meta = {"trainer": self._kind, "hyper": self._hyper(), "history": history, "n_sites": model.n_sites}
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
        self.model.center = None
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
    split by truncated SVD (``max_bond``, singular values below ``cutoff``·s_max dropped); move the
    centre. One sweep = left→right then right→left. Environments are updated incrementally; only the
    ones the sweep direction still needs are kept: one per bond (the right environment of a bond
    ahead, the left one of a bond behind), N · Σ_k D_k ≤ N · (n − 1) · D numbers (N: this process's
    samples), stored in ``env_dtype`` in one buffer allocated per sweep (slot k sized for the larger
    of bond k before and after its update, so a growing bond may take up to twice its old size;
    a single allocation also keeps the heap from fragmenting). Every other per-sample array of a
    step is O(N · D) (sorted copies of the two environments in use, amplitudes), so the environments
    dominate: bytes ≈ N · Σ_k D_k · itemsize(env_dtype) + 16 · N · n (the data, int64, twice).

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
        merged tensor, its gradient and the SVD stay in the model's dtype (environments are converted
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
        x = x[:, model.ordering.to(x.device)]
        n = model.n_sites
        if n < 2:
            raise ValueError("two-site training needs at least 2 sites")
        model.canonicalize(0)
        t = model.tensors
        dtype, env = model.dtype, self.env_dtype or model.dtype
        # Slot b of one buffer of N · Σ_b cap_b numbers holds bond b's right environment (old D_b) until the
        # left→right pass replaces it by the left one of the updated bond: D_b ≤ min(max_bond, 2 D_{b+1}).
        old = [a.shape[2] for a in t[:-1]] + [1]
        caps = [max(old[b], min(self.max_bond, 2 * old[b + 1])) for b in range(n - 1)]
        offsets = [0]
        for cap in caps:
            offsets.append(offsets[-1] + cap)
        rows = x.shape[0]
        store = torch.empty(rows * offsets[-1], dtype=env, device=model.device)

        def slot(bond: int, width: int) -> torch.Tensor:  # contiguous (rows, width): rows stay close in memory
            assert width <= caps[bond], "environment slot overflow"
            start = rows * offsets[bond]
            return store[start:start + rows * width].view(rows, width)

        ones = torch.ones(x.shape[0], 1, dtype=env, device=model.device)
        rights: list[torch.Tensor | None] = [None] * n
        rights[n - 1] = ones
        for k in range(n - 1, 1, -1):
            rights[k - 1] = _advance_right(rights[k].to(dtype), t[k], x[:, k], out=slot(k - 1, t[k].shape[0]))
        lefts: list[torch.Tensor | None] = [None] * n
        lefts[0] = ones
        zero = 0
        for k in range(n - 1):  # left → right: the centre moves from site k to k+1
            merged, n_zero = self._optimise(torch.tensordot(t[k], t[k + 1], dims=1), lefts[k],
                                            rights[k + 1], x, k, part)
            zero = max(zero, n_zero)
            t[k], t[k + 1] = self._split(merged, absorb="right")
            rights[k + 1] = None
            if k < n - 2:
                lefts[k + 1] = _advance_left(lefts[k].to(dtype), t[k], x[:, k], out=slot(k, t[k].shape[2]))
        right = ones
        for k in range(n - 2, -1, -1):  # right → left: the centre moves from site k+1 to k
            merged, n_zero = self._optimise(torch.tensordot(t[k], t[k + 1], dims=1), lefts[k], right, x, k, part)
            zero = max(zero, n_zero)
            t[k], t[k + 1] = self._split(merged, absorb="left")
            lefts[k] = None
            right = _advance_right(right.to(dtype), t[k + 1], x[:, k + 1]).to(env)
        model.center = 0
        return zero

    def _optimise(self, merged, left, right, x, k, part):
        """``n_steps`` normalised gradient steps on the merged tensor of bond k; environments (part.size, D)."""
        dtype = merged.dtype
        dl, dr = merged.shape[0], merged.shape[3]
        code = 2 * x[:, k] + x[:, k + 1]
        full = self.batch_size is None or self.batch_size >= part.total
        if full:
            order, counts = group_by_code(code)
            left, right = left[order].to(dtype), right[order].to(dtype)
        zero = 0
        for _ in range(self.n_steps):
            if full:
                terms = nll_gradient_sum(left, merged, right, counts)
            else:  # a minibatch of the global rows, drawn alike on every rank; this rank's part of it
                idx = part.local(torch.randperm(part.total, generator=self.generator)[: self.batch_size])
                idx = idx.to(x.device)
                order, counts = group_by_code(code[idx])
                idx = idx[order]
                terms = nll_gradient_sum(left[idx].to(dtype), merged, right[idx].to(dtype), counts)
            sample_sum, (n_used, n_zero) = distributed.sum_with_counts(*terms)  # complete the sums over ranks
            grad = nll_gradient(merged, sample_sum.view(2, 2, dl, dr).permute(2, 0, 1, 3), n_used)
            zero = max(zero, n_zero)
            scale = self.lr
            if self.max_step is not None:  # trust region: ‖B‖ = 1, so cap the step's length
                length = self.lr * float(torch.linalg.vector_norm(grad))
                if length > self.max_step:
                    scale = self.lr * self.max_step / length
            merged = merged - scale * grad
            norm = torch.linalg.vector_norm(merged)
            merged = merged / norm
            if not math.isfinite(norm):
                raise FloatingPointError(f"non-finite tensor after the gradient step at bond {k}; "
                                         f"lower lr (now {self.lr}) or use float64")
        return merged, zero

    def _split(self, merged, absorb):
        dl, _, _, dr = merged.shape
        u, s, vh, _ = kernels.truncated_svd(merged.reshape(dl * 2, 2 * dr), self.max_bond, self.cutoff)
        s = s / torch.linalg.vector_norm(s)
        if absorb == "right":
            return u.reshape(dl, 2, -1), (s[:, None] * vh).reshape(-1, 2, dr)
        return (u * s[None, :]).reshape(dl, 2, -1), vh.reshape(-1, 2, dr)


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
