"""Products of a masked RBM's weights at its fixed sparsity pattern (CSR), for training sparse masks.

A local or random mask of fan-in f connects each hidden unit to f of the n visible units; CD training
with the masked weights stored dense spends n/f times the flops it needs. :class:`MaskedProducts`
keeps the pattern of the mask's E edges as compressed-row (CSR) matrices of W (n_v, n_h) and Wᵀ and
gives the three products a CD step takes: hidden pre-activations c + vW, visible pre-activations
b + hWᵀ, and the edge sums Σ_b v_bi h_bj on the edges only (``torch.sparse.sampled_addmm``). Edge
values are in the row-major order of the mask's True entries (``mask.nonzero()``), the order of
:meth:`rbm.RBM.add_edges_`. On one CPU core at n = 784 and batches of 100 these are 3–9× faster than
the dense products for fan-ins up to 16 and equal near a density of 10 %.
"""
from __future__ import annotations

import warnings

import torch

__all__ = ["MaskedProducts"]


def _csr(crow: torch.Tensor, col: torch.Tensor, values: torch.Tensor, size) -> torch.Tensor:
    with warnings.catch_warnings():  # "sparse CSR support is in beta"
        warnings.simplefilter("ignore", UserWarning)
        return torch.sparse_csr_tensor(crow, col, values, size=size)


class MaskedProducts:
    """CSR products of weights W (n_v, n_h) that are zero outside ``mask`` (n_v, n_h) bool.

    Attributes: ``edges`` (E,) int64 flat indices row · n_h + col of the edges in row-major order, ``rows``
    and ``cols`` (E,) their visible and hidden units, ``values`` (E,) the edge weights of the last :meth:`load`.
    Call :meth:`load` with the current W before the products of an update.
    """

    def __init__(self, mask: torch.Tensor):
        n_v, n_h = mask.shape
        rows, cols = mask.nonzero(as_tuple=True)  # row-major: the CSR order of W
        self.shape = (n_v, n_h)
        self.rows, self.cols, self.edges = rows, cols, rows * n_h + cols
        self._crow = torch.cat([rows.new_zeros(1), torch.bincount(rows, minlength=n_v).cumsum(0)])
        self._col = cols
        self._to_t = torch.argsort(cols * n_v + rows)  # edge order of Wᵀ's CSR
        self._crow_t = torch.cat([rows.new_zeros(1), torch.bincount(cols, minlength=n_h).cumsum(0)])
        self._col_t = rows[self._to_t]
        self._w = self._wt = self.values = None
        self._pattern = None  # W's pattern with zero values, for sampled products

    def load(self, W: torch.Tensor) -> None:
        """Take the edge values of W (n_v, n_h) for the next products."""
        self.values = values = W.reshape(-1)[self.edges]  # (E,) the edge weights, row-major
        self._w = _csr(self._crow, self._col, values, self.shape)
        self._wt = _csr(self._crow_t, self._col_t, values[self._to_t], self.shape[::-1])
        if self._pattern is None or self._pattern.dtype != W.dtype:
            self._pattern = _csr(self._crow, self._col, torch.zeros_like(values), self.shape)

    def hidden(self, v: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """c + vW (N, n_h) for v (N, n_v)."""
        return (self._wt @ v.T).T + c

    def visible(self, h: torch.Tensor, b: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
        """b + scale · hWᵀ (N, n_v) for h (N, n_h)."""
        out = (self._w @ h.T).T
        return (out if scale == 1.0 else out.mul_(scale)).add_(b)

    def edge_sums(self, v: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """Σ_b v_bi h_bj (E,) on the edges (i, j), row-major; v (N, n_v), h (N, n_h)."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            return torch.sparse.sampled_addmm(self._pattern, v.T.contiguous(), h, beta=0.0).values()
