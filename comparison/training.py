"""Training the experiments' models with validation-selected settings (:mod:`~comparison.selection`).

* :func:`make_born` — an MPS or TTN at bond 2 for a kind name: ``mps-<ordering>`` (row-major, snake,
  hilbert, from-data) or ``ttn`` / ``ttn-<tree>`` (bisection, random, from-data);
* :func:`train_born_machine` — two-site sweeps grown to a bond cap, stopped on the validation NLL;
* :func:`train_rbm` — PCD with validation early stopping (validation NLL by exact log Z or a short AIS
  per epoch; candidates compared by the final log Z) and :func:`evaluate_rbm`, the reported NLLs by
  forward (:func:`forward_log_z`) and reverse AIS.
"""
from __future__ import annotations

import hashlib
import time
from typing import Sequence

import numpy as np
import torch

from bornmachine import MPS, TTN, SweepTrainer, Tree, orderings

from .selection import Selected, select

__all__ = ["BORN_KINDS", "make_born", "train_born_machine", "train_rbm", "forward_log_z", "evaluate_rbm",
           "fingerprint", "settings_tag"]

#: The RBMs' learning-rate backoff after an overshooting epoch (:class:`rbm.CDTrainer`'s ``backoff``).
RBM_BACKOFF = 0.5
#: Decay of the parameter average RBMs are evaluated and selected on (``CDTrainer(average=...)``).
RBM_AVERAGE = 0.99
#: How an RBM's candidates (learning rates, restarts) are compared: in the experiments' settings, so that
#: result stores written under another rule are not reused.
RBM_SELECTION = "validation NLL by the final log Z"
#: Born machines of the comparison: MPS on the row-major and snake chains, TTN on the bisection tree.
BORN_KINDS = ("mps-row-major", "mps-snake", "ttn")


def make_born(kind: str, shape: Sequence[int], train: torch.Tensor, generator: torch.Generator):
    """A bond-2 Born machine of ``kind`` over the image ``shape``; from-data structures come from ``train``
    (N, H·W), the random tree from ``generator``."""
    shape = tuple(shape)
    family, _, structure = kind.partition("-")
    if family == "mps" and structure in ("row-major", "snake", "hilbert", "from-data"):
        ordering = orderings.from_data(train) if structure == "from-data" else structure.replace("-", "_")
        return MPS(shape, 2, ordering=ordering, generator=generator)
    if family == "ttn" and structure in ("", "bisection", "random", "from-data"):
        n = shape[0] * shape[1]
        tree = (Tree.from_data(train) if structure == "from-data" else Tree.random(n, generator)
                if structure == "random" else None)
        return TTN(shape, 2, tree=tree, generator=generator)
    raise ValueError(f"unknown Born machine {kind!r}: mps-row-major, mps-snake, mps-hilbert, mps-from-data, ttn, "
                     "ttn-random or ttn-from-data")


def train_born_machine(kind: str, train: torch.Tensor, valid: torch.Tensor, shape: Sequence[int], bond_dim: int, *,
                       max_sweeps: int, lrs: Sequence[float] = (0.1,), restarts: int = 1, patience: int = 2,
                       restructure: str | None = None, seed: int = 0, folder: str = "models",
                       reuse: str | None = None) -> Selected:
    """Sweeps from bond 2 up to ``bond_dim`` (trainer defaults otherwise), at most ``max_sweeps``, stopped
    ``patience`` sweeps after the lowest validation NLL; the candidate (lr, restart) of lowest validation
    NLL is kept. Checkpoints ``folder/<kind>-D<bond_dim>-<tag>-lr…-r….ckpt.npz`` (tag: settings and data);
    those already in ``reuse`` (another experiment's folder) are copied, not retrained."""
    stem = f"{kind}{'-' + restructure if restructure else ''}-D{bond_dim}-" + settings_tag(
        max_sweeps, patience, seed, fingerprint(train, valid))

    def one(lr: float, restart: int, checkpoint: str):
        gen = torch.Generator().manual_seed(seed + 7919 * restart)
        model = make_born(kind, shape, train, gen)
        trainer = SweepTrainer(model, max_bond=bond_dim, lr=lr, n_sweeps=max_sweeps, seed=seed + restart,
                               patience=patience, restructure=restructure)
        trainer.fit(train, valid, checkpoint=checkpoint, progress=False)
        return model, trainer

    return select(one, lrs, restarts, stem, folder, reuse=reuse)


def train_rbm(arch, train: torch.Tensor, valid: torch.Tensor, *, tag: str, max_epochs: int,
              lrs: Sequence[float] = (0.01,), restarts: int = 1, patience: int = 4, batch_size: int = 100,
              eval_ais: Sequence[int] = (32, 300), final_ais: Sequence[int] | None = None, seed: int = 0,
              folder: str = "models") -> Selected:
    """PCD-1 (CDTrainer defaults: centering, Adam, linear decay over ``max_epochs``) with early stopping on
    the validation NLL, which is exact for ≤ 20 hidden units and else uses a forward AIS of
    ``eval_ais = (chains, temperatures)`` per epoch (CDTrainer's float32 products, the float64 run's values to
    round-off). With several candidates and ``final_ais = (chains, temperatures)``, each one's kept parameters
    are scored by the validation NLL under :func:`forward_log_z` (the reported log Z; the short per-epoch AIS
    is biased low by up to ~9 nats on sharp models and would favour them) and the lowest is kept, its
    estimate in ``Selected.rescored`` for :func:`evaluate_rbm`; else the lowest per-epoch validation NLL."""
    from rbm import CDTrainer

    stem = f"{tag}-" + settings_tag(max_epochs, patience, batch_size, tuple(eval_ais), seed, arch.n_hidden,
                                    fingerprint(train, valid), "backoff", RBM_BACKOFF, "average", RBM_AVERAGE,
                                    "tracked log Z")

    def one(lr: float, restart: int, checkpoint: str):
        model = arch.build(generator=torch.Generator().manual_seed(seed + 7919 * restart))
        trainer = CDTrainer(model, lr=lr, n_epochs=max_epochs, patience=patience, backoff=RBM_BACKOFF,
                            average=RBM_AVERAGE, batch_size=batch_size,
                            ais_chains=int(eval_ais[0]), ais_betas=int(eval_ais[1]), seed=seed + restart)
        trainer.fit(train, valid, checkpoint=checkpoint, progress=False)
        return model, trainer

    def rescore(model):
        forward = forward_log_z(model, train, ais_chains=int(final_ais[0]), ais_betas=int(final_ais[1]), seed=seed)
        return model.nll(valid, forward[0]).value, forward

    return select(one, lrs, restarts, stem, folder, rescore=None if final_ais is None else rescore)


def forward_log_z(model, train: torch.Tensor, *, ais_chains: int, ais_betas: int, seed: int = 0):
    """``(log Z, generator, method)`` of the reported NLLs: exact for ≤ 20 units in the smaller layer, else a
    forward AIS from the data's base rates; the generator (seeded ``seed + 1``) is where the reverse AIS
    of :func:`evaluate_rbm` continues."""
    from rbm import ais_log_z, exact_log_z

    gen = torch.Generator().manual_seed(seed + 1)
    if min(model.n_visible, model.n_hidden) <= 20:
        return exact_log_z(model), gen, "exact"
    return ais_log_z(model, ais_chains, ais_betas, data=train, generator=gen), gen, "ais"


def evaluate_rbm(model, train: torch.Tensor, valid: torch.Tensor, test: torch.Tensor, *, ais_chains: int,
                 ais_betas: int, n_gibbs: int, seed: int = 0, forward=None) -> dict:
    """Reported NLLs of a trained RBM: exact log Z for ≤ 20 units in the smaller layer, else forward AIS
    (``test_nll`` ± ``test_nll_stderr``) bracketed by reverse AIS from data-initialised chains
    (``test_nll_reverse``); ``ais_gap`` = |forward − reverse| (0 when exact), ``seconds``. ``forward``: the
    model's :func:`forward_log_z` if already computed (e.g. ``Selected.rescored``), else computed here."""
    from rbm import reverse_ais_log_z

    t0 = time.perf_counter()
    fwd, gen, method = forward or forward_log_z(model, train, ais_chains=ais_chains, ais_betas=ais_betas, seed=seed)
    rev = fwd if method == "exact" else reverse_ais_log_z(model, ais_chains, ais_betas, data=train, n_gibbs=n_gibbs,
                                                          generator=gen)
    test_nll, test_rev = model.nll(test, fwd).value, model.nll(test, rev).value
    return {"test_nll": test_nll, "test_nll_stderr": fwd.stderr, "test_nll_reverse": test_rev,
            "ais_gap": abs(test_nll - test_rev), "valid_nll": model.nll(valid, fwd).value,
            "train_nll": model.nll(train, fwd).value, "log_z_method": method,
            "eval_seconds": time.perf_counter() - t0}


def settings_tag(*values) -> str:
    """Short hash of settings (file names of cached models)."""
    return hashlib.sha1(repr(values).encode()).hexdigest()[:8]


def fingerprint(*arrays: torch.Tensor) -> str:
    """Short hash of binary arrays (N, n) (cache keys: other data, other files)."""
    h = hashlib.sha1()
    for a in arrays:
        h.update(np.packbits(a.cpu().numpy().astype(np.uint8), axis=1).tobytes())
    return h.hexdigest()[:12]
