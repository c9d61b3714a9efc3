"""Partition function: exact enumeration against brute force over all (v, h); AIS against exact.

AIS checks use fixed seeds; "within 3 standard errors" is the criterion of the issue (a correct
estimator with Gaussian errors fails it for about 3 seeds in a thousand). The calibration of the
reported standard errors was checked separately over 20-30 seeds per model (z-scores of mean ≈ 0 and
spread ≈ 1), so these seeds are representative, not hand-picked survivors of a biased estimator.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import oracle
from helpers import prototype_data
from bornmachine.estimate import Estimate
from rbm import RBM, CDTrainer, ais_log_z, exact_log_z, reverse_ais_log_z
from rbm.model import base_rate_bias
from rbm.partition import AISEstimate, beta_schedule, estimate_log_z


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def random_rbm(n_v: int, n_h: int, seed: int, scale: float = 1.0, dtype=torch.float64) -> RBM:
    g = gen(seed)
    r = RBM(n_v, n_h, init_std=scale, generator=g, dtype=dtype)
    r.b = torch.randn(n_v, generator=g, dtype=torch.float64) * scale
    r.c = torch.randn(n_h, generator=g, dtype=torch.float64) * scale
    return r


def brute_log_z(r: RBM) -> float:
    """log Σ_{v,h} exp(-E(v, h)) over every joint configuration (plain numpy, float64)."""
    V = oracle.all_configs(r.n_visible).astype(np.float64)
    H = oracle.all_configs(r.n_hidden).astype(np.float64)
    W, b, c = (t.to(torch.float64).numpy() for t in r.parameters())
    neg_e = (V @ b)[:, None] + (H @ c)[None, :] + V @ W @ H.T
    return float(np.logaddexp.reduce(neg_e.ravel()))


@pytest.fixture(scope="module")
def trained():
    """An RBM (16 visible, 10 hidden) trained by PCD on prototype data, with its data and exact log Z."""
    data = prototype_data(16, 400, 0)
    r = RBM(16, 10, generator=gen(0))
    CDTrainer(r, lr=0.1, lr_decay="none", adaptive=False, batch_size=20, n_epochs=25, eval_every=0, seed=0).fit(data, progress=False)
    return r, data, exact_log_z(r).value


# ------------------------------------------------------------------------------------------------
# exact
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("n_v, n_h, scale", [(6, 4, 1.0), (4, 7, 1.0), (10, 10, 0.5), (12, 3, 2.0), (3, 12, 2.0),
                                             (5, 3, 200.0), (3, 9, 150.0)])
def test_exact_log_z_matches_brute_force(n_v, n_h, scale):
    r = random_rbm(n_v, n_h, seed=n_v * 31 + n_h, scale=scale)
    expected = brute_log_z(r)
    for block in (4, 64, 1 << 17):  # many chunks, few chunks, one chunk
        got = exact_log_z(r, block_elements=block)
        assert isinstance(got, Estimate) and got.stderr == 0.0
        assert math.isclose(got.value, expected, rel_tol=1e-13, abs_tol=1e-11)


@pytest.mark.parametrize("path", ["product", "min", "softplus"])
def test_exact_log_z_code_paths_agree(monkeypatch, path):
    """The three evaluations of Σ softplus (plain product, e^{-|x|} via min, elementwise) agree."""
    import rbm.partition as partition

    if path == "min":
        monkeypatch.setattr(partition, "_MAX_LOG_PROD", -1.0)
    elif path == "softplus":
        monkeypatch.setattr(partition, "_MAX_EXP_ARG", -1.0)
    for n_v, n_h, scale in [(9, 5, 1.0), (5, 8, 3.0), (11, 2, 0.3)]:
        r = random_rbm(n_v, n_h, seed=n_v + n_h, scale=scale)
        assert math.isclose(exact_log_z(r, block_elements=32).value, brute_log_z(r), rel_tol=1e-13)


def test_exact_log_z_float32_model_is_computed_in_float64():
    r = random_rbm(8, 5, 3, dtype=torch.float32)
    assert math.isclose(exact_log_z(r).value, brute_log_z(r), rel_tol=1e-13)


def test_exact_log_z_refuses_large_layers():
    r = RBM(40, 30, generator=gen(0))
    with pytest.raises(ValueError, match="use ais_log_z"):
        exact_log_z(r)
    with pytest.raises(ValueError, match="max_units = 5"):
        exact_log_z(RBM(10, 6, generator=gen(0)), max_units=5)


# ------------------------------------------------------------------------------------------------
# AIS
# ------------------------------------------------------------------------------------------------
def test_beta_schedule():
    betas = beta_schedule(10000)
    assert betas.numel() == 10000 and betas[0] == 0 and betas[-1] == 1
    assert bool((betas[1:] > betas[:-1]).all())
    assert int((betas <= 0.5).sum()) < int((betas > 0.9).sum())  # denser near β = 1
    assert beta_schedule(2).tolist() == [0.0, 1.0]
    assert beta_schedule(5).numel() == 5
    with pytest.raises(ValueError, match="n_betas"):
        beta_schedule(1)


@pytest.mark.parametrize("n_v, n_h, scale, seed", [(30, 12, 0.3, 0), (50, 20, 0.2, 1), (12, 16, 0.6, 2)])
@pytest.mark.slow
def test_ais_random_weights_within_three_stderr(n_v, n_h, scale, seed):
    r = random_rbm(n_v, n_h, seed, scale)
    exact = exact_log_z(r).value
    est = ais_log_z(r, n_chains=100, n_betas=1000, generator=gen(10 + seed))
    assert isinstance(est, AISEstimate) and est.direction == "forward" and est.n_betas == 1000
    assert est.stderr > 0 and 1 <= est.ess <= 100
    assert abs(est.value - exact) < 3 * est.stderr, (est, exact)
    rev = reverse_ais_log_z(r, n_chains=100, n_betas=1000, n_gibbs=200, generator=gen(20 + seed))
    assert abs(rev.value - exact) < 3 * rev.stderr, (rev, exact)


def test_ais_trained_model_within_three_stderr(trained):
    r, data, exact = trained
    p = (data.sum(0) + 1.0) / (len(data) + 2.0)
    independent_nll = -float(np.mean(data @ np.log(p) + (1 - data) @ np.log1p(-p)))
    assert r.nll(data, exact).value < independent_nll - 1.0  # a genuinely trained (multimodal) model
    est = ais_log_z(r, n_chains=100, n_betas=4000, data=data, generator=gen(1))
    assert abs(est.value - exact) < 3 * est.stderr, (est, exact)
    rev = reverse_ais_log_z(r, n_chains=100, n_betas=4000, data=data, n_gibbs=200, generator=gen(2))
    assert abs(rev.value - exact) < 3 * rev.stderr, (rev, exact)


def test_ais_trained_local_model_within_three_stderr():
    """Same check for a masked (2D-local) RBM trained on 4 x 4 images."""
    from rbm import masks

    data = prototype_data(16, 400, 1)
    mask = masks.local_2d((4, 4), 2, n_hidden=14)
    r = RBM(16, 14, mask=mask, generator=gen(0))
    CDTrainer(r, lr=0.2, adaptive=False, batch_size=20, n_epochs=25, eval_every=0, seed=1).fit(data, progress=False)
    assert torch.all(r.W[~mask] == 0)
    exact = exact_log_z(r).value
    est = ais_log_z(r, n_chains=100, n_betas=3000, data=data, generator=gen(11))
    assert abs(est.value - exact) < 3 * est.stderr, (est, exact)
    rev = reverse_ais_log_z(r, n_chains=100, n_betas=3000, data=data, n_gibbs=200, generator=gen(12))
    assert abs(rev.value - exact) < 3 * rev.stderr, (rev, exact)


def _group_estimates(est: AISEstimate, size: int) -> np.ndarray:
    """log Z from disjoint groups of ``size`` chains (as if from independent small runs)."""
    lw = est.log_weights.reshape(-1, size)
    log_mean = np.logaddexp.reduce(lw, axis=1) - math.log(size)
    sign = 1.0 if est.direction == "forward" else -1.0
    return est.log_z_base + sign * log_mean


def test_forward_and_reverse_bracket_exact(trained):
    """Forward AIS under-estimates log Z on average, reverse AIS from exact samples over-estimates.

    With few betas and 10 chains per run the Jensen bias (about 0.3 nats here) dominates; averaging 200
    runs (groups of one 2000-chain call) makes the sign of the bias certain (> 3 standard errors).
    """
    r, data, exact = trained
    p = np.exp(r.log_prob(oracle.all_configs(16), exact).numpy())
    rng = np.random.default_rng(5)
    exact_samples = oracle.all_configs(16)[rng.choice(2 ** 16, size=2000, p=p / p.sum())]
    fwd = _group_estimates(ais_log_z(r, n_chains=2000, n_betas=20, data=data, generator=gen(3)), 10)
    rev_est = reverse_ais_log_z(r, n_betas=20, samples=exact_samples, data=data, generator=gen(4))
    assert rev_est.direction == "reverse"
    rev = _group_estimates(rev_est, 10)
    se_f, se_r = fwd.std() / math.sqrt(fwd.size), rev.std() / math.sqrt(rev.size)
    assert fwd.mean() + 3 * se_f < exact < rev.mean() - 3 * se_r, (fwd.mean(), se_f, exact, rev.mean(), se_r)
    # with many betas the bracket closes around the exact value
    fwd1 = ais_log_z(r, n_chains=100, n_betas=3000, data=data, generator=gen(6))
    rev1 = reverse_ais_log_z(r, n_betas=3000, samples=exact_samples[:100], data=data, generator=gen(7))
    assert abs(rev1.value - fwd1.value) < 0.15
    assert fwd1.value - 3 * fwd1.stderr < exact < rev1.value + 3 * rev1.stderr


def test_ais_is_reproducible_and_base_options(trained):
    r, data, _ = trained
    a = ais_log_z(r, 10, 50, data=data, generator=gen(9))
    b = ais_log_z(r, 10, 50, data=data, seed=9)
    assert a.value == b.value and np.array_equal(a.log_weights, b.log_weights)
    p = (data.sum(0) + 1.0) / (len(data) + 2.0)
    c = ais_log_z(r, 10, 50, base_visible_bias=np.log(p) - np.log1p(-p), seed=9)
    assert math.isclose(a.value, c.value, rel_tol=1e-12)
    assert math.isfinite(ais_log_z(r, 10, 50, seed=9).value)  # default base: the RBM's visible bias
    betas = np.linspace(0, 1, 30)
    assert ais_log_z(r, 10, betas=betas, data=data, seed=1).n_betas == 30


def test_single_precision_ais_matches_double_and_exact(trained):
    """dtype=float32: the same draws as float64 (float64 uniforms), log Z to round-off, exact within 3 stderr."""
    r, data, exact = trained
    double = ais_log_z(r, 100, 1000, data=data, seed=5)
    single = ais_log_z(r, 100, 1000, data=data, seed=5, dtype=torch.float32)
    assert abs(single.value - double.value) < 1e-3
    assert abs(single.value - exact) < 3 * single.stderr
    assert estimate_log_z(r, "ais", n_chains=100, n_betas=1000, data=data, seed=5,
                          ais_dtype=torch.float32).value == single.value
    with pytest.raises(TypeError, match="dtype must be a torch dtype"):
        ais_log_z(r, 10, 50, dtype="float32")
    with pytest.raises(ValueError, match="dtype must be torch.float32 or torch.float64"):
        ais_log_z(r, 10, 50, dtype=torch.int64)


def test_estimate_log_z_picks_exact_when_small(trained):
    r, data, exact = trained
    assert estimate_log_z(r).value == exact
    est = estimate_log_z(r, "ais", n_chains=20, n_betas=200, data=data, seed=0)
    assert isinstance(est, AISEstimate)
    base = base_rate_bias(torch.as_tensor(data, dtype=r.dtype), 1.0)  # the base model given instead of the data
    assert estimate_log_z(r, "ais", n_chains=20, n_betas=200, base_visible_bias=base, seed=0).value == est.value
    with pytest.raises(ValueError, match="method"):
        estimate_log_z(r, "mcmc")


def test_ais_weights_agree_on_both_softplus_paths(trained, monkeypatch):
    """More hidden units than one product of (1 + e^-|x|) factors takes: the split path, same weights."""
    from rbm import partition

    r, data, _ = trained
    fast = ais_log_z(r, 10, 60, data=data, seed=3)
    monkeypatch.setattr(partition, "_MAX_PROD", 3)  # 10 hidden units > 3
    split = ais_log_z(r, 10, 60, data=data, seed=3)
    np.testing.assert_allclose(split.log_weights, fast.log_weights, rtol=1e-12, atol=1e-12)


def test_ais_bad_inputs(trained):
    r, data, _ = trained
    with pytest.raises(ValueError, match="n_chains must be >= 2"):
        ais_log_z(r, 1, 10)
    with pytest.raises(ValueError, match="betas must increase"):
        ais_log_z(r, 10, betas=[0.0, 0.5, 0.4, 1.0])
    with pytest.raises(ValueError, match="base_visible_bias has shape"):
        ais_log_z(r, 10, 10, base_visible_bias=np.zeros(3))
    with pytest.raises(ValueError, match="either data= or base_visible_bias="):
        ais_log_z(r, 10, 10, data=data, base_visible_bias=np.zeros(16))
    with pytest.raises(ValueError, match="binary"):
        ais_log_z(r, 10, 10, data=data * 0.5)
    with pytest.raises(ValueError, match="samples must hold at least 2 rows"):
        reverse_ais_log_z(r, n_betas=10, samples=data[:1])
    with pytest.raises(TypeError, match="RBM"):
        exact_log_z("not an rbm")
    with pytest.raises(ValueError, match="either generator= or seed="):
        ais_log_z(r, 10, 10, generator=gen(0), seed=1)


def test_sparse_products_give_the_dense_result(monkeypatch):
    """Sparse masks take sparse (COO) products in AIS; the estimate must not change."""
    import rbm.partition as partition
    from rbm import masks

    m = masks.local_2d((20, 20), 3, n_hidden=300)
    r = RBM(400, 300, mask=m, init_std=0.5, generator=gen(0))
    assert partition._Products(r.W, r.b, r.b, r.c, r.n_edges).sparse
    fwd, rev = ais_log_z(r, 10, 30, seed=1), reverse_ais_log_z(r, 10, 30, n_gibbs=5, seed=2)
    monkeypatch.setattr(partition, "SPARSE_DENSITY", 0.0)
    assert not partition._Products(r.W, r.b, r.b, r.c, r.n_edges).sparse
    fwd_d, rev_d = ais_log_z(r, 10, 30, seed=1), reverse_ais_log_z(r, 10, 30, n_gibbs=5, seed=2)
    assert math.isclose(fwd.value, fwd_d.value, rel_tol=1e-12)
    assert math.isclose(rev.value, rev_d.value, rel_tol=1e-12)
