"""RBM model: construction, validation, free energy and probabilities against brute force, Gibbs sampler.

Statistical tests use a fixed seed and a p-value threshold of 1e-3 (Pearson χ², bins merged to ≥ 5
expected counts, tests/oracle.py): with an exact sampler such a test fails for one seed in a thousand,
so a failure here means the sampler is wrong, not unlucky.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import oracle
from rbm import RBM
from rbm.model import bernoulli
from rbm.partition import exact_log_z

P_THRESHOLD = 1e-3


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def random_rbm(n_v: int, n_h: int, seed: int, scale: float = 1.0, mask=None) -> RBM:
    g = gen(seed)
    r = RBM(n_v, n_h, mask=mask, init_std=scale, generator=g)
    r.b = torch.randn(n_v, generator=g, dtype=torch.float64) * scale
    r.c = torch.randn(n_h, generator=g, dtype=torch.float64) * scale
    return r


def brute_log_p(r: RBM) -> np.ndarray:
    """log p(v) over all 2^n_visible configs (oracle order) by summing exp(-E(v, h)) over every h."""
    V = oracle.all_configs(r.n_visible).astype(np.float64)
    H = oracle.all_configs(r.n_hidden).astype(np.float64)
    W, b, c = (t.numpy() for t in r.parameters())
    neg_e = (V @ b)[:, None] + (H @ c)[None, :] + V @ W @ H.T
    log_unnorm = np.logaddexp.reduce(neg_e, axis=1)
    return log_unnorm - np.logaddexp.reduce(log_unnorm)


# ------------------------------------------------------------------------------------------------
# construction and validation
# ------------------------------------------------------------------------------------------------
def test_shapes_dtype_and_params():
    r = RBM(7, 3, generator=gen(0))
    assert r.W.shape == (7, 3) and r.b.shape == (7,) and r.c.shape == (3,)
    assert r.W.dtype == torch.float64 and r.dtype == torch.float64
    assert r.n_params == 7 * 3 + 7 + 3 and r.is_dense
    r32 = RBM(7, 3, dtype=torch.float32, generator=gen(0))
    assert r32.W.dtype == torch.float32
    assert torch.equal(RBM(7, 3, generator=gen(5)).W, RBM(7, 3, generator=gen(5)).W)
    assert not torch.equal(RBM(7, 3, generator=gen(5)).W, RBM(7, 3, generator=gen(6)).W)


def test_masked_params_count_only_unmasked_weights():
    mask = torch.zeros(6, 4, dtype=torch.bool)
    mask[:3, :2] = True
    r = RBM(6, 4, mask=mask, generator=gen(0))
    assert r.n_params == 6 + 6 + 4 and r.n_edges == 6 and not r.is_dense
    assert torch.all(r.W[~mask] == 0) and torch.all(r.W[mask] != 0)
    assert torch.equal(r.mask, mask)
    # 0/1 numpy masks are accepted too
    assert RBM(6, 4, mask=mask.numpy().astype(np.int64), generator=gen(0)).n_params == 16


@pytest.mark.parametrize("bad", [0, -3])
def test_n_hidden_must_be_positive(bad):
    with pytest.raises(ValueError, match="n_hidden"):
        RBM(5, bad)
    with pytest.raises(ValueError, match="n_visible"):
        RBM(bad, 5)


def test_non_integer_sizes_are_type_errors():
    with pytest.raises(TypeError, match="n_hidden"):
        RBM(5, 2.5)


def test_mask_of_wrong_shape_or_values():
    with pytest.raises(ValueError, match=r"mask has shape \(4, 5\); expected"):
        RBM(5, 4, mask=torch.ones(4, 5, dtype=torch.bool))
    with pytest.raises(ValueError, match="boolean"):
        RBM(2, 2, mask=np.array([[0, 2], [1, 1]]))
    with pytest.raises(TypeError, match="mask"):
        RBM(2, 2, mask=[[True, False], [True, True]])


def test_parameter_assignment_is_validated_and_masked():
    mask = torch.tensor([[True, False], [False, True], [True, True]])
    r = RBM(3, 2, mask=mask, generator=gen(0))
    r.W = torch.ones(3, 2)
    assert torch.equal(r.W, mask.to(torch.float64))
    with pytest.raises(ValueError, match="W has shape"):
        r.W = torch.ones(2, 3)
    with pytest.raises(ValueError, match="NaN"):
        r.W = torch.full((3, 2), float("nan"))
    with pytest.raises(ValueError, match="b contains NaN or inf"):
        r.b = torch.tensor([0.0, float("inf"), 0.0])
    # the model never aliases the caller's tensor
    w = torch.zeros(3, 2)
    r.W = w
    w += 5
    assert torch.all(r.W == 0)


def test_add_keeps_mask_and_rejects_nan():
    mask = torch.tensor([[True, False], [False, True]])
    r = RBM(2, 2, mask=mask, generator=gen(0))
    r.add_(torch.ones(2, 2, dtype=torch.float64), torch.zeros(2, dtype=torch.float64),
           torch.zeros(2, dtype=torch.float64))
    assert r.W[0, 1] == 0 and r.W[1, 0] == 0
    before = r.W.clone()
    with pytest.raises(ValueError, match="NaN"):
        r.add_(torch.full((2, 2), float("nan"), dtype=torch.float64), torch.zeros(2, dtype=torch.float64),
               torch.zeros(2, dtype=torch.float64))
    assert torch.equal(r.W, before)


@pytest.mark.parametrize("bad, err, match", [
    (np.full((3, 4), 0.5), ValueError, "binary"),
    (np.full((3, 5), 1), ValueError, r"shape \(3, 5\)"),
    (np.array([[0, 1, 2, 0]]), ValueError, "binary"),
    (np.array([[0, 1, np.nan, 0]]), ValueError, "NaN"),
    ("0101", TypeError, "numpy array"),
])
def test_non_binary_data_is_rejected(bad, err, match):
    r = RBM(4, 2, generator=gen(0))
    with pytest.raises(err, match=match):
        r.free_energy(bad)


# ------------------------------------------------------------------------------------------------
# energies and probabilities against brute force
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("n_v, n_h, seed", [(5, 3, 0), (4, 6, 1), (8, 4, 2)])
def test_free_energy_and_log_prob_match_brute_force(n_v, n_h, seed):
    r = random_rbm(n_v, n_h, seed)
    V = torch.from_numpy(oracle.all_configs(n_v))
    log_p = r.log_prob(V, exact_log_z(r)).numpy()
    np.testing.assert_allclose(log_p, brute_log_p(r), rtol=0, atol=1e-12)
    assert abs(np.logaddexp.reduce(log_p)) < 1e-12  # normalised
    # F(v) = -log Σ_h exp(-E(v, h))
    H = torch.from_numpy(oracle.all_configs(n_h))
    v = V[3:4].expand(H.shape[0], -1)
    e = r.energy(v, H)
    assert math.isclose(float(r.free_energy(V[3])), float(-torch.logsumexp(-e, 0)), abs_tol=1e-12)


def test_nll_carries_log_z_error():
    from bornmachine.estimate import Estimate

    r = random_rbm(4, 2, 0)
    v = oracle.all_configs(4)
    est = r.nll(v, Estimate(3.0, 0.25))
    assert est.stderr == 0.25
    assert math.isclose(est.value, float(r.free_energy(v).mean()) + 3.0)
    with pytest.raises(TypeError, match="log_z"):
        r.log_prob(v, "3.0")


def test_conditionals_match_definition():
    r = random_rbm(5, 3, 3)
    v = torch.from_numpy(oracle.all_configs(5)[:7])
    ph = r.hidden_prob(v)
    expected = torch.sigmoid(r.c + v.double() @ r.W)
    assert torch.allclose(ph, expected)
    h = torch.from_numpy(oracle.all_configs(3))
    assert torch.allclose(r.visible_prob(h), torch.sigmoid(r.b + h.double() @ r.W.T))


# ------------------------------------------------------------------------------------------------
# Gibbs sampler: χ² goodness of fit against the exact distribution (8 visible units)
# ------------------------------------------------------------------------------------------------
def test_sample_matches_exact_distribution_chi2():
    r = random_rbm(8, 4, 10)
    p = np.exp(brute_log_p(r))
    samples = r.sample(20000, n_steps=40, generator=gen(11))
    assert samples.dtype == torch.uint8 and samples.shape == (20000, 8)
    assert oracle.chi2_test(samples.numpy(), p) > P_THRESHOLD


def test_one_gibbs_sweep_leaves_exact_distribution_invariant():
    """Start from exact samples: after one sweep they must still follow p (no mixing needed)."""
    r = random_rbm(8, 4, 12)
    p = np.exp(brute_log_p(r))
    rng = np.random.default_rng(13)
    start = oracle.all_configs(8)[rng.choice(256, size=20000, p=p / p.sum())]
    out = r.gibbs(start, 1, generator=gen(14))
    assert oracle.chi2_test(out.numpy(), p) > P_THRESHOLD
    # sanity: the test has power — a sampler with a wrong sign on W is rejected
    wrong = r.copy()
    wrong.W = -r.W
    assert oracle.chi2_test(wrong.gibbs(start, 1, generator=gen(14)).numpy(), p) < P_THRESHOLD


def test_sampling_is_reproducible_with_a_generator():
    r = random_rbm(6, 3, 0)
    a = r.sample(50, n_steps=5, generator=gen(1))
    b = r.sample(50, n_steps=5, generator=gen(1))
    assert torch.equal(a, b)
    with pytest.raises(ValueError, match="init has 3 rows"):
        r.sample(4, n_steps=2, generator=gen(0), init=np.zeros((3, 6)))


def test_bernoulli_draws_alike_in_single_and_double_precision():
    """float64 uniforms for every dtype: a float32 p gives the draws of its float64 twin, so p below 2⁻²⁴
    fires no more often than it should (float32 uniforms would fire it with probability 2⁻²⁴)."""
    p = torch.rand(500, 200, generator=torch.Generator().manual_seed(1), dtype=torch.float64) ** 8
    p[:, :50] = 1e-12
    single = bernoulli(p.float(), torch.Generator().manual_seed(2))
    double = bernoulli(p, torch.Generator().manual_seed(2))
    assert single.dtype == torch.float32 and torch.equal(single.double(), double)
    assert single[:, :50].sum() == 0
