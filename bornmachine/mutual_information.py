"""Pairwise mutual information of binary pixels: the input that chooses orderings, trees and masks.

:func:`pairwise_mutual_information` is shared by :func:`bornmachine.orderings.from_data`,
:meth:`bornmachine.Tree.from_data` and :func:`rbm.masks.from_data`.
"""
from __future__ import annotations

import torch

from .validation import as_binary_data, log_base

__all__ = ["pairwise_mutual_information"]


def pairwise_mutual_information(data, *, base="e") -> torch.Tensor:
    """Plug-in mutual information I(x_i : x_j) of every pair of pixels of a binary data set.

    The four joint counts of all pairs come from one matmul (n11 = Xᵀ X, the rest from the column
    sums), so 784 pixels × 5000 rows take well under a second; counts are exact integers (a float32
    matmul below 2²⁴ rows, float64 above). I = H(x_i) + H(x_j) − H(x_i, x_j) of the empirical
    distribution, with 0 ln 0 = 0: a constant pixel has MI 0 with every pixel (no NaN).

    Parameters
    ----------
    data : (N, n) or (N, H, W) binary array, numpy or torch (images are flattened row-major).
    base : "e" (nats, default) or 2 (bits).

    Returns
    -------
    (n, n) float64 tensor on the data's device: symmetric, ≥ 0, **zero diagonal** by convention (the
    matrix is the weight of a graph over pixels; the self-information H(x_i) is not stored there).
    """
    x = as_binary_data(data)
    scale = log_base(base)
    n_rows = x.shape[0]
    xf = x.to(torch.float32 if n_rows < 2 ** 24 else torch.float64)  # integer counts stay exact
    n11 = (xf.T @ xf).to(torch.float64)
    n1 = torch.diagonal(n11).clone()
    n10 = n1[:, None] - n11
    n01 = n1[None, :] - n11
    n00 = n_rows - n1[:, None] - n1[None, :] + n11
    joint = torch.stack([n00, n01, n10, n11]) / n_rows
    p1 = n1 / n_rows
    h_single = -(torch.special.xlogy(p1, p1) + torch.special.xlogy(1 - p1, 1 - p1))
    h_joint = -torch.special.xlogy(joint, joint).sum(0)
    mi = (h_single[:, None] + h_single[None, :] - h_joint).clamp_min_(0.0)
    mi = (mi + mi.T) / 2  # exactly symmetric (the sums above round in pair order)
    mi.fill_diagonal_(0.0)
    return mi / scale
