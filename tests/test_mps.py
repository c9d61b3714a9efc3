"""Exactness tests of ``bornmachine.MPS`` against the brute-force oracle (tests/oracle.py).

Every quantity is compared with a dense enumeration of all 2**n configurations (n <= 12) at float64
tolerances (relative 1e-10). Samplers are checked with Pearson chi-squared goodness-of-fit tests at a
fixed seed; a test fails when the p-value is below ``P_MIN = 1e-3``. Monte Carlo estimators
(``renyi2(method="mc")``, ``mutual_information``) must land within 4 standard errors of the exact
value at a fixed seed.
"""
from __future__ import annotations

import math
import os

import numpy as np
import pytest
import torch

import oracle
from helpers import ALPHAS, ATOL, P_MIN, RTOL, as_np, assert_allclose, configs, gen
from conftest import gaussian_tensors

from bornmachine import MPS, SweepTrainer, datasets, load
from bornmachine.estimate import Estimate


# --- helpers ------------------------------------------------------------------------------------

def chain_psi(m) -> np.ndarray:
    """Dense Psi of the model's stored tensors, indexed by chain-order configurations."""
    return oracle.dense_state(m.tensors)


def natural_psi(m) -> np.ndarray:
    """Dense Psi indexed by natural (pixel-order) configurations."""
    return oracle.chain_to_natural(chain_psi(m), np.asarray(m.ordering))


def natural_p(m) -> np.ndarray:
    return oracle.probabilities(natural_psi(m))


# --- the oracle itself --------------------------------------------------------------------------

def test_oracle_all_configs_bit_order():
    c = oracle.all_configs(3)
    assert c.shape == (8, 3) and c.dtype == np.uint8
    assert c[1].tolist() == [0, 0, 1] and c[4].tolist() == [1, 0, 0]
    np.testing.assert_array_equal(oracle.config_index(c), np.arange(8))


def test_oracle_product_state_has_zero_entropy():
    rng = np.random.default_rng(0)
    tensors = [rng.normal(size=(1, 2, 1)) for _ in range(5)]
    psi = oracle.dense_state(tensors)
    assert psi.shape == (32,)
    np.testing.assert_allclose(psi, np.einsum("a,b,c,d,e->abcde", *[t.ravel() for t in tensors]).ravel())
    for sites in ([0], [0, 1], [1, 3], [4, 0, 2]):
        for alpha in ALPHAS:
            assert oracle.renyi_entropy(oracle.schmidt_values(psi, sites), alpha) == pytest.approx(0, abs=1e-12)
            assert oracle.renyi_entropy(oracle.reduced_density_matrix(psi, sites), alpha) == pytest.approx(0, abs=1e-7)
        assert oracle.mutual_information(oracle.probabilities(psi), sites) == pytest.approx(0, abs=1e-12)


def test_oracle_bell_and_ghz_entropy_ln2():
    bell = np.array([1.0, 0, 0, 1.0])
    ghz = np.zeros(16)
    ghz[0] = ghz[-1] = 3.0  # unnormalised on purpose
    for psi, cuts in ((bell, [[0], [1]]), (ghz, [[0], [1, 2], [3, 0], [0, 1, 2]])):
        for sites in cuts:
            for alpha in ALPHAS:
                assert oracle.renyi_entropy(oracle.schmidt_values(psi, sites), alpha) == pytest.approx(math.log(2))
                assert oracle.renyi_entropy(oracle.reduced_density_matrix(psi, sites), alpha, base=2) == pytest.approx(1)
            assert oracle.renyi2(psi, sites) == pytest.approx(math.log(2))
            assert oracle.mutual_information(oracle.probabilities(psi), sites) == pytest.approx(math.log(2))


def test_oracle_renyi_known_spectrum():
    lam = np.sqrt([0.5, 0.25, 0.25])
    assert oracle.renyi_entropy(lam, 1) == pytest.approx(1.5 * math.log(2))
    assert oracle.renyi_entropy(lam, 2) == pytest.approx(-math.log(0.375))
    assert oracle.renyi_entropy(lam, float("inf")) == pytest.approx(math.log(2))
    assert oracle.renyi_entropy(lam, 0.5) == pytest.approx(2 * math.log(np.sum(lam)))
    assert oracle.renyi_entropy(np.diag(lam ** 2), 1, base=2) == pytest.approx(1.5)


def test_oracle_marginal_and_conditional_order():
    rng = np.random.default_rng(1)
    p = rng.random(16)
    p /= p.sum()
    t = p.reshape(2, 2, 2, 2)
    m = oracle.marginal(p, [3, 1])  # entry (v3, v1)
    np.testing.assert_allclose(m.reshape(2, 2), t.sum(axis=(0, 2)).T)
    cond = oracle.conditional(p, [2], [1])  # over (v0, v1, v3)
    np.testing.assert_allclose(cond.reshape(2, 2, 2), t[:, :, 1, :] / t[:, :, 1, :].sum())
    rho = oracle.reduced_density_matrix(np.sqrt(p), [2, 0])
    assert np.trace(rho) == pytest.approx(1)
    np.testing.assert_allclose(np.diag(rho), oracle.marginal(p, [2, 0]))


def test_oracle_chain_to_natural():
    ordering = [2, 0, 3, 1]  # chain position i holds pixel ordering[i]
    chain_bits = [1, 1, 0, 0]  # pixel 2 = 1, pixel 0 = 1, pixel 3 = 0, pixel 1 = 0
    tensors = [np.eye(2)[b].reshape(1, 2, 1) for b in chain_bits]
    nat = oracle.chain_to_natural(oracle.dense_state(tensors), ordering)
    assert oracle.all_configs(4)[np.argmax(nat)].tolist() == [1, 0, 1, 0]
    assert oracle.snake_ordering(2, 3).tolist() == [0, 1, 2, 5, 4, 3]
    assert oracle.column_major_ordering(2, 3).tolist() == [0, 3, 1, 4, 2, 5]


def test_oracle_chi2_accepts_right_and_rejects_wrong():
    rng = np.random.default_rng(2)
    p = rng.random(32) ** 3
    p /= p.sum()
    cfg = oracle.all_configs(5)
    good = cfg[rng.choice(32, size=20000, p=p)]
    assert oracle.chi2_test(good, p) > P_MIN
    q = 0.9 * p + 0.1 / 32
    bad = cfg[rng.choice(32, size=20000, p=q)]
    assert oracle.chi2_test(bad, p) < 1e-6


# --- construction ------------------------------------------------------------------------------

@pytest.mark.parametrize("n,d", [(1, 3), (2, 5), (5, 2), (8, 3), (10, 6), (12, 100)])
def test_constructor_shapes_and_bonds(n, d):
    m = MPS(n, d, generator=gen(0))
    expected = [min(d, 2 ** (k + 1), 2 ** (n - k - 1)) for k in range(n - 1)]
    assert m.n_sites == n and m.shape is None
    assert list(m.bond_dims) == expected
    assert len(m.tensors) == n
    dims = [1] + expected + [1]
    for k, t in enumerate(m.tensors):
        assert tuple(t.shape) == (dims[k], 2, dims[k + 1])
        assert t.dtype == torch.float64
    assert m.n_params == sum(t.numel() for t in m.tensors)
    assert m.dtype == torch.float64
    assert torch.equal(torch.as_tensor(m.ordering), torch.arange(n))


def test_constructor_is_seeded():
    a = MPS(6, 3, generator=gen(5))
    b = MPS(6, 3, generator=gen(5))
    for ta, tb in zip(a.tensors, b.tensors):
        assert torch.equal(ta, tb)


def test_from_tensors_keeps_tensors():
    ts = gaussian_tensors(6, 3, 0)
    m = MPS.from_tensors(ts)
    assert m.n_sites == 6 and list(m.bond_dims) == [t.shape[2] for t in ts[:-1]]
    assert_allclose(chain_psi(m), oracle.dense_state(ts))


# --- exact probabilities -----------------------------------------------------------------------

def test_probabilities_sum_to_one(small_mps):
    m = small_mps
    lp = m.log_prob(configs(m.n_sites))
    assert lp.shape == (2 ** m.n_sites,) and lp.dtype == torch.float64
    assert torch.exp(lp).sum().item() == pytest.approx(1.0, rel=1e-12)


def test_log_prob_log_norm_nll_vs_dense(small_mps):
    m = small_mps
    psi = natural_psi(m)
    assert m.log_norm() == pytest.approx(math.log(np.sum(psi ** 2)), rel=RTOL, abs=ATOL)
    x = configs(m.n_sites)
    assert_allclose(m.log_prob(x), np.log(oracle.probabilities(psi)))
    sub = x[::7]
    assert m.nll(sub) == pytest.approx(-np.mean(np.log(oracle.probabilities(psi)[::7])), rel=RTOL)


def test_log_amplitude_signs_and_magnitudes(gaussian_mps):
    m = gaussian_mps
    psi = natural_psi(m)
    assert (psi < 0).any() and (psi > 0).any()  # mixed signs, so the sign test means something
    sign, logabs = m.log_amplitude(configs(m.n_sites))
    np.testing.assert_array_equal(as_np(sign), np.sign(psi))
    assert_allclose(logabs, np.log(np.abs(psi)))


def test_log_amplitude_matches_input_tensors():
    ts = gaussian_tensors(7, 3, 11)
    m = MPS.from_tensors(ts)
    sign, logabs = m.log_amplitude(configs(7))
    psi = oracle.dense_state(ts)
    np.testing.assert_array_equal(as_np(sign), np.sign(psi))
    assert_allclose(logabs, np.log(np.abs(psi)))


def test_input_dtypes_agree():
    m = MPS.from_tensors(gaussian_tensors(6, 3, 2))
    x = oracle.all_configs(6)[::5]
    ref = m.log_prob(torch.from_numpy(x))
    for variant in (x.astype(np.int64), x.astype(bool), x.astype(np.float32), torch.from_numpy(x).bool(),
                    torch.from_numpy(x).double()):
        assert torch.equal(m.log_prob(variant), ref)
    one = m.log_prob(x[3])  # a single configuration (n_sites,)
    assert_allclose(one.reshape(-1), ref[3:4])


# --- marginals and conditionals ----------------------------------------------------------------

@pytest.mark.parametrize("sites", [[0, 1, 2], [3, 4, 5, 6], [5, 6, 7], [7], [0, 3, 7], [7, 0, 3], [5, 1], [6, 2, 4, 0],
                                   [1, 2, 5, 6], [4, 7, 1, 0, 6, 3, 5, 2]],
                         ids=lambda s: "-".join(map(str, s)))
def test_marginal_log_prob(any_mps, sites):
    m = any_mps
    p = natural_p(m)
    x_sub = configs(len(sites))
    out = m.marginal_log_prob(x_sub, sites)
    assert out.shape == (2 ** len(sites),)
    assert_allclose(out, np.log(oracle.marginal(p, sites)))


def test_marginal_accepts_tensor_sites():
    m = MPS.from_tensors(gaussian_tensors(6, 3, 3))
    p = natural_p(m)
    sites = [4, 1]
    out = m.marginal_log_prob(configs(2), torch.tensor(sites))
    assert_allclose(out, np.log(oracle.marginal(p, sites)))


def test_conditional_sample_distribution(any_mps):
    m = any_mps
    n = m.n_sites
    known = [1, 4, 6]
    values = np.array([1, 0, 1], dtype=np.uint8)
    unknown = [s for s in range(n) if s not in known]
    mask = torch.zeros(n, dtype=torch.bool)
    mask[known] = True
    n_samples = 20000
    x = torch.randint(0, 2, (n_samples, n), generator=gen(0), dtype=torch.uint8)
    x[:, known] = torch.from_numpy(values)
    samples, lp = m.conditional_sample(x, mask, generator=gen(1))
    assert samples.shape == (n_samples, n) and samples.dtype == torch.uint8
    assert lp.shape == (n_samples,)
    s = as_np(samples)
    assert (s[:, known] == values).all()
    cond = oracle.conditional(natural_p(m), known, values)
    pval = oracle.chi2_test(s[:, unknown], cond)
    assert pval > P_MIN, f"chi2 p-value {pval:.2e} <= {P_MIN}"
    assert_allclose(lp, np.log(cond[oracle.config_index(s[:, unknown])]))


def test_conditional_sample_per_row_masks():
    m = MPS.from_tensors(gaussian_tensors(7, 3, 4))
    p = natural_p(m)
    g = gen(3)
    mask = torch.rand(50, 7, generator=g) < 0.5
    mask[0] = False  # nothing known: plain sampling
    mask[1] = True  # everything known: copy, log_prob 0
    x = torch.randint(0, 2, (50, 7), generator=g)
    samples, lp = m.conditional_sample(x, mask, generator=gen(4))
    s, mk, xs = as_np(samples), as_np(mask), as_np(x)
    assert (s[mk] == xs[mk]).all()
    expected = []
    for i in range(50):
        known = np.flatnonzero(mk[i])
        unknown = np.flatnonzero(~mk[i])
        if unknown.size == 0:
            expected.append(0.0)
            continue
        cond = oracle.conditional(p, known, xs[i, known])
        expected.append(np.log(cond[oracle.config_index(s[i:i + 1, unknown])[0]]))
    assert_allclose(lp, expected)


# --- sampling ----------------------------------------------------------------------------------

def test_sample_chi2_and_log_prob(any_mps):
    m = any_mps
    n_samples = 20000
    samples, lp = m.sample(n_samples, generator=gen(11))
    assert samples.shape == (n_samples, m.n_sites) and samples.dtype == torch.uint8
    assert lp.shape == (n_samples,)
    pval = oracle.chi2_test(as_np(samples), natural_p(m))
    assert pval > P_MIN, f"chi2 p-value {pval:.2e} <= {P_MIN}"
    assert_allclose(lp, m.log_prob(samples))


def test_sample_is_reproducible():
    m = MPS(9, 4, generator=gen(0))
    a, la = m.sample(100, generator=gen(42))
    b, lb = m.sample(100, generator=gen(42))
    assert torch.equal(a, b) and torch.equal(la, lb)
    c, _ = m.sample(100, generator=gen(43))
    assert not torch.equal(a, c)


# --- entanglement ------------------------------------------------------------------------------

@pytest.mark.parametrize("base", ["e", 2])
@pytest.mark.parametrize("alpha", ALPHAS, ids=lambda a: f"alpha{a}")
def test_bond_entropy_vs_dense(small_mps, alpha, base):
    m = small_mps
    psi = chain_psi(m)  # bonds are defined on chain positions
    for bond in range(m.n_sites - 1):
        expected = oracle.renyi_entropy(oracle.schmidt_values(psi, range(bond + 1)), alpha, base=base)
        got = m.entropy(bond, alpha=alpha, base=base)
        assert isinstance(got, float)
        assert got == pytest.approx(expected, rel=RTOL, abs=ATOL), f"bond {bond}"


def test_schmidt_values_vs_dense(small_mps):
    m = small_mps
    psi = chain_psi(m)
    for bond in range(m.n_sites - 1):
        lam = as_np(m.schmidt_values(bond)).astype(np.float64)
        assert lam.ndim == 1 and 1 <= lam.size <= m.bond_dims[bond]
        assert np.all(np.diff(lam) <= 0), "not descending"
        assert np.sum(lam ** 2) == pytest.approx(1.0, rel=1e-12)
        ref = oracle.schmidt_values(psi, range(bond + 1))[: lam.size]
        np.testing.assert_allclose(lam, ref, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("alpha", [1, 2, 0.5, float("inf")], ids=lambda a: f"alpha{a}")
def test_entanglement_profile_matches_entropy(gaussian_mps, alpha):
    m = gaussian_mps
    for base in ("e", 2):
        prof = m.entanglement_profile(alpha=alpha, base=base)
        assert tuple(prof.shape) == (m.n_sites - 1,)
        assert_allclose(prof, [m.entropy(b, alpha=alpha, base=base) for b in range(m.n_sites - 1)])


def _quimb_from_tensors(qtn, tensors):
    """A quimb MPS built independently of ``to_quimb`` (left, physical, right layout)."""
    arrays = [as_np(t).astype(np.float64) for t in tensors]
    arrays[0] = arrays[0][0]  # (2, D1)
    arrays[-1] = arrays[-1][..., 0]  # (D_{n-1}, 2)
    return qtn.MatrixProductState(arrays, shape="lpr")


def test_entropy_vs_quimb(small_mps, quimb_tensor):
    """quimb: ``schmidt_values(i)`` returns lambda**2 of the cut after i sites (i = our bond + 1) and
    ``entropy(i)`` is von Neumann in bits; both assume a normalised state."""
    m = small_mps
    q = _quimb_from_tensors(quimb_tensor, m.tensors)
    q.normalize()
    for bond in range(m.n_sites - 1):
        q_p = np.sort(np.asarray(q.schmidt_values(bond + 1), dtype=np.float64))[::-1]
        lam = as_np(m.schmidt_values(bond)).astype(np.float64)
        k = max(q_p.size, lam.size)
        np.testing.assert_allclose(np.pad(lam ** 2, (0, k - lam.size)), np.pad(q_p, (0, k - q_p.size)),
                                   rtol=1e-9, atol=1e-12)
        assert m.entropy(bond, base=2) == pytest.approx(float(q.entropy(bond + 1)), rel=1e-9, abs=ATOL)
        for alpha in ALPHAS:
            assert m.entropy(bond, alpha=alpha) == pytest.approx(
                oracle.renyi_entropy(np.sqrt(np.clip(q_p, 0, None)), alpha), rel=1e-9, abs=ATOL)


# --- renyi2 and mutual information on arbitrary pixel sets -------------------------------------

SUBSETS = [[0, 2, 5], [1, 3, 4, 7], [0, 1, 2, 3], [6], [7, 2], [1, 3, 5, 7], [1, 2, 5, 6]]


@pytest.mark.parametrize("sites", SUBSETS, ids=lambda s: "-".join(map(str, s)))
def test_renyi2_exact(any_mps, sites):
    m = any_mps
    psi = natural_psi(m)
    est = m.renyi2(sites)
    assert isinstance(est, Estimate) and est.stderr == 0
    expected = oracle.renyi2(psi, sites)
    assert float(est) == pytest.approx(expected, rel=RTOL, abs=ATOL)
    rest = [s for s in range(m.n_sites) if s not in sites]
    assert float(m.renyi2(rest)) == pytest.approx(expected, rel=RTOL, abs=ATOL)  # pure state
    assert float(m.renyi2(sites, base=2)) == pytest.approx(expected / math.log(2), rel=RTOL, abs=ATOL)


def test_renyi2_exact_contiguous_equals_bond_entropy(gaussian_mps):
    m = gaussian_mps
    for bond in range(m.n_sites - 1):
        assert float(m.renyi2(list(range(bond + 1)))) == pytest.approx(m.entropy(bond, alpha=2), rel=RTOL, abs=ATOL)


@pytest.mark.parametrize("sites", [[0, 2, 5], [1, 3, 4, 7]], ids=lambda s: "-".join(map(str, s)))
def test_renyi2_mc_within_4_stderr(any_mps, sites):
    m = any_mps
    exact = oracle.renyi2(natural_psi(m), sites)
    est = m.renyi2(sites, method="mc", n_samples=20000, generator=gen(5))
    assert isinstance(est, Estimate)
    assert 0 < est.stderr < 0.1
    assert abs(est.value - exact) <= 4 * est.stderr, f"{est} vs exact {exact:.6g}"


@pytest.mark.parametrize("sites", [[0, 2, 5], [1, 3, 4, 7], [0, 1, 2, 3]], ids=lambda s: "-".join(map(str, s)))
def test_mutual_information_within_4_stderr(any_mps, sites):
    m = any_mps
    exact = oracle.mutual_information(natural_p(m), sites)
    est = m.mutual_information(sites, n_samples=4000, generator=gen(6))
    assert isinstance(est, Estimate) and est.stderr > 0
    assert abs(est.value - exact) <= 4 * est.stderr, f"{est} vs exact {exact:.6g}"
    est2 = m.mutual_information(sites, n_samples=4000, generator=gen(6), base=2)
    assert est2.value == pytest.approx(est.value / math.log(2), rel=1e-9)


# --- orderings ---------------------------------------------------------------------------------

def test_snake_ordering_on_image():
    m = MPS((3, 4), 3, ordering="snake", generator=gen(1))
    assert m.n_sites == 12 and tuple(m.shape) == (3, 4)
    np.testing.assert_array_equal(as_np(m.ordering), oracle.snake_ordering(3, 4))
    x = configs(12)
    p = natural_p(m)
    assert_allclose(m.log_prob(x), np.log(p))
    assert_allclose(m.log_prob(x.reshape(-1, 3, 4)), np.log(p))  # images in natural layout
    for bond in (0, 3, 5, 10):  # chain bond = first bond+1 pixels of the ordering vs the rest
        expected = oracle.renyi_entropy(oracle.schmidt_values(natural_psi(m), m.ordering[: bond + 1].tolist()), 1)
        assert m.entropy(bond) == pytest.approx(expected, rel=RTOL, abs=ATOL)


def test_snake_from_tensors_sampling_and_marginals_are_natural():
    m = MPS.from_tensors(gaussian_tensors(12, 4, 9), ordering="snake", shape=(3, 4))
    p = natural_p(m)
    samples, lp = m.sample(20000, generator=gen(2))
    pval = oracle.chi2_test(as_np(samples), p)
    assert pval > P_MIN, f"chi2 p-value {pval:.2e} <= {P_MIN}"
    assert_allclose(lp, np.log(p[oracle.config_index(as_np(samples))]))
    sites = [4, 11, 0]  # pixel 4 = (1, 0), at chain position 7
    assert_allclose(m.marginal_log_prob(configs(3), sites), np.log(oracle.marginal(p, sites)))
    assert float(m.renyi2([0, 5, 6])) == pytest.approx(oracle.renyi2(natural_psi(m), [0, 5, 6]), rel=RTOL)


@pytest.mark.parametrize("name,shape", [("row_major", (3, 4)), ("column_major", (3, 4)), ("hilbert", (4, 4)),
                                        ("hilbert", (3, 4))])
def test_named_orderings(name, shape):
    h, w = shape
    m = MPS(shape, 2, ordering=name, generator=gen(3))
    order = as_np(m.ordering).astype(np.int64)
    assert sorted(order.tolist()) == list(range(h * w))
    if name == "row_major":
        np.testing.assert_array_equal(order, np.arange(h * w))
    elif name == "column_major":
        np.testing.assert_array_equal(order, oracle.column_major_ordering(h, w))
    elif shape == (4, 4):  # a Hilbert curve on a 2^k square moves between 4-neighbours
        r, c = np.divmod(order, w)
        assert np.all(np.abs(np.diff(r)) + np.abs(np.diff(c)) == 1)
    x = configs(h * w)[::17]
    idx = oracle.config_index(as_np(x))
    assert_allclose(m.log_prob(x), np.log(natural_p(m))[idx])


def test_permutation_ordering():
    perm = [3, 0, 5, 1, 4, 2, 6]
    m = MPS.from_tensors(gaussian_tensors(7, 3, 12), ordering=perm)
    np.testing.assert_array_equal(as_np(m.ordering), perm)
    psi_nat = oracle.chain_to_natural(oracle.dense_state(gaussian_tensors(7, 3, 12)), perm)
    assert_allclose(m.log_prob(configs(7)), np.log(oracle.probabilities(psi_nat)))
    m2 = MPS(7, 3, ordering=perm, generator=gen(0))
    np.testing.assert_array_equal(as_np(m2.ordering), perm)


# --- canonical form ----------------------------------------------------------------------------

@pytest.mark.parametrize("center", [0, 3, 6, 9])
def test_canonicalize(center):
    m = MPS.from_tensors(gaussian_tensors(10, 4, 13))
    x = configs(10)
    before = m.log_prob(x)
    assert m.canonicalize(center) is m
    assert m.center == center
    assert_allclose(m.log_prob(x), before)
    assert m.log_norm() == pytest.approx(0.0, abs=1e-10)
    for k, t in enumerate(m.tensors):
        a = as_np(t)
        dl, _, dr = a.shape
        if k < center:
            left = a.reshape(dl * 2, dr)
            np.testing.assert_allclose(left.T @ left, np.eye(dr), atol=1e-10)
        elif k > center:
            right = a.reshape(dl, 2 * dr)
            np.testing.assert_allclose(right @ right.T, np.eye(dl), atol=1e-10)
        else:
            assert np.sum(a ** 2) == pytest.approx(1.0, rel=1e-10)
    psi = chain_psi(m)  # the stored state itself is normalised now
    assert np.linalg.norm(psi) == pytest.approx(1.0, rel=1e-10)


def test_canonicalize_twice_and_entropy_unchanged():
    m = MPS(8, 5, generator=gen(4))
    prof = m.entanglement_profile()
    m.canonicalize(2).canonicalize(7).canonicalize(0)
    assert m.center == 0
    assert_allclose(m.entanglement_profile(), prof, rtol=1e-9)


# --- save / load -------------------------------------------------------------------------------

def _model_with_ordering():
    return MPS.from_tensors(gaussian_tensors(12, 3, 14), ordering="snake", shape=(3, 4))


def test_save_load_roundtrip(tmp_path):
    m = _model_with_ordering()
    path = tmp_path / "model.npz"
    m.save(path)
    assert path.exists()
    m2 = load(path)
    assert isinstance(m2, MPS)
    np.testing.assert_array_equal(as_np(m2.ordering), as_np(m.ordering))
    assert tuple(m2.shape) == (3, 4)
    assert m2.dtype == m.dtype and list(m2.bond_dims) == list(m.bond_dims)
    x = configs(12)[::13]
    assert torch.equal(m2.log_prob(x), m.log_prob(x))
    m3 = load(str(path))  # str paths too
    assert torch.equal(m3.log_prob(x), m.log_prob(x))


def test_save_load_float32_keeps_dtype(tmp_path):
    m = MPS(6, 3, dtype=torch.float32, generator=gen(1))
    m.save(tmp_path / "m32.npz")
    m2 = load(tmp_path / "m32.npz")
    assert m2.dtype == torch.float32
    assert torch.equal(m2.log_prob(configs(6)), m.log_prob(configs(6)))


def test_save_same_path_twice_replaces(tmp_path):
    path = tmp_path / "model.npz"
    a = MPS(6, 3, generator=gen(1))
    b = MPS(6, 3, generator=gen(2))
    a.save(path)
    b.save(path)
    x = configs(6)
    assert torch.equal(load(path).log_prob(x), b.log_prob(x))
    assert sorted(os.listdir(tmp_path)) == ["model.npz"]  # no temp files left behind


def _assert_previous_file_intact(tmp_path, path, original):
    x = configs(original.n_sites)
    assert torch.equal(load(path).log_prob(x), original.log_prob(x))
    assert sorted(os.listdir(tmp_path)) == [path.name], "temporary file left behind after a failed save"


def test_interrupted_rename_leaves_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "model.npz"
    a = MPS(6, 3, generator=gen(1))
    a.save(path)

    def crash(*args, **kwargs):
        raise OSError("simulated crash during rename")

    monkeypatch.setattr(os, "replace", crash)
    monkeypatch.setattr(os, "rename", crash)
    with pytest.raises(OSError, match="simulated crash"):
        MPS(6, 3, generator=gen(2)).save(path)
    monkeypatch.undo()
    _assert_previous_file_intact(tmp_path, path, a)


def test_interrupted_write_leaves_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "model.npz"
    a = MPS(6, 3, generator=gen(1))
    a.save(path)

    def partial_write(file, *args, **kwargs):
        if hasattr(file, "write"):
            file.write(b"PK\x03\x04 partial")
        else:
            with open(file, "wb") as fh:
                fh.write(b"PK\x03\x04 partial")
        raise OSError("simulated crash mid-write")

    for mod, name in ((np, "savez"), (np, "savez_compressed"), (np, "save"), (torch, "save")):
        monkeypatch.setattr(mod, name, partial_write)
    with pytest.raises(OSError, match="simulated crash"):
        MPS(6, 3, generator=gen(2)).save(path)
    monkeypatch.undo()
    _assert_previous_file_intact(tmp_path, path, a)


def test_load_rejects_random_bytes(tmp_path):
    path = tmp_path / "junk.npz"
    path.write_bytes(np.random.default_rng(0).bytes(2000))
    with pytest.raises(ValueError):
        load(path)


def test_load_rejects_foreign_npz(tmp_path):
    path = tmp_path / "foreign.npz"
    np.savez(path, weights=np.ones((3, 3)), labels=np.arange(4))
    with pytest.raises(ValueError):
        load(path)


def test_load_rejects_pickled_npz(tmp_path):
    path = tmp_path / "pickled.npz"
    np.savez(path, payload=np.array([{"a": 1}], dtype=object))
    with pytest.raises(ValueError):
        load(path)


def test_load_rejects_truncated_file(tmp_path):
    path = tmp_path / "model.npz"
    MPS(8, 4, generator=gen(1)).save(path)
    data = path.read_bytes()
    for cut in (len(data) // 2, len(data) - 30, 10):
        bad = tmp_path / f"trunc{cut}.npz"
        bad.write_bytes(data[:cut])
        with pytest.raises(ValueError):
            load(bad)


def test_load_rejects_text_and_empty_files(tmp_path):
    for name, content in (("empty.npz", b""), ("text.npz", b"hello, not a model\n")):
        path = tmp_path / name
        path.write_bytes(content)
        with pytest.raises(ValueError):
            load(path)


# --- quimb interop -----------------------------------------------------------------------------

def test_to_quimb_from_quimb_roundtrip(quimb_tensor):
    m = MPS.from_tensors(gaussian_tensors(8, 4, 15))
    q = m.to_quimb()
    assert isinstance(q, quimb_tensor.MatrixProductState) and q.L == 8
    qpsi = np.asarray(q.to_dense(), dtype=np.float64).ravel()  # quimb: site 0 is the leading bit
    psi = chain_psi(m)
    assert_allclose(qpsi / np.linalg.norm(qpsi), psi / np.linalg.norm(psi), rtol=1e-9)
    m2 = MPS.from_quimb(q)
    x = configs(8)
    assert_allclose(m2.log_prob(x), m.log_prob(x))
    s2, _ = m2.log_amplitude(x)
    s1, _ = m.log_amplitude(x)
    assert torch.equal(s1, s2)


def test_from_quimb_of_quimb_random_state(quimb_tensor):
    q = quimb_tensor.MPS_rand_state(7, 3, dtype="float64", seed=3)
    m = MPS.from_quimb(q)
    assert m.n_sites == 7
    p = oracle.probabilities(np.asarray(q.to_dense(), dtype=np.float64).ravel())
    assert_allclose(m.log_prob(configs(7)), np.log(p))


# --- large float32 model -----------------------------------------------------------------------

def test_float32_mnist_size():
    m = MPS((28, 28), 8, ordering="snake", dtype=torch.float32, generator=gen(0))
    assert m.n_sites == 784 and m.dtype == torch.float32
    x = torch.randint(0, 2, (5, 28, 28), generator=gen(1))
    lp = m.log_prob(x)
    assert lp.shape == (5,) and lp.dtype == torch.float32
    assert torch.isfinite(lp).all() and (lp < 0).all()
    assert torch.equal(m.log_prob(x.reshape(5, 784)), lp)
    assert math.isfinite(m.log_norm())
    samples, slp = m.sample(4, generator=gen(2))
    assert samples.shape == (4, 784) and samples.dtype == torch.uint8
    assert torch.isfinite(slp).all()
    torch.testing.assert_close(slp, m.log_prob(samples), rtol=1e-4, atol=1e-2)
    prof = m.entanglement_profile()
    assert prof.shape == (783,) and torch.isfinite(torch.as_tensor(prof)).all()


@pytest.mark.gpu
def test_cuda_matches_cpu():
    ts = gaussian_tensors(8, 4, 16)
    cpu = MPS.from_tensors(ts)
    gpu = MPS.from_tensors([t.cuda() for t in ts])
    assert gpu.device.type == "cuda"
    x = configs(8)
    assert_allclose(gpu.log_prob(x.cuda()).cpu(), cpu.log_prob(x))
    samples, lp = gpu.sample(1000, generator=torch.Generator(device="cuda").manual_seed(0))
    assert samples.device.type == "cuda"
    assert_allclose(lp.cpu(), cpu.log_prob(samples.cpu()), rtol=1e-9)
    assert gpu.entropy(3) == pytest.approx(cpu.entropy(3), rel=1e-9)


@pytest.mark.gpu
def test_cuda_kernels_match_cpu_on_a_long_chain():
    """Regrouped amplitudes, the branch-saving sampler, both bond-spectra paths, marginals, inpainting and
    the swap Rényi-2 give the CPU's numbers on CUDA (60 sites: renormalisation schedules are exercised)."""
    ts = [t / 2.0 for t in gaussian_tensors(60, 6, 23)]
    cpu = MPS.from_tensors(ts)
    gpu = MPS.from_tensors([t.cuda() for t in ts])
    x = torch.randint(0, 2, (300, 60), generator=gen(5))
    assert_allclose(gpu.log_prob(x.cuda()).cpu(), cpu.log_prob(x), rtol=1e-10, atol=1e-8)
    assert_allclose(gpu.entanglement_profile(alpha=2), cpu.entanglement_profile(alpha=2), rtol=1e-8, atol=1e-10)
    cpu.canonicalize(0)
    gpu.canonicalize(0)
    assert_allclose(gpu.entanglement_profile(), cpu.entanglement_profile(), rtol=1e-8, atol=1e-10)
    samples, lp = gpu.sample(5000, generator=torch.Generator(device="cuda").manual_seed(1))
    assert samples.device.type == "cuda"
    assert_allclose(lp.cpu(), cpu.log_prob(samples.cpu()), rtol=1e-9, atol=1e-8)
    sites = [3, 17, 18, 40]
    assert_allclose(gpu.marginal_log_prob(x[:, sites].cuda(), sites).cpu(), cpu.marginal_log_prob(x[:, sites], sites),
                    rtol=1e-9, atol=1e-9)
    known = torch.zeros(60, dtype=torch.bool)
    known[:20] = True
    filled, cond = gpu.conditional_sample(x[:50].cuda(), known, generator=torch.Generator(device="cuda").manual_seed(2))
    expected = cpu.log_prob(filled.cpu()) - cpu.marginal_log_prob(x[:50, :20], list(range(20)))
    assert_allclose(cond.cpu(), expected, rtol=1e-8, atol=1e-8)
    assert float(gpu.renyi2([0, 5, 9, 30])) == pytest.approx(float(cpu.renyi2([0, 5, 9, 30])), rel=1e-9)


@pytest.mark.gpu
def test_full_batch_sweep_on_cuda_matches_cpu():
    train = datasets.bars_and_stripes(3, 4)
    models = {}
    for device in ("cpu", "cuda"):
        model = MPS(12, 2, device=device, generator=gen(3))
        SweepTrainer(model, max_bond=8, lr=0.1, n_steps=2, n_sweeps=2).fit(train, progress=False)
        models[device] = model
    x = torch.as_tensor(train).long()
    assert_allclose(models["cuda"].log_prob(x.cuda()).cpu(), models["cpu"].log_prob(x), rtol=1e-7, atol=1e-7)


# --- bad input ---------------------------------------------------------------------------------

@pytest.fixture
def small():
    return MPS(6, 3, generator=gen(0))


def test_bad_constructor_args():
    with pytest.raises(ValueError, match="bond_dim"):
        MPS(6, 0)
    with pytest.raises(ValueError, match="bond_dim"):
        MPS(6, -2)
    with pytest.raises(TypeError):
        MPS(6, 2.5)
    with pytest.raises(ValueError):
        MPS(0, 3)
    with pytest.raises(ValueError):
        MPS(12, 3, ordering="snake")  # snake needs an image shape
    with pytest.raises(ValueError):
        MPS((3, 4), 3, ordering="zigzag")
    with pytest.raises(ValueError):
        MPS(5, 3, ordering=[0, 1, 1, 2, 3])  # not a permutation
    with pytest.raises(ValueError):
        MPS(5, 3, ordering=[0, 1, 2, 3])  # wrong length
    with pytest.raises(ValueError):
        MPS(5, 3, ordering=[0, 1, 2, 3, 5])  # out of range


def test_bad_from_tensors():
    g = gen(0)
    with pytest.raises(ValueError):
        MPS.from_tensors([torch.randn(1, 2, 3, generator=g, dtype=torch.float64),
                          torch.randn(2, 2, 1, generator=g, dtype=torch.float64)])  # bond mismatch
    with pytest.raises(ValueError):
        MPS.from_tensors([torch.randn(1, 3, 2, generator=g, dtype=torch.float64),
                          torch.randn(2, 3, 1, generator=g, dtype=torch.float64)])  # physical dim 3
    with pytest.raises(ValueError):
        MPS.from_tensors([torch.randn(2, 2, 2, generator=g, dtype=torch.float64),
                          torch.randn(2, 2, 1, generator=g, dtype=torch.float64)])  # D_0 != 1
    with pytest.raises(ValueError):
        MPS.from_tensors([torch.randn(1, 2, 2, generator=g, dtype=torch.float64),
                          torch.randn(2, 2, 2, generator=g, dtype=torch.float64)])  # D_n != 1
    with pytest.raises(ValueError):
        MPS.from_tensors([])


def test_bad_data(small):
    n = small.n_sites
    with pytest.raises(ValueError):
        small.log_prob(torch.zeros(3, n + 1))
    with pytest.raises(ValueError):
        small.log_prob(torch.zeros(3, n - 1))
    x = torch.zeros(3, n)
    x[1, 2] = 2
    with pytest.raises(ValueError):
        small.log_prob(x)
    x[1, 2] = float("nan")
    with pytest.raises(ValueError):
        small.log_prob(x)
    x[1, 2] = 0.5
    with pytest.raises(ValueError):
        small.nll(x)
    with pytest.raises(ValueError):
        small.log_amplitude(-torch.ones(2, n))
    with pytest.raises(TypeError):
        small.log_prob("010101")


def test_bad_sites(small):
    with pytest.raises(ValueError):
        small.marginal_log_prob(torch.zeros(2, 2), [0, 6])  # out of range
    with pytest.raises(ValueError):
        small.marginal_log_prob(torch.zeros(2, 2), [-1, 2])
    with pytest.raises(ValueError):
        small.marginal_log_prob(torch.zeros(2, 2), [3, 3])  # duplicated
    with pytest.raises(ValueError):
        small.marginal_log_prob(torch.zeros(2, 3), [0, 1])  # width != len(sites)
    with pytest.raises(ValueError):
        small.marginal_log_prob(2 * torch.ones(2, 2), [0, 1])  # non-binary
    with pytest.raises(ValueError):
        small.renyi2([0, 9])
    with pytest.raises(ValueError):
        small.renyi2([1, 1])
    with pytest.raises(ValueError):
        small.renyi2([0, 1], method="bogus")
    with pytest.raises(ValueError):
        small.mutual_information([2, 7], n_samples=10, generator=gen(0))
    with pytest.raises(ValueError):
        small.mutual_information([2, 2], n_samples=10, generator=gen(0))


def test_bad_bonds_and_alpha(small):
    n = small.n_sites
    for bond in (-1, n - 1, n):
        with pytest.raises(ValueError):
            small.entropy(bond)
        with pytest.raises(ValueError):
            small.schmidt_values(bond)
    for alpha in (0, -1, -0.5, float("nan")):
        with pytest.raises(ValueError, match="alpha"):
            small.entropy(1, alpha=alpha)
        with pytest.raises(ValueError, match="alpha"):
            small.entanglement_profile(alpha=alpha)
    with pytest.raises(ValueError):
        small.entropy(1, base=10)
    for c in (-1, n):
        with pytest.raises(ValueError):
            small.canonicalize(c)


def test_bad_conditional_and_sample(small):
    n = small.n_sites
    x = torch.zeros(4, n)
    with pytest.raises(ValueError):
        small.conditional_sample(x, torch.zeros(n + 1, dtype=torch.bool), generator=gen(0))
    with pytest.raises(ValueError):
        small.conditional_sample(x, torch.zeros(3, n, dtype=torch.bool), generator=gen(0))  # rows != N
    with pytest.raises(ValueError):
        small.conditional_sample(torch.zeros(4, n + 2), torch.zeros(n, dtype=torch.bool), generator=gen(0))
    bad = x.clone()
    bad[0, 0] = 3
    with pytest.raises(ValueError):
        small.conditional_sample(bad, torch.ones(n, dtype=torch.bool), generator=gen(0))
    with pytest.raises(ValueError):
        small.sample(-1, generator=gen(0))


def test_log_norm_of_a_canonical_model_with_a_rescaled_centre_matches_brute_force():
    """In canonical form ln Z = 2 ln‖centre‖ (no sweep); the value and Σ p = 1 must still be exact."""
    m = MPS(7, 3, generator=gen(31)).canonicalize(3)
    m.tensors[3] = 2.5 * m.tensors[3]
    psi = chain_psi(m)
    assert m.log_norm() == pytest.approx(math.log(np.sum(psi ** 2)), rel=1e-12)
    x = torch.from_numpy(oracle.all_configs(7)).long()
    assert float(torch.logsumexp(m.log_prob(x), 0)) == pytest.approx(0.0, abs=1e-12)
