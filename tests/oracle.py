"""Brute-force oracle: enumerate all 2**n configurations with plain numpy.

Independent of the ``bornmachine`` package on purpose: nothing here imports it, and every function
is the textbook definition, written for clarity rather than speed (n <= ~14).

Conventions
-----------
* Configurations are enumerated in lexicographic order with **site 0 as the most significant bit**:
  ``all_configs(n)[i]`` is the binary expansion of ``i``. This is numpy's C order for a tensor of
  shape ``(2,) * n``, so ``psi.reshape((2,) * n)[v_0, ..., v_{n-1}] == psi[index(v)]``.
* ``ordering[i]`` is the pixel (natural index) placed at chain position ``i``.
* Logs are natural (nats) unless ``base=2`` is passed.
* Schmidt values ``lambda`` are amplitudes (sum of squares is 1); eigenvalues of a reduced density
  matrix are probabilities ``lambda**2``.
"""
from __future__ import annotations

import numpy as np
from scipy import stats


def all_configs(n: int) -> np.ndarray:
    """(2**n, n) uint8 array of every binary configuration; row i is i in binary, site 0 = MSB."""
    idx = np.arange(2 ** n, dtype=np.int64)
    shifts = np.arange(n - 1, -1, -1, dtype=np.int64)
    return ((idx[:, None] >> shifts[None, :]) & 1).astype(np.uint8)


def config_index(x) -> np.ndarray:
    """Inverse of :func:`all_configs`: (N, n) binary rows -> (N,) int64 indices."""
    x = np.asarray(x).astype(np.int64)
    n = x.shape[1]
    weights = 2 ** np.arange(n - 1, -1, -1, dtype=np.int64)
    return x @ weights


def dense_state(tensors) -> np.ndarray:
    """Contract an open chain A[k] (D_{k-1}, 2, D_k), D_0 = D_n = 1, into Psi (2**n,), chain order."""
    arrays = [np.asarray(t.detach().cpu().numpy() if hasattr(t, "detach") else t, dtype=np.float64)
              for t in tensors]
    assert arrays[0].shape[0] == 1 and arrays[-1].shape[-1] == 1
    psi = arrays[0].reshape(2, -1)  # (configs so far, right bond)
    for a in arrays[1:]:
        psi = np.einsum("cl,lsr->csr", psi, a).reshape(-1, a.shape[2])
    return psi.reshape(-1)


def chain_to_natural(psi_chain: np.ndarray, ordering) -> np.ndarray:
    """Re-index a vector over chain-order configs into natural pixel order.

    Chain axis i carries pixel ``ordering[i]``; natural axis j must carry pixel j, i.e. chain axis
    ``argsort(ordering)[j]``.
    """
    ordering = np.asarray(ordering, dtype=np.int64)
    n = ordering.size
    assert sorted(ordering.tolist()) == list(range(n)), "ordering must be a permutation"
    t = np.asarray(psi_chain).reshape((2,) * n)
    return np.transpose(t, np.argsort(ordering)).reshape(-1)


def probabilities(psi: np.ndarray) -> np.ndarray:
    """Born probabilities p = psi**2 / sum(psi**2)."""
    p = np.asarray(psi, dtype=np.float64) ** 2
    return p / p.sum()


def marginal(p: np.ndarray, sites) -> np.ndarray:
    """Marginal of p (2**n,) on ``sites`` (in the order given) -> (2**len(sites),).

    Entry i is the probability that the pixels ``sites[0], sites[1], ...`` take the values of
    ``all_configs(len(sites))[i]``.
    """
    sites = [int(s) for s in sites]
    n = int(np.log2(p.size))
    t = np.asarray(p).reshape((2,) * n)
    others = tuple(a for a in range(n) if a not in sites)
    m = t.sum(axis=others)  # remaining axes: the sites in increasing order
    kept = sorted(sites)
    m = np.transpose(m, [kept.index(s) for s in sites])
    return m.reshape(-1)


def conditional(p: np.ndarray, known_sites, known_values) -> np.ndarray:
    """p(unknown | known) over configs of the unknown sites in increasing site order."""
    n = int(np.log2(p.size))
    cfg = all_configs(n)
    known_sites = [int(s) for s in known_sites]
    match = np.all(cfg[:, known_sites] == np.asarray(known_values, dtype=np.uint8)[None, :], axis=1)
    q = p[match]  # lexicographic in the unknown sites, increasing site order
    return q / q.sum()


def _split(psi: np.ndarray, sites_X) -> np.ndarray:
    """The normalised state as a matrix (2**|X|, 2**|Y|), X axes in the order given."""
    psi = np.asarray(psi, dtype=np.float64)
    psi = psi / np.linalg.norm(psi)
    n = int(np.log2(psi.size))
    sites_X = [int(s) for s in sites_X]
    rest = [a for a in range(n) if a not in sites_X]
    t = np.transpose(psi.reshape((2,) * n), sites_X + rest)
    return t.reshape(2 ** len(sites_X), -1)


def reduced_density_matrix(psi: np.ndarray, sites_X) -> np.ndarray:
    """rho_X = Tr_Y |psi><psi| for the normalised state psi/|psi|; X any subset, in the order given."""
    m = _split(psi, sites_X)
    return m @ m.T


def schmidt_values(psi: np.ndarray, sites_X) -> np.ndarray:
    """Schmidt values (descending, sum of squares 1) of the normalised state across X | rest.

    Computed by SVD of the state matrix, which is accurate for small values (better than
    eigenvalues of rho for alpha < 1).
    """
    return np.linalg.svd(_split(psi, sites_X), compute_uv=False)


def renyi_entropy(rho_or_schmidt, alpha=1.0, base="e") -> float:
    """Renyi-alpha entropy of a density matrix (2-D) or of Schmidt values (1-D, sum of squares 1).

    alpha = 1 is von Neumann (-sum p ln p), alpha = inf the min-entropy (-ln max p); otherwise
    ln(sum p**alpha) / (1 - alpha). Natural log unless base=2.
    """
    a = np.asarray(rho_or_schmidt, dtype=np.float64)
    if a.ndim == 2:
        p = np.clip(np.linalg.eigvalsh(a), 0.0, None)
    elif a.ndim == 1:
        p = a ** 2
    else:
        raise ValueError("expected a density matrix or a 1-D array of Schmidt values")
    p = p / p.sum()
    p = p[p > 0]
    if alpha == 1:
        s = float(-np.sum(p * np.log(p)))
    elif np.isinf(alpha):
        s = float(-np.log(p.max()))
    else:
        s = float(np.log(np.sum(p ** alpha)) / (1.0 - alpha))
    return s / np.log(2.0) if base == 2 else s


def renyi2(psi: np.ndarray, sites_X) -> float:
    """S2(X) = -ln Tr rho_X**2 (nats)."""
    rho = reduced_density_matrix(psi, sites_X)
    return float(-np.log(np.sum(rho * rho)))  # Tr rho^2 = sum rho_ij rho_ji, rho symmetric


def shannon(p: np.ndarray) -> float:
    """Shannon entropy in nats."""
    p = np.asarray(p, dtype=np.float64)
    p = p[p > 0]
    return float(-np.sum(p * np.log(p)))


def mutual_information(p: np.ndarray, sites_X, base="e") -> float:
    """Classical I(X:Y) = H(X) + H(Y) - H(X,Y) of p (2**n,), Y = the other sites."""
    n = int(np.log2(p.size))
    sites_X = [int(s) for s in sites_X]
    sites_Y = [a for a in range(n) if a not in sites_X]
    mi = shannon(marginal(p, sites_X)) + shannon(marginal(p, sites_Y)) - shannon(p)
    return mi / np.log(2.0) if base == 2 else mi


def chi2_test(samples, p: np.ndarray, min_expected: float = 5.0) -> float:
    """Pearson chi-squared goodness of fit of binary samples (N, n) to p (2**n,); returns the p-value.

    Bins are sorted by expected count and merged greedily, smallest first, until every merged bin
    expects at least ``min_expected`` samples (the usual validity rule for the chi-squared
    approximation). A sample landing in a zero-probability bin gives p-value 0.
    """
    samples = np.asarray(samples)
    p = np.asarray(p, dtype=np.float64)
    n_samples = samples.shape[0]
    counts = np.bincount(config_index(samples), minlength=p.size).astype(np.float64)
    if np.any(counts[p == 0] > 0):
        return 0.0
    expected = n_samples * p / p.sum()
    order = np.argsort(expected)
    obs_bins, exp_bins = [], []
    o_acc = e_acc = 0.0
    for i in order:
        o_acc += counts[i]
        e_acc += expected[i]
        if e_acc >= min_expected:
            obs_bins.append(o_acc)
            exp_bins.append(e_acc)
            o_acc = e_acc = 0.0
    if e_acc > 0 or o_acc > 0:  # leftover below threshold: fold into the last bin
        if obs_bins:
            obs_bins[-1] += o_acc
            exp_bins[-1] += e_acc
        else:
            obs_bins.append(o_acc)
            exp_bins.append(e_acc)
    obs, exp = np.array(obs_bins), np.array(exp_bins)
    if obs.size < 2:
        return 1.0
    stat = float(np.sum((obs - exp) ** 2 / exp))
    return float(stats.chi2.sf(stat, df=obs.size - 1))


# --- orderings, written out independently for checking the package's ------------------------

def snake_ordering(h: int, w: int) -> np.ndarray:
    """Boustrophedon: row 0 left to right, row 1 right to left, ..."""
    out = []
    for r in range(h):
        cols = range(w) if r % 2 == 0 else range(w - 1, -1, -1)
        out.extend(r * w + c for c in cols)
    return np.array(out, dtype=np.int64)


def column_major_ordering(h: int, w: int) -> np.ndarray:
    """Column by column, top to bottom: chain position i -> pixel (i % h, i // h)."""
    return np.array([(i % h) * w + i // h for i in range(h * w)], dtype=np.int64)
