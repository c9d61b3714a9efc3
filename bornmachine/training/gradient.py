"""GradientTrainer: Adam on all tensors of a Born machine by autodiff, at fixed bond dimensions."""
from __future__ import annotations

import math

import numpy as np
import torch

from .. import distributed
from ..validation import check_positive_int
from .born import BornTrainer


class GradientTrainer(BornTrainer):
    """Adam on all MPS tensors by autodiff at fixed bond dimensions, minibatches, any device.

    Parameters
    ----------
    model : MPS (changed in place; moved to ``device`` if given).
    lr : Adam step size. batch_size : minibatch size. n_epochs : passes over the data.
    seed : int (minibatch order). device : e.g. "cuda"; default the model's device.
    patience : int or None, early stopping on the validation NLL (as in :class:`SweepTrainer`).
    """

    checkpoint_name = "a gradient"

    def __init__(self, model, *, lr: float = 1e-3, batch_size: int = 100, n_epochs: int = 10,
                 seed: int = 0, device=None, patience: int | None = None):
        super().__init__(model, n_epochs, seed, patience)
        if not (isinstance(lr, (int, float)) and lr > 0 and math.isfinite(lr)):
            raise ValueError(f"lr must be a positive number, got {lr!r}")
        if device is not None:
            model.tensors = [t.to(device) for t in model.tensors]
        self.lr = float(lr)
        self.batch_size = check_positive_int(batch_size, "batch_size")
        self.device = None if device is None else str(device)
        self._params = [t.detach().clone().requires_grad_(True) for t in model.tensors]
        self._optimizer = torch.optim.Adam(self._params, lr=self.lr)

    def hyper_parameters(self) -> dict:
        return {"lr": self.lr, "batch_size": self.batch_size, "n_epochs": self.n_epochs, "seed": self.seed,
                "device": self.device, "patience": self.patience}

    def _trajectory_keys(self) -> tuple[str, ...]:
        return ("lr", "batch_size", "seed", "n_sites")

    def _label(self) -> str:
        return "gradient"

    def _parameters(self):
        return self._params

    def _run_epoch(self, x: torch.Tensor, epoch: int) -> dict:
        """One epoch over this rank's rows x (part.size, n) uint8; minibatches index all part.total rows (int64
        for the kernels, one minibatch at a time)."""
        model, part = self.model, self._part
        x = x[:, model.ordering.to(x.device)]
        perm = torch.randperm(part.total, generator=self.generator)
        zero = 0
        for i in range(0, part.total, self.batch_size):
            batch = x[part.local(perm[i:i + self.batch_size]).to(x.device)].to(torch.int64)
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
        return {"zero_prob": zero}

    def _state(self):
        meta, arrays = super()._state()
        state = self._optimizer.state_dict()
        arrays["adam_step"] = np.array([float(state["state"][i]["step"]) if i in state["state"] else 0.0
                                        for i in range(len(self._params))])
        for i in range(len(self._params)):
            if i in state["state"]:
                arrays[f"adam_m_{i}"] = state["state"][i]["exp_avg"].detach().cpu().numpy()
                arrays[f"adam_v_{i}"] = state["state"][i]["exp_avg_sq"].detach().cpu().numpy()
        return meta, arrays

    def _load_state(self, meta, arrays, where):
        super()._load_state(meta, arrays, where)
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
