"""Data MI / Rényi-2 estimators against exact enumeration, closed forms and a brute-force KSG.

Measured bias, fixed here as tolerances (k = 3, default jitter, see ksg_mutual_information):

* plug-in MI of an 8-site Ising chain (J = 0.8), N = 20000: within 0.01 nats of the exact MI (the
  Miller–Madow bias (K_XY − K_X − K_Y + 1)/(2N) ≈ 0.006); asserted within 0.05 nats.
* KSG, same chains, N = 4000 (mean over 10 sample seeds): +0.001 … +0.010 nats, standard deviation
  0.007 … 0.03 per estimate; asserted: mean of 3 estimates within 0.05 nats.
* KSG, correlated Gaussians, N = 2000: +0.007 (ρ = 0.6) and +0.017 (ρ = 0.9) nats mean over 10 seeds,
  sd 0.016; asserted: one fixed seed within 0.05 nats of −½ ln(1 − ρ²).
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.special import digamma

import oracle
from comparison import bipartitions as bp
from comparison import information as info


def ising_chain(n: int, coupling: float):
    """Exact p (2**n,) of an open Ising chain p(s) ∝ exp(J Σ s_i s_{i+1}), s = ±1 ↔ v = 0/1."""
    cfg = oracle.all_configs(n).astype(np.int64)
    s = 2 * cfg - 1
    logits = coupling * (s[:, :-1] * s[:, 1:]).sum(1)
    p = np.exp(logits - logits.max())
    return p / p.sum()


def draw(p: np.ndarray, n_samples: int, seed: int) -> np.ndarray:
    """Exact i.i.d. samples (N, n) uint8 from p over all 2**n configurations."""
    n = int(np.log2(p.size))
    idx = np.random.default_rng(seed).choice(p.size, size=n_samples, p=p)
    return oracle.all_configs(n)[idx]


def empirical(x: np.ndarray) -> np.ndarray:
    """Empirical distribution (2**n,) of binary samples."""
    counts = np.bincount(oracle.config_index(x), minlength=2 ** x.shape[1]).astype(np.float64)
    return counts / counts.sum()


def ksg_brute_force(x: np.ndarray, sites_x, k: int, metric: str) -> float:
    """Textbook KSG algorithm 1, written with full numpy distance matrices (small N, no jitter)."""
    sites_x = list(sites_x)
    sites_y = [j for j in range(x.shape[1]) if j not in sites_x]
    n = x.shape[0]

    def dist(a):
        diff = a[:, None, :] - a[None, :, :]
        d = np.abs(diff).max(-1) if metric == "chebyshev" else np.sqrt((diff ** 2).sum(-1))
        np.fill_diagonal(d, np.inf)
        return d

    dx, dy = dist(x[:, sites_x]), dist(x[:, sites_y])
    eps = np.sort(np.maximum(dx, dy), axis=1)[:, k - 1]
    nx = (dx < eps[:, None]).sum(1)
    ny = (dy < eps[:, None]).sum(1)
    return float(digamma(k) + digamma(n) - np.mean(digamma(nx + 1) + digamma(ny + 1)))


# --- plug-in MI ----------------------------------------------------------------------------------

@pytest.mark.parametrize("mask", [[1, 1, 1, 0, 0, 0], [1, 0, 1, 0, 0, 1], [0, 1, 0, 0, 0, 0]])
@pytest.mark.parametrize("n_samples", [50, 300])
def test_plugin_equals_exact_mi_of_the_empirical_distribution(mask, n_samples):
    rng = np.random.default_rng(7)
    p = rng.dirichlet(np.full(64, 0.3))  # a known, strongly non-uniform 6-site distribution
    x = draw(p, n_samples, seed=n_samples)
    b = bp.from_mask(mask)
    expected = oracle.mutual_information(empirical(x), b.sites_x)
    assert info.plugin_mutual_information(x, b) == pytest.approx(expected, abs=1e-12)
    assert info.plugin_mutual_information(x, b, base=2) == pytest.approx(expected / math.log(2), abs=1e-12)


def test_plugin_accepts_images_and_torch():
    x = draw(ising_chain(6, 0.5), 200, seed=1)
    b = bp.up_down((2, 3), 1)
    flat = info.plugin_mutual_information(x, b)
    assert info.plugin_mutual_information(x.reshape(-1, 2, 3), b) == flat
    assert info.plugin_mutual_information(torch.from_numpy(x).float(), b) == flat
    assert info.plugin_mutual_information(x.astype(bool), b) == flat


@pytest.mark.parametrize("mask", [np.arange(8) < 4, np.arange(8) % 2 == 0])
def test_plugin_close_to_true_mi_with_many_samples(mask):
    p = ising_chain(8, 0.8)
    b = bp.from_mask(mask)
    exact = oracle.mutual_information(p, b.sites_x)
    est = info.plugin_mutual_information(draw(p, 20000, seed=3), b)
    assert abs(est - exact) < 0.05
    assert est > exact - 0.02  # the plug-in bias is upwards


# --- data Rényi-2 --------------------------------------------------------------------------------

@pytest.mark.parametrize("n, mask", [
    (6, [1, 1, 1, 0, 0, 0]), (8, [1, 0, 1, 0, 1, 0, 1, 0]), (10, [0, 0, 1, 1, 1, 0, 0, 0, 0, 1]),
    (10, [1, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
])
@pytest.mark.parametrize("n_samples", [40, 2000])
def test_data_renyi2_against_dense_reduced_density_matrix(n, mask, n_samples):
    x = draw(ising_chain(n, 0.7), n_samples, seed=n + n_samples)
    b = bp.from_mask(mask)
    psi = np.sqrt(empirical(x))  # the data state Σ_v sqrt(π(v)) |v⟩
    expected = oracle.renyi2(psi, b.sites_x)
    assert info.data_renyi2(x, b) == pytest.approx(expected, abs=1e-10)
    assert info.data_renyi2(x, b.swapped()) == pytest.approx(expected, abs=1e-10)  # pure state
    assert info.data_renyi2(x, b, base=2) == pytest.approx(expected / math.log(2), abs=1e-10)


def test_saturation_all_distinct_gives_log_n():
    n_samples = 64
    codes = oracle.all_configs(6)  # 64 distinct 6-bit codes
    perm = np.random.default_rng(0).permutation(n_samples)
    x = np.concatenate([codes, codes[perm]], axis=1)  # X and Y halves each all distinct
    b = bp.from_mask(np.arange(12) < 6)
    mi, sat = info.plugin_mutual_information(x, b, return_saturation=True)
    s2, sat2 = info.data_renyi2(x, b, return_saturation=True)
    assert sat == sat2 == info.saturation(x, b)
    assert sat.at_log_n and sat.saturated and sat.x_determines_y and sat.y_determines_x
    assert mi == pytest.approx(math.log(n_samples)) and s2 == pytest.approx(math.log(n_samples))
    assert sat.log_n == pytest.approx(math.log(n_samples)) == sat.mi_ceiling == sat.renyi2_ceiling
    assert info.saturation(x, b, base=2).log_n == pytest.approx(6.0)


def test_saturation_x_determines_y_gives_the_y_marginal():
    """Distinct X-halves with repeated Y-halves: MI = H(π_Y), S₂ = H₂(π_Y)."""
    x_half = oracle.all_configs(5)  # 32 distinct
    y_half = np.repeat(oracle.all_configs(2), [16, 8, 6, 2], axis=0)
    x = np.concatenate([x_half, y_half], axis=1)
    b = bp.from_mask(np.arange(7) < 5)
    py = np.array([16, 8, 6, 2]) / 32
    mi, sat = info.plugin_mutual_information(x, b, return_saturation=True)
    assert sat.x_determines_y and not sat.y_determines_x and sat.saturated and not sat.at_log_n
    assert mi == pytest.approx(-np.sum(py * np.log(py))) == pytest.approx(sat.mi_ceiling)
    assert info.data_renyi2(x, b) == pytest.approx(-np.log(np.sum(py ** 2))) == pytest.approx(sat.renyi2_ceiling)
    assert sat.conditional_entropy == pytest.approx(0.0, abs=1e-12)


def test_unsaturated_sample_is_not_flagged():
    x = draw(ising_chain(8, 0.8), 5000, seed=0)
    b = bp.from_mask(np.arange(8) < 4)
    mi, sat = info.plugin_mutual_information(x, b, return_saturation=True)
    s2 = info.data_renyi2(x, b)
    assert not sat.saturated and sat.n_distinct_x == 16 and sat.n_distinct <= 256
    assert mi < sat.mi_ceiling - 0.5 and s2 <= sat.renyi2_ceiling + 1e-12
    assert sat.mi_ceiling <= sat.log_n


# --- KSG -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("metric", ["euclidean", "chebyshev"])
@pytest.mark.parametrize("k", [1, 3])
def test_ksg_matches_brute_force(metric, k):
    rng = np.random.default_rng(1)
    z = rng.standard_normal((150, 5))
    z[:, 3:] += 0.8 * z[:, :2]
    b = bp.from_mask([1, 1, 0, 0, 0])
    expected = ksg_brute_force(z, b.sites_x, k, metric)
    got = info.ksg_mutual_information(z, b, k=k, metric=metric, jitter=0, chunk_size=17)
    assert got == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("rho", [0.6, 0.9])
def test_ksg_correlated_gaussians(rho):
    rng = np.random.default_rng(0)
    z = rng.standard_normal((2000, 2))
    data = np.stack([z[:, 0], rho * z[:, 0] + math.sqrt(1 - rho ** 2) * z[:, 1]], axis=1)
    exact = -0.5 * math.log(1 - rho ** 2)
    assert info.ksg_mutual_information(data, bp.from_mask([True, False])) == pytest.approx(exact, abs=0.05)


def test_ksg_independent_is_near_zero():
    z = np.random.default_rng(2).standard_normal((1000, 4))
    assert abs(info.ksg_mutual_information(z, bp.from_mask([1, 1, 0, 0]))) < 0.03


@pytest.mark.parametrize("mask", [np.arange(8) < 4, np.arange(8) % 2 == 0, np.arange(8) < 2],
                         ids=["half", "alternating", "first2"])
def test_ksg_on_binary_ising_chain(mask):
    p = ising_chain(8, 0.8)
    b = bp.from_mask(mask)
    exact = oracle.mutual_information(p, b.sites_x)
    est = [info.ksg_mutual_information(draw(p, 4000, seed=s), b, seed=s) for s in range(3)]
    assert abs(np.mean(est) - exact) < 0.05


def test_ksg_jitter_breaks_ties_only():
    """Two jitter amplitudes below the Hamming gap give the same neighbour ranks, hence close values."""
    x = draw(ising_chain(10, 0.6), 1500, seed=4)
    b = bp.from_mask(np.arange(10) < 5)
    a = info.ksg_mutual_information(x, b, seed=0)
    c = info.ksg_mutual_information(x, b, seed=0, jitter=1e-4)
    assert abs(a - c) < 0.03
    assert info.ksg_mutual_information(x, b, seed=0) == a  # seeded: reproducible


def test_ksg_base_chunks_and_input_forms():
    x = draw(ising_chain(6, 0.9), 300, seed=5)
    b = bp.up_down((2, 3), 1)
    ref = info.ksg_mutual_information(x, b)
    assert info.ksg_mutual_information(x, b, chunk_size=7) == pytest.approx(ref, abs=1e-12)
    assert info.ksg_mutual_information(x.reshape(-1, 2, 3), b) == pytest.approx(ref, abs=1e-12)
    assert info.ksg_mutual_information(torch.from_numpy(x), b) == pytest.approx(ref, abs=1e-12)
    assert info.ksg_mutual_information(x, b, base=2) == pytest.approx(ref / math.log(2), abs=1e-12)
    assert info.ksg_mutual_information(x, b, device="cpu") == pytest.approx(ref, abs=1e-12)


@pytest.mark.gpu
def test_ksg_on_cuda_matches_cpu():
    x = draw(ising_chain(8, 0.8), 1000, seed=6)
    b = bp.from_mask(np.arange(8) < 4)
    cpu = info.ksg_mutual_information(x, b)
    assert info.ksg_mutual_information(x, b, device="cuda") == pytest.approx(cpu, abs=1e-9)


def test_ksg_errors():
    x = draw(ising_chain(4, 0.5), 50, seed=0)
    b = bp.from_mask([1, 1, 0, 0])
    with pytest.raises(ValueError, match="need N > k"):
        info.ksg_mutual_information(x[:3], b, k=3)
    with pytest.raises(ValueError, match="metric"):
        info.ksg_mutual_information(x, b, metric="hamming")
    with pytest.raises(ValueError, match="epsilon = 0"):
        info.ksg_mutual_information(x, b, jitter=0)
    with pytest.raises(ValueError, match="jitter"):
        info.ksg_mutual_information(x, b, jitter=0.7)
    with pytest.raises(ValueError, match="NaN"):
        info.ksg_mutual_information(np.full((10, 4), np.nan), b)
    with pytest.raises(ValueError, match=r"shape \(50, 3\)"):
        info.ksg_mutual_information(x[:, :3], b)
    with pytest.raises(TypeError, match="Bipartition"):
        info.ksg_mutual_information(x, [0, 1])


def test_binary_estimators_reject_bad_data():
    b = bp.from_mask([1, 1, 0, 0])
    with pytest.raises(ValueError, match="binary"):
        info.plugin_mutual_information(np.full((5, 4), 2), b)
    with pytest.raises(ValueError, match="shape"):
        info.data_renyi2(np.zeros((5, 5)), b)


def test_mnist_smoke():
    """The real data path: 784 pixels, image-shaped input, every estimator and the saturation flag."""
    from bornmachine import datasets

    images, _ = datasets.load("mnist5k", split="test")
    x = images[:400].reshape(-1, 28, 28)
    b = bp.up_down((28, 28), 14)
    ksg = info.ksg_mutual_information(x, b)
    assert 0.5 < ksg < math.log(400)
    mi, sat = info.plugin_mutual_information(x, b, return_saturation=True)
    assert sat.saturated and mi == pytest.approx(sat.mi_ceiling, abs=info.SATURATION_TOL)
    assert info.data_renyi2(x, b) <= sat.renyi2_ceiling + 1e-12


# --- model wrappers ------------------------------------------------------------------------------

def test_model_wrappers_delegate():
    from bornmachine import MPS

    model = MPS((2, 3), 3, ordering="snake", generator=torch.Generator().manual_seed(0))
    b = bp.from_mask([[1, 0, 1], [0, 1, 0]])
    assert info.model_renyi2(model, b).value == pytest.approx(model.renyi2([0, 2, 4]).value, abs=1e-12)
    got = info.model_mutual_information(model, b, n_samples=200, generator=torch.Generator().manual_seed(1))
    ref = model.mutual_information([0, 2, 4], n_samples=200, generator=torch.Generator().manual_seed(1))
    assert got.value == pytest.approx(ref.value, abs=1e-12)
    with pytest.raises(ValueError, match="6 sites"):
        info.model_renyi2(model, bp.from_mask([1, 0, 1, 0]))
    with pytest.raises(ValueError, match="image shape"):
        info.model_renyi2(model, bp.from_mask(np.array([[1, 0], [1, 0], [0, 1]])))
