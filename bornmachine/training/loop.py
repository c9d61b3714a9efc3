"""The fit loop every trainer shares: history, progress bar, checkpoints, resumption, callbacks.

A trainer takes its model and hyper-parameters in the constructor; ``fit(train, valid=None, *,
checkpoint=None, callback=None, progress=True)`` trains until the trainer has done ``n_epochs``
epochs (a sweep counts as an epoch) or its ``_stopped()`` hook says so (early stopping), and returns
the history. Every record holds ``epoch`` (1-based),
``train_nll`` and ``valid_nll`` (nats per sample; None when not evaluated), ``time_s`` (training
seconds of that epoch), ``best_epoch`` (early stopping, else None) and the trainer's own entries. A checkpoint is written atomically after every
epoch; ``fit`` resumes from an existing one (bit-identical to an uninterrupted run) if it was written
by the same kind of trainer, with the same trajectory settings and the same training data; a
finished run is extended by a trainer with a larger ``n_epochs``. Under torch.distributed every rank
runs the loop alike; only rank 0 writes checkpoints and shows progress.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import time
from abc import ABC, abstractmethod
from typing import Callable

import numpy as np
import torch
from tqdm.auto import tqdm

from .. import distributed
from ..io import read_npz, write_npz

CHECKPOINT_KIND = "checkpoint"
CHECKPOINT_VERSION = 2
RECORD_KEYS = ("epoch", "train_nll", "valid_nll", "time_s", "best_epoch")


def data_fingerprint(x: torch.Tensor) -> str:
    """SHA-1 of binary data (shape and bits), to refuse resuming on other data."""
    arr = x.detach().to("cpu", torch.uint8).numpy()
    h = hashlib.sha1(str(arr.shape).encode())
    h.update(np.packbits(arr, axis=1).tobytes())
    return h.hexdigest()


class Trainer(ABC):
    """Base of SweepTrainer, GradientTrainer and CDTrainer: the loop of :meth:`fit`, written once.

    Subclasses set ``n_epochs``, ``generator``, ``history = []`` in their constructor, the class
    attributes ``checkpoint_name`` (e.g. "a sweep") and ``unit`` (progress-bar unit), and implement
    the hooks: :meth:`hyper_parameters`, ``_trajectory_keys()``, ``_as_data(x, name)``,
    ``_run_epoch(x_train, epoch)``, ``_evaluate(x_train, x_valid)``, ``_parameters()``,
    ``_state()`` / ``_load_state(meta, arrays, where)`` (checkpoint contents beyond history and
    generator); optional ``_structure()``, ``_local_rows(x, name)``, ``_start(x_train)``, ``_after_epoch(record)``,
    ``_stopped()``, ``_finish()``, ``_release()``, ``_label()``, ``_snapshot()`` / ``_apply_snapshot(...)``.

    Early stopping: a subclass that sets ``patience`` (int ≥ 1) keeps a snapshot of the epoch of lowest
    finite ``valid_nll`` (``best_epoch``, in every record and in the checkpoint), stops after
    ``patience`` epochs without a lower one and ends with the best epoch's parameters.
    """

    checkpoint_name = "a"
    unit = "epoch"
    patience: int | None = None
    _best: tuple[float, int, tuple[dict, dict]] | None = None  # (valid NLL, epoch, snapshot (meta, arrays))

    # hooks ---------------------------------------------------------------------------------------
    @abstractmethod
    def hyper_parameters(self) -> dict:
        """The constructor's hyper-parameters (JSON-friendly)."""

    @abstractmethod
    def _trajectory_keys(self) -> tuple[str, ...]:
        """Hyper-parameters (and structure entries of :meth:`_structure`) a checkpoint must share to resume."""

    @abstractmethod
    def _as_data(self, x, name: str) -> torch.Tensor:
        """Checked training/validation data (N, n) for this trainer's model (all rows)."""

    @abstractmethod
    def _run_epoch(self, x_train: torch.Tensor, epoch: int) -> dict:
        """One epoch (0-based ``epoch``); returns the record entries it measured."""

    @abstractmethod
    def _evaluate(self, x_train: torch.Tensor, x_valid: torch.Tensor | None) -> dict:
        """``train_nll``, ``valid_nll`` and other evaluation entries after an epoch."""

    @abstractmethod
    def _parameters(self) -> list[torch.Tensor]:
        """The tensors training updates (rank 0's are broadcast at the start)."""

    @abstractmethod
    def _state(self) -> tuple[dict, dict]:
        """(meta, arrays) a checkpoint needs besides history, settings and the generator."""

    @abstractmethod
    def _load_state(self, meta: dict, arrays: dict, where: str) -> None:
        """Restore what :meth:`_state` wrote; ``ValueError`` naming ``where`` if it does not fit."""

    def _structure(self) -> dict:
        """Model structure a checkpoint must match (e.g. the number of sites)."""
        return {}

    def _local_rows(self, x: torch.Tensor, name: str) -> torch.Tensor:
        """The rows this rank trains and evaluates on (default: all; data-parallel trainers: its block)."""
        return x

    def _start(self, x_train: torch.Tensor) -> None:
        """Prepare a fresh run (not called when resuming or continuing)."""

    def _after_epoch(self, record: dict) -> None:
        """Called on rank 0 after each epoch's record (e.g. to warn)."""

    def _stopped(self) -> bool:
        """True when training has ended before ``n_epochs``: ``patience`` epochs without a lower validation NLL."""
        return self.patience is not None and self._best is not None and self.epoch - self._best[1] >= self.patience

    def _finish(self) -> None:
        """Called when training is complete (``n_epochs`` done or :meth:`_stopped`), not after a callback stop:
        the model gets the best validation epoch's parameters (with ``patience``)."""
        if self._best is not None:
            self._apply_snapshot(*self._best[2], "the best-validation snapshot")

    def _snapshot(self) -> tuple[dict, dict]:
        """(meta, arrays) of the parameters early stopping keeps; default: the checkpoint state."""
        return self._state()

    def _apply_snapshot(self, meta: dict, arrays: dict, where: str) -> None:
        """Give the model the parameters of a :meth:`_snapshot`; default: :meth:`_load_state`."""
        self._load_state(meta, arrays, where)

    @property
    def best_epoch(self) -> int | None:
        """The epoch of the lowest validation NLL (its parameters are kept), with ``patience``; else None."""
        return None if self._best is None else self._best[1]

    def _track_best(self, record: dict) -> None:
        """Keep a snapshot when ``record`` (the epoch just done) has the lowest finite validation NLL so far."""
        value = record.get("valid_nll")
        if self.patience is not None and value is not None and math.isfinite(value) and (
                self._best is None or value < self._best[0]):
            meta, arrays = self._snapshot()
            self._best = (float(value), int(record["epoch"]),
                          (json.loads(json.dumps(meta)), {k: np.array(a, copy=True) for k, a in arrays.items()}))
        record["best_epoch"] = self.best_epoch

    def _release(self) -> None:
        """Free what ``fit`` keeps from epoch to epoch (buffers, caches)."""

    def _label(self) -> str:
        return type(self).__name__

    # the loop ------------------------------------------------------------------------------------
    @property
    def epoch(self) -> int:
        """Finished epochs (sweeps)."""
        return len(self.history)

    def fit(self, train, valid=None, *, checkpoint=None, callback: Callable[[dict], object] | None = None,
            progress: bool = True) -> list[dict]:
        """Train until ``n_epochs`` epochs are done in all (or the trainer stops early); return the history
        (also ``self.history``).

        train, valid: binary data (N, n) or images (N, H, W), numpy or torch. ``checkpoint``: a path
        written atomically after every epoch; if it exists when ``fit`` starts, training resumes from
        it (its parameters replace the model's; settings and data must match, else ``ValueError``).
        ``callback(record)`` is called after every epoch (after the checkpoint); a true return value
        stops training. ``progress``: a tqdm bar (rank 0 only).
        Under torch.distributed every rank passes the same data and model (rank 0's parameters are
        broadcast at the start); each trains on its block of the rows; every rank reads the checkpoint
        (which must be on a file system all ranks see) and gets the same records and callbacks.
        """
        x_train = self._as_data(train, "train")
        x_valid = None if valid is None else self._as_data(valid, "valid")
        for name, data in (("train", x_train), ("valid", x_valid)):
            if data is not None and data.shape[0] == 0:
                raise ValueError(f"{name} data is empty (0 samples)")
            if data is not None:
                distributed.shard(data.shape[0], name=name)  # every rank needs rows
        fingerprint = data_fingerprint(x_train)
        x_train = self._local_rows(x_train, "train")
        x_valid = None if x_valid is None else self._local_rows(x_valid, "valid")
        if checkpoint is not None and distributed.broadcast_flag(os.path.exists(checkpoint)):
            self._restore(checkpoint, fingerprint)
        elif not self.history:
            self._best = None
            self._start(x_train)
        distributed.broadcast_(*self._parameters())
        main = distributed.is_main()
        bar = tqdm(total=self.n_epochs, initial=min(self.epoch, self.n_epochs), desc=self._label(), unit=self.unit,
                   disable=not (progress and main), leave=False)
        try:
            while self.epoch < self.n_epochs and not self._stopped():
                t0 = time.perf_counter()
                measured = self._run_epoch(x_train, self.epoch)
                record = {"epoch": self.epoch + 1, "train_nll": None, "valid_nll": None,
                          "time_s": time.perf_counter() - t0, **measured}
                record.update(self._evaluate(x_train, x_valid))
                self._track_best(record)
                self.history.append(record)
                if main:
                    self._after_epoch(record)
                    if checkpoint is not None:
                        self._save(checkpoint, fingerprint)
                bar.update(1)
                bar.set_postfix({k: "-" if record[k] is None else f"{record[k]:.3f}"
                                 for k in ("train_nll", "valid_nll")})
                if callback is not None and callback(dict(record)):
                    break
            else:
                self._finish()
        finally:
            bar.close()
            self._release()
        return self.history

    # checkpoints ---------------------------------------------------------------------------------
    def _save(self, path, fingerprint: str) -> None:
        meta, arrays = self._state()
        meta = dict(meta, trainer=type(self).__name__, checkpoint_version=CHECKPOINT_VERSION,
                    hyper_parameters=self.hyper_parameters(), structure=self._structure(), history=self.history,
                    data_fingerprint=fingerprint, generator_device=str(self.generator.device))
        arrays = dict(arrays, generator_state=self.generator.get_state().cpu().numpy())
        if self._best is not None:
            value, epoch, (best_meta, best_arrays) = self._best
            meta["best"] = {"valid_nll": value, "epoch": epoch, "meta": best_meta}
            arrays.update({f"best_{k}": a for k, a in best_arrays.items()})
        write_npz(path, CHECKPOINT_KIND, meta, arrays)

    def _restore(self, path, fingerprint: str) -> None:
        meta, arrays = read_npz(path)
        where = repr(os.fspath(path))
        if meta.get("kind") != CHECKPOINT_KIND or meta.get("trainer") != type(self).__name__:
            raise ValueError(f"{where} is not {self.checkpoint_name} checkpoint (it holds a {meta.get('kind')!r} "
                             f"file of {meta.get('trainer')!r})")
        if meta.get("checkpoint_version", 0) > CHECKPOINT_VERSION:
            raise ValueError(f"{where} was written by a newer version of {type(self).__name__}")
        saved = dict(meta.get("hyper_parameters") or {}, **(meta.get("structure") or {}))
        mine = json.loads(json.dumps(dict(self.hyper_parameters(), **self._structure())))
        diff = [f"{key}: checkpoint {saved.get(key)!r} vs trainer {mine.get(key)!r}" for key in self._trajectory_keys()
                if saved.get(key) != mine.get(key)]
        if diff:
            raise ValueError(f"{where} was written with other settings ({'; '.join(diff)}); refusing to resume: "
                             "use the same settings or another checkpoint path")
        if meta.get("data_fingerprint") != fingerprint:
            raise ValueError(f"{where} was written for other training data; use the same data or another path")
        try:
            history = list(meta["history"])
            state = torch.from_numpy(arrays["generator_state"].astype(np.uint8))
            self._load_state(meta, arrays, where)
            best = meta.get("best")
            best = None if best is None else (float(best["valid_nll"]), int(best["epoch"]), (
                dict(best["meta"]), {k[len("best_"):]: a for k, a in arrays.items() if k.startswith("best_")}))
        except (KeyError, TypeError) as err:
            raise ValueError(f"{where} is a corrupt checkpoint (missing or bad {err})") from err
        try:
            self.generator.set_state(state)
        except RuntimeError as err:
            raise ValueError(f"{where} holds an unusable generator state ({err})") from err
        self.history = history
        self._best = best
