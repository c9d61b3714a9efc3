"""Contrastive-divergence training of RBMs: CD-k and persistent CD (PCD), with checkpoints and resume.

:class:`CDTrainer` takes a model and its hyper-parameters; :meth:`CDTrainer.fit` takes data, runs
minibatch stochastic gradient ascent on the log-likelihood with momentum and L2 weight decay, and
returns a history (one dict per epoch). The log-likelihood gradient

    ∂ log p(v)/∂W = ⟨v hᵀ⟩_data - ⟨v hᵀ⟩_model

uses ``p(h|v)`` for the hidden statistics; the model term comes from ``k`` block-Gibbs sweeps that
start at the minibatch (CD-k) or continue persistent chains across updates (PCD-k, Tieleman 2008).

Centering (Melchior, Fischer & Wiskott, JMLR 2016, on by default) writes the energy with offsets μ
(visible) and λ (hidden), ``E = -(v-μ)ᵀW(h-λ) - b̃ᵀ(v-μ) - c̃ᵀ(h-λ)``, and ascends the gradient in
(W, b̃, c̃): ``∇W̃ = ⟨(v-μ)(h-λ)ᵀ⟩_data - ⟨(v-μ)(h-λ)ᵀ⟩_model = ∇W - μ∇cᵀ - ∇b λᵀ``, ``∇b̃ = ∇b``,
``∇c̃ = ∇c``. The stored model stays an ordinary RBM (``b = b̃ - Wλ``, ``c = c̃ - Wᵀμ``), so a step
moves it by ``ΔW``, ``Δb - ΔW λ``, ``Δc - ΔWᵀ μ`` (:func:`centered_gradient`, :func:`centered_step`);
μ is the training-data mean, λ a moving average of the data's mean ``p(h|v)``, and moving the
offsets leaves the model as it is. This removes the plateaus of plain CD, whose updates are
dominated by the mean activities. The step is Adam's by default (``adaptive``): sparse masks, whose
weights get tiny gradients near W = 0, otherwise stall at the independent-pixel model.

Parameter averaging (``average``, Polyak & Juditsky 1992, as an exponential moving average): PCD's
parameters wander by several nats of NLL from epoch to epoch (the chains and the weights chase each
other), so an epoch's NLL says little about where training stands. The trainer keeps a moving average
of (W, b, c) over the updates (decay ``min(average, (1 + t) / (10 + t))`` at update t, so the first
updates are not drowned by the initial parameters); evaluation, early stopping, backoff and the model
that ``fit`` leaves are the averaged parameters, while the chains and the gradient steps use the
current ones. On the quick Fig.-4 models this turns validation curves that jump by 5–10 nats into smooth
ones, a few nats lower.

Early stopping: with ``patience`` and validation data, training stops after ``patience`` epochs
without a lower validation NLL and the model gets the parameters of its best validation epoch
(``best_epoch``). Backoff (``backoff``, with early stopping): an epoch whose validation NLL lies more than
2 % (at least 2 nats) above the best so far has overshot — a step too large for this model, e.g. a large
local RBM at a learning rate that suits a dense one; the next epoch starts again from the best epoch's
parameters with the learning rate multiplied by ``backoff`` (records: ``backoff`` True). The count of
backoffs is read from the history, so a resumed run continues with the same rate.

Tracked log Z (``track_log_z``, with AIS evaluation): the log Z of every evaluation is filtered from all AIS runs
so far, joined by bridge sampling between consecutive evaluations (:mod:`rbm.tracking`), so that the
epoch-to-epoch noise of a short AIS does not decide when training stops.

The fit loop (history, progress, checkpoints, resume, callbacks) is the one every trainer of the package
shares (:class:`bornmachine.training.Trainer`). Checkpoints (``fit(..., checkpoint=path)``) are written
atomically after every epoch and hold the parameters, the momentum (and Adam) buffers, the centering
offsets, the best-validation parameters, the persistent chains, the random-generator state, the
history and the hyper-parameters, so that a run resumed from its checkpoint reaches bit-identical
parameters to an uninterrupted run with the same seed. Evaluation (NLL with exact ``log Z`` when the smaller layer
has ≤ ``exact_max_units`` units, AIS otherwise) draws from its own generator, seeded per epoch, so the
evaluation cadence never changes the training trajectory.

Data parallelism: under ``torchrun`` (an initialised torch.distributed process group, see
:mod:`bornmachine.distributed`) every rank passes the whole data set; each computes the positive
phase on the rows of each minibatch that fall in its block of the data, and the negative phase on its
block of the persistent chains (or, for CD, of the minibatch); the uniforms of every Gibbs step are
drawn for the whole batch on every rank, so the chains evolve as in one process. The gradients and the
NLL sums are all-reduced; ``log Z`` is computed alike on every rank; only rank 0 writes checkpoints
and progress. The result equals the single-process run to floating-point round-off.
"""
from __future__ import annotations

import math
import time

import numpy as np
import torch

from bornmachine import distributed
from bornmachine.training import Trainer
from bornmachine.validation import as_binary, check_float_dtype, check_positive_int

from .model import (RBM, base_rate_bias, bernoulli, free_energy, gibbs_step, hidden_prob, make_generator, softplus,
                    visible_prob)
from .partition import SPARSE_DENSITY, estimate_log_z
from .sparse import MaskedProducts
from .tracking import LogZTracker

__all__ = ["CDTrainer", "centered_gradient", "centered_step"]

_ADAM_BETA2, _ADAM_EPS = 0.999, 1e-8

# Hyper-parameters that shape the training trajectory: a checkpoint resumes only if they agree.
_TRAJECTORY_KEYS = ("k", "persistent", "lr", "lr_decay", "momentum", "weight_decay", "batch_size", "n_chains",
                    "init_visible_bias", "shuffle", "centering", "centering_rate", "adaptive", "patience", "backoff",
                    "average")
#: A validation NLL this far above the best (relative, at least ``_OVERSHOOT_NATS``) triggers a backoff.
_OVERSHOOT, _OVERSHOOT_NATS = 0.02, 2.0


class CDTrainer(Trainer):
    """Train an :class:`~rbm.model.RBM` by CD-k or PCD-k.

    Parameters
    ----------
    rbm : RBM
        The model; trained in place (masked weights stay exactly zero).
    k : int ≥ 1
        Gibbs sweeps per update.
    persistent : bool
        True: PCD (chains persist across updates); False: CD-k (chains restart at the minibatch).
    lr : float > 0
        Learning rate (Adam's step per parameter; without ``adaptive``, the factor of the minibatch-mean
        gradient).
    lr_decay : {"linear", "none"}
        ``"linear"`` (default): epoch ``e`` (0-based) uses ``lr · (1 - e / n_epochs)`` (Tieleman 2008),
        which settles the noisy end of PCD; the schedule then depends on ``n_epochs`` (a finished run
        is extended only with ``"none"``).
    momentum : float in [0, 1)
        Heavy-ball momentum on all parameters (with ``adaptive``: Adam's β₁).
    weight_decay : float ≥ 0
        L2 penalty coefficient on ``W`` (not on biases).
    batch_size : int ≥ 1
    n_epochs : int ≥ 1
        Total epochs; ``fit`` resumes from a checkpoint and stops here.
    n_chains : int, optional
        Persistent chains (PCD); default ``batch_size``.
    init_visible_bias : bool
        Start a fresh run with ``b`` = smoothed logits of the training-data marginals.
    shuffle : bool
        Reshuffle the training set every epoch (with the trainer's generator).
    centering : bool
        Centered gradient (see the module docstring); False: the plain CD gradient.
    centering_rate : float in (0, 1]
        Moving-average rate of the hidden offset λ per update.
    adaptive : bool
        True (default): Adam's per-parameter step (Kingma & Ba 2015: β₁ = ``momentum``, β₂ = 0.999,
        ε = 1e-8, bias corrected), so weights of sparse masks, whose gradients are tiny near W = 0, move
        as fast as dense ones; False: heavy-ball momentum (plain SGD wants a larger ``lr``, e.g. 0.1).
    patience : int ≥ 1 or None
        With validation data: stop after this many epochs without a lower validation NLL and keep
        the parameters of the best one (None: train all ``n_epochs``, keep the last parameters).
    sparse : bool or None
        Products of a masked W at its sparsity pattern (:class:`rbm.sparse.MaskedProducts`, CSR) instead of
        the masked dense matrix: None (default) on the CPU when the mask keeps at most 10 % of at least 10⁵
        weights, True for any mask, False never. The results agree up to floating-point round-off.
    backoff : float in (0, 1) or None
        With ``patience`` and validation data: after an epoch that overshot (validation NLL > 2 %, and
        ≥ 2 nats, above the best), restart from the best parameters at ``backoff`` times the learning
        rate (default 0.5; None: never).
    average : float in [0, 1) or None
        Decay per update of the parameter average that evaluation, early stopping and the final model
        use (see the module docstring; default 0.99, a horizon of about 100 updates); None: the current
        parameters.
    eval_every : int ≥ 0
        Evaluate the NLL every ``eval_every`` epochs and after the last one (0: never).
    log_z : {"auto", "exact", "ais"}
        How evaluation computes ``log Z`` (see :func:`rbm.partition.estimate_log_z`).
    exact_max_units : int
        ``"auto"`` enumerates exactly up to this many units in the smaller layer.
    ais_chains, ais_betas : int
        AIS settings for evaluation (base rates from the training data).
    track_log_z : bool
        True (default): with AIS, the log Z that evaluation, early stopping and backoff use is the AIS estimates
        of all evaluations so far joined by bridge sampling between consecutive ones in a Kalman filter
        (:class:`rbm.tracking.LogZTracker`): the epoch-to-epoch noise of a short AIS (1.5–2 nats on a
        500-hidden RBM of mnist5k at 32 × 300) otherwise decides when training stops. The records keep
        the raw estimate as ``log_z_ais``. False: each epoch's own AIS estimate.
    ais_dtype : torch.float32 (default), torch.float64 or None
        Precision of the evaluation's AIS chains and products (None: the model's). Single precision halves
        the evaluation's time for a float64 model; the log-weights accumulate in float64 and the free
        energies stay in the model's precision, so the NLL moves by round-off far below the AIS error
        (see :mod:`rbm.partition`). Training itself always runs in the model's precision.
    seed : int or None
        Seed of the trainer's generator (shuffling, Gibbs sampling, evaluation seeds); default 0, so
        runs are reproducible unless asked otherwise (None: a fresh OS seed).
    generator : torch.Generator, optional
        Instead of ``seed`` (the default ``seed=0`` is then ignored; another seed is an error).

    Attributes
    ----------
    history : list of dict
        One record per finished epoch: ``epoch``, ``lr``, ``train_nll``, ``valid_nll`` (nats per sample, None
        when not evaluated), ``best_epoch`` (the epoch of the lowest validation NLL so far, with
        ``patience`` and validation data, else None), ``log_z``, ``log_z_stderr``, ``log_z_method``,
        ``log_z_ais`` (the epoch's own AIS estimate, when ``log_z`` is tracked; else None),
        ``recon_error`` (mean squared one-step reconstruction error on ≤ 1000 training rows), ``time_s``
        (training seconds of that epoch), ``eval_time_s``, ``backoff`` (True when the epoch restarted from the
        best parameters at a lower rate).
    epoch : int
        Finished epochs.
    best_epoch : int or None
        The epoch whose parameters early stopping keeps (see ``patience``).
    """

    def __init__(self, rbm: RBM, *, k: int = 1, persistent: bool = True, lr: float = 0.01, lr_decay: str = "linear",
                 momentum: float = 0.5,
                 weight_decay: float = 1e-4, batch_size: int = 100, n_epochs: int = 20, n_chains: int | None = None,
                 init_visible_bias: bool = True, shuffle: bool = True, centering: bool = True,
                 centering_rate: float = 0.01, adaptive: bool = True, patience: int | None = None,
                 backoff: float | None = 0.5, average: float | None = 0.99, sparse: bool | None = None,
                 eval_every: int = 1, log_z: str = "auto",
                 exact_max_units: int = 20, ais_chains: int = 100, ais_betas: int = 1000, track_log_z: bool = True,
                 ais_dtype: torch.dtype | None = torch.float32, seed: int | None = 0,
                 generator: torch.Generator | None = None):
        if not isinstance(rbm, RBM):
            raise TypeError(f"rbm must be an RBM, got {type(rbm).__name__}")
        self.rbm = rbm
        self.k = check_positive_int(k, "k")
        self.persistent = bool(persistent)
        self.lr = _check_float(lr, "lr", low=0.0, low_open=True)
        if lr_decay not in ("none", "linear"):
            raise ValueError(f"lr_decay must be 'none' or 'linear', got {lr_decay!r}")
        self.lr_decay = lr_decay
        self.momentum = _check_float(momentum, "momentum", low=0.0, high=1.0)
        self.weight_decay = _check_float(weight_decay, "weight_decay", low=0.0)
        self.batch_size = check_positive_int(batch_size, "batch_size")
        self.n_epochs = check_positive_int(n_epochs, "n_epochs")
        self.n_chains = check_positive_int(n_chains, "n_chains") if n_chains is not None else self.batch_size
        self.init_visible_bias = bool(init_visible_bias)
        self.shuffle = bool(shuffle)
        self.centering = bool(centering)
        self.centering_rate = _check_float(centering_rate, "centering_rate", low=0.0, high=1.0, low_open=True,
                                           high_closed=True)
        self.adaptive = bool(adaptive)
        self.patience = check_positive_int(patience, "patience") if patience is not None else None
        self.backoff = None if backoff is None else _check_float(backoff, "backoff", low=0.0, high=1.0, low_open=True)
        self.average = None if average is None else _check_float(average, "average", low=0.0, high=1.0)
        if sparse is not None and not isinstance(sparse, bool):
            raise TypeError(f"sparse must be True, False or None, got {type(sparse).__name__}")
        self.sparse = sparse
        self._products: MaskedProducts | None = None  # the sparse path's CSR products (made when first needed)
        self._ais_base: tuple[torch.Tensor, torch.Tensor] | None = None  # (rows, base-rate bias) of the last evaluation
        if isinstance(eval_every, bool) or not isinstance(eval_every, (int, np.integer)) or eval_every < 0:
            raise ValueError(f"eval_every must be an integer >= 0, got {eval_every!r}")
        self.eval_every = int(eval_every)
        if log_z not in ("auto", "exact", "ais"):
            raise ValueError(f"log_z must be 'auto', 'exact' or 'ais', got {log_z!r}")
        self.log_z = log_z
        self.exact_max_units = check_positive_int(exact_max_units, "exact_max_units")
        self.ais_chains = check_positive_int(ais_chains, "ais_chains")
        self.ais_betas = check_positive_int(ais_betas, "ais_betas")
        if not isinstance(track_log_z, bool):
            raise TypeError(f"track_log_z must be True or False, got {type(track_log_z).__name__}")
        self.track_log_z = track_log_z
        self._tracker = LogZTracker()
        self.ais_dtype = check_float_dtype(ais_dtype, "ais_dtype")
        if generator is not None and seed == 0:
            seed = None  # the default seed gives way to an explicit generator
        self.generator = make_generator(generator, seed, device=rbm.device)
        self.seed = seed
        self.history: list[dict] = []
        self._velocity: list[torch.Tensor] | None = None
        self._second: list[torch.Tensor] | None = None  # Adam's second moments (``adaptive``)
        self._n_updates = 0
        self._chains: torch.Tensor | None = None
        self._eval_seed: int | None = None
        self._offsets: tuple[torch.Tensor, torch.Tensor] | None = None  # (μ (n_visible,), λ (n_hidden,))
        self._averaged: list[torch.Tensor] | None = None  # moving average of (W, b, c) (``average``)

    # ---------------------------------------------------------------------------------------------
    def hyper_parameters(self) -> dict:
        """The constructor's hyper-parameters (JSON-friendly)."""
        return {"k": self.k, "persistent": self.persistent, "lr": self.lr, "lr_decay": self.lr_decay,
                "momentum": self.momentum,
                "weight_decay": self.weight_decay, "batch_size": self.batch_size, "n_epochs": self.n_epochs,
                "n_chains": self.n_chains, "init_visible_bias": self.init_visible_bias, "shuffle": self.shuffle,
                "centering": self.centering, "centering_rate": self.centering_rate, "adaptive": self.adaptive,
                "patience": self.patience, "backoff": self.backoff, "average": self.average, "sparse": self.sparse,
                "eval_every": self.eval_every, "log_z": self.log_z, "exact_max_units": self.exact_max_units,
                "ais_chains": self.ais_chains, "ais_betas": self.ais_betas, "track_log_z": self.track_log_z,
                "ais_dtype": None if self.ais_dtype is None else str(self.ais_dtype).replace("torch.", ""),
                "seed": self.seed}

    checkpoint_name = "an RBM training"

    def _label(self) -> str:
        return ("PCD-" if self.persistent else "CD-") + str(self.k)

    def _trajectory_keys(self) -> tuple[str, ...]:
        return _TRAJECTORY_KEYS + (("n_epochs",) if self.lr_decay == "linear" else ())

    def _as_data(self, x, name: str) -> torch.Tensor:
        rbm = self.rbm
        return as_binary(x, rbm.n_visible, name=name).to(dtype=rbm.dtype, device=rbm.device)

    def _parameters(self) -> list[torch.Tensor]:
        return list(self.rbm.parameters()) + (self._averaged or [])

    def _evaluated(self) -> list[torch.Tensor]:
        """The parameters (W, b, c) that evaluation and early stopping see: the average (``average``) or
        the current ones."""
        return self._averaged if self._averaged is not None else list(self.rbm.parameters())

    def _snapshot(self) -> tuple[dict, dict]:
        return {}, {name: t.detach().cpu().numpy() for name, t in zip(("W", "b", "c"), self._evaluated())}

    def _apply_snapshot(self, meta: dict, arrays: dict, where: str) -> None:
        """Current parameters (and the average, restarted there) ← a snapshot."""
        self.rbm.set_parameters(*(self._tensor(arrays[name]) for name in ("W", "b", "c")))
        if self._averaged is not None:
            self._averaged = [p.clone() for p in self.rbm.parameters()]

    def _finish(self) -> None:
        """The model gets the best-validation parameters (``patience``), else the averaged ones."""
        if self._best is None and self._averaged is not None:
            self.rbm.set_parameters(*(p.clone() for p in self._averaged))
        super()._finish()

    def _release(self) -> None:
        self._ais_base = None  # holds the training rows

    def _update_average(self) -> None:
        """Move the parameter average towards the current parameters (one update done)."""
        if self._averaged is None:
            return
        decay = min(self.average, (1.0 + self._n_updates) / (10.0 + self._n_updates))
        for mean, p in zip(self._averaged, self.rbm.parameters()):
            mean.lerp_(p, 1.0 - decay)

    def _run_epoch(self, x: torch.Tensor, epoch: int) -> dict:
        backoff = self._overshot()
        if backoff:
            self._apply_snapshot(*self._best[2], "the best-validation snapshot")
        lr = self.current_lr(backoff)
        self._train_epoch(x, lr, distributed.shard(x.shape[0], name="train"))
        return {"lr": lr, "backoff": backoff}

    def _overshot(self) -> bool:
        """Whether the last epoch's validation NLL lies too far above the best one (see ``backoff``)."""
        if self.backoff is None or self._best is None or not self.history:
            return False
        last, best = self.history[-1].get("valid_nll"), self._best[0]
        if last is None:
            return False
        return not math.isfinite(last) or last > best + max(_OVERSHOOT * abs(best), _OVERSHOOT_NATS)

    # ---------------------------------------------------------------------------------------------
    # training
    # ---------------------------------------------------------------------------------------------
    def _start(self, x: torch.Tensor) -> None:
        rbm = self.rbm
        if self.init_visible_bias:
            rbm.b = base_rate_bias(x, pseudocount=1.0)
        self._velocity = [torch.zeros_like(p) for p in rbm.parameters()]
        self._second = [torch.zeros_like(p) for p in rbm.parameters()] if self.adaptive else None
        self._n_updates = 0
        self._chains = (bernoulli(torch.sigmoid(rbm.b).expand(self.n_chains, -1), self.generator)
                        if self.persistent else None)
        self._eval_seed = int(torch.randint(0, 2 ** 62, (1,), generator=self.generator,
                                            device=self.generator.device))
        self._offsets = (x.mean(0), hidden_prob(x, rbm.W, rbm.c).mean(0)) if self.centering else None
        self._averaged = [p.clone() for p in rbm.parameters()] if self.average is not None else None
        self._tracker = LogZTracker()

    def current_lr(self, backoff: bool = False) -> float:
        """Learning rate of the next epoch (see ``lr_decay`` and ``backoff``; ``backoff``: this epoch backs off)."""
        n_backoffs = sum(bool(record.get("backoff")) for record in self.history) + bool(backoff)
        lr = self.lr * (self.backoff or 1.0) ** n_backoffs
        if self.lr_decay == "linear":
            return lr * (1.0 - self.epoch / self.n_epochs)
        return lr

    def _train_epoch(self, x: torch.Tensor, lr: float, part: distributed.Shard) -> None:
        """One pass over all rows of x (N, n_visible) in minibatches; this rank computes on its ``part``."""
        n = x.shape[0]
        gen = self.generator
        order = torch.randperm(n, generator=gen, device=gen.device).to(x.device) if self.shuffle else None
        if self.persistent:
            own = distributed.shard(self.n_chains, name="n_chains")
            chains, chain_rows = self._chains[own.start:own.stop], (slice(own.start, own.stop), self.n_chains)
        for start in range(0, n, self.batch_size):
            idx = (order[start:start + self.batch_size] if order is not None
                   else torch.arange(start, min(start + self.batch_size, n), device=x.device))
            mine = part.positions(idx)
            v0 = x[idx[mine]]
            if self.persistent:
                chains = self._step(v0, idx.shape[0], chains, chain_rows, self.n_chains, lr)
            else:
                self._step(v0, idx.shape[0], v0, (mine, idx.shape[0]), idx.shape[0], lr)
        if self.persistent:
            self._chains = distributed.all_gather_rows(chains)

    def _uses_sparse(self) -> bool:
        """Whether updates take the CSR products of the mask (see ``sparse``)."""
        rbm = self.rbm
        if rbm.is_dense or self.sparse is False:
            return False
        return bool(self.sparse) or (rbm.W.numel() >= 100_000 and rbm.n_edges <= SPARSE_DENSITY * rbm.W.numel()
                                     and rbm.device.type == "cpu")

    def _step(self, v0: torch.Tensor, n_pos: int, vk: torch.Tensor, rows, n_neg: int, lr: float) -> torch.Tensor:
        """One update from this rank's rows v0 of a minibatch of ``n_pos`` rows and its rows vk
        (``rows``, see :func:`~rbm.model.bernoulli`) of the ``n_neg`` negative-phase chains; returns
        the chains after the k Gibbs sweeps."""
        if self._uses_sparse():
            return self._sparse_step(v0, n_pos, vk, rows, n_neg, lr)
        rbm = self.rbm
        W, b, c = rbm.parameters()
        ph0 = hidden_prob(v0, W, c)
        for _ in range(self.k):
            vk, _ = gibbs_step(vk, W, b, c, self.generator, rows)
        phk = hidden_prob(vk, W, c)
        grad_w = torch.addmm(torch.mm(v0.T, ph0), vk.T, phk, beta=1.0 / n_pos, alpha=-1.0 / n_neg)
        grad_b = v0.sum(0) / n_pos - vk.sum(0) / n_neg
        h_data = ph0.sum(0) / n_pos  # this rank's share of the minibatch's mean p(h|v)
        grad_c = h_data - phk.sum(0) / n_neg
        distributed.all_reduce_sum(grad_w, grad_b, grad_c, h_data)  # sums over samples: complete them over ranks
        if self.centering:
            grad_w = centered_gradient(grad_w, grad_b, grad_c, *self._offsets)
        grad_w.add_(W, alpha=-self.weight_decay)
        if not rbm.is_dense:
            grad_w.masked_fill_(rbm.masked_out, 0.0)
        step = self._direction((grad_w, grad_b, grad_c), lr)
        try:
            rbm.add_(*(centered_step(*step, *self._offsets) if self.centering else step))
        except ValueError as err:
            raise ValueError(f"training diverged at epoch {self.epoch + 1} ({err}); lower lr") from err
        if self.centering:
            self._offsets[1].lerp_(h_data, self.centering_rate)
        self._update_average()
        return vk

    def _sparse_products(self) -> MaskedProducts:
        """The CSR products of the mask (made once), loaded with the current W."""
        rbm = self.rbm
        if self._products is None or self._products.shape != tuple(rbm.W.shape):
            self._products = MaskedProducts(rbm._mask)
        self._products.load(rbm.W)
        return self._products

    def _sparse_step(self, v0: torch.Tensor, n_pos: int, vk: torch.Tensor, rows, n_neg: int, lr: float) -> torch.Tensor:
        """:meth:`_step` on the mask's edges only (same draws, same arithmetic up to round-off): CSR products,
        the gradient and Adam's moments on the E edge values (the moments' dense buffers are read and
        written at the edges), :meth:`~rbm.RBM.add_edges_`."""
        rbm = self.rbm
        prods = self._sparse_products()
        _, b, c = rbm.parameters()
        edges = prods.edges
        ph0 = torch.sigmoid(prods.hidden(v0, c))
        for _ in range(self.k):
            h = bernoulli(torch.sigmoid(prods.hidden(vk, c)), self.generator, rows)
            vk = bernoulli(torch.sigmoid(prods.visible(h, b)), self.generator, rows)
        phk = torch.sigmoid(prods.hidden(vk, c))
        grad_w = prods.edge_sums(v0, ph0) / n_pos - prods.edge_sums(vk, phk) / n_neg
        grad_b = v0.sum(0) / n_pos - vk.sum(0) / n_neg
        h_data = ph0.sum(0) / n_pos
        grad_c = h_data - phk.sum(0) / n_neg
        distributed.all_reduce_sum(grad_w, grad_b, grad_c, h_data)
        i, j = prods.rows, prods.cols
        if self.centering:
            mu, lam = self._offsets
            grad_w = grad_w - mu[i] * grad_c[j] - grad_b[i] * lam[j]
        grad_w = grad_w - self.weight_decay * prods.values
        flat_velocity = self._velocity[0].view(-1)
        velocity, second = [flat_velocity[edges], *self._velocity[1:]], None
        if self._second is not None:
            flat_second = self._second[0].view(-1)
            second = [flat_second[edges], *self._second[1:]]
        step = self._direction((grad_w, grad_b, grad_c), lr, velocity, second)
        flat_velocity.index_copy_(0, edges, velocity[0])
        if second is not None:
            flat_second.index_copy_(0, edges, second[0])
        dw, db, dc = step
        if self.centering:
            db = db - torch.zeros_like(db).index_add_(0, i, dw * lam[j])
            dc = dc - torch.zeros_like(dc).index_add_(0, j, dw * mu[i])
        try:
            rbm.add_edges_(edges, dw, db, dc)
        except ValueError as err:
            raise ValueError(f"training diverged at epoch {self.epoch + 1} ({err}); lower lr") from err
        if self.centering:
            self._offsets[1].lerp_(h_data, self.centering_rate)
        self._update_average()
        return vk

    def _direction(self, grads, lr: float, velocity=None, second=None) -> list[torch.Tensor]:
        """The ascent step from the gradients (W, b, c): heavy-ball momentum, or Adam with ``adaptive``;
        ``velocity``/``second``: the moment buffers to update (default the trainer's)."""
        self._n_updates += 1
        velocity = self._velocity if velocity is None else velocity
        second = self._second if second is None else second
        if not self.adaptive:
            for v_, g_ in zip(velocity, grads):
                v_.mul_(self.momentum).add_(g_, alpha=lr)
            return velocity
        beta1, beta2, t = self.momentum, _ADAM_BETA2, self._n_updates
        scale = lr * math.sqrt(1.0 - beta2 ** t) / (1.0 - beta1 ** t)
        steps = []
        for m_, s_, g_ in zip(velocity, second, grads):
            m_.lerp_(g_, 1.0 - beta1)
            s_.mul_(beta2).addcmul_(g_, g_, value=1.0 - beta2)
            steps.append(torch.mul(m_, scale).div_(s_.sqrt().add_(_ADAM_EPS)))
        return steps

    # ---------------------------------------------------------------------------------------------
    # evaluation
    # ---------------------------------------------------------------------------------------------
    def _evaluate(self, x: torch.Tensor, xv: torch.Tensor | None) -> dict:
        out = {"train_nll": None, "valid_nll": None, "log_z": None, "log_z_stderr": None, "log_z_method": None,
               "log_z_ais": None, "recon_error": None, "eval_time_s": 0.0}
        epoch = self.epoch + 1  # the epoch just trained (its record is not in the history yet)
        due = self.eval_every > 0 and (epoch % self.eval_every == 0 or epoch == self.n_epochs)
        if not due:
            return out
        t0 = time.perf_counter()
        rbm = self.rbm
        current = list(rbm.parameters()) if self._averaged is not None else None  # untouched while evaluating
        if current is not None:
            rbm.set_parameters(*(p.clone() for p in self._averaged))
        try:
            self._evaluate_current(x, xv, epoch, out)
        finally:
            if current is not None:
                rbm.set_parameters(*current)
        out["eval_time_s"] = time.perf_counter() - t0
        return out

    def _evaluate_current(self, x: torch.Tensor, xv: torch.Tensor | None, epoch: int, out: dict) -> None:
        """Fill ``out`` with the NLLs, log Z and reconstruction error of the model's parameters now."""
        rbm = self.rbm
        W, b, c = rbm.parameters()
        gen = torch.Generator(device=rbm.device).manual_seed((self._eval_seed + epoch) % (2 ** 63))
        prods = self._sparse_products() if self._uses_sparse() else None
        with torch.no_grad():
            sub = x[:1000]
            if prods is None:
                recon = visible_prob(bernoulli(hidden_prob(sub, W, c), gen), W, b)
            else:
                recon = torch.sigmoid(prods.visible(bernoulli(torch.sigmoid(prods.hidden(sub, c)), gen), b))
            out["recon_error"] = float(((sub - recon) ** 2).sum(1).mean())
            if self._ais_base is None or self._ais_base[0] is not x:  # the AIS base model of these rows, made once
                self._ais_base = (x, base_rate_bias(x, pseudocount=1.0))
            log_z = estimate_log_z(rbm, self.log_z, exact_max_units=self.exact_max_units, n_chains=self.ais_chains,
                                   n_betas=self.ais_betas, base_visible_bias=self._ais_base[1], generator=gen,
                                   ais_dtype=self.ais_dtype)
            exact = self.log_z == "exact" or (self.log_z == "auto"
                                              and min(rbm.n_visible, rbm.n_hidden) <= self.exact_max_units)
            out["log_z_method"] = "exact" if exact else "ais"
            if not exact and self.track_log_z:
                out["log_z_ais"] = float(log_z.value)
                log_z = self._tracker.update(log_z, W, b, c)
            out["log_z"], out["log_z_stderr"] = float(log_z.value), float(log_z.stderr)
            out["train_nll"] = _mean_free_energy(x, W, b, c, prods) + log_z.value
            if xv is not None:
                out["valid_nll"] = _mean_free_energy(xv, W, b, c, prods) + log_z.value

    # ---------------------------------------------------------------------------------------------
    # checkpoints
    # ---------------------------------------------------------------------------------------------
    def _state(self) -> tuple[dict, dict]:
        rbm = self.rbm
        arrays = {name: t.detach().cpu().numpy() for name, t in zip(("W", "b", "c"), rbm.parameters())}
        arrays["mask"] = rbm.mask.cpu().numpy()
        arrays.update({f"velocity_{name}": t.cpu().numpy() for name, t in zip(("W", "b", "c"), self._velocity)})
        if self._chains is not None:
            arrays["chains"] = self._chains.cpu().numpy()
        if self._offsets is not None:
            arrays["offset_visible"], arrays["offset_hidden"] = (t.cpu().numpy() for t in self._offsets)
        if self._second is not None:
            arrays.update({f"second_{name}": t.cpu().numpy() for name, t in zip(("W", "b", "c"), self._second)})
        if self._averaged is not None:
            arrays.update({f"average_{name}": t.cpu().numpy() for name, t in zip(("W", "b", "c"), self._averaged)})
        meta = {"eval_seed": self._eval_seed, "dtype": str(rbm.dtype).replace("torch.", ""),
                "n_updates": self._n_updates}
        track_meta, track_arrays = self._tracker.state()
        return dict(meta, **track_meta), dict(arrays, **track_arrays)

    def _load_state(self, meta: dict, arrays: dict, where: str) -> None:
        rbm = self.rbm
        try:
            W, b, c, mask = arrays["W"], arrays["b"], arrays["c"], arrays["mask"]
            velocity = [arrays[f"velocity_{name}"] for name in ("W", "b", "c")]
            eval_seed = int(meta["eval_seed"])
            offsets = (arrays["offset_visible"], arrays["offset_hidden"]) if self.centering else None
            second = [arrays[f"second_{name}"] for name in ("W", "b", "c")] if self.adaptive else None
            averaged = [arrays[f"average_{name}"] for name in ("W", "b", "c")] if self.average is not None else None
            n_updates = int(meta["n_updates"])
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError(f"{where} is a corrupt checkpoint (missing {err})") from err
        if W.shape != (rbm.n_visible, rbm.n_hidden) or mask.shape != W.shape:
            raise ValueError(f"{where} holds an RBM with W of shape {W.shape}; the model has "
                             f"({rbm.n_visible}, {rbm.n_hidden})")
        if not np.array_equal(mask, rbm.mask.cpu().numpy()):
            raise ValueError(f"{where} holds an RBM with another connection mask")
        if self.persistent and ("chains" not in arrays or arrays["chains"].shape != (self.n_chains, rbm.n_visible)):
            raise ValueError(f"{where} is a corrupt checkpoint (persistent chains missing or of the wrong shape)")
        rbm.set_parameters(torch.from_numpy(W), torch.from_numpy(b), torch.from_numpy(c))
        self._velocity = [self._tensor(v) for v in velocity]
        self._second = None if second is None else [self._tensor(v) for v in second]
        self._n_updates = n_updates
        self._averaged = None if averaged is None else [self._tensor(v) for v in averaged]
        for v_, p_ in zip(self._velocity + (self._second or []) + (self._averaged or []), rbm.parameters() * 3):
            if v_.shape != p_.shape:
                raise ValueError(f"{where} is a corrupt checkpoint (momentum buffer of shape {tuple(v_.shape)})")
        self._chains = self._tensor(arrays["chains"]) if self.persistent else None
        if offsets is not None:
            if offsets[0].shape != (rbm.n_visible,) or offsets[1].shape != (rbm.n_hidden,):
                raise ValueError(f"{where} is a corrupt checkpoint (centering offsets of the wrong shape)")
            self._offsets = tuple(self._tensor(a) for a in offsets)
        self._eval_seed = eval_seed
        self._tracker.load_state(meta, arrays, rbm.device)

    def _tensor(self, array: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(array).to(dtype=self.rbm.dtype, device=self.rbm.device)


def centered_gradient(grad_w: torch.Tensor, grad_b: torch.Tensor, grad_c: torch.Tensor, mu: torch.Tensor,
                      lam: torch.Tensor) -> torch.Tensor:
    """The centered weight gradient ``⟨(v-μ)(h-λ)ᵀ⟩_data - ⟨(v-μ)(h-λ)ᵀ⟩_model`` (n_v, n_h) from the ordinary
    gradients ∇W (n_v, n_h), ∇b (n_v,), ∇c (n_h,) and the offsets μ (n_v,), λ (n_h,): ``∇W - μ∇cᵀ - ∇b λᵀ``."""
    return torch.addr(grad_w, mu, grad_c, alpha=-1.0).addr_(grad_b, lam, alpha=-1.0)


def centered_step(dW: torch.Tensor, db: torch.Tensor, dc: torch.Tensor, mu: torch.Tensor,
                  lam: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A step (dW (n_v, n_h), db̃ (n_v,), dc̃ (n_h,)) of the centered parameters as the step of the ordinary
    ones: ``(dW, db̃ - dW λ, dc̃ - dWᵀ μ)``, with offsets μ (n_v,) and λ (n_h,) (``b = b̃ - Wλ``, ``c = c̃ - Wᵀμ``)."""
    return dW, db - dW @ lam, dc - dW.T @ mu


def _check_float(value, name: str, *, low: float | None = None, high: float | None = None,
                 low_open: bool = False, high_closed: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    value = float(value)
    if not math.isfinite(value) or (low is not None and (value < low or (low_open and value == low))) or (
            high is not None and (value > high or (not high_closed and value == high))):
        bounds = f"{'(' if low_open else '['}{low}, {high if high is not None else 'inf'}{']' if high_closed else ')'}"
        raise ValueError(f"{name} must be in {bounds}, got {value}")
    return value


def _mean_free_energy(x: torch.Tensor, W, b, c, products: MaskedProducts | None = None) -> float:
    """Mean free energy (nats) of all rows of x (N, n_visible), by the CSR ``products`` of W when given;
    each rank sums its block of rows."""
    part = distributed.shard(x.shape[0])
    rows = x[part.start:part.stop]
    if products is None:
        total = free_energy(rows, W, b, c).sum()
    else:
        total = -(rows @ b).sum() - softplus(products.hidden(rows, c)).sum()
    distributed.all_reduce_sum(total)
    return float(total) / x.shape[0]
