"""Mutual information and Rényi-2 entanglement across a bipartition: of data sets and of models.

All results are in nats unless ``base=2`` (bits) is passed; ``base="e"`` is the default everywhere.

Data estimators (``data``: (N, n) or (N, H, W) array, numpy or torch, any numeric dtype):

* :func:`plugin_mutual_information` – I(X:Y) = H(X) + H(Y) − H(X, Y) of the *empirical* distribution
  π(v) = (count of v) / N, exact for any number of sites (unique rows by hashing packed bits).
* :func:`ksg_mutual_information` – the Kraskov–Stögbauer–Grassberger k-nearest-neighbour estimator
  (algorithm 1), the method of Cheng, Chen & Wang (Entropy 2018) for MNIST; ties of binary data
  broken by a tiny seeded jitter (see its docstring for the argument and the measured bias).
* :func:`data_renyi2` – S₂(X) = −ln Tr ρ_X² of the empirical "data state" Σ_v sqrt(π(v)) |v⟩,
  exact, with sparse matrices over the distinct halves.
* :func:`saturation` – how far the two empirical quantities are from their sample-size ceiling ln N.

**Saturation.** With N samples, π has at most N distinct rows, so every empirical entropy is ≤ ln N.
Plug-in MI is ≤ min(H(π_X), H(π_Y)) and data S₂ is ≤ min(H₂(π_X), H₂(π_Y)), both ≤ ln N. When every
X-half of the sample occurs with one Y-half only (typical when both sides hold many pixels: for
up_down(row=14) on the 5000 mnist5k digits, 4996 X-halves and 4993 Y-halves are distinct), the
plug-in MI equals H(π_Y) and the data S₂ equals H₂(π_Y): they then count the distinct halves in the
sample, not the correlation (there: 8.514 and 8.510 nats against ln N = 8.517). When all N halves are
distinct on both sides, both equal ln N exactly. :class:`Saturation` (from :func:`saturation`, or
``return_saturation=True``) gives the ceilings and a ``saturated`` flag for the report.

Model quantities delegate to the models (:func:`model_renyi2`, :func:`model_mutual_information`):
the bipartition's X pixels are the model's ``sites_X`` (both use row-major pixel indices; an MPS maps
pixels to chain positions through its own ``ordering``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch

from bornmachine.validation import as_binary, check_positive_int, log_base

from .bipartitions import Bipartition

__all__ = ["Saturation", "plugin_mutual_information", "ksg_mutual_information", "data_renyi2", "saturation",
           "model_renyi2", "model_mutual_information", "METRICS", "SATURATION_TOL"]

#: Per-subspace distances accepted by :func:`ksg_mutual_information`.
METRICS = ("euclidean", "chebyshev")

#: Headroom (nats) below which :attr:`Saturation.saturated` flags an empirical estimate.
SATURATION_TOL = 0.01

# Bytes of distance matrices per chunk of the KSG kNN search (3 float64 (chunk × N) matrices at once).
_CHUNK_BYTES = 32 * 2 ** 20


@dataclass(frozen=True)
class Saturation:
    """How the empirical estimates of one bipartition sit against their sample-size ceilings.

    Both plug-in MI and data S₂ are bounded by properties of the sample's marginals alone:
    I ≤ min(H(π_X), H(π_Y)) and S₂ ≤ min(H₂(π_X), H₂(π_Y)) (Tr ρ_Y² ≥ Σ_y ρ_Y[y, y]² = Σ_y π(y)²),
    all ≤ ln min(#distinct X-halves, #distinct Y-halves) ≤ ln N. The bounds are reached when one half
    determines the other in the sample. All entropies in the requested base.

    Attributes
    ----------
    n_samples : N. n_distinct : distinct rows (x, y). n_distinct_x, n_distinct_y : distinct halves.
    log_n : ln N, the ceiling of every empirical entropy.
    mi_ceiling : min(H(π_X), H(π_Y)), the largest plug-in MI this sample's marginals allow.
    renyi2_ceiling : min(H₂(π_X), H₂(π_Y)), the largest data S₂ they allow.
    conditional_entropy : min(H(Y|X), H(X|Y)) of the sample = mi_ceiling − plug-in MI (the headroom).
    x_determines_y : every X-half occurs with one Y-half only (then MI = H(π_Y), S₂ = H₂(π_Y)).
    y_determines_x : the same with X and Y exchanged.
    saturated : one half determines the other, or ``conditional_entropy`` < :data:`SATURATION_TOL`
        nats: the estimates then report the sample's marginal entropies, not the correlation.
    at_log_n : all N halves distinct on both sides: plug-in MI = data S₂ = ln N exactly.
    """

    n_samples: int
    n_distinct: int
    n_distinct_x: int
    n_distinct_y: int
    log_n: float
    mi_ceiling: float
    renyi2_ceiling: float
    conditional_entropy: float
    x_determines_y: bool
    y_determines_x: bool
    saturated: bool
    at_log_n: bool


# ------------------------------------------------------------------------------------------------
# empirical distribution: plug-in MI, data Rényi-2
# ------------------------------------------------------------------------------------------------
def plugin_mutual_information(data, bip: Bipartition, base="e", return_saturation: bool = False):
    """Exact I(X:Y) of the empirical distribution of ``data`` (plug-in / maximum-likelihood estimate).

    I = H(X) + H(Y) − H(X, Y) with H the Shannon entropy of the sample frequencies; distinct rows are
    found by ``np.unique`` on bit-packed rows, so any number of sites works in O(N n + N log N).

    This is the MI *of the sample*, not of the distribution it came from: it is biased upwards by about
    (K_XY − K_X − K_Y + 1) / (2N) nats (Miller–Madow, K = occupied states) when the sample covers the
    states, and it saturates when it does not: it is ≤ ln min(#distinct X-halves, #distinct Y-halves)
    ≤ ln N, equals H(π_Y) when every X-half occurs once, and ln N when all halves are distinct (see
    :class:`Saturation`). Use it for few sites or many samples (e.g. within 0.01 nats of the true MI for
    a 10-site Ising chain with N = 20000).

    Parameters
    ----------
    data : (N, n) or (N, H, W) binary array (numpy or torch, any numeric/bool dtype).
    bip : :class:`~comparison.bipartitions.Bipartition` over the n = H·W pixels.
    base : "e" (nats, default) or 2 (bits).
    return_saturation : also return the :class:`Saturation` record.

    Returns
    -------
    float, or (float, Saturation) when ``return_saturation``.
    """
    x = _binary_data(data, bip)
    counts = _EmpiricalCounts(x, bip)
    n = counts.n_samples
    mi = _entropy(counts.count_x, n) + _entropy(counts.count_y, n) - _entropy(counts.count_xy, n)
    mi = max(mi, 0.0) / log_base(base)  # rounding can leave −1e−16 for independent samples
    return (mi, counts.saturation(base)) if return_saturation else mi


def data_renyi2(data, bip: Bipartition, base="e", return_saturation: bool = False):
    """Exact S₂(X) = −ln Tr ρ_X² of the empirical data state |π⟩ = Σ_v sqrt(π(v)) |v⟩.

    With M[x, y] = sqrt(π(x, y)) over the distinct X-halves x and Y-halves y of the sample,
    ρ_X = M Mᵀ and Tr ρ_X² = ‖M Mᵀ‖²_F = Σ_{x,x'} (Σ_y sqrt(π(x, y) π(x', y)))². M is a scipy.sparse
    matrix with one entry per distinct row and the Gram matrix is formed on the smaller side, so
    5000 MNIST images cost well under a second.

    **Saturates at ln N.** If every X-half of the sample occurs with one Y-half only, ρ_Y is diagonal
    and S₂ = H₂(π_Y) = −ln Σ_y π(y)², a property of the Y marginal alone; if in addition all Y-halves
    are distinct (all N rows distinct on both sides, as for most cuts of 5000 MNIST digits), S₂ = ln N
    whatever the correlations. Pass ``return_saturation=True`` (or call :func:`saturation`) to know.

    Parameters and return value as for :func:`plugin_mutual_information`.
    """
    x = _binary_data(data, bip)
    counts = _EmpiricalCounts(x, bip)
    amp = np.sqrt(counts.count_xy / counts.n_samples)
    m = sp.csr_matrix((amp, (counts.joint_x, counts.joint_y)),
                      shape=(counts.count_x.size, counts.count_y.size))
    gram = (m @ m.T) if m.shape[0] <= m.shape[1] else (m.T @ m)
    purity = float(gram.multiply(gram).sum())
    value = -math.log(min(purity, 1.0)) / log_base(base)
    return (value, counts.saturation(base)) if return_saturation else value


def saturation(data, bip: Bipartition, base="e") -> Saturation:
    """The :class:`Saturation` record of ``data`` for ``bip``: distinct halves, ln N, flags."""
    return _EmpiricalCounts(_binary_data(data, bip), bip).saturation(base)


class _EmpiricalCounts:
    """Distinct X-halves, Y-halves and rows of a binary sample, with their counts."""

    def __init__(self, x: np.ndarray, bip: Bipartition):
        self.n_samples = x.shape[0]
        ids_x, self.count_x = _row_ids(x[:, bip.sites_x])
        ids_y, self.count_y = _row_ids(x[:, bip.sites_y])
        joint = ids_x * np.int64(self.count_y.size) + ids_y
        keys, self.count_xy = np.unique(joint, return_counts=True)
        self.joint_x = keys // self.count_y.size
        self.joint_y = keys % self.count_y.size

    def saturation(self, base) -> Saturation:
        n, nxy, nx, ny = self.n_samples, self.count_xy.size, self.count_x.size, self.count_y.size
        h_x, h_y, h_xy = _entropy(self.count_x, n), _entropy(self.count_y, n), _entropy(self.count_xy, n)
        h2_x, h2_y = _renyi2(self.count_x, n), _renyi2(self.count_y, n)
        cond = max(0.0, min(h_xy - h_x, h_xy - h_y))
        scale = log_base(base)
        x_det, y_det = nx == nxy, ny == nxy
        return Saturation(n_samples=n, n_distinct=nxy, n_distinct_x=nx, n_distinct_y=ny,
                          log_n=math.log(n) / scale, mi_ceiling=min(h_x, h_y) / scale,
                          renyi2_ceiling=min(h2_x, h2_y) / scale, conditional_entropy=cond / scale,
                          x_determines_y=x_det, y_determines_x=y_det,
                          saturated=x_det or y_det or cond < SATURATION_TOL, at_log_n=nx == n and ny == n)


def _row_ids(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N, m) 0/1 uint8 -> (ids (N,) int64 in 0..K−1, counts (K,)) of the distinct rows."""
    packed = np.ascontiguousarray(np.packbits(a, axis=1))
    keys = packed.view(np.dtype((np.void, packed.shape[1]))).reshape(-1)
    _, ids, counts = np.unique(keys, return_inverse=True, return_counts=True)
    return ids.reshape(-1).astype(np.int64), counts


def _entropy(counts: np.ndarray, n: int) -> float:
    """Shannon entropy (nats) of the frequencies counts / n."""
    c = counts.astype(np.float64)
    return math.log(n) - float(np.sum(c * np.log(c))) / n


def _renyi2(counts: np.ndarray, n: int) -> float:
    """Rényi-2 entropy (nats) of the frequencies counts / n."""
    c = counts.astype(np.float64)
    return 2.0 * math.log(n) - math.log(float(np.sum(c * c)))


# ------------------------------------------------------------------------------------------------
# KSG
# ------------------------------------------------------------------------------------------------
def ksg_mutual_information(data, bip: Bipartition, k: int = 3, base="e", seed: int = 0, jitter: float | None = None,
                           metric: str = "euclidean", chunk_size: int | None = None, device=None) -> float:
    """Kraskov–Stögbauer–Grassberger estimate of I(X:Y) (algorithm 1 of Kraskov et al., PRE 69, 066138).

    For each sample i, ε_i is the distance to its k-th nearest neighbour in the joint space with
    d((x, y), (x', y')) = max(d_X(x, x'), d_Y(y, y')); n_x(i), n_y(i) count the other samples strictly
    closer than ε_i in X and in Y alone, and

        I = ψ(k) + ψ(N) − ⟨ψ(n_x + 1) + ψ(n_y + 1)⟩.

    **Ties (binary data).** Hamming-type distances between 0/1 images take few values, so the k-th
    neighbour distance is shared by many samples and repeated rows sit at distance 0. We add seeded
    uniform noise U ~ [0, jitter)ⁿ to the data and run the estimator on the jittered sample. This is
    principled on two counts: (1) for jitter < 1 the map v ↦ v + u is invertible (rounding undoes it),
    so I(X+U : Y+V) = I(X : Y) exactly: the estimator targets the true MI of a continuous density;
    (2) with the default jitter = 0.1 / n, every distance moves by less than 0.1/√n, under a fifth of
    the gap √(h+1) − √h ≥ 1/(2√n) between consecutive Hamming levels, so the jitter only breaks ties
    at random and never reorders samples at different Hamming distances. (With the default Euclidean
    metric per subspace, d_X = √(Hamming distance) on 0/1 data.) A row repeated m > k times becomes a
    small cube of m points; as the X- and Y-jitters are independent, the expected joint neighbour count
    factorises into the two marginal ones and KSG estimates the pointwise plug-in value
    ln(N c_xy / (c_x c_y)) there, with digamma corrections instead of the plug-in bias.

    Measured bias (k = 3, default jitter; mean over 10 sample seeds, tests/test_information.py):
    Ising chains (J = 0.8, exact MI by enumeration), N = 4000: +0.006, +0.010, +0.007 nats for the
    half, alternating and 2|6 cuts of 8 sites (standard deviation of one estimate 0.015 – 0.030), and
    +0.002, +0.009, +0.007 for 10 sites; the plug-in estimate on the same samples is biased by +0.03
    (8 sites) and +0.06 – 0.08 (10 sites). Correlated Gaussians, N = 2000: +0.007 (ρ = 0.6) and +0.017
    (ρ = 0.9) nats against −½ ln(1 − ρ²), sd 0.016. On data where every row is distinct and the
    neighbours are many Hamming steps away (MNIST), KSG has its usual downward bias for
    high-dimensional, strongly dependent data, and a half with many exact duplicates (blank margins)
    makes n_x large and the estimate close to 0 (the paper's "margin vs rest ≈ 0"): read the values
    as a comparison across bipartitions, as the paper does.

    Float (continuous) data are accepted too; their default jitter is 1e-10 times the data's standard
    deviation (Kraskov et al.'s recommendation for rounded data). ``jitter=0`` turns it off; exact ties
    at ε = 0 then raise ``ValueError``.

    Cost: two (N × N) Gram products, O(N² n) flops, computed in float64 chunks of rows
    (``chunk_size`` rows at a time; default so that a chunk's distance matrices take ~32 MiB).
    5000 × 784 MNIST: 2–3 s on one thread, 1 s on two (shared 2-core machine, benchmarks/bench_ksg.py).

    Parameters
    ----------
    data : (N, n) or (N, H, W) array, numpy or torch; 0/1 or real-valued.
    bip : the bipartition (X = ``bip.sites_x``).
    k : number of neighbours (k < N). Larger k: less variance, more bias.
    base : "e" (nats) or 2 (bits).
    seed : seed of the jitter noise (the estimate varies with it by about its statistical error).
    jitter : noise amplitude in data units; None for the defaults above.
    metric : "euclidean" (default) or "chebyshev": the norm within each subspace (the two subspaces are
        always combined by the max). Chebyshev is the original low-dimensional choice; it is useless
        for 0/1 data (all distances are 0 or 1) and slow in high dimension.
    chunk_size : rows per chunk of the kNN search (None: automatic).
    device : torch device for the kNN search (CPU by default); the jitter is drawn on the CPU, so a
        seed gives the same value on every device up to float64 rounding.

    Returns
    -------
    float : the estimate (may be slightly negative for independent halves).
    """
    values, binary = _real_data(data, bip)
    n_samples = values.shape[0]
    k = check_positive_int(k, "k")
    if k >= n_samples:
        raise ValueError(f"k = {k} needs more samples; got N = {n_samples} (need N > k)")
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
    scale = log_base(base)
    if jitter is None:
        jitter = 0.1 / bip.n_sites if binary else 1e-10 * float(values.std())
    jitter = float(jitter)
    if not math.isfinite(jitter) or jitter < 0:
        raise ValueError(f"jitter must be a finite number >= 0, got {jitter}")
    if binary and jitter >= 0.5:
        raise ValueError(f"jitter {jitter} >= 0.5 would merge distinct binary values; use jitter << 1")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    t = torch.from_numpy(values)
    if jitter > 0:
        gen = torch.Generator().manual_seed(int(seed))
        t = t + jitter * torch.rand(t.shape, generator=gen, dtype=torch.float64)
    t = t.to(device) if device is not None else t
    xs = t[:, torch.tensor(bip.sites_x, device=t.device)].contiguous()
    ys = t[:, torch.tensor(bip.sites_y, device=t.device)].contiguous()
    if chunk_size is None:
        chunk_size = max(1, min(n_samples, _CHUNK_BYTES // (3 * 8 * n_samples)))
    chunk_size = check_positive_int(chunk_size, "chunk_size")
    nx, ny = _ksg_counts(xs, ys, k, metric, chunk_size)
    psi = torch.special.digamma
    total = (psi(torch.tensor(float(k), dtype=torch.float64)) + psi(torch.tensor(float(n_samples), dtype=torch.float64))
             - (psi(nx.double() + 1) + psi(ny.double() + 1)).mean())
    return float(total) / scale


def _ksg_counts(xs: torch.Tensor, ys: torch.Tensor, k: int, metric: str, chunk: int):
    """Marginal neighbour counts (n_x, n_y) of KSG algorithm 1, chunked over query rows.

    Works with a monotone transform of the distances (squared Euclidean, or Chebyshev itself), the
    same in both subspaces, so the joint max and all comparisons are unchanged.
    """
    n = xs.shape[0]
    sq_x = (xs * xs).sum(1)
    sq_y = (ys * ys).sum(1)
    nx = torch.empty(n, dtype=torch.int64, device=xs.device)
    ny = torch.empty(n, dtype=torch.int64, device=xs.device)
    for start in range(0, n, chunk):
        stop = min(n, start + chunk)
        rows = torch.arange(stop - start, device=xs.device)
        dx = _pair_distances(xs, sq_x, start, stop, metric)
        dy = _pair_distances(ys, sq_y, start, stop, metric)
        dx[rows, rows + start] = math.inf  # a sample is not its own neighbour
        dy[rows, rows + start] = math.inf
        dj = torch.maximum(dx, dy)
        eps = torch.kthvalue(dj, k, dim=1).values  # distance to the k-th neighbour
        del dj
        if not bool((eps > 0).all()):
            raise ValueError("some samples have k exact duplicates (epsilon = 0): ties are not broken; "
                             "use jitter > 0")
        nx[start:stop] = (dx < eps[:, None]).sum(1)
        ny[start:stop] = (dy < eps[:, None]).sum(1)
    return nx.cpu(), ny.cpu()


def _pair_distances(a: torch.Tensor, sq: torch.Tensor, start: int, stop: int, metric: str) -> torch.Tensor:
    """(stop − start, N) squared Euclidean or Chebyshev distances from rows start..stop to all rows."""
    if metric == "chebyshev":
        return torch.cdist(a[start:stop], a, p=math.inf)
    d = torch.addmm(sq[start:stop, None] + sq[None, :], a[start:stop], a.T, alpha=-2.0)
    return d.clamp_(min=0.0)


# ------------------------------------------------------------------------------------------------
# models
# ------------------------------------------------------------------------------------------------
def model_renyi2(model, bip: Bipartition, method: str = "exact", n_samples: int = 10000,
                 generator: torch.Generator | None = None, base="e"):
    """S₂(X) of a Born machine across ``bip``: ``model.renyi2(bip.sites_x, ...)`` (an Estimate)."""
    _check_model(model, bip)
    return model.renyi2(bip.sites_x.tolist(), method=method, n_samples=n_samples, generator=generator, base=base)


def model_mutual_information(model, bip: Bipartition, n_samples: int = 1000,
                             generator: torch.Generator | None = None, base="e"):
    """I(X:Y) of a model's own distribution across ``bip``: ``model.mutual_information(bip.sites_x, ...)``."""
    _check_model(model, bip)
    return model.mutual_information(bip.sites_x.tolist(), n_samples=n_samples, generator=generator, base=base)


def _check_model(model, bip: Bipartition) -> None:
    _check_bip(bip)
    if model.n_sites != bip.n_sites:
        raise ValueError(f"model has {model.n_sites} sites but the bipartition {bip.name!r} has {bip.n_sites} pixels")
    shape = getattr(model, "shape", None)
    if shape is not None and len(bip.shape) > 1 and tuple(shape) != bip.shape:
        raise ValueError(f"model image shape {tuple(shape)} differs from the bipartition's {bip.shape}")


# ------------------------------------------------------------------------------------------------
# input checks
# ------------------------------------------------------------------------------------------------
def _check_bip(bip) -> None:
    if not isinstance(bip, Bipartition):
        raise TypeError(f"bip must be a comparison.bipartitions.Bipartition, got {type(bip).__name__}")


def _binary_data(data, bip: Bipartition) -> np.ndarray:
    """(N, n) uint8 0/1 array from binary ``data`` of shape (N, n) or (N, *bip.shape)."""
    _check_bip(bip)
    shape = bip.shape if len(bip.shape) > 1 else None
    t = as_binary(data, bip.n_sites, name="data", shape=shape)
    return t.numpy().astype(np.uint8)


def _real_data(data, bip: Bipartition) -> tuple[np.ndarray, bool]:
    """(N, n) float64 array and whether it is 0/1-valued; shape (N, n) or (N, *bip.shape)."""
    _check_bip(bip)
    if isinstance(data, torch.Tensor):
        arr = data.detach().cpu().numpy()
    elif isinstance(data, (np.ndarray, list, tuple)):
        arr = np.asarray(data)
    else:
        raise TypeError(f"data must be a numpy array or torch tensor, got {type(data).__name__}")
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_) \
            or np.issubdtype(arr.dtype, np.complexfloating):
        raise TypeError(f"data must be a real numeric array, got dtype {arr.dtype}")
    if arr.ndim == len(bip.shape) + 1 and tuple(arr.shape[1:]) == bip.shape:
        arr = arr.reshape(arr.shape[0], -1)
    if arr.ndim != 2 or arr.shape[1] != bip.n_sites:
        image = ", ".join(map(str, bip.shape))
        raise ValueError(f"data has shape {arr.shape}; expected (N, {bip.n_sites}) or (N, {image})")
    arr = arr.astype(np.float64)
    if not np.isfinite(arr).all():
        raise ValueError("data contains NaN or inf")
    binary = bool(np.all((arr == 0) | (arr == 1)))
    return np.ascontiguousarray(arr), binary
