"""Model selection on held-out rows: every training choice of the experiments is made here.

A *candidate* is one training run (a learning rate and a restart seed) with early stopping on the
validation NLL (the trainer's ``patience``; it ends with its best-validation parameters). Among the
candidates of one model, :func:`select` keeps the one of lowest best validation NLL or, given ``rescore``,
of lowest validation NLL by a more precise score of each candidate's kept parameters (an RBM's per-epoch
NLLs rest on a short AIS that is biased low, by up to ~9 nats on sharp models, so its candidates are
compared by the final AIS). Test data never enter. Each run is checkpointed in ``folder``
(``<stem>-lr<lr>-r<restart>.ckpt.npz``): a rerun re-reads finished runs (the checkpoint's history and best
parameters) and resumes interrupted ones; a checkpoint of the same name in a ``reuse`` folder (another
experiment's models, trained on the same rows with the same settings: the stem hashes both) is copied in
first, so that the run is not trained twice.

:func:`converged` is the check a reader can redo from the curves: a run whose validation NLL still
fell by more than ``tolerance`` nats over its last 20 % of epochs is not converged.
"""
from __future__ import annotations

import math
import os
import shutil
from dataclasses import dataclass, field
from typing import Callable, Sequence

from .table import Table

__all__ = ["Selected", "select", "converged", "tried", "curve_rows", "curve_table", "CURVE_COLUMNS"]

#: Columns of the convergence tables (one row per model, candidate and epoch).
CURVE_COLUMNS = ["model", "lr", "restart", "epoch", "train_nll", "valid_nll", "selected"]


@dataclass
class Selected:
    """The kept candidate: its trained model (best-validation parameters), settings and curves."""

    model: object
    lr: float
    restart: int
    valid_nll: float
    best_epoch: int | None
    history: list[dict]
    converged: bool
    candidates: list[dict] = field(default_factory=list)  # lr, restart, valid_nll(_rescored), epochs, ..., history
    rescored: object = None  # the kept candidate's rescore detail (e.g. its log Z estimate), None without rescoring


def converged(valid: Sequence[float | None], tolerance: float = 1.0, tail: float = 0.2) -> bool:
    """False when the lowest validation NLL of the last ``tail`` of the epochs is more than ``tolerance``
    below the lowest before it (still improving), or when there are fewer than 2 evaluated epochs."""
    values = [v for v in valid if v is not None and math.isfinite(v)]
    if len(values) < 2:
        return False
    k = max(1, math.ceil(tail * len(values)))
    return min(values[-k:]) >= min(values[:-k]) - tolerance


def select(train_one: Callable[[float, int, str], tuple[object, object]], lrs: Sequence[float], restarts: int,
           stem: str, folder: str, rescore: Callable[[object], tuple[float, object]] | None = None,
           reuse: str | None = None) -> Selected:
    """Train every (lr, restart) candidate and keep the lowest best validation NLL.

    train_one(lr, restart, checkpoint) → (model, trainer) after ``trainer.fit(train, valid, checkpoint=...)``
    (a trainer with ``patience``). ``stem``: file stem of the checkpoints in ``folder``. rescore(model) →
    (validation NLL, detail), used only when there is more than one candidate: every candidate's trained
    model is scored again (``valid_nll_rescored``) and that score decides; the kept one's detail is
    ``Selected.rescored``. reuse: a folder whose checkpoints of the same names are copied into ``folder``
    (where ``folder`` has none) before training.
    """
    os.makedirs(folder, exist_ok=True)
    rescore = rescore if len(lrs) * restarts > 1 else None
    best, candidates = None, []
    for lr in lrs:
        for restart in range(restarts):
            name = f"{stem}-lr{lr:g}-r{restart}.ckpt.npz"
            checkpoint = os.path.join(folder, name)
            if reuse is not None and not os.path.exists(checkpoint) and os.path.exists(os.path.join(reuse, name)):
                shutil.copyfile(os.path.join(reuse, name), checkpoint + ".part")  # whole, or not at all
                os.replace(checkpoint + ".part", checkpoint)
            model, trainer = train_one(float(lr), restart, checkpoint)
            history = [{k: h.get(k) for k in ("epoch", "train_nll", "valid_nll")} for h in trainer.history]
            valid = [h["valid_nll"] for h in history]
            scored = [v for v in valid if v is not None and math.isfinite(v)]
            value = min(scored) if scored else math.inf
            candidate = {"lr": float(lr), "restart": restart, "valid_nll": value, "epochs": len(history),
                         "best_epoch": trainer.best_epoch, "converged": converged(valid), "history": history}
            detail = None
            if rescore is not None:
                value, detail = rescore(model)
                candidate["valid_nll_rescored"] = value
            candidates.append(candidate)
            if best is None or value < best[0]:
                best = (value, candidate, model, detail)
    _, kept, model, detail = best
    return Selected(model, kept["lr"], kept["restart"], kept["valid_nll"], kept["best_epoch"], kept["history"],
                    kept["converged"], candidates, detail)


def tried(candidates: Sequence[dict]) -> str | None:
    """``"0.02: 88.12; 0.05: 87.10"``: each candidate's learning rate (``/r<restart>`` after the first restart) and
    the validation NLL it was compared by (``valid_nll_rescored`` where rescored); None for a single candidate."""
    if len(candidates) < 2:
        return None
    labels = [f"{c['lr']:g}" + (f"/r{c['restart']}" if c["restart"] else "") for c in candidates]
    return "; ".join(f"{label}: {c.get('valid_nll_rescored', c['valid_nll']):.2f}"
                     for label, c in zip(labels, candidates))


def curve_rows(name: str, row: dict) -> list[dict]:
    """Rows of :data:`CURVE_COLUMNS` for every candidate of one model, from its result row
    (``{"lr", "restart", "candidates", ...}``, as the experiments store it)."""
    lr, restart, candidates = row["lr"], row["restart"], row["candidates"]
    return [{"model": name, "lr": c["lr"], "restart": c["restart"], "epoch": h["epoch"], "train_nll": h["train_nll"],
             "valid_nll": h["valid_nll"], "selected": c["lr"] == lr and c["restart"] == restart}
            for c in candidates for h in c["history"]]


def curve_table(name: str, rows: list[dict]) -> Table:
    """The convergence table of one experiment."""
    return Table(name, CURVE_COLUMNS, rows, shown=CURVE_COLUMNS)
