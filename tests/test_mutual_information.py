"""``pairwise_mutual_information`` against a brute-force per-pair count, its conventions and checks."""
from __future__ import annotations

import math
import time

import numpy as np
import pytest
import torch

from bornmachine import pairwise_mutual_information


def brute_force_mi(x: np.ndarray) -> np.ndarray:
    """I(x_i : x_j) in nats from a 2×2 histogram of every pair (i ≠ j), zero diagonal."""
    n_rows, n = x.shape
    out = np.zeros((n, n))
    for i in range(n):
        for j in range(n):
            if i == j:
                continue
            joint, _, _ = np.histogram2d(x[:, i], x[:, j], bins=2, range=[[0, 2], [0, 2]])
            joint /= n_rows
            pi, pj = joint.sum(1), joint.sum(0)
            out[i, j] = sum(joint[a, b] * math.log(joint[a, b] / (pi[a] * pj[b]))
                            for a in range(2) for b in range(2) if joint[a, b] > 0)
    return out


def correlated_data(n_rows: int = 300, seed: int = 0) -> np.ndarray:
    """Random data with correlated, independent and constant (all-0 and all-1) pixels."""
    rng = np.random.default_rng(seed)
    x = (rng.random((n_rows, 7)) < [0.5, 0.3, 0.5, 0.1, 0.5, 0.5, 0.5]).astype(np.uint8)
    x[:, 2] = x[:, 0] ^ (rng.random(n_rows) < 0.1)  # strongly tied to pixel 0
    x[:, 4] = 0
    x[:, 5] = 1
    return x


def test_matches_brute_force_with_constant_pixels():
    x = correlated_data()
    mi = pairwise_mutual_information(x)
    assert mi.dtype == torch.float64 and mi.shape == (7, 7)
    np.testing.assert_allclose(mi.numpy(), brute_force_mi(x), rtol=1e-10, atol=1e-13)
    assert torch.isfinite(mi).all()
    assert torch.equal(mi[4], torch.zeros(7)) and torch.equal(mi[:, 5], torch.zeros(7))
    assert mi[0, 2] == mi.max()


def test_symmetric_nonnegative_zero_diagonal_and_bits():
    x = np.random.default_rng(1).integers(0, 2, (200, 9))
    mi = pairwise_mutual_information(x)
    assert torch.equal(mi, mi.T)
    assert (mi >= 0).all() and torch.equal(torch.diagonal(mi), torch.zeros(9))
    np.testing.assert_allclose(pairwise_mutual_information(x, base=2).numpy(), mi.numpy() / math.log(2), rtol=1e-12)


def test_identical_pixels_share_their_entropy():
    x = np.zeros((8, 2), dtype=np.uint8)
    x[:2] = 1  # p = 1/4, the two pixels equal
    entropy = -(0.25 * math.log(0.25) + 0.75 * math.log(0.75))
    assert float(pairwise_mutual_information(x)[0, 1]) == pytest.approx(entropy)


def test_any_array_type_and_images():
    x = correlated_data(100, seed=2)
    expected = pairwise_mutual_information(x)
    for data in (x.astype(bool), x.astype(np.int32), x.astype(np.float32), torch.from_numpy(x),
                 torch.from_numpy(x).to(torch.bool), torch.from_numpy(x).to(torch.int64)):
        assert torch.equal(pairwise_mutual_information(data), expected)
    images = np.random.default_rng(3).integers(0, 2, (50, 3, 4))
    assert torch.equal(pairwise_mutual_information(images), pairwise_mutual_information(images.reshape(50, 12)))


@pytest.mark.parametrize("data, error, match", [
    (np.array([[0, 2], [1, 0]]), ValueError, "binary"),
    (np.array([[0.5, 1.0]]), ValueError, "binary"),
    (np.zeros(5), ValueError, "expected rows"),
    (np.zeros((2, 2, 2, 2)), ValueError, "expected rows"),
    (np.zeros((0, 4)), ValueError, "at least one row"),
    ([[0, 1], [1, 0]], TypeError, "numpy array or torch tensor"),
])
def test_bad_data(data, error, match):
    with pytest.raises(error, match=match):
        pairwise_mutual_information(data)


def test_bad_base():
    with pytest.raises(ValueError, match="base"):
        pairwise_mutual_information(np.zeros((3, 2)), base=10)


def test_mnist_size_takes_seconds():
    x = (torch.rand(5000, 784, generator=torch.Generator().manual_seed(0)) < 0.2).to(torch.uint8)
    start = time.perf_counter()
    mi = pairwise_mutual_information(x)
    assert time.perf_counter() - start < 10.0
    assert mi.shape == (784, 784) and torch.isfinite(mi).all()
