"""CD-k / PCD training: NLL decreases, history, checkpoint + resume bit-identical, centering against brute
force, early stopping, bad inputs."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import oracle
from helpers import fit_until, prototype_data
from rbm import RBM, CDTrainer, masks
from rbm.partition import exact_log_z
from rbm.training import centered_gradient, centered_step


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def independent_nll(x: np.ndarray) -> float:
    p = (x.sum(0) + 1.0) / (len(x) + 2.0)
    return -float(np.mean(x @ np.log(p) + (1 - x) @ np.log1p(-p)))


@pytest.mark.parametrize("persistent", [True, False], ids=["PCD", "CD"])
def test_training_decreases_exact_nll(persistent):
    both = prototype_data(12, 600, 0)
    x, valid = both[:400], both[400:]
    r = RBM(12, 6, generator=gen(0))
    trainer = CDTrainer(r, persistent=persistent, lr=0.1, lr_decay="none", adaptive=False, batch_size=20, n_epochs=20,
                        eval_every=2, seed=0)
    hist = trainer.fit(x, valid, progress=False)
    assert [h["epoch"] for h in hist] == list(range(1, 21))
    evaluated = [h for h in hist if h["train_nll"] is not None]
    assert [h["epoch"] for h in evaluated] == list(range(2, 21, 2))
    assert all(h["log_z_method"] == "exact" and h["log_z_stderr"] == 0.0 for h in evaluated)
    first, last = evaluated[0]["train_nll"], evaluated[-1]["train_nll"]
    assert last < first - 1.0 and last < independent_nll(x) - 1.0
    assert evaluated[-1]["valid_nll"] < evaluated[0]["valid_nll"] - 1.0
    # the recorded NLL is the model's exact NLL
    assert math.isclose(last, r.nll(x, exact_log_z(r)).value, rel_tol=1e-12)
    assert all(h["time_s"] >= 0 for h in hist)


def test_visible_bias_initialised_from_data_marginals():
    x = prototype_data(10, 300, 2)
    r = RBM(10, 3, generator=gen(0))
    CDTrainer(r, lr=1e-12, momentum=0.0, weight_decay=0.0, n_epochs=1, eval_every=0, seed=0).fit(x, progress=False)
    p = (x.sum(0) + 1.0) / (len(x) + 2.0)
    np.testing.assert_allclose(r.b.numpy(), np.log(p / (1 - p)), atol=1e-9)


def test_ais_evaluation_for_larger_models():
    x = prototype_data(30, 100, 3)
    r = RBM(30, 25, generator=gen(0))
    hist = CDTrainer(r, lr=0.05, batch_size=25, n_epochs=1, exact_max_units=20, ais_chains=20, ais_betas=100,
                     seed=0).fit(x, progress=False)
    assert hist[-1]["log_z_method"] == "ais" and hist[-1]["log_z_stderr"] > 0


def test_single_precision_evaluation_matches_double():
    """The default float32 AIS of the evaluation gives the float64 one's NLLs (same draws) to round-off."""
    x = prototype_data(30, 100, 3)
    runs = {}
    for dtype in (torch.float32, torch.float64):
        r = RBM(30, 25, generator=gen(0))
        runs[dtype] = CDTrainer(r, lr=0.05, batch_size=25, n_epochs=3, ais_chains=20, ais_betas=200, ais_dtype=dtype,
                                seed=0).fit(x, x[:30], progress=False)
    for a, b in zip(runs[torch.float32], runs[torch.float64]):
        assert a["log_z_method"] == "ais"
        assert abs(a["log_z"] - b["log_z"]) < 1e-3 and abs(a["valid_nll"] - b["valid_nll"]) < 1e-3


def _run(tmp_path, n_epochs, stop_after=None, name="ckpt.npz", lr_decay="none", lr=0.1, **kw):
    x = prototype_data(12, 200, 4)
    mask = masks.local_1d(12, 5, 2)
    r = RBM(12, mask.shape[1], mask=mask, generator=gen(0))
    trainer = CDTrainer(r, lr=lr, lr_decay=lr_decay, momentum=0.7, batch_size=16, n_epochs=n_epochs, eval_every=1,
                        seed=123, **kw)

    def stop(record):
        if stop_after is not None and record["epoch"] == stop_after:
            raise KeyboardInterrupt  # an interrupted run

    try:
        trainer.fit(x, checkpoint=tmp_path / name, callback=stop, progress=False)
    except KeyboardInterrupt:
        pass
    return r, trainer


@pytest.mark.parametrize("persistent, kw", [(True, {}), (False, {}), (True, {"adaptive": True, "lr": 0.01}),
                                            (True, {"centering": False})], ids=["PCD", "CD", "adaptive", "plain"])
def test_resume_from_checkpoint_is_bit_identical(tmp_path, persistent, kw):
    kw = dict(kw, persistent=persistent)
    full, full_tr = _run(tmp_path, 6, name="full.npz", **kw)
    part, _ = _run(tmp_path, 6, stop_after=2, name="part.npz", **kw)
    assert not torch.equal(part.W, full.W)
    resumed, res_tr = _run(tmp_path, 6, name="part.npz", **kw)  # picks up at epoch 2
    for a, b in zip(resumed.parameters(), full.parameters()):
        assert torch.equal(a, b)
    assert [h["epoch"] for h in res_tr.history] == list(range(1, 7))
    assert [h["train_nll"] for h in res_tr.history] == [h["train_nll"] for h in full_tr.history]
    if persistent:
        assert torch.equal(res_tr._chains, full_tr._chains)


def test_resume_extends_training_and_finished_runs_do_nothing(tmp_path):
    a, _ = _run(tmp_path, 3, name="x.npz")
    b, tr = _run(tmp_path, 3, name="x.npz")  # already finished: parameters reloaded, no extra epoch
    assert torch.equal(a.W, b.W) and len(tr.history) == 3
    c, tr = _run(tmp_path, 5, name="x.npz")  # n_epochs may grow
    full, _ = _run(tmp_path, 5, name="y.npz")
    assert len(tr.history) == 5 and torch.equal(c.W, full.W)


def test_linear_lr_decay_and_its_resume(tmp_path):
    full, full_tr = _run(tmp_path, 4, name="d_full.npz", lr_decay="linear")
    assert [h["lr"] for h in full_tr.history] == pytest.approx([0.1, 0.075, 0.05, 0.025])
    _run(tmp_path, 4, stop_after=1, name="d_part.npz", lr_decay="linear")
    resumed, _ = _run(tmp_path, 4, name="d_part.npz", lr_decay="linear")
    assert torch.equal(resumed.W, full.W)
    with pytest.raises(ValueError, match="n_epochs: checkpoint 4 vs trainer 6"):
        _run(tmp_path, 6, name="d_part.npz", lr_decay="linear")


def test_resume_refuses_other_settings_or_data(tmp_path):
    _run(tmp_path, 2, name="z.npz")
    with pytest.raises(ValueError, match="lr: checkpoint 0.1 vs trainer 0.2"):
        x = prototype_data(12, 200, 4)
        mask = masks.local_1d(12, 5, 2)
        r = RBM(12, mask.shape[1], mask=mask, generator=gen(0))
        CDTrainer(r, lr=0.2, lr_decay="none", momentum=0.7, batch_size=16, n_epochs=3, seed=123).fit(
            x, checkpoint=tmp_path / "z.npz", progress=False)
    with pytest.raises(ValueError, match="other training data"):
        CDTrainer(r, lr=0.1, lr_decay="none", momentum=0.7, batch_size=16, n_epochs=3, seed=123).fit(
            x[:100], checkpoint=tmp_path / "z.npz", progress=False)
    with pytest.raises(ValueError, match="another connection mask"):
        other = RBM(12, mask.shape[1], mask=masks.random(12, mask.shape[1], 20, seed=0), generator=gen(0))
        CDTrainer(other, lr=0.1, lr_decay="none", momentum=0.7, batch_size=16, n_epochs=3, seed=123).fit(
            x, checkpoint=tmp_path / "z.npz", progress=False)
    r.save(tmp_path / "model.npz")
    with pytest.raises(ValueError, match="not an RBM training checkpoint"):
        CDTrainer(r, seed=0).fit(x, checkpoint=tmp_path / "model.npz", progress=False)


def test_callback_can_stop_early():
    x = prototype_data(8, 50, 5)
    r = RBM(8, 3, generator=gen(0))
    trainer = CDTrainer(r, n_epochs=10, eval_every=0, seed=0)
    hist = trainer.fit(x, callback=lambda rec: rec["epoch"] == 3, progress=False)
    assert len(hist) == 3 and hist[-1]["train_nll"] is None


@pytest.mark.parametrize("kwargs, err, match", [
    ({"k": 0}, ValueError, "k must be >= 1"),
    ({"lr": 0.0}, ValueError, "lr must be in"),
    ({"lr_decay": "cosine"}, ValueError, "lr_decay"),
    ({"momentum": 1.0}, ValueError, "momentum must be in"),
    ({"weight_decay": -1.0}, ValueError, "weight_decay"),
    ({"batch_size": 2.5}, TypeError, "batch_size"),
    ({"log_z": "magic"}, ValueError, "log_z"),
    ({"eval_every": -1}, ValueError, "eval_every"),
    ({"centering_rate": 0.0}, ValueError, "centering_rate must be in"),
    ({"centering_rate": 1.5}, ValueError, "centering_rate must be in"),
    ({"patience": 0}, ValueError, "patience must be >= 1"),
    ({"patience": 1.5}, TypeError, "patience"),
    ({"backoff": 1.0}, ValueError, "backoff must be in"),
    ({"backoff": 0.0}, ValueError, "backoff must be in"),
    ({"ais_dtype": "float32"}, TypeError, "ais_dtype must be a torch dtype"),
    ({"ais_dtype": torch.float16}, ValueError, "ais_dtype must be torch.float32 or torch.float64"),
])
def test_bad_hyper_parameters(kwargs, err, match):
    with pytest.raises(err, match=match):
        CDTrainer(RBM(4, 2, generator=gen(0)), **kwargs)


def test_bad_training_data():
    r = RBM(6, 2, generator=gen(0))
    tr = CDTrainer(r, seed=0)
    with pytest.raises(ValueError, match="train must be binary"):
        tr.fit(np.full((10, 6), 0.3))
    with pytest.raises(ValueError, match=r"train has shape \(10, 5\)"):
        tr.fit(np.zeros((10, 5)))
    with pytest.raises(ValueError, match="valid must be binary"):
        tr.fit(np.zeros((10, 6)), valid=np.full((3, 6), 2))
    with pytest.raises(TypeError, match="RBM"):
        CDTrainer("model")


def test_divergence_is_reported():
    x = prototype_data(6, 40, 6)
    r = RBM(6, 3, generator=gen(0))
    r.W = torch.full((6, 3), 1.7e308, dtype=torch.float64)
    with pytest.raises(ValueError, match="training diverged at epoch 1"):
        CDTrainer(r, lr=1e10, eval_every=0, init_visible_bias=False, seed=0).fit(x, progress=False)


# ------------------------------------------------------------------------------------------------
# centering (Melchior, Fischer & Wiskott 2016)
# ------------------------------------------------------------------------------------------------
def _log_likelihood(V, H, data, energy) -> torch.Tensor:
    """Mean log p(data) of the model exp(-energy(v, h)) / Z, by summing over all V (2^n_v, n_v), H (2^n_h, n_h)."""
    neg_f = torch.logsumexp(-energy(V, H), dim=1)  # (2^n_v,) log Σ_h e^{-E}
    idx = torch.from_numpy(oracle.config_index(data))
    return neg_f[idx].mean() - torch.logsumexp(neg_f, dim=0)


def test_centered_gradient_is_the_transformed_ordinary_gradient():
    n_v, n_h = 5, 3
    g = gen(7)
    W0, b0, c0 = torch.randn(n_v, n_h, generator=g), torch.randn(n_v, generator=g), torch.randn(n_h, generator=g)
    W0, b0, c0 = (t.double() for t in (W0, b0, c0))
    mu = torch.rand(n_v, generator=g, dtype=torch.float64)
    lam = torch.rand(n_h, generator=g, dtype=torch.float64)
    data = prototype_data(n_v, 30, 8)
    V = torch.from_numpy(oracle.all_configs(n_v)).double()
    H = torch.from_numpy(oracle.all_configs(n_h)).double()
    # ordinary parameters (W, b, c) and centered ones (W, b̃ = b + Wλ, c̃ = c + Wᵀμ) of the same model
    W, b, c = (t.clone().requires_grad_() for t in (W0, b0, c0))
    ordinary = _log_likelihood(V, H, data, lambda V, H: -(V @ W @ H.T + (V @ b)[:, None] + (H @ c)[None, :]))
    grads = torch.autograd.grad(ordinary, (W, b, c))
    Wc, bt, ct = (t.clone().requires_grad_() for t in (W0, b0 + W0 @ lam, c0 + W0.T @ mu))
    centered = _log_likelihood(V, H, data, lambda V, H: -((V - mu) @ Wc @ (H - lam).T + ((V - mu) @ bt)[:, None]
                                                        + ((H - lam) @ ct)[None, :]))
    assert float(centered.detach()) == pytest.approx(float(ordinary.detach()), abs=1e-12)  # one model, two forms
    grads_c = torch.autograd.grad(centered, (Wc, bt, ct))
    torch.testing.assert_close(centered_gradient(*grads, mu, lam), grads_c[0], rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(grads[1], grads_c[1], rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(grads[2], grads_c[2], rtol=1e-10, atol=1e-12)
    # a step of the centered parameters moves the ordinary ones (b = b̃ - Wλ, c = c̃ - Wᵀμ) by centered_step
    step = tuple(0.1 * t for t in grads_c)
    dW, db, dc = centered_step(*step, mu, lam)
    W1 = W0 + step[0]
    torch.testing.assert_close(dW, step[0])
    torch.testing.assert_close(b0 + db, (b0 + W0 @ lam + step[1]) - W1 @ lam, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(c0 + dc, (c0 + W0.T @ mu + step[2]) - W1.T @ mu, rtol=1e-12, atol=1e-12)


def test_centered_training_leaves_an_ordinary_rbm():
    x = prototype_data(12, 300, 9)
    mask = masks.local_1d(12, 5, 2)
    r = RBM(12, mask.shape[1], mask=mask, generator=gen(0))
    hist = CDTrainer(r, lr=0.1, batch_size=20, n_epochs=8, eval_every=8, centering=True, seed=0).fit(
        x, progress=False)
    assert torch.all(r.W[~mask] == 0)
    V = oracle.all_configs(12).astype(np.float64)
    H = oracle.all_configs(r.n_hidden).astype(np.float64)
    W, b, c = (t.numpy() for t in r.parameters())
    log_unnorm = np.logaddexp.reduce((V @ b)[:, None] + (H @ c)[None, :] + V @ W @ H.T, axis=1)
    brute = log_unnorm - np.logaddexp.reduce(log_unnorm)
    np.testing.assert_allclose(r.log_prob(torch.from_numpy(V), exact_log_z(r)).numpy(), brute, atol=1e-10)
    assert hist[-1]["train_nll"] == pytest.approx(-brute[oracle.config_index(x)].mean(), abs=1e-10)


def test_centering_beats_plain_cd_on_a_plateau():
    x = prototype_data(12, 400, 10, noise=0.1)
    nll = {}
    for centering in (False, True):
        r = RBM(12, 6, generator=gen(0))
        nll[centering] = CDTrainer(r, lr=0.05, batch_size=20, n_epochs=10, eval_every=10, centering=centering,
                                   seed=0).fit(x, progress=False)[-1]["train_nll"]
    assert nll[True] < nll[False]


def test_adaptive_first_step_moves_every_weight_by_lr():
    x = prototype_data(10, 50, 12)
    mask = masks.random(10, 6, 30, seed=0)
    r = RBM(10, 6, mask=mask, generator=gen(0))
    before = r.W.clone()
    CDTrainer(r, lr=0.01, adaptive=True, centering=False, weight_decay=0.0, batch_size=50, n_epochs=1, eval_every=0,
              init_visible_bias=False, average=None, seed=0).fit(x, progress=False)
    step = (r.W - before).abs()
    assert torch.all(step[~mask] == 0)
    torch.testing.assert_close(step[mask], torch.full_like(step[mask], 0.01), rtol=1e-4, atol=0)  # Adam: lr · sign(g)


# ------------------------------------------------------------------------------------------------
# early stopping
# ------------------------------------------------------------------------------------------------
def _overfit(tmp_path=None, stop_after=None, name="es.npz", **kw):
    """A small training set that valid data (another sample) soon stops following."""
    x, xv = prototype_data(10, 40, 11, noise=0.15), prototype_data(10, 200, 11, noise=0.15)[100:]
    r = RBM(10, 8, generator=gen(0))
    trainer = CDTrainer(r, lr=0.3, momentum=0.5, weight_decay=0.0, batch_size=10, n_epochs=60, seed=3, **kw)
    fit_until(trainer, x, xv, None if tmp_path is None else tmp_path / name, stop_after)
    return r, trainer, xv


def test_early_stopping_keeps_the_best_validation_parameters():
    r, trainer, xv = _overfit(patience=3)
    hist = trainer.history
    valid = [h["valid_nll"] for h in hist]
    best = int(np.argmin(valid)) + 1
    assert trainer.best_epoch == best == hist[-1]["best_epoch"] and len(hist) == best + 3 < 60
    assert r.nll(xv, exact_log_z(r)).value == pytest.approx(valid[best - 1], abs=1e-10)
    assert [h["best_epoch"] for h in hist] == [int(np.argmin(valid[:i])) + 1 for i in range(1, len(hist) + 1)]
    assert trainer.fit(prototype_data(10, 40, 11, noise=0.15), xv, progress=False) is trainer.history  # done
    assert len(trainer.history) == best + 3


def test_without_patience_or_valid_there_is_no_early_stopping():
    _, trainer, _ = _overfit()
    assert len(trainer.history) == 60 and trainer.best_epoch is None
    x = prototype_data(10, 40, 11)
    trainer = CDTrainer(RBM(10, 3, generator=gen(0)), n_epochs=4, patience=1, seed=0)
    assert [h["best_epoch"] for h in trainer.fit(x, progress=False)] == [None] * 4


def _untimed(history):
    return [{k: v for k, v in h.items() if not k.endswith("time_s")} for h in history]


def test_early_stopping_resumes_bit_identically(tmp_path):
    full, full_tr, _ = _overfit(tmp_path, name="full.npz", patience=3)
    n = len(full_tr.history)
    for stop_after in (2, n - 1):
        part, _, _ = _overfit(tmp_path, stop_after=stop_after, name=f"p{stop_after}.npz", patience=3)
        resumed, tr, _ = _overfit(tmp_path, name=f"p{stop_after}.npz", patience=3)
        assert all(torch.equal(a, b) for a, b in zip(resumed.parameters(), full.parameters()))
        assert _untimed(tr.history) == _untimed(full_tr.history) and tr.best_epoch == full_tr.best_epoch
    again, tr, _ = _overfit(tmp_path, name="full.npz", patience=3)  # a stopped run stays stopped
    assert len(tr.history) == n and torch.equal(again.W, full.W)


def _overshooting(tmp_path=None, stop_after=None, name="bo.npz", **kw):
    """Adam at lr 3 on a small RBM: epochs overshoot (validation NLL jumps by tens of nats)."""
    x, xv = prototype_data(16, 200, 1, noise=0.1), prototype_data(16, 400, 1, noise=0.1)[200:]
    r = RBM(16, 10, generator=gen(0))
    trainer = CDTrainer(r, lr=3.0, n_epochs=30, patience=4, batch_size=20, seed=0, **kw)
    fit_until(trainer, x, xv, None if tmp_path is None else tmp_path / name, stop_after)
    return r, trainer


def test_backoff_restarts_from_the_best_epoch_at_a_lower_rate():
    _, trainer = _overshooting()
    hist = trainer.history
    backoffs = [h["epoch"] for h in hist if h["backoff"]]
    assert len(backoffs) >= 2
    for h in hist:  # lr = lr₀ · 0.5^(backoffs so far, this one included) · the linear decay
        n_before = sum(g["backoff"] for g in hist if g["epoch"] <= h["epoch"])
        assert h["lr"] == pytest.approx(3.0 * 0.5 ** n_before * (1 - (h["epoch"] - 1) / 30))
    for e in backoffs:  # only after an epoch 2 % (≥ 2 nats) above the best before it
        before = [g["valid_nll"] for g in hist if g["epoch"] < e - 1]
        last = hist[e - 2]["valid_nll"]
        assert before and last > min(before) + max(0.02 * min(before), 2.0)
    _, plain = _overshooting(backoff=None)
    assert not any(h["backoff"] for h in plain.history)
    best = min(h["valid_nll"] for h in hist)
    assert best < min(h["valid_nll"] for h in plain.history) - 1.0  # backing off reaches a better model


def test_backoff_resumes_bit_identically(tmp_path):
    full, full_tr = _overshooting(tmp_path, name="full.npz")
    first = next(h["epoch"] for h in full_tr.history if h["backoff"])
    for stop_after in (first - 1, first):
        _overshooting(tmp_path, stop_after=stop_after, name=f"p{stop_after}.npz")
        resumed, tr = _overshooting(tmp_path, name=f"p{stop_after}.npz")
        assert all(torch.equal(a, b) for a, b in zip(resumed.parameters(), full.parameters()))
        assert _untimed(tr.history) == _untimed(full_tr.history)


# ------------------------------------------------------------------------------------------------
# sparse masks: CSR products on the edges
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kw", [{}, {"centering": False}, {"adaptive": False, "lr": 0.1}, {"persistent": False},
                                {"k": 2}], ids=["default", "plain", "momentum", "CD", "k2"])
def test_sparse_products_train_like_the_dense_masked_weights(kw):
    x, xv = prototype_data(30, 120, 4, noise=0.1), prototype_data(30, 160, 4, noise=0.1)[120:]
    mask = masks.random(30, 12, 48, seed=1)
    runs = []
    for sparse in (False, True):
        r = RBM(30, 12, mask=mask, generator=gen(0))
        tr = CDTrainer(r, n_epochs=4, batch_size=20, patience=3, sparse=sparse, seed=2, **{"lr": 0.05, **kw})
        tr.fit(x, xv, progress=False)
        runs.append((r, tr))
    (dense, tr_d), (sparse, tr_s) = runs
    assert tr_s._uses_sparse() and not tr_d._uses_sparse()
    for a, b in zip(dense.parameters(), sparse.parameters()):
        assert torch.allclose(a, b, atol=1e-10, rtol=0)
    assert bool((sparse.W[~sparse.mask] == 0).all())
    for h_d, h_s in zip(tr_d.history, tr_s.history):
        assert h_d["valid_nll"] == pytest.approx(h_s["valid_nll"], abs=1e-9)
    for m_d, m_s in zip(tr_d._velocity + (tr_d._second or []), tr_s._velocity + (tr_s._second or [])):
        assert torch.allclose(m_d, m_s, atol=1e-10, rtol=0)  # the moments too: checkpoints are alike


def test_sparse_products_are_chosen_for_sparse_large_masks():
    small = CDTrainer(RBM(30, 12, mask=masks.random(30, 12, 48, seed=1)))
    dense = CDTrainer(RBM(400, 300, generator=gen(0)))
    local = CDTrainer(RBM(400, 300, mask=masks.random(400, 300, 2700, seed=1), generator=gen(0)))
    assert not small._uses_sparse() and not dense._uses_sparse() and local._uses_sparse()
    assert not CDTrainer(local.rbm, sparse=False)._uses_sparse() and CDTrainer(small.rbm, sparse=True)._uses_sparse()
    with pytest.raises(TypeError, match="sparse must be True, False or None"):
        CDTrainer(small.rbm, sparse="yes")


def test_add_edges_updates_only_the_edges_and_refuses_non_finite_results():
    mask = masks.random(6, 4, 8, seed=0)
    r = RBM(6, 4, mask=mask, generator=gen(1))
    edges = mask.reshape(-1).nonzero()[:, 0]
    before = [p.clone() for p in r.parameters()]
    dw = torch.arange(1.0, edges.numel() + 1, dtype=torch.float64)
    r.add_edges_(edges, dw, torch.ones(6, dtype=torch.float64), torch.zeros(4, dtype=torch.float64))
    assert torch.equal(r.W.reshape(-1)[edges], before[0].reshape(-1)[edges] + dw)
    assert bool((r.W[~mask] == 0).all()) and torch.equal(r.b, before[1] + 1)
    snapshot = [p.clone() for p in r.parameters()]
    with pytest.raises(ValueError, match="W would contain NaN or inf"):
        r.add_edges_(edges, torch.full_like(dw, math.inf), torch.zeros(6, dtype=torch.float64),
                     torch.zeros(4, dtype=torch.float64))
    assert all(torch.equal(a, b) for a, b in zip(r.parameters(), snapshot))  # unchanged
    with pytest.raises(ValueError, match="one value per edge"):
        r.add_edges_(edges, dw[:-1], torch.zeros(6, dtype=torch.float64), torch.zeros(4, dtype=torch.float64))


def test_average_zero_is_the_current_parameters_and_averaging_smooths_the_validation_curve():
    x = prototype_data(12, 600, 10, noise=0.1)
    train, valid = x[:500], x[500:]
    runs = {}
    for average in (None, 0.0, 0.99):
        r = RBM(12, 8, generator=gen(0))
        history = CDTrainer(r, lr=0.05, batch_size=20, n_epochs=30, lr_decay="none", average=average,
                            seed=0).fit(train, valid, progress=False)
        runs[average] = (np.array([h["valid_nll"] for h in history]), r.W.clone())
    np.testing.assert_array_equal(runs[None][0], runs[0.0][0])  # decay 0: the average is the current point
    torch.testing.assert_close(runs[None][1], runs[0.0][1], rtol=0, atol=0)
    jumps = {a: np.abs(np.diff(v[10:])).mean() for a, (v, _) in runs.items()}
    assert jumps[0.99] < 0.5 * jumps[None]  # PCD's epoch-to-epoch wander, averaged out
    assert runs[0.99][0][10:].mean() < runs[None][0][10:].mean()


def test_average_rejects_a_decay_outside_0_1():
    r = RBM(4, 2, generator=gen(0))
    for bad in (1.0, -0.1):
        with pytest.raises(ValueError, match="average"):
            CDTrainer(r, average=bad)
