"""The sweep-engine interface (TeNPy's ``Sweep``, quimb's ``MovingEnvironment``).

A Born machine class names its engine (``sweep_engine = "chain"`` or ``"tree"``) and
:class:`~bornmachine.training.SweepTrainer` looks the name up, so no trainer tests a model's type. An
engine owns the per-sample environments of its geometry and their buffers, moves the orthogonality
centre through the network, and calls its :class:`~bornmachine.training.local_update.LocalUpdate` on
every merged tensor.
"""
from __future__ import annotations

from abc import ABC, abstractmethod

import torch

from .. import distributed
from .local_update import LocalUpdate


class SweepEngine(ABC):
    """Two-site sweeps of one geometry over a model (changed in place).

    Parameters
    ----------
    model : the Born machine. update : the local update rule. max_bond, cutoff : truncation of the
    split (at most ``max_bond`` singular values, those below ``cutoff``·s_max dropped).
    env_dtype : storage dtype of the cached environments (None: the model's).

    Attributes
    ----------
    first_sweep : bool, set by the trainer: the next sweep is the first of a fresh run (the tree engine then
        descends by gauge moves only, see :mod:`~bornmachine.training.tree_sweep`).
    """

    first_sweep = False

    def __init__(self, model, update: LocalUpdate, max_bond: int, cutoff: float, env_dtype: torch.dtype | None):
        self.model, self.update = model, update
        self.max_bond, self.cutoff, self.env_dtype = max_bond, cutoff, env_dtype

    @abstractmethod
    def sweep(self, x: torch.Tensor, part: distributed.Shard) -> int:
        """One sweep over this rank's rows x (part.size, n_sites) int64 in natural order; returns the
        most zero-amplitude samples met in one gradient step (over all ranks)."""

    def release(self) -> None:
        """Free what is kept from sweep to sweep (buffers, cached orders)."""
