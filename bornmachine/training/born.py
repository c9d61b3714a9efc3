"""What the Born-machine trainers add to the fit loop: data as the model takes it, one block of rows
per rank, the NLL after every epoch, the zero-probability warning, the tensors in the checkpoint."""
from __future__ import annotations

import warnings

import torch

from .. import distributed
from ..base import BornMachine
from ..validation import as_binary, check_positive_int
from .loop import Trainer


class ZeroProbabilityWarning(RuntimeWarning):
    """Training samples with Ψ(v) = 0 were excluded from a gradient step (their NLL is infinite)."""


def finite_nll(model: BornMachine, x: torch.Tensor, chunk: int = 4096) -> tuple[float, int]:
    """(mean NLL over the samples of non-zero probability, number of zero-probability samples left out of it),
    over the rows of all ranks (x: this rank's block)."""
    parts = [model.log_prob(x[i:i + chunk]) for i in range(0, x.shape[0], chunk)]
    logp = torch.cat(parts)
    finite = torch.isfinite(logp)
    total = torch.stack([-logp[finite].sum().double(), finite.sum().double(),
                         torch.tensor(float(logp.numel()), dtype=torch.float64, device=logp.device)])
    distributed.all_reduce_sum(total)
    mean = float(total[0] / total[1]) if total[1] > 0 else float("inf")
    return mean, int(total[2] - total[1])


class BornTrainer(Trainer):
    """Base of SweepTrainer and GradientTrainer. Records add ``max_bond``, ``zero_prob`` (the most
    training samples of zero amplitude met in one step, left out of the gradient and warned about),
    ``valid_zero_prob`` (validation samples of zero probability, left out of ``valid_nll`` and warned about;
    None without validation data), and
    ``best_epoch`` (early stopping on the validation NLL with ``patience``: see :class:`~.loop.Trainer`)."""

    def __init__(self, model, n_epochs: int, seed: int, patience: int | None = None):
        if not isinstance(model, BornMachine):
            raise TypeError(f"{type(self).__name__} trains an MPS or a TTN, got {type(model).__name__}")
        self.model = model
        self.n_epochs = check_positive_int(n_epochs, "n_epochs")
        self.seed = int(seed)
        self.patience = None if patience is None else check_positive_int(patience, "patience")
        self.generator = torch.Generator().manual_seed(self.seed)
        self.history: list[dict] = []
        self._part = None

    def _structure(self) -> dict:
        return {"n_sites": self.model.n_sites}

    def _as_data(self, x, name: str) -> torch.Tensor:
        model = self.model
        return as_binary(x, model.n_sites, name=name, device=model.device, shape=model.shape)

    def _local_rows(self, x: torch.Tensor, name: str) -> torch.Tensor:
        part = distributed.shard(x.shape[0], name=name)
        if name == "train":
            self._part = part
        return x[part.start:part.stop]

    def _evaluate(self, x_train, x_valid) -> dict:
        model = self.model
        valid_nll, valid_zero = (None, None) if x_valid is None else finite_nll(model, x_valid)
        return {"train_nll": finite_nll(model, x_train)[0], "valid_nll": valid_nll, "valid_zero_prob": valid_zero,
                "max_bond": max(model.bond_dims, default=1)}

    def _after_epoch(self, record: dict) -> None:
        if record["zero_prob"]:
            warnings.warn(f"{self.unit} {record['epoch']}: {record['zero_prob']} training samples had zero "
                          "probability and were left out of the gradient", ZeroProbabilityWarning, stacklevel=3)
        if record.get("valid_zero_prob"):
            warnings.warn(f"{self.unit} {record['epoch']}: {record['valid_zero_prob']} validation samples have zero "
                          "probability and are left out of the validation NLL", ZeroProbabilityWarning, stacklevel=3)

    def _parameters(self) -> list[torch.Tensor]:
        return self.model.tensors

    def _state(self) -> tuple[dict, dict]:
        model = self.model  # the saved tensors are exact: so is their gauge
        return {"center": model.center}, {f"tensor_{k}": t.detach().cpu().numpy() for k, t in enumerate(model.tensors)}

    def _load_state(self, meta: dict, arrays: dict, where: str) -> None:
        model = self.model
        model.tensors = [torch.from_numpy(arrays[f"tensor_{k}"]).to(model.device) for k in range(len(model.tensors))]
        center = meta.get("center")
        try:
            model.center = None if center is None else model._check_center(center)
        except (TypeError, ValueError):
            model.center = None
