"""Bipartitions of an image's pixels into two non-empty sides X and Y.

A :class:`Bipartition` holds a boolean mask over the image (shape (H, W), or (n,) for 1-D data):
True marks the pixels of X, False those of Y. Pixels are numbered row-major (the flattened order of
the data and of the models' ``sites`` arguments), so ``sites_x`` / ``sites_y`` can be passed straight
to ``model.renyi2(sites_X)`` or used to split a data matrix ``data[:, bip.sites_x]``.

Constructors (the bipartitions of Cheng, Chen & Wang, Entropy 20, 583 (2018), Fig. 3):

* :func:`up_down` – X = the rows above ``row``; :func:`left_right` – X = the columns left of ``col``.
* :func:`checkerboard` – X = the "black" squares of a checkerboard of ``block × block`` squares.
* :func:`center_margin` – X = the margin ring of width ``width``, Y = the centre.
* :func:`random` – a uniformly random balanced split (|X| = ⌊n/2⌋), seeded.
* :func:`from_mask` – any mask.
* :func:`standard_set` – all of the above for one image shape, in a fixed order.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

__all__ = ["Bipartition", "up_down", "left_right", "checkerboard", "center_margin", "random",
           "from_mask", "standard_set"]


class Bipartition:
    """A split of the pixels of an image into X (mask True) and Y (mask False), both non-empty.

    Parameters
    ----------
    mask : array_like of bool or 0/1, shape (H, W) or (n,)
        True (1) for the pixels of X. Copied and stored read-only.
    name : str
        A label for tables and plots, e.g. ``"up_down(row=14)"``.

    Attributes
    ----------
    mask : (H, W) or (n,) read-only bool ndarray.
    name : str.
    shape : the image shape (tuple). n_sites : number of pixels.
    sites_x, sites_y : sorted row-major pixel indices of X and Y (read-only int64 ndarrays).

    Instances are immutable; two bipartitions are equal when their masks and names are.
    """

    __slots__ = ("_mask", "_name", "_sites_x", "_sites_y")

    def __init__(self, mask, name: str = "custom"):
        arr = _check_mask(mask)
        if not isinstance(name, str):
            raise TypeError(f"name must be a str, got {type(name).__name__}")
        arr.setflags(write=False)
        flat = arr.reshape(-1)
        sites_x = np.flatnonzero(flat)
        sites_y = np.flatnonzero(~flat)
        sites_x.setflags(write=False)
        sites_y.setflags(write=False)
        object.__setattr__(self, "_mask", arr)
        object.__setattr__(self, "_name", name)
        object.__setattr__(self, "_sites_x", sites_x)
        object.__setattr__(self, "_sites_y", sites_y)

    def __setattr__(self, key, value):
        raise AttributeError("Bipartition is immutable")

    def __reduce__(self):  # pickling (worker processes) rebuilds it from its mask and name
        return (Bipartition, (np.array(self._mask), self._name))

    @property
    def mask(self) -> np.ndarray:
        return self._mask

    @property
    def name(self) -> str:
        return self._name

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self._mask.shape)

    @property
    def n_sites(self) -> int:
        return int(self._mask.size)

    @property
    def sites_x(self) -> np.ndarray:
        return self._sites_x

    @property
    def sites_y(self) -> np.ndarray:
        return self._sites_y

    @property
    def flat_mask(self) -> np.ndarray:
        """(n_sites,) bool: True for the pixels of X, row-major."""
        return self._mask.reshape(-1)

    def swapped(self) -> "Bipartition":
        """The same cut with X and Y exchanged (name suffixed with ``"~"``)."""
        return Bipartition(~self._mask, name=self._name + "~")

    def __eq__(self, other) -> bool:
        if not isinstance(other, Bipartition):
            return NotImplemented
        return self._name == other._name and self.shape == other.shape and bool(np.array_equal(self._mask, other._mask))

    def __hash__(self) -> int:
        return hash((self._name, self.shape, self._mask.tobytes()))

    def __repr__(self) -> str:
        return (f"Bipartition({self._name!r}, shape={self.shape}, |X|={self._sites_x.size}, "
                f"|Y|={self._sites_y.size})")


# ------------------------------------------------------------------------------------------------
# constructors
# ------------------------------------------------------------------------------------------------
def from_mask(mask, name: str = "custom") -> Bipartition:
    """A bipartition from a boolean (or 0/1) mask of shape (H, W) or (n,); True = X."""
    return Bipartition(mask, name=name)


def up_down(shape: Sequence[int], row: int) -> Bipartition:
    """X = the rows ``0 … row−1`` (top), Y = the rows ``row … H−1`` (bottom); 1 ≤ row ≤ H−1."""
    h, w = _check_shape(shape)
    row = _check_index(row, 1, h - 1, "row")
    mask = np.zeros((h, w), dtype=bool)
    mask[:row, :] = True
    return Bipartition(mask, name=f"up_down(row={row})")


def left_right(shape: Sequence[int], col: int) -> Bipartition:
    """X = the columns ``0 … col−1`` (left), Y = the others (right); 1 ≤ col ≤ W−1."""
    h, w = _check_shape(shape)
    col = _check_index(col, 1, w - 1, "col")
    mask = np.zeros((h, w), dtype=bool)
    mask[:, :col] = True
    return Bipartition(mask, name=f"left_right(col={col})")


def checkerboard(shape: Sequence[int], block: int = 1) -> Bipartition:
    """X = pixels (r, c) with ``(r // block + c // block)`` even: a checkerboard of block × block squares.

    The top-left square belongs to X. Any ``block`` ≥ 1 works as long as both colours occur, i.e.
    ``block < max(H, W)``.
    """
    h, w = _check_shape(shape)
    block = _check_index(block, 1, None, "block")
    if block >= max(h, w):
        raise ValueError(f"checkerboard block {block} covers the whole {h}x{w} image: Y would be empty "
                         f"(need block < {max(h, w)})")
    r, c = np.indices((h, w))
    mask = ((r // block + c // block) % 2) == 0
    return Bipartition(mask, name=f"checkerboard(block={block})")


def center_margin(shape: Sequence[int], width: int) -> Bipartition:
    """X = the margin ring of ``width`` pixels along all four borders, Y = the centre.

    The centre must be non-empty: 1 ≤ width and 2·width < min(H, W).
    """
    h, w = _check_shape(shape)
    width = _check_index(width, 1, None, "width")
    if 2 * width >= min(h, w):
        raise ValueError(f"margin width {width} leaves no centre in a {h}x{w} image "
                         f"(need 2*width < {min(h, w)})")
    mask = np.ones((h, w), dtype=bool)
    mask[width:h - width, width:w - width] = False
    return Bipartition(mask, name=f"center_margin(width={width})")


def random(shape: Sequence[int], seed) -> Bipartition:
    """A uniformly random balanced split: X = ⌊n/2⌋ pixels drawn without replacement.

    ``seed``: an int ≥ 0 or a ``numpy.random.Generator`` (no global random state is used).
    ``shape`` may be (H, W) or (n,) with n ≥ 2.
    """
    shape = _check_any_shape(shape)
    rng = _rng(seed)
    n = int(np.prod(shape))
    flat = np.zeros(n, dtype=bool)
    flat[rng.permutation(n)[: n // 2]] = True
    label = f"seed={int(seed)}" if not isinstance(seed, np.random.Generator) else "rng"
    return Bipartition(flat.reshape(shape), name=f"random({label})")


def standard_set(shape: Sequence[int], n_random: int = 3, seed: int = 0) -> list[Bipartition]:
    """The bipartitions of the paper's Fig. 3 for one image shape, in this order.

    * ``up_down`` at every row 1 … H−1;
    * ``left_right`` at every column 1 … W−1;
    * ``checkerboard`` with blocks 1, 2, 4 (those that fit: block < max(H, W));
    * ``center_margin`` for every width that leaves a non-empty centre (2·width < min(H, W));
    * ``n_random`` random balanced splits with seeds ``seed, seed+1, …``.

    For (28, 28): 27 + 27 + 3 + 13 + 3 = 73 bipartitions.
    """
    h, w = _check_shape(shape)
    if isinstance(n_random, bool) or not isinstance(n_random, (int, np.integer)) or n_random < 0:
        raise ValueError(f"n_random must be an integer >= 0, got {n_random!r}")
    out = [up_down((h, w), r) for r in range(1, h)]
    out += [left_right((h, w), c) for c in range(1, w)]
    out += [checkerboard((h, w), b) for b in (1, 2, 4) if b < max(h, w)]
    out += [center_margin((h, w), k) for k in range(1, (min(h, w) + 1) // 2) if 2 * k < min(h, w)]
    out += [random((h, w), seed + i) for i in range(int(n_random))]
    return out


# ------------------------------------------------------------------------------------------------
# validation
# ------------------------------------------------------------------------------------------------
def _check_mask(mask) -> np.ndarray:
    if hasattr(mask, "detach"):  # torch tensor
        mask = mask.detach().cpu().numpy()
    try:
        arr = np.array(mask)
    except (TypeError, ValueError) as err:
        raise TypeError(f"mask must be an array of booleans, got {type(mask).__name__}") from err
    if arr.dtype == object or not (arr.dtype == np.bool_ or np.issubdtype(arr.dtype, np.number)):
        raise TypeError(f"mask must be boolean or 0/1, got dtype {arr.dtype}")
    if arr.ndim not in (1, 2):
        raise ValueError(f"mask has shape {arr.shape}; expected an image shape (H, W) or (n,)")
    if arr.size < 2:
        raise ValueError(f"mask has shape {arr.shape}; a bipartition needs at least 2 pixels")
    if arr.dtype != np.bool_:
        if np.issubdtype(arr.dtype, np.complexfloating):
            raise TypeError(f"mask must be boolean or 0/1, got dtype {arr.dtype}")
        bad = (arr != 0) & (arr != 1)
        if bad.any():
            raise ValueError(f"mask must be boolean or 0/1; found value {arr[bad].reshape(-1)[0].item()!r}")
        arr = arr == 1
    if arr.all():
        raise ValueError(f"mask is all True: side Y is empty (mask shape {arr.shape})")
    if not arr.any():
        raise ValueError(f"mask is all False: side X is empty (mask shape {arr.shape})")
    return np.ascontiguousarray(arr, dtype=bool)


def _check_any_shape(shape) -> tuple[int, ...]:
    if isinstance(shape, (int, np.integer)) and not isinstance(shape, bool):
        shape = (int(shape),)
    try:
        dims = tuple(shape)
    except TypeError as err:
        raise TypeError(f"shape must be a tuple of ints, got {shape!r}") from err
    if len(dims) not in (1, 2):
        raise ValueError(f"shape must be (H, W) or (n,), got {dims}")
    for d in dims:
        if isinstance(d, bool) or not isinstance(d, (int, np.integer)):
            raise TypeError(f"shape must hold ints, got {dims}")
        if d < 1:
            raise ValueError(f"shape must hold positive sizes, got {dims}")
    if int(np.prod(dims)) < 2:
        raise ValueError(f"shape {dims} has fewer than 2 pixels")
    return tuple(int(d) for d in dims)


def _check_shape(shape) -> tuple[int, int]:
    dims = _check_any_shape(shape)
    if len(dims) != 2:
        raise ValueError(f"this bipartition needs an image shape (H, W), got {dims}")
    return dims


def _check_index(value, lo: int, hi: int | None, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__}")
    if value < lo or (hi is not None and value > hi):
        rng = f"{lo}..{hi}" if hi is not None else f">= {lo}"
        raise ValueError(f"{name} = {int(value)} out of range ({rng}); both sides must be non-empty")
    return int(value)


def _rng(seed) -> np.random.Generator:
    if isinstance(seed, np.random.Generator):
        return seed
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be an int or a numpy.random.Generator, got {type(seed).__name__}")
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    return np.random.default_rng(int(seed))
