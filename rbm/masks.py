"""Visible–hidden connection masks for RBMs, and architectures at equal parameter count.

A mask is a boolean torch tensor of shape (n_visible, n_hidden) on the CPU: ``mask[i, j]`` is True
when visible unit ``i`` (pixel ``i`` of the row-major flattened image) connects to hidden unit ``j``.
Pass it to ``RBM(n_visible, n_hidden, mask=mask)``. The parameter count of an RBM with mask ``m`` is
``m.sum() + n_visible + n_hidden`` (:func:`n_params`).

Kinds (the four architectures of Cheng, Chen & Wang, Entropy 2018, Fig. 4):

* :func:`dense` – every hidden unit sees every pixel.
* :func:`random` – each hidden unit sees a random subset of pixels (balanced in-degrees by default).
* :func:`local_1d` – each hidden unit sees a contiguous fragment of the row-major pixel vector.
* :func:`local_2d` – each hidden unit sees a rectangular window of the image.

Beyond the paper, :func:`from_data` (kind ``"from_data"``) builds receptive fields from the data's
pairwise mutual information: each hidden unit sees a seed pixel and its most informative partners.

Local windows sit on a grid of positions with a ``stride``; they may overlap (stride < window) and
are clipped at the borders. ``padding="valid"`` puts the first window at the first pixel and adds one
clipped window at the end when the stride does not tile the image; ``padding="same"`` centres a
window on every ``stride``-th pixel, clipping at both borders. With ``n_hidden`` larger than the
number of positions several hidden units share a window ("channels"); with fewer, the used positions
are spread evenly: hidden unit ``j`` sits at position ``floor(j · P / n_hidden)`` of the ``P`` positions.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import torch

from bornmachine.mutual_information import pairwise_mutual_information
from bornmachine.validation import as_binary_data, check_positive_int

from .model import RBM, make_generator

__all__ = ["KINDS", "PAPER_KINDS", "Architecture", "dense", "random", "local_1d", "local_2d", "from_data",
           "matched", "n_params", "positions_1d"]

#: The four architectures of the paper (the default of :func:`matched`; they need no data).
PAPER_KINDS = ("dense", "random", "local_1d", "local_2d")
#: Mask kinds understood by :func:`matched` and the CLI.
KINDS = PAPER_KINDS + ("from_data",)
_PADDINGS = ("valid", "same")


def n_params(mask) -> int:
    """Parameters of an RBM with this mask: unmasked weights + n_visible + n_hidden."""
    m = _as_bool(mask)
    return int(m.sum()) + m.shape[0] + m.shape[1]


def dense(n_visible: int, n_hidden: int) -> torch.Tensor:
    """All-True mask (n_visible, n_hidden): a fully connected RBM."""
    n_visible = check_positive_int(n_visible, "n_visible")
    n_hidden = check_positive_int(n_hidden, "n_hidden")
    return torch.ones(n_visible, n_hidden, dtype=torch.bool)


def random(n_visible: int, n_hidden: int, n_edges: int, seed: int | None = None, *,
           generator: torch.Generator | None = None, balanced: bool = True) -> torch.Tensor:
    """Random connections: ``n_edges`` visible–hidden edges chosen uniformly at random.

    Parameters
    ----------
    n_visible, n_hidden : int ≥ 1
    n_edges : int, 1 ≤ n_edges ≤ n_visible · n_hidden
    seed : int, optional
        Seed of the choice (or pass ``generator=``); the same seed gives the same mask.
    generator : torch.Generator (CPU), optional
    balanced : bool
        True (default): every hidden unit gets ``floor`` or ``ceil`` of ``n_edges / n_hidden`` edges
        (the random counterpart of a local mask with the same fan-in). False: the edges are a uniform
        random subset of all ``n_visible · n_hidden`` pairs (fan-ins vary, some may be zero).

    Returns
    -------
    (n_visible, n_hidden) bool tensor with exactly ``n_edges`` True entries.
    """
    n_visible = check_positive_int(n_visible, "n_visible")
    n_hidden = check_positive_int(n_hidden, "n_hidden")
    n_edges = check_positive_int(n_edges, "n_edges")
    if n_edges > n_visible * n_hidden:
        raise ValueError(f"n_edges = {n_edges} exceeds n_visible * n_hidden = {n_visible * n_hidden}")
    gen = make_generator(generator, seed)
    if not balanced:
        flat = torch.zeros(n_visible * n_hidden, dtype=torch.bool)
        flat[torch.randperm(n_visible * n_hidden, generator=gen)[:n_edges]] = True
        return flat.reshape(n_visible, n_hidden)
    j = torch.arange(n_hidden + 1, dtype=torch.int64)
    degree = (j[1:] * n_edges) // n_hidden - (j[:-1] * n_edges) // n_hidden  # spread evenly, sums to n_edges
    keys = torch.rand(n_visible, n_hidden, generator=gen, dtype=torch.float64)
    ranks = torch.argsort(torch.argsort(keys, dim=0), dim=0)  # a random permutation per hidden unit
    return ranks < degree[None, :]


def positions_1d(length: int, window: int, stride: int = 1, padding: str = "valid") -> np.ndarray:
    """Clipped windows along one axis: (P, 2) int array of half-open intervals ``[lo, hi)``.

    ``"valid"``: starts 0, stride, 2·stride, ... ; P = ceil(max(length - window, 0) / stride) + 1, so the
    last window is clipped at the end when the stride does not tile ``length``.
    ``"same"``: a window centred on each of 0, stride, 2·stride, ... < length, clipped at both ends.
    """
    length = check_positive_int(length, "length")
    window = check_positive_int(window, "window")
    stride = check_positive_int(stride, "stride")
    if padding not in _PADDINGS:
        raise ValueError(f"padding must be one of {_PADDINGS}, got {padding!r}")
    if padding == "valid":
        n_pos = -(-max(length - window, 0) // stride) + 1
        lo = np.arange(n_pos, dtype=np.int64) * stride
    else:
        lo = np.arange(0, length, stride, dtype=np.int64) - (window - 1) // 2
    hi = np.minimum(lo + window, length)
    lo = np.maximum(lo, 0)
    return np.stack([lo, hi], axis=1)


def _spread(n_positions: int, n_hidden: int | None) -> np.ndarray:
    """Position index of each hidden unit: ``floor(j · P / n_hidden)`` (one per position by default)."""
    if n_hidden is None:
        return np.arange(n_positions, dtype=np.int64)
    n_hidden = check_positive_int(n_hidden, "n_hidden")
    return (np.arange(n_hidden, dtype=np.int64) * n_positions) // n_hidden


def local_1d(n_visible: int, window: int, stride: int = 1, *, n_hidden: int | None = None,
             padding: str = "valid") -> torch.Tensor:
    """1D-local connections: hidden unit ``j`` sees a contiguous run of the row-major pixel vector.

    Parameters
    ----------
    n_visible : int ≥ 1
    window : int ≥ 1
        Length of each fragment (pixels); a window of ``2 · width`` spans two image rows.
    stride : int ≥ 1
        Offset between consecutive fragments (fragments overlap when stride < window).
    n_hidden : int, optional
        Number of hidden units; default one per fragment position (see :func:`positions_1d`).
        Hidden units are spread evenly over the positions (see the module docstring).
    padding : {"valid", "same"}
        Placement of the fragments; both clip at the borders.

    Returns
    -------
    (n_visible, n_hidden) bool tensor.
    """
    n_visible = check_positive_int(n_visible, "n_visible")
    intervals = positions_1d(n_visible, window, stride, padding)
    pos = _spread(len(intervals), n_hidden)
    lo, hi = intervals[pos, 0], intervals[pos, 1]
    i = np.arange(n_visible)[:, None]
    return torch.from_numpy((i >= lo[None, :]) & (i < hi[None, :]))


def local_2d(shape: Sequence[int], window, stride=1, *, n_hidden: int | None = None,
             padding: str = "valid") -> torch.Tensor:
    """2D-local connections: hidden unit ``j`` sees a rectangular window of the (H, W) image.

    Parameters
    ----------
    shape : (H, W)
        Image shape; pixels are flattened row-major (visible unit ``y · W + x``).
    window : int or (int, int)
        Window height and width (an int means square); windows are clipped at the image borders.
    stride : int or (int, int)
        Vertical and horizontal offsets between window positions (overlap when stride < window).
    n_hidden : int, optional
        Default: one hidden unit per window position (positions enumerated row-major); otherwise
        hidden units are spread evenly over the positions (see the module docstring).
    padding : {"valid", "same"}
        Window placement on each axis (see :func:`positions_1d`).

    Returns
    -------
    (H · W, n_hidden) bool tensor.
    """
    h, w = _shape2(shape)
    wh, ww = _pair(window, "window")
    sh, sw = _pair(stride, "stride")
    rows = positions_1d(h, wh, sh, padding)
    cols = positions_1d(w, ww, sw, padding)
    pos = _spread(len(rows) * len(cols), n_hidden)
    r, q = pos // len(cols), pos % len(cols)
    y = np.repeat(np.arange(h), w)[:, None]
    x = np.tile(np.arange(w), h)[:, None]
    m = (y >= rows[r, 0]) & (y < rows[r, 1]) & (x >= cols[q, 0]) & (x < cols[q, 1])
    return torch.from_numpy(m)


def from_data(data, n_hidden: int, fan_in: int) -> torch.Tensor:
    """Receptive fields from mutual information: a seed pixel and its ``fan_in − 1`` best partners.

    With I the pairwise mutual information of the pixels
    (:func:`bornmachine.mutual_information.pairwise_mutual_information`), hidden unit ``j`` takes as
    seed the non-constant pixel that has been a seed least often, then lies in the fewest earlier
    fields, then has the largest total information Σ_k I_ik; its field is the seed and the
    ``fan_in − 1`` non-constant pixels of largest I with it. So seeds are distinct while
    ``n_hidden`` ≤ the number of non-constant pixels (beyond, every such pixel seeds in turn, as
    channels share a window in the local masks), each new seed lies outside the earlier fields
    while any non-constant pixel is uncovered, and constant pixels get no weight.

    Parameters
    ----------
    data : (N, n_visible) or (N, H, W) binary array, numpy or torch (pixels row-major).
    n_hidden : int ≥ 1
    fan_in : int ≥ 1, at most the number of non-constant pixels.

    Returns
    -------
    (n_visible, n_hidden) bool tensor with exactly ``n_hidden · fan_in`` True entries.
    """
    x = as_binary_data(data)
    n_hidden = check_positive_int(n_hidden, "n_hidden")
    fan_in = check_positive_int(fan_in, "fan_in")
    varying = (x.amin(0) != x.amax(0)).cpu().numpy()
    if fan_in > varying.sum():
        raise ValueError(f"fan_in = {fan_in} exceeds the {int(varying.sum())} non-constant pixels of the data "
                         f"(constant pixels get no weight), so {n_hidden} x {fan_in} weights cannot be placed")
    mi = pairwise_mutual_information(x).cpu().numpy()
    partner_score = np.where(varying[None, :], mi, -np.inf)
    np.fill_diagonal(partner_score, -np.inf)
    total = mi.sum(axis=1)
    candidates = np.flatnonzero(varying)
    n_seeded = np.zeros(x.shape[1], dtype=np.int64)
    n_covered = np.zeros(x.shape[1], dtype=np.int64)
    mask = np.zeros((x.shape[1], n_hidden), dtype=bool)
    for j in range(n_hidden):
        seed = candidates[np.lexsort((-total[candidates], n_covered[candidates], n_seeded[candidates]))[0]]
        field = np.append(np.argsort(-partner_score[seed], kind="stable")[:fan_in - 1], seed)
        mask[field, j] = True
        n_seeded[seed] += 1
        n_covered[field] += 1
    return torch.from_numpy(mask)


# --------------------------------------------------------------------------------------------------
# architectures at equal parameter count
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class Architecture:
    """One RBM architecture: its kind, sizes, mask and the options that produced the mask.

    Attributes
    ----------
    kind : one of :data:`KINDS`.
    n_visible, n_hidden : int
    mask : (n_visible, n_hidden) bool tensor.
    options : dict of the mask options (``window``, ``stride``, ``n_edges``, ``seed``, ...).
    """

    kind: str
    n_visible: int
    n_hidden: int
    mask: torch.Tensor = field(repr=False)
    options: dict = field(default_factory=dict)

    @property
    def n_params(self) -> int:
        """Unmasked weights + n_visible + n_hidden."""
        return int(self.mask.sum()) + self.n_visible + self.n_hidden

    def build(self, *, init_std: float = 0.01, dtype: torch.dtype = torch.float64, device=None,
              generator: torch.Generator | None = None) -> RBM:
        """A freshly initialised :class:`~rbm.model.RBM` with this architecture."""
        return RBM(self.n_visible, self.n_hidden, mask=self.mask, init_std=init_std, dtype=dtype,
                   device=device, generator=generator)

    def describe(self) -> str:
        """Short human-readable summary, e.g. ``local_2d(window=5, stride=1), 604 hidden, 16488 params``."""
        opts = ", ".join(f"{k}={v}" for k, v in self.options.items())
        return f"{self.kind}({opts}), {self.n_hidden} hidden, {self.n_params} params"


def matched(n_params: int, kinds: Sequence[str] = PAPER_KINDS, shape: Sequence[int] = (28, 28), *,
            window_1d: int | None = None, stride_1d: int = 1, window_2d=5, stride_2d=1,
            padding: str = "valid", balanced: bool = True, seed: int = 0, data=None, fan_in: int | None = None,
            tol: float = 0.01) -> dict[str, Architecture]:
    """One architecture per kind, all with (nearly) the same number of parameters.

    How the sizes are chosen (the common budget ``P`` is ``n_params``, or — when ``"dense"`` is among
    ``kinds`` — the parameter count of the dense RBM nearest to it, because a dense RBM can only
    change its count in steps of ``n_visible + 1``):

    * ``dense``: ``n_hidden = round((n_params - n_visible) / (n_visible + 1))``.
    * ``local_2d``: windows ``window_2d`` with ``stride_2d``; the number of hidden units (spread
      evenly over the window positions) is the one whose count is nearest to ``P``.
    * ``local_1d``: fragments of ``window_1d`` pixels (default: the area of the 2D window, so that
      both local kinds have the same fan-in) with ``stride_1d``; hidden count as for ``local_2d``.
    * ``random``: the hidden count of ``local_2d`` and exactly ``P - n_visible - n_hidden`` random
      edges (balanced fan-ins: a 2D-local RBM with scrambled connections), so its count is exactly ``P``.
      (On images so small that those edges would not fit, the hidden count is raised to the smallest
      that holds them.)
    * ``from_data``: :func:`from_data` fields of ``fan_in`` pixels (default: the fan-in of the 1D
      fragments) from ``data``; ``n_hidden = round((P - n_visible) / (fan_in + 1))``.

    Parameters
    ----------
    n_params : int
        Target parameter count (weights + biases).
    kinds : sequence of :data:`KINDS` (default :data:`PAPER_KINDS`)
    shape : (H, W)
        Image shape; n_visible = H · W.
    window_1d, stride_1d, window_2d, stride_2d, padding : mask options (see :func:`local_1d`,
        :func:`local_2d`).
    balanced, seed : options of :func:`random`.
    data, fan_in : the data set (N, H·W) or (N, H, W) and fan-in of ``from_data`` (data required for it).
    tol : float
        Largest allowed relative difference between any count and ``P`` (default 1 %).

    Returns
    -------
    dict kind → :class:`Architecture`, in the order of ``kinds``.

    Raises
    ------
    ValueError
        Unknown kind, a budget too small for a kind (fewer parameters than the biases of one hidden
        unit), or counts that cannot be matched within ``tol``.
    """
    n_params = check_positive_int(n_params, "n_params")
    kinds = [kinds] if isinstance(kinds, str) else list(kinds)
    if not kinds:
        raise ValueError("kinds is empty")
    for kind in kinds:
        if kind not in KINDS:
            raise ValueError(f"unknown mask kind {kind!r}; choose from {KINDS}")
    if len(set(kinds)) != len(kinds):
        raise ValueError(f"kinds has duplicates: {kinds}")
    if not 0 < tol < 1:
        raise ValueError(f"tol must be in (0, 1), got {tol}")
    h, w = _shape2(shape)
    n_visible = h * w
    wh, ww = _pair(window_2d, "window_2d")
    sh, sw = _pair(stride_2d, "stride_2d")
    window_1d = check_positive_int(window_1d, "window_1d") if window_1d is not None else min(wh * ww, n_visible)
    if n_params < 2 * n_visible + 2:
        raise ValueError(f"n_params = {n_params} is too small for {n_visible} visible units "
                         f"(need at least {2 * n_visible + 2})")

    budget = n_params
    out: dict[str, Architecture] = {}
    if "dense" in kinds:
        n_h = max(1, round((n_params - n_visible) / (n_visible + 1)))
        out["dense"] = Architecture("dense", n_visible, n_h, dense(n_visible, n_h), {})
        budget = out["dense"].n_params

    def fit_local(sizes: np.ndarray) -> int:
        """Hidden count whose total parameter count (sizes spread over positions) is nearest ``budget``."""
        n_pos = len(sizes)
        guess = (budget - n_visible) / (sizes.mean() + 1.0)
        lo, hi = max(1, int(guess * 0.8) - 2), int(guess * 1.2) + 3
        best, best_err = 1, math.inf
        for n_h in range(lo, hi):
            pos = (np.arange(n_h, dtype=np.int64) * n_pos) // n_h
            err = abs(int(sizes[pos].sum()) + n_visible + n_h - budget)
            if err < best_err:
                best, best_err = n_h, err
        return best

    n_h_2d = None
    if "local_2d" in kinds or "random" in kinds:
        rows, cols = positions_1d(h, wh, sh, padding), positions_1d(w, ww, sw, padding)
        sizes = ((rows[:, 1] - rows[:, 0])[:, None] * (cols[:, 1] - cols[:, 0])[None, :]).reshape(-1)
        n_h_2d = fit_local(sizes)
        if "local_2d" in kinds:
            opts = {"window": (wh, ww), "stride": (sh, sw), "padding": padding}
            out["local_2d"] = Architecture("local_2d", n_visible, n_h_2d,
                                           local_2d((h, w), (wh, ww), (sh, sw), n_hidden=n_h_2d, padding=padding), opts)
    if "local_1d" in kinds:
        iv = positions_1d(n_visible, window_1d, stride_1d, padding)
        n_h = fit_local(iv[:, 1] - iv[:, 0])
        opts = {"window": window_1d, "stride": stride_1d, "padding": padding}
        out["local_1d"] = Architecture("local_1d", n_visible, n_h,
                                       local_1d(n_visible, window_1d, stride_1d, n_hidden=n_h, padding=padding), opts)
    if "random" in kinds:
        # the 2D-local hidden count, raised if needed so that the edges fit (n_edges <= n_visible * n_hidden)
        n_h = max(n_h_2d, -(-(budget - n_visible) // (n_visible + 1)))
        n_edges = budget - n_visible - n_h
        if not n_h <= n_edges <= n_visible * n_h:
            raise ValueError(f"cannot build a random mask with {n_h} hidden units and {n_edges} edges "
                             f"for a budget of {budget} parameters")
        opts = {"n_edges": n_edges, "seed": seed, "balanced": balanced}
        out["random"] = Architecture("random", n_visible, n_h,
                                     random(n_visible, n_h, n_edges, seed, balanced=balanced), opts)
    if "from_data" in kinds:
        if data is None:
            raise ValueError("kind 'from_data' needs the data: pass data=")
        fan_in = window_1d if fan_in is None else check_positive_int(fan_in, "fan_in")
        n_h = max(1, round((budget - n_visible) / (fan_in + 1)))
        x = as_binary_data(data)
        if x.shape[1] != n_visible:
            raise ValueError(f"data have {x.shape[1]} pixels but shape {(h, w)} has {n_visible}")
        out["from_data"] = Architecture("from_data", n_visible, n_h, from_data(x, n_h, fan_in), {"fan_in": fan_in})

    for arch in out.values():
        if abs(arch.n_params - budget) > tol * budget:
            raise ValueError(f"{arch.kind}: best parameter count {arch.n_params} differs from the budget "
                             f"{budget} by more than {tol:.1%}; use a larger n_params or a smaller window")
    return {kind: out[kind] for kind in kinds}


# --------------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------------
def _pair(value, name: str) -> tuple[int, int]:
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ValueError(f"{name} must be an int or a pair of ints, got {value!r}")
        return check_positive_int(value[0], name), check_positive_int(value[1], name)
    v = check_positive_int(value, name)
    return v, v


def _shape2(shape) -> tuple[int, int]:
    if not isinstance(shape, (tuple, list)) or len(shape) != 2:
        raise ValueError(f"shape must be an image shape (H, W), got {shape!r}")
    return check_positive_int(shape[0], "shape[0]"), check_positive_int(shape[1], "shape[1]")


def _as_bool(mask) -> torch.Tensor:
    if isinstance(mask, np.ndarray):
        mask = torch.from_numpy(np.ascontiguousarray(mask))
    if not isinstance(mask, torch.Tensor) or mask.dim() != 2:
        raise ValueError("mask must be a 2D (n_visible, n_hidden) boolean array")
    return mask != 0
