"""Trainers for Born machines; both minimise the NLL L = −(1/N) Σ_i ln |Ψ(v_i)|² + ln Z.

* :class:`SweepTrainer` – two-site sweeps (Han et al. 2018) by the engine the model names:
  :mod:`~bornmachine.training.chain_sweep` (MPS) or :mod:`~bornmachine.training.tree_sweep` (TTN), both
  on the update rule of :mod:`~bornmachine.training.local_update`.
* :class:`GradientTrainer` – Adam on all tensors by autodiff (:mod:`~bornmachine.training.gradient`).

The fit loop (history, progress, checkpoints, resumption) is :mod:`~bornmachine.training.loop`, shared
with :class:`rbm.CDTrainer`. Data parallelism: under ``torchrun`` (an initialised torch.distributed
process group, see :mod:`bornmachine.distributed`) every rank passes the whole data set to ``fit`` and
keeps a contiguous block of it (and the environments of that block); the sums over samples
(merged-tensor gradient, sample counts, NLL) are all-reduced, random numbers are drawn identically on
every rank (minibatches index the global data set), and only rank 0 writes checkpoints, warnings and
progress. The result equals the single-process run to floating-point round-off.
"""
from .born import ZeroProbabilityWarning
from .gradient import GradientTrainer
from .loop import Trainer
from .sweep import SweepTrainer

__all__ = ["SweepTrainer", "GradientTrainer", "Trainer", "ZeroProbabilityWarning"]
