"""Helpers the model tests share: seeded generators, all configurations, tolerances, comparisons."""
from __future__ import annotations

import numpy as np
import oracle
import torch

P_MIN = 1e-3  # chi-squared p-value threshold (fixed seeds: the outcome is deterministic)
RTOL, ATOL = 1e-10, 1e-12
ALPHAS = [0.5, 1, 2, 3.7, float("inf")]


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def configs(n: int) -> torch.Tensor:
    """All 2ⁿ configurations (2ⁿ, n) in the oracle's bit order."""
    return torch.from_numpy(oracle.all_configs(n))


def prototype_data(n_v: int, n: int, seed: int, n_protos: int = 3, noise: float = 0.05) -> np.ndarray:
    """(n, n_v) uint8: n rows drawn from n_protos random binary prototypes, each bit flipped with prob. noise."""
    rng = np.random.default_rng(seed)
    protos = rng.integers(0, 2, (n_protos, n_v))
    x = protos[rng.integers(0, n_protos, n)]
    return np.where(rng.random(x.shape) < noise, 1 - x, x).astype(np.uint8)


def as_np(t) -> np.ndarray:
    return t.detach().cpu().numpy() if isinstance(t, torch.Tensor) else np.asarray(t)


def assert_allclose(actual, expected, rtol=RTOL, atol=ATOL):
    np.testing.assert_allclose(as_np(actual).astype(np.float64), np.asarray(expected, dtype=np.float64),
                               rtol=rtol, atol=atol)


class MarkovChain:
    """A binary Markov chain over ``n`` sites: p(x_0 = 1) = ``p_one``; site k+1 flips site k with
    probability ``flip[x_k]``. Synthetic data with a known 1D structure for the from-data tests."""

    def __init__(self, n: int, flip=(0.1, 0.2), p_one: float = 0.4):
        self.n, self.flip, self.p_one = n, np.asarray(flip, dtype=np.float64), p_one

    def sample(self, n_rows: int, seed: int) -> np.ndarray:
        """(n_rows, n) uint8 samples in chain order."""
        rng = np.random.default_rng(seed)
        x = np.empty((n_rows, self.n), dtype=np.uint8)
        x[:, 0] = rng.random(n_rows) < self.p_one
        for k in range(1, self.n):
            x[:, k] = x[:, k - 1] ^ (rng.random(n_rows) < self.flip[x[:, k - 1]])
        return x

    def log_prob(self, x) -> np.ndarray:
        """(N,) exact ln p of rows in chain order."""
        x = np.asarray(x, dtype=np.int64)
        first = np.where(x[:, 0] == 1, np.log(self.p_one), np.log1p(-self.p_one))
        flip = self.flip[x[:, :-1]]
        steps = np.where(x[:, 1:] != x[:, :-1], np.log(flip), np.log1p(-flip))
        return first + steps.sum(axis=1)


def fit_until(trainer, train, valid, checkpoint=None, stop_after: int | None = None) -> None:
    """``trainer.fit(train, valid, checkpoint=...)``, interrupted (as by Ctrl-C) after epoch ``stop_after``."""
    def stop(record):
        if record["epoch"] == stop_after:
            raise KeyboardInterrupt

    try:
        trainer.fit(train, valid, checkpoint=checkpoint, callback=stop, progress=False)
    except KeyboardInterrupt:
        pass
