"""Tests of the pure chain kernels (``bornmachine.chain_kernels``) and the shared linear algebra
(``bornmachine.linalg``) against the brute-force oracle.

The kernels take and return plain tensors (no model object), so every test builds its chain by hand
(``conftest.gaussian_tensors``: i.i.d. N(0, 1) entries, mixed signs, full-rank bonds) and compares
with a dense enumeration of the 2**n amplitudes (n <= 10) at float64 tolerances.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import oracle
from conftest import CASE_IDS, CASES, gaussian_tensors

from bornmachine import chain_kernels as kernels, linalg

RTOL = 1e-10
ALPHAS = [0.5, 1, 2, 3.7, float("inf")]


def as_np(t) -> np.ndarray:
    return t.detach().cpu().numpy().astype(np.float64)


def random_matrix(m: int, k: int, seed: int, dtype=torch.float64) -> torch.Tensor:
    return torch.randn(m, k, generator=torch.Generator().manual_seed(seed), dtype=dtype)


# --- truncated_svd ------------------------------------------------------------------------------

def test_truncated_svd_without_truncation_reconstructs_the_matrix():
    mat = random_matrix(12, 7, 0)
    u, s, vh, discarded = linalg.truncated_svd(mat)
    assert u.shape == (12, 7) and s.shape == (7,) and vh.shape == (7, 7)
    assert discarded == 0.0
    torch.testing.assert_close(u @ torch.diag(s) @ vh, mat, rtol=1e-12, atol=1e-12)
    assert torch.all(s[:-1] >= s[1:])  # descending
    torch.testing.assert_close(u.T @ u, torch.eye(7, dtype=mat.dtype), rtol=0, atol=1e-12)
    torch.testing.assert_close(vh @ vh.T, torch.eye(7, dtype=mat.dtype), rtol=0, atol=1e-12)


@pytest.mark.parametrize("max_bond", [1, 3, 6, 7, 50])
def test_truncated_svd_max_bond_keeps_the_largest_values_and_reports_discarded_weight(max_bond):
    mat = random_matrix(10, 7, 1)
    s_full = torch.linalg.svdvals(mat)
    u, s, vh, discarded = linalg.truncated_svd(mat, max_bond=max_bond)
    keep = min(max_bond, 7)
    assert u.shape == (10, keep) and s.shape == (keep,) and vh.shape == (keep, 7)
    torch.testing.assert_close(s, s_full[:keep], rtol=1e-12, atol=0)
    expected = float((s_full[keep:] ** 2).sum() / (s_full ** 2).sum())
    assert discarded == pytest.approx(expected, rel=1e-12, abs=1e-15)
    # Eckart-Young: the squared Frobenius error of the rank-`keep` approximation is the dropped weight
    err = float(torch.linalg.matrix_norm(mat - u @ torch.diag(s) @ vh) ** 2 / (s_full ** 2).sum())
    assert err == pytest.approx(expected, rel=1e-9, abs=1e-12)


def test_truncated_svd_cutoff_is_relative_to_the_largest_value():
    # a matrix with known singular values 1, 0.6, 0.3, 0.1, 0.01
    q1, _ = torch.linalg.qr(random_matrix(8, 5, 2))
    q2, _ = torch.linalg.qr(random_matrix(5, 5, 3))
    values = torch.tensor([1.0, 0.6, 0.3, 0.1, 0.01], dtype=torch.float64)
    for scale in (1.0, 1e-3, 1e5):  # the cutoff is relative: the scale of the matrix does not matter
        mat = scale * q1 @ torch.diag(values) @ q2.T
        for cutoff, keep in [(0.0, 5), (0.005, 5), (0.05, 4), (0.2, 3), (0.5, 2), (0.7, 1), (0.999, 1)]:
            _, s, _, discarded = linalg.truncated_svd(mat, cutoff=cutoff)
            assert s.shape == (keep,), (scale, cutoff)
            assert torch.all(s > cutoff * s[0])
            expected = float((values[keep:] ** 2).sum() / (values ** 2).sum())
            assert discarded == pytest.approx(expected, rel=1e-9, abs=1e-15)
        # max_bond and cutoff together: the stricter one wins
        _, s, _, _ = linalg.truncated_svd(mat, max_bond=2, cutoff=0.05)
        assert s.shape == (2,)
        _, s, _, _ = linalg.truncated_svd(mat, max_bond=4, cutoff=0.5)
        assert s.shape == (2,)


def test_truncated_svd_always_keeps_at_least_one_value():
    mat = random_matrix(6, 4, 4)
    for max_bond, cutoff in [(0, 0.0), (1, 0.99), (0, 0.9999)]:
        u, s, vh, discarded = linalg.truncated_svd(mat, max_bond=max_bond, cutoff=cutoff)
        assert s.shape == (1,) and u.shape == (6, 1) and vh.shape == (1, 4)
        assert 0.0 < discarded < 1.0
    # equal singular values: nothing falls below a relative cutoff, all are kept
    u, s, vh, discarded = linalg.truncated_svd(torch.eye(4, dtype=torch.float64), cutoff=0.5)
    assert s.shape == (4,) and discarded == 0.0
    # the zero matrix: one (zero) value at least, no NaN in the discarded weight
    u, s, vh, discarded = linalg.truncated_svd(torch.zeros(3, 5, dtype=torch.float64), max_bond=2, cutoff=0.1)
    assert 1 <= s.shape[0] <= 2 and discarded == 0.0
    assert torch.isfinite(u).all() and torch.isfinite(vh).all()


def test_truncated_svd_float32():
    mat = random_matrix(9, 6, 5, dtype=torch.float32)
    u, s, vh, discarded = linalg.truncated_svd(mat, max_bond=6)
    assert u.dtype == s.dtype == vh.dtype == torch.float32
    torch.testing.assert_close(u @ torch.diag(s) @ vh, mat, rtol=1e-5, atol=1e-5)
    assert isinstance(discarded, float)


# --- canonicalize -------------------------------------------------------------------------------

@pytest.mark.parametrize("n, bond_dim, seed", CASES, ids=CASE_IDS)
def test_canonicalize_isometries_norm_and_log_norm(n, bond_dim, seed):
    tensors = gaussian_tensors(n, bond_dim, 200 + seed)
    originals = [t.clone() for t in tensors]
    psi = oracle.dense_state(tensors)
    half_log_z = 0.5 * math.log(float(np.sum(psi ** 2)))
    for center in sorted({0, n // 2, n - 1}):
        out, log_scale = kernels.canonicalize(tensors, center)
        for t, t0 in zip(tensors, originals):  # inputs untouched
            assert torch.equal(t, t0)
        assert log_scale == pytest.approx(half_log_z, rel=RTOL, abs=1e-12)
        for k, a in enumerate(out):
            dl, _, dr = a.shape
            assert dl <= tensors[k].shape[0] and dr <= tensors[k].shape[2]  # bonds never grow
            if k < center:  # left isometry: sum_s A_s^T A_s = I
                m = a.reshape(dl * 2, dr)
                torch.testing.assert_close(m.T @ m, torch.eye(dr, dtype=a.dtype), rtol=0, atol=1e-12)
            elif k > center:  # right isometry: sum_s A_s A_s^T = I
                m = a.reshape(dl, 2 * dr)
                torch.testing.assert_close(m @ m.T, torch.eye(dl, dtype=a.dtype), rtol=0, atol=1e-12)
            else:
                assert float(torch.linalg.vector_norm(a)) == pytest.approx(1.0, rel=1e-12)
        # same state: the canonical chain is Psi / ||Psi||
        np.testing.assert_allclose(oracle.dense_state(out), psi / math.exp(half_log_z), rtol=1e-9, atol=1e-12)


def test_canonicalize_float32_784_sites_does_not_overflow():
    """ln ||Psi|| of a 784-site chain is ~800 nats: e^1600 overflows float32 (and float64) as a raw product."""
    t64 = gaussian_tensors(784, 4, 11)
    t32 = [t.to(torch.float32) for t in t64]
    out32, log32 = kernels.canonicalize(t32, 392)
    _, log64 = kernels.canonicalize(t64, 392)
    assert math.isfinite(log32) and log32 > 100  # really beyond exp's float range
    assert log32 == pytest.approx(log64, rel=1e-5)
    assert all(a.dtype == torch.float32 and torch.isfinite(a).all() for a in out32)
    assert float(torch.linalg.vector_norm(out32[392])) == pytest.approx(1.0, rel=1e-5)
    # log_norm on the same chain: finite and consistent (ln Z = 2 ln ||Psi||)
    ln_z32 = kernels.log_norm(t32)
    assert ln_z32.dtype == torch.float32 and torch.isfinite(ln_z32)
    assert float(ln_z32) == pytest.approx(2 * log64, rel=1e-5)


# --- log_norm -----------------------------------------------------------------------------------

@pytest.mark.parametrize("n, bond_dim, seed", CASES, ids=CASE_IDS)
def test_log_norm_matches_brute_force(n, bond_dim, seed):
    tensors = gaussian_tensors(n, bond_dim, 300 + seed)
    psi = oracle.dense_state(tensors)
    ln_z = kernels.log_norm(tensors)
    assert ln_z.shape == ()
    assert float(ln_z) == pytest.approx(math.log(float(np.sum(psi ** 2))), rel=RTOL, abs=1e-12)


def test_log_norm_is_differentiable():
    tensors = [t.requires_grad_(True) for t in gaussian_tensors(4, 2, 12)]
    assert torch.autograd.gradcheck(lambda *ts: kernels.log_norm(list(ts)), tensors, eps=1e-6, atol=1e-7)
    # analytic check: d ln Z / dA = 2 (dPsi/dA . Psi) / Z; for a product state (D = 1) it is 2A_k/|A_k|^2
    prod = [torch.randn(1, 2, 1, generator=torch.Generator().manual_seed(k), dtype=torch.float64).requires_grad_(True)
            for k in range(5)]
    kernels.log_norm(prod).backward()
    for a in prod:
        torch.testing.assert_close(a.grad, 2 * a.detach() / (a.detach() ** 2).sum(), rtol=1e-12, atol=1e-14)


# --- renyi_from_schmidt -------------------------------------------------------------------------

@pytest.mark.parametrize("d", [1, 2, 5, 64])
@pytest.mark.parametrize("alpha", ALPHAS + [200.0])
def test_renyi_of_a_uniform_spectrum_is_ln_d(d, alpha):
    s = torch.full((d,), 1 / math.sqrt(d), dtype=torch.float64)
    assert linalg.renyi_from_schmidt(s, alpha) == pytest.approx(math.log(d), abs=1e-12)
    # unnormalised input is normalised first (p = s^2 / sum s^2), float32 input is fine
    assert linalg.renyi_from_schmidt(3.0 * s.float(), alpha) == pytest.approx(math.log(d), abs=1e-6)


@pytest.mark.parametrize("alpha", ALPHAS)
def test_renyi_of_known_spectra_matches_the_oracle(alpha):
    rng = np.random.default_rng(0)
    for size in (2, 3, 10):
        s = np.sort(rng.random(size))[::-1]
        s /= np.linalg.norm(s)
        expected = oracle.renyi_entropy(s, alpha)
        assert linalg.renyi_from_schmidt(torch.from_numpy(s.copy()), alpha) == pytest.approx(expected, rel=1e-10)
    # a pure product (one value) has zero entropy; zeros in the spectrum are ignored
    one = torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64)
    assert linalg.renyi_from_schmidt(one, alpha) == pytest.approx(0.0, abs=1e-15)
    two = torch.tensor([math.sqrt(0.5), math.sqrt(0.5), 0.0], dtype=torch.float64)
    assert linalg.renyi_from_schmidt(two, alpha) == pytest.approx(math.log(2), abs=1e-12)


def test_renyi_large_alpha_is_stable_and_tends_to_min_entropy():
    p = torch.tensor([0.7, 0.2, 0.1], dtype=torch.float64)
    s = p.sqrt()
    values = [linalg.renyi_from_schmidt(s, a) for a in (0.5, 1, 2, 10, 1000, float("inf"))]
    assert all(math.isfinite(v) for v in values)
    assert all(a >= b - 1e-12 for a, b in zip(values, values[1:]))  # non-increasing in alpha
    assert values[-2] == pytest.approx(values[-1], rel=2e-3)
    assert values[-1] == pytest.approx(-math.log(0.7), rel=1e-12)


# --- log_amplitude ------------------------------------------------------------------------------

@pytest.mark.parametrize("n, bond_dim, seed", CASES, ids=CASE_IDS)
def test_log_amplitude_matches_brute_force(n, bond_dim, seed):
    tensors = gaussian_tensors(n, bond_dim, 400 + seed)
    psi = oracle.dense_state(tensors)
    x = torch.from_numpy(oracle.all_configs(n)).long()
    sign, log_abs = kernels.log_amplitude(tensors, x)
    assert sign.shape == log_abs.shape == (2 ** n,)
    np.testing.assert_array_equal(as_np(sign), np.sign(psi))
    np.testing.assert_allclose(as_np(log_abs), np.log(np.abs(psi)), rtol=1e-10, atol=1e-10)


def test_log_amplitude_zero_amplitude_gives_sign_zero_and_minus_inf():
    f64 = dict(dtype=torch.float64)
    # (a) a product state with Psi(x_0 = 1) = 0: the zero appears at the first site
    product = [torch.tensor([[[1.0], [0.0]]], **f64)] + [torch.full((1, 2, 1), 0.5, **f64) for _ in range(3)]
    # (b) a bond-2 chain whose zero comes from a cancellation-free selection in the middle
    middle = [torch.tensor([[[1.0, 2.0], [0.5, -1.0]]], **f64),
              torch.tensor([[[1.0, 0.0], [0.0, 0.0]], [[0.0, 0.0], [0.0, 1.0]]], **f64),
              torch.tensor([[[1.0], [0.0]], [[0.0], [0.0]]], **f64),
              torch.tensor([[[0.3], [-0.4]]], **f64)]
    # (c) an exact cancellation: Psi(0, 0) = 1*1 + 1*(-1) = 0
    cancel = [torch.tensor([[[1.0, 1.0], [1.0, 2.0]]], **f64), torch.tensor([[[1.0], [1.0]], [[-1.0], [1.0]]], **f64)]
    for tensors in (product, middle, cancel):
        n = len(tensors)
        psi = oracle.dense_state(tensors)
        assert np.any(psi == 0)
        x = torch.from_numpy(oracle.all_configs(n)).long()
        for dtype in (torch.float64, torch.float32):
            sign, log_abs = kernels.log_amplitude([t.to(dtype) for t in tensors], x)
            assert not torch.isnan(sign).any() and not torch.isnan(log_abs).any()
            zero = torch.from_numpy(psi == 0)
            assert torch.all(sign[zero] == 0) and torch.all(log_abs[zero] == -math.inf)
            np.testing.assert_array_equal(as_np(sign), np.sign(psi))
            np.testing.assert_allclose(as_np(log_abs[~zero]), np.log(np.abs(psi[~zero.numpy()])), rtol=1e-5)


def test_log_amplitude_float32_784_sites_is_finite():
    t64 = gaussian_tensors(784, 3, 13)
    t32 = [t.to(torch.float32) for t in t64]
    x = torch.randint(0, 2, (16, 784), generator=torch.Generator().manual_seed(0))
    sign32, log32 = kernels.log_amplitude(t32, x)
    sign64, log64 = kernels.log_amplitude(t64, x)
    assert torch.isfinite(log32).all() and log32.dtype == torch.float32
    assert float(log64.abs().max()) > 100  # beyond float32's exp range: only running norms work
    torch.testing.assert_close(log32.double(), log64, rtol=1e-4, atol=1e-2)
    assert torch.equal(sign32.double(), sign64)


def _log_amplitude_by_products(tensors, x):
    """Reference: ln|Ψ| by plain per-sample vector-matrix products with a per-site running norm."""
    out = []
    for row in x.tolist():
        v, total = tensors[0][0, row[0]], 0.0
        for a, bit in zip(tensors[1:], row[1:]):
            v = v @ a[:, bit, :]
            norm = torch.linalg.vector_norm(v)
            total = total + torch.log(norm)
            v = v / norm
        out.append(total)
    return torch.stack(out)


def test_log_amplitude_long_chain_and_its_gradient_match_plain_products():
    """Rows regrouped per site and renormalised every few sites give the plain products' values,
    on the no-grad path and on the autograd path, and the autograd path's gradient is the reference's."""
    tensors = gaussian_tensors(40, 4, 17)
    x = torch.randint(0, 2, (12, 40), generator=torch.Generator().manual_seed(3))
    ref_params = [t.clone().requires_grad_(True) for t in tensors]
    ref = _log_amplitude_by_products(ref_params, x)
    ref.sum().backward()
    _, plain = kernels.log_amplitude(tensors, x)
    torch.testing.assert_close(plain, ref.detach(), rtol=1e-12, atol=1e-10)
    params = [t.clone().requires_grad_(True) for t in tensors]
    _, with_grad = kernels.log_amplitude(params, x)
    torch.testing.assert_close(with_grad.detach(), plain, rtol=1e-12, atol=1e-10)
    with_grad.sum().backward()
    for p, q in zip(params, ref_params):
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("n, bond_dim, seed", CASES, ids=CASE_IDS)
def test_bond_spectra_of_any_gauge_and_of_the_canonical_form_match_the_dense_state(n, bond_dim, seed):
    tensors = [3.0 * t for t in gaussian_tensors(n, bond_dim, 900 + seed)]  # neither canonical nor normalised
    psi = oracle.dense_state(tensors)
    canonical, _ = kernels.canonicalize(tensors, 0)
    for spectra in (kernels.bond_spectra(tensors), kernels.bond_spectra(canonical, right_canonical=True)):
        assert len(spectra) == n - 1
        for bond, lam in enumerate(spectra):
            ref = oracle.schmidt_values(psi, range(bond + 1))
            lam = as_np(lam)
            assert lam.size <= min(2 ** (bond + 1), 2 ** (n - bond - 1), tensors[bond].shape[2])
            assert np.all(np.diff(lam) <= 0)
            np.testing.assert_allclose(lam, ref[: lam.size], atol=1e-7)  # λ² to ~1e-15 absolute
            np.testing.assert_allclose(lam[:3] ** 2, ref[: min(3, lam.size)] ** 2, rtol=1e-10)
            assert np.sum(ref[lam.size:] ** 2) < 1e-20  # nothing of weight was left out


@pytest.mark.parametrize("shape", [(12, 8), (8, 12), (10, 10)])
@pytest.mark.parametrize("absorb", ["left", "right"])
@pytest.mark.parametrize("max_bond, cutoff", [(None, 0.0), (4, 0.0), (None, 0.3), (6, 0.1)])
def test_truncated_split_keeps_the_svd_rank_and_gives_the_best_truncation(shape, absorb, max_bond, cutoff):
    mat = random_matrix(*shape, seed=7 + shape[0])
    u, s, vh, _ = linalg.truncated_svd(mat, max_bond, cutoff)
    x, y = linalg.truncated_split(mat, max_bond, cutoff, absorb)
    keep = s.numel()
    assert x.shape == (shape[0], keep) and y.shape == (keep, shape[1])
    iso = x if absorb == "right" else y.T
    torch.testing.assert_close(iso.T @ iso, torch.eye(keep, dtype=mat.dtype), rtol=0, atol=1e-12)
    best = (u * s) @ vh  # the optimal rank-keep approximation (Eckart–Young), then normalised
    torch.testing.assert_close(x @ y, best / torch.linalg.matrix_norm(best), rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize("shape, absorb", [((64, 64), "left"), ((64, 64), "right"), ((40, 56), "left"),
                                           ((56, 40), "right")])
@pytest.mark.parametrize("n_start", [3, 8])
def test_subspace_split_matches_the_best_truncation_from_a_rough_start(shape, absorb, n_start):
    """A spectrum with a gap after 8 values (1 … 0.3, then ≤ 1e-3): from a start of n_start columns of the
    isometry side's top space plus 10 % noise (3 columns: the bond grows through the random completion), one
    iteration gives the optimal rank-8 split to 1e-6 and the isometry orthonormal to round-off."""
    g = torch.Generator().manual_seed(31 + shape[0] + n_start)
    m, k = shape
    left, _ = torch.linalg.qr(torch.randn(m, m, dtype=torch.float64, generator=g))
    right, _ = torch.linalg.qr(torch.randn(k, k, dtype=torch.float64, generator=g))
    r = min(m, k)
    s = torch.cat([torch.linspace(1.0, 0.3, 8, dtype=torch.float64), 1e-3 * torch.rand(r - 8, generator=g)])
    mat = (left[:, :r] * s) @ right[:, :r].T
    space = left if absorb == "right" else right
    start = space[:, :n_start] + 0.1 * torch.randn(space.shape[0], n_start, dtype=torch.float64, generator=g)
    x, y = linalg.subspace_split(mat, start, 8, 1e-7, absorb, generator=g)
    assert x.shape == (m, 8) and y.shape == (8, k)
    iso = x if absorb == "right" else y.T
    torch.testing.assert_close(iso.T @ iso, torch.eye(8, dtype=mat.dtype), rtol=0, atol=1e-12)
    u, sv, vh, _ = linalg.truncated_svd(mat, 8)
    best = (u * sv) @ vh
    torch.testing.assert_close(x @ y, best / torch.linalg.matrix_norm(best), rtol=0, atol=1e-6)


def test_subspace_split_keeps_only_the_rank_there_is():
    """A rank-3 (48, 48) matrix at max_bond 8: three values kept (the cutoff drops the rest), product exact."""
    g = torch.Generator().manual_seed(5)
    mat = torch.randn(48, 3, dtype=torch.float64, generator=g) @ torch.randn(3, 48, dtype=torch.float64, generator=g)
    for absorb in ("left", "right"):
        x, y = linalg.subspace_split(mat, torch.randn(48, 2, dtype=torch.float64, generator=g), 8, 1e-7, absorb,
                                     generator=g)
        assert x.shape[1] == 3
        torch.testing.assert_close(x @ y, mat / torch.linalg.matrix_norm(mat), rtol=0, atol=1e-10)


def test_sample_never_draws_a_bit_of_zero_probability():
    """Site 5 can only be 0 (A_5[:, 1, :] = 0), and its A_5[:, 0, :] is 0.1 % short of an isometry, so
    ‖v‖² − ‖v A_0‖² > 0: the branch-saving sampler must still never emit x_5 = 1 (ln p = -inf)."""
    tensors, _ = kernels.canonicalize(gaussian_tensors(10, 3, 5), 0)
    dl, _, dr = tensors[5].shape
    q, _ = torch.linalg.qr(torch.randn(dl, dr, dtype=torch.float64, generator=torch.Generator().manual_seed(6)))
    site = torch.zeros(dl, 2, dr, dtype=torch.float64)
    site[:, 0, :] = 0.999 * q
    tensors[5] = site
    x, logp = kernels.sample(tensors, 20000, generator=torch.Generator().manual_seed(7))
    assert int(x[:, 5].sum()) == 0
    assert torch.isfinite(logp).all()


def test_log_amplitude_of_an_empty_batch_is_empty_on_both_paths():
    tensors = gaussian_tensors(7, 3, 19)
    x = torch.zeros(0, 7, dtype=torch.long)
    for params in (tensors, [t.clone().requires_grad_(True) for t in tensors]):
        sign, log_abs = kernels.log_amplitude(params, x)
        assert sign.shape == log_abs.shape == (0,)
