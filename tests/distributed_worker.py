"""Training runs shared by tests/test_distributed.py and the processes it launches.

``python tests/distributed_worker.py OUT_DIR`` is one rank of a gloo process group on localhost
(rendezvous from the torchrun-style variables RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT, set by
the test). It runs every scenario and writes ``OUT_DIR/rank{r}.npz``: the trained parameters and the
history NLLs. The test runs the same scenarios in its own process (no process group) and compares.
"""
from __future__ import annotations

import os
import sys

import numpy as np
import torch

from bornmachine import MPS, TTN, datasets, distributed
from bornmachine import GradientTrainer, SweepTrainer
from rbm import RBM, CDTrainer, masks


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _patterns(n_sites: int):
    """61 training and 21 validation patterns: odd sizes, so the two shards differ in length."""
    x = datasets.random_patterns(82, n_sites, seed=3)
    return x[:61], x[61:]


def _sweep(model, data=None, **kw):
    train, valid = data if data is not None else _patterns(model.n_sites)
    trainer = SweepTrainer(model, max_bond=4, n_sweeps=2, **kw)
    history = trainer.fit(train, valid, progress=False)
    return trainer.model.tensors, history


def mps_full():
    return _sweep(MPS(12, 2, generator=gen(0)), lr=0.1)


def mps_minibatch():
    """On bars and stripes: minibatch training of random patterns amplifies round-off ~1e8-fold."""
    bas = datasets.bars_and_stripes(3, 4)
    return _sweep(MPS(12, 2, generator=gen(0)), (bas, bas), lr=0.05, batch_size=8, n_steps=2)


def ttn():
    return _sweep(TTN((4, 4), 2, generator=gen(1)), lr=0.1)


def ttn_implicit():
    """Bond 16 under the root: the implicit gradient step and the randomized SVD (256 × 256 matrices)."""
    train, valid = _patterns(16)
    trainer = SweepTrainer(TTN((4, 4), 16, generator=gen(2)), max_bond=8, lr=0.1, n_sweeps=1)
    history = trainer.fit(train, valid, progress=False)
    return trainer.model.tensors, history


def gradient():
    train, valid = _patterns(12)
    trainer = GradientTrainer(MPS(12, 3, generator=gen(3)), lr=0.05, batch_size=16, n_epochs=2, seed=4)
    history = trainer.fit(train, valid, progress=False)
    return trainer.model.tensors, history


def resumed(directory):
    """One sweep with a checkpoint, then a second trainer that resumes it for a second sweep."""
    train, valid = _patterns(12)
    path = os.path.join(directory, "sweep.npz")
    SweepTrainer(MPS(12, 2, generator=gen(0)), max_bond=4, lr=0.1, n_sweeps=1).fit(train, valid, checkpoint=path,
                                                                                   progress=False)
    trainer = SweepTrainer(MPS(12, 2, generator=gen(9)), max_bond=4, lr=0.1, n_sweeps=2)
    history = trainer.fit(train, valid, checkpoint=path, progress=False)
    return trainer.model.tensors, history


def _cd(mask=None, **kw):
    train, valid = _patterns(16)
    model = RBM(16, 8, mask=mask, generator=gen(5))
    history = CDTrainer(model, lr=0.1, batch_size=20, n_epochs=3, seed=6, **kw).fit(train, valid, progress=False)
    return list(model.parameters()), history


def pcd():
    return _cd(persistent=True, n_chains=7)


def cd():
    return _cd(persistent=False, k=2)


def pcd_sparse():
    """A masked RBM on its CSR products (gradient sums on the edges, all-reduced)."""
    return _cd(mask=masks.random(16, 8, 40, seed=2), sparse=True, persistent=True, n_chains=7)


SCENARIOS = {"mps_full": mps_full, "mps_minibatch": mps_minibatch, "ttn": ttn, "ttn_implicit": ttn_implicit,
             "gradient": gradient, "pcd": pcd, "cd": cd,
             "pcd_sparse": pcd_sparse}


def run_all(directory) -> dict[str, np.ndarray]:
    """Every scenario (and the checkpoint resume, with files in ``directory``): parameters and NLLs."""
    out = {}
    for name, scenario in list(SCENARIOS.items()) + [("resumed", lambda: resumed(directory))]:
        params, history = scenario()
        for i, p in enumerate(params):
            out[f"{name}/param{i}"] = p.detach().cpu().numpy()
        out[f"{name}/nll"] = np.array([[r["train_nll"], r["valid_nll"]] for r in history], dtype=np.float64)
    return out


def main(directory) -> None:
    torch.set_num_threads(1)
    with distributed.launched():
        assert distributed.world_size() == int(os.environ["WORLD_SIZE"]) > 1
        results = run_all(directory)
        np.savez(os.path.join(directory, f"rank{distributed.rank()}.npz"), **results)


if __name__ == "__main__":
    main(sys.argv[1])
