"""Data parallelism with torch.distributed: ranks, data shards, sums over processes.

The trainers (:mod:`bornmachine.training` with its sweep engines, :mod:`rbm.training`)
call these helpers unconditionally. Without an initialised process group every helper is the
single-process identity (rank 0 of 1, the whole data set, sums that return their input), so one
code path serves both. Under ``torchrun --nproc_per_node=P`` every rank passes the *whole* data set
to ``fit``; each keeps the contiguous block of rows :func:`shard` assigns to it, draws the same random
numbers as every other rank (minibatches are index sets of the global data set, mapped to the local
block by :meth:`Shard.local`), and sums over samples are completed by :func:`all_reduce_sum`,
:func:`sum_ints` and :func:`sum_with_counts`. A process group is initialised by the caller, or by
:func:`launched` when the process was started by torchrun (``WORLD_SIZE`` > 1): gloo on CPU, nccl
on CUDA.
"""
from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


def is_active() -> bool:
    """True when a torch.distributed process group is initialised."""
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    """This process's rank (0 without a process group)."""
    return dist.get_rank() if is_active() else 0


def world_size() -> int:
    """Number of processes (1 without a process group)."""
    return dist.get_world_size() if is_active() else 1


def is_main() -> bool:
    """True on the process that writes checkpoints, logs and progress bars (rank 0)."""
    return rank() == 0


@dataclass(frozen=True)
class Shard:
    """Rows ``[start, stop)`` of a data set of ``total`` rows: the block one rank holds."""

    start: int
    stop: int
    total: int

    @property
    def size(self) -> int:
        return self.stop - self.start

    def local(self, idx: torch.Tensor) -> torch.Tensor:
        """The global row indices ``idx`` (B,) that fall in this shard, as local row indices (order kept)."""
        if self.start == 0 and self.stop == self.total:
            return idx
        return idx[(idx >= self.start) & (idx < self.stop)] - self.start

    def positions(self, idx: torch.Tensor) -> torch.Tensor:
        """Positions in ``idx`` (B,) of the global rows that fall in this shard (bool mask (B,))."""
        return (idx >= self.start) & (idx < self.stop)


def shard(total: int, *, name: str = "data") -> Shard:
    """This rank's block of ``total`` rows: rank r holds [⌊r·total/P⌋, ⌊(r+1)·total/P⌋).

    Contiguous and deterministic; block sizes differ by at most one. Raises ``ValueError`` when there
    are fewer rows than processes (a rank would hold none).
    """
    size, r = world_size(), rank()
    if total < size:
        raise ValueError(f"{name} has {total} samples, fewer than the {size} processes")
    return Shard(total * r // size, total * (r + 1) // size, total)


def _comm_device() -> torch.device:
    """Where a helper tensor must live for the active backend (nccl needs CUDA tensors)."""
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def all_reduce_sum(*tensors: torch.Tensor) -> None:
    """Sum each tensor over all ranks, in place (a no-op without a process group).

    Several tensors (one dtype and device) travel in one flat buffer. The reduced values are
    bit-identical on every rank (gloo and nccl reduce each element once and broadcast the result),
    so decisions taken from them (SVD truncation, trust-region scaling) agree everywhere.
    """
    if not is_active() or not tensors:
        return
    if len(tensors) == 1 and tensors[0].is_contiguous():
        dist.all_reduce(tensors[0])
        return
    flat = torch.cat([t.reshape(-1) for t in tensors])
    dist.all_reduce(flat)
    offset = 0
    for t in tensors:
        t.copy_(flat[offset:offset + t.numel()].view_as(t))
        offset += t.numel()


def sum_ints(*values: int) -> tuple[int, ...]:
    """The sums over all ranks of the integers ``values`` (the values themselves without a group)."""
    if not is_active():
        return tuple(int(v) for v in values)
    buf = torch.tensor([int(v) for v in values], dtype=torch.int64, device=_comm_device())
    dist.all_reduce(buf)
    return tuple(int(v) for v in buf.tolist())


def sum_with_counts(tensor: torch.Tensor, *counts):
    """Sum ``tensor`` and the counts ``counts`` (ints, or 0-d integer tensors on ``tensor``'s device) over all
    ranks in one all-reduce (one message per step of a sweep). Returns the summed tensor (a new one;
    ``tensor`` itself without a group) and the summed counts, of the kinds given (tensors stay on the device:
    no host read). The counts travel in ``tensor``'s dtype: exact up to 2^24 in float32, 2^53 in float64."""
    if not is_active():
        return tensor, tuple(c if isinstance(c, torch.Tensor) else int(c) for c in counts)
    values = [c.to(tensor.dtype).reshape(1) if isinstance(c, torch.Tensor) else tensor.new_tensor([float(c)])
              for c in counts]
    flat = torch.cat([tensor.reshape(-1), *values])
    dist.all_reduce(flat)
    n = tensor.numel()
    if not any(isinstance(c, torch.Tensor) for c in counts):
        return flat[:n].view_as(tensor), tuple(round(v) for v in flat[n:].tolist())
    summed = flat[n:].round().to(torch.int64)
    return flat[:n].view_as(tensor), tuple(summed[i] if isinstance(c, torch.Tensor) else int(summed[i])
                                           for i, c in enumerate(counts))


def broadcast_flag(flag: bool) -> bool:
    """Rank 0's value of ``flag`` on every rank (e.g. "the checkpoint exists": rank 0 wrote it, so
    when rank 0 sees it, the other ranks can read it on a shared file system)."""
    if not is_active():
        return bool(flag)
    buf = torch.tensor([int(bool(flag))], dtype=torch.int64, device=_comm_device())
    dist.broadcast(buf, src=0)
    return bool(buf.item())


def all_reduce_grads(params) -> None:
    """Sum the ``.grad`` of every parameter over all ranks (missing gradients count as zero)."""
    if not is_active():
        return
    for p in params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
    all_reduce_sum(*(p.grad for p in params))


def broadcast_(*tensors: torch.Tensor) -> None:
    """Overwrite each tensor, in place, with rank 0's values (same shapes on every rank)."""
    if not is_active():
        return
    with torch.no_grad():
        for t in tensors:
            buf = t.data.contiguous()  # collectives need contiguous memory (SVD factors may be views)
            dist.broadcast(buf, src=0)
            if buf.data_ptr() != t.data.data_ptr():
                t.data.copy_(buf)


def all_gather_rows(local: torch.Tensor) -> torch.Tensor:
    """Concatenate every rank's rows ``local`` (n_r, ...) in rank order into one (Σ_r n_r, ...) tensor.

    The row counts n_r may differ between ranks (``local`` itself without a process group).
    """
    if not is_active():
        return local
    counts = [torch.zeros(1, dtype=torch.int64, device=local.device) for _ in range(world_size())]
    dist.all_gather(counts, torch.tensor([local.shape[0]], dtype=torch.int64, device=local.device))
    counts = [int(c) for c in counts]
    padded = local.new_zeros((max(counts),) + tuple(local.shape[1:]))
    padded[:local.shape[0]] = local
    pieces = [torch.empty_like(padded) for _ in counts]
    dist.all_gather(pieces, padded)
    return torch.cat([p[:c] for p, c in zip(pieces, counts)])


@contextlib.contextmanager
def launched(device=None):
    """Initialise the default process group when started by torchrun (``WORLD_SIZE`` > 1), and
    destroy it on exit; otherwise do nothing. Backend nccl when ``device`` is CUDA (each rank then
    uses GPU ``LOCAL_RANK``), else gloo. Rendezvous from torchrun's environment variables."""
    started = int(os.environ.get("WORLD_SIZE", "1")) > 1 and not is_active()
    if started:
        cuda = device is not None and torch.device(device).type == "cuda"
        if cuda:
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group("nccl" if cuda else "gloo")
    try:
        yield
    finally:
        if started:
            dist.destroy_process_group()
