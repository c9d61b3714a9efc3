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


def as_np(t) -> np.ndarray:
    return t.detach().cpu().numpy() if isinstance(t, torch.Tensor) else np.asarray(t)


def assert_allclose(actual, expected, rtol=RTOL, atol=ATOL):
    np.testing.assert_allclose(as_np(actual).astype(np.float64), np.asarray(expected, dtype=np.float64),
                               rtol=rtol, atol=atol)
