"""Pixel orderings: which image pixel sits at each chain position.

An ordering is a permutation ``order`` of ``range(H·W)`` with ``order[i]`` = the row-major pixel
index placed at chain position ``i``. Models keep their ordering, so users pass images in their
natural (row-major) layout.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

NAMES = ("row_major", "snake", "column_major", "hilbert")


def row_major(shape: Sequence[int]) -> np.ndarray:
    """Identity: rows left to right, top to bottom."""
    return np.arange(int(np.prod(shape)))


def snake(shape: Sequence[int]) -> np.ndarray:
    """Boustrophedon: even rows left→right, odd rows right→left (neighbours stay adjacent)."""
    h, w = _hw(shape)
    grid = np.arange(h * w).reshape(h, w)
    grid[1::2] = grid[1::2, ::-1]
    return grid.reshape(-1)


def column_major(shape: Sequence[int]) -> np.ndarray:
    """Columns top to bottom, left to right."""
    h, w = _hw(shape)
    return np.arange(h * w).reshape(h, w).T.reshape(-1)


def hilbert(shape: Sequence[int]) -> np.ndarray:
    """Generalised Hilbert curve ("gilbert") for any H×W: a space-filling path between grid neighbours.

    Steps are unit steps except for at most one diagonal step, which occurs on some shapes whose
    longer side is odd (e.g. 4×5); square and power-of-two shapes such as 28×28 have only unit steps."""
    h, w = _hw(shape)
    coords = list(_gilbert(w, h))
    return np.array([y * w + x for x, y in coords], dtype=np.int64)


def resolve(ordering, n_sites: int, shape: Sequence[int] | None) -> torch.Tensor:
    """Turn ``ordering`` (None, a name in :data:`NAMES`, or a permutation) into a LongTensor (n_sites,)."""
    if ordering is None or (isinstance(ordering, str) and ordering == "row_major"):
        return torch.arange(n_sites)
    if isinstance(ordering, str):
        if ordering not in NAMES:
            raise ValueError(f"unknown ordering {ordering!r}; choose one of {NAMES} or pass a permutation")
        if shape is None or len(shape) != 2:
            raise ValueError(f"ordering {ordering!r} needs an image shape (H, W); construct the model with n_sites=(H, W)")
        return torch.as_tensor(globals()[ordering](shape), dtype=torch.int64)
    perm = torch.as_tensor(np.asarray(ordering))
    if perm.dim() != 1 or perm.dtype.is_floating_point or perm.dtype == torch.bool:
        raise TypeError("ordering must be a name or a 1-D sequence of integer pixel indices")
    perm = perm.to(torch.int64)
    if perm.numel() != n_sites or not torch.equal(torch.sort(perm).values, torch.arange(n_sites)):
        raise ValueError(f"ordering must be a permutation of range({n_sites}); got {perm.numel()} entries "
                         "with repeats or out-of-range values")
    return perm


def inverse(order: torch.Tensor) -> torch.Tensor:
    """Chain position of every pixel: ``inverse(order)[order[i]] == i``."""
    inv = torch.empty_like(order)
    inv[order] = torch.arange(order.numel())
    return inv


def _hw(shape):
    if len(shape) != 2:
        raise ValueError(f"image shape must be (H, W), got {tuple(shape)}")
    return int(shape[0]), int(shape[1])


def _sign(v: int) -> int:
    return (v > 0) - (v < 0)


def _gilbert(width: int, height: int):
    if width >= height:
        yield from _gilbert_rec(0, 0, width, 0, 0, height)
    else:
        yield from _gilbert_rec(0, 0, 0, height, width, 0)


def _gilbert_rec(x, y, ax, ay, bx, by):
    w, h = abs(ax + ay), abs(bx + by)
    dax, day, dbx, dby = _sign(ax), _sign(ay), _sign(bx), _sign(by)
    if h == 1:
        for _ in range(w):
            yield x, y
            x, y = x + dax, y + day
        return
    if w == 1:
        for _ in range(h):
            yield x, y
            x, y = x + dbx, y + dby
        return
    ax2, ay2, bx2, by2 = ax // 2, ay // 2, bx // 2, by // 2
    w2, h2 = abs(ax2 + ay2), abs(bx2 + by2)
    if 2 * w > 3 * h:
        if w2 % 2 and w > 2:
            ax2, ay2 = ax2 + dax, ay2 + day
        yield from _gilbert_rec(x, y, ax2, ay2, bx, by)
        yield from _gilbert_rec(x + ax2, y + ay2, ax - ax2, ay - ay2, bx, by)
    else:
        if h2 % 2 and h > 2:
            bx2, by2 = bx2 + dbx, by2 + dby
        yield from _gilbert_rec(x, y, bx2, by2, ax2, ay2)
        yield from _gilbert_rec(x + bx2, y + by2, ax, ay, bx - bx2, by - by2)
        yield from _gilbert_rec(x + (ax - dax) + (bx2 - dbx), y + (ay - day) + (by2 - dby),
                                -bx2, -by2, -(ax - ax2), -(ay - ay2))
