"""Tracking log Z over training (rbm.tracking): bridge sampling and jackknife errors against exact
enumeration, the Kalman filter inside CDTrainer against the exact log Z of every epoch, checkpoints."""
from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch

from helpers import configs, gen, prototype_data
from rbm import RBM, CDTrainer
from rbm.model import free_energy
from rbm.partition import ais_log_z, exact_log_z
from rbm.tracking import bridge_log_ratio, log_mean_exp_variance


def exact_samples(r: RBM, m: int, seed: int) -> torch.Tensor:
    v = configs(r.n_visible).double()
    p = torch.softmax(-r.free_energy(v), 0)
    return v[torch.multinomial(p, m, replacement=True, generator=gen(seed))]


def nearby(r: RBM, scale: float, seed: int) -> RBM:
    other = copy.deepcopy(r)
    g = gen(seed)
    other.set_parameters(*(p + scale * torch.randn(p.shape, generator=g, dtype=p.dtype) for p in r.parameters()))
    return other


def test_jackknife_variance_of_log_mean_exp_matches_its_spread():
    rng = np.random.default_rng(0)
    log_w = rng.normal(0.0, 0.7, (4000, 64))
    spread = np.var(np.log(np.exp(log_w).mean(1)))
    jack = np.mean([log_mean_exp_variance(row) for row in log_w[:400]])
    assert 0.8 * spread < jack < 1.2 * spread


@pytest.mark.parametrize("scale", [0.02, 0.1])
def test_bridge_log_ratio_against_exact_enumeration(scale):
    """Exact samples (equal weights) of two nearby 13-visible RBMs: the bridge estimate of log Z_new − log Z_old
    lies within 4 of its jackknife standard deviations of the exact difference, over seeds."""
    old = RBM(13, 9, generator=gen(1))
    old.set_parameters(*(2.0 * p for p in old.parameters()))
    new = nearby(old, scale, 2)
    exact = exact_log_z(new).value - exact_log_z(old).value
    z = []
    for seed in range(20):
        v_old, v_new = exact_samples(old, 200, seed), exact_samples(new, 200, 100 + seed)
        delta = [free_energy(v, *new.parameters()) - free_energy(v, *old.parameters()) for v in (v_old, v_new)]
        zero = torch.zeros(200, dtype=torch.float64)
        value, variance = bridge_log_ratio(zero, delta[0], zero, delta[1])
        z.append((value - exact) / math.sqrt(variance))
    z = np.array(z)
    assert np.abs(z).max() < 4.0 and abs(z.mean()) < 1.0 and 0.4 < z.std() < 1.6


def test_bridge_between_ais_runs_of_nearby_models():
    """Two AIS runs' weighted final states bridge two nearby 24-hidden RBMs: the log Z difference to well
    within the error of the difference of the two runs' own estimates (exact enumeration as reference)."""
    old = RBM(14, 24, generator=gen(3))
    old.set_parameters(*(4.0 * p for p in old.parameters()))
    new = nearby(old, 0.02, 4)
    exact = exact_log_z(new).value - exact_log_z(old).value
    bridged, raw = [], []
    for seed in range(12):
        a, b = ais_log_z(old, 8, 20, seed=seed), ais_log_z(new, 8, 20, seed=50 + seed)
        assert a.final_states.shape == (8, 14) and set(a.final_states.unique().tolist()) <= {0.0, 1.0}
        delta = [free_energy(est.final_states, *new.parameters()) - free_energy(est.final_states, *old.parameters())
                 for est in (a, b)]
        lw = [torch.as_tensor(est.log_weights) for est in (a, b)]
        bridged.append(bridge_log_ratio(lw[0], delta[0], lw[1], delta[1])[0] - exact)
        raw.append(b.value - a.value - exact)
    assert np.sqrt(np.mean(np.square(bridged))) < 0.4 * np.sqrt(np.mean(np.square(raw)))


def _trained(track: bool, tmp_path=None, stop_after=None, name="track.npz", n_epochs=12, seed=1):
    both = prototype_data(16, 700, 5, n_protos=4, noise=0.08)
    x, valid = both[:600], both[600:]
    r = RBM(16, 30, generator=gen(6))
    trainer = CDTrainer(r, lr=0.02, batch_size=20, n_epochs=n_epochs, log_z="ais", ais_chains=16, ais_betas=20,
                        track_log_z=track, patience=50, seed=seed)
    exact = []

    def record_exact(record):
        evaluated = copy.deepcopy(r)
        evaluated.set_parameters(*(p.clone() for p in trainer._evaluated()))
        exact.append(exact_log_z(evaluated).value)
        if stop_after is not None and record["epoch"] == stop_after:
            raise KeyboardInterrupt

    try:
        trainer.fit(x, valid, callback=record_exact, progress=False,
                    checkpoint=None if tmp_path is None else tmp_path / name)
    except KeyboardInterrupt:
        pass
    return r, trainer, np.array(exact)


def test_tracked_log_z_follows_the_exact_one_better_than_each_epochs_ais():
    """With a short, noisy AIS (16 chains × 20 temperatures), the tracked log Z of each epoch is nearer the
    exact one than that epoch's own AIS, and much nearer in its epoch-to-epoch changes (what early stopping
    compares), pooled over four training seeds; the NLLs use it, the raw estimate is kept as log_z_ais."""
    errors = {"tracked": [], "raw": [], "tracked steps": [], "raw steps": []}
    for seed in (1, 2, 3, 8):
        _, trainer, exact = _trained(True, seed=seed)
        hist = trainer.history
        tracked = np.array([h["log_z"] for h in hist])
        raw = np.array([h["log_z_ais"] for h in hist])
        assert tracked[0] == raw[0] and not np.allclose(tracked, raw)
        assert all(h["log_z_stderr"] > 0 and math.isfinite(h["valid_nll"]) for h in hist)
        errors["tracked"] += list(tracked - exact)
        errors["raw"] += list(raw - exact)
        errors["tracked steps"] += list(np.diff(tracked[3:]) - np.diff(exact[3:]))  # past the first large moves
        errors["raw steps"] += list(np.diff(raw[3:]) - np.diff(exact[3:]))
    rms = {k: float(np.sqrt(np.mean(np.square(v)))) for k, v in errors.items()}
    assert rms["tracked"] < 0.9 * rms["raw"], rms
    assert rms["tracked steps"] < 0.75 * rms["raw steps"], rms


def test_untracked_log_z_is_each_epochs_own_ais():
    _, trainer, _ = _trained(False, n_epochs=3)
    assert all(h["log_z_ais"] is None and h["log_z_method"] == "ais" for h in trainer.history)
    with pytest.raises(TypeError, match="track_log_z"):
        CDTrainer(RBM(4, 3), track_log_z="yes")


def test_tracking_resumes_bit_identically(tmp_path):
    full, full_tr, _ = _trained(True, tmp_path, name="full.npz", n_epochs=6)
    _trained(True, tmp_path, stop_after=3, name="part.npz", n_epochs=6)
    resumed, res_tr, _ = _trained(True, tmp_path, name="part.npz", n_epochs=6)
    assert [h["log_z"] for h in res_tr.history] == [h["log_z"] for h in full_tr.history]
    for a, b in zip(resumed.parameters(), full.parameters()):
        assert torch.equal(a, b)


def test_a_checkpoint_without_tracking_state_resumes_with_a_fresh_filter(tmp_path):
    """A run checkpointed untracked (as before tracking existed) resumes tracked: the filter starts at the
    first evaluation after the resume."""
    _trained(False, tmp_path, stop_after=2, name="old.npz", n_epochs=4)
    _, trainer, _ = _trained(True, tmp_path, name="old.npz", n_epochs=4)
    hist = trainer.history
    assert [h["epoch"] for h in hist] == [1, 2, 3, 4] and hist[1]["log_z_ais"] is None
    assert hist[2]["log_z"] == hist[2]["log_z_ais"] and hist[3]["log_z"] != hist[3]["log_z_ais"]
