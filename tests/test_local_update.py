"""The shared local update: gradient of a merged tensor, the trust-region line search, minibatches."""
from __future__ import annotations

import math

import pytest
import torch

from bornmachine.distributed import Shard
from bornmachine.training.local_update import (LINE_SEARCH_FRACTIONS, LocalUpdate, divide_by_amplitudes,
                                               line_search, nll_gradient)


def gen(seed):
    return torch.Generator().manual_seed(seed)


def local_nll(merged, left, right):
    """−(2/N) Σ ln|ψ_i| + ln ‖B‖², ψ_i = L_iᵀ B R_i, by direct contraction."""
    psi = ((left @ merged) * right).sum(1)
    return float(-2.0 * torch.log(psi.abs()).mean() + torch.log((merged * merged).sum()))


def problem(seed, n=200, a=6, c=5):
    g = gen(seed)
    left, right = torch.randn(n, a, generator=g, dtype=torch.float64), torch.randn(n, c, generator=g, dtype=torch.float64)
    merged = torch.randn(a, c, generator=g, dtype=torch.float64)
    return left, right, merged / merged.norm()


def gradient(merged, left, right):
    psi = ((left @ merged) * right).sum(1)
    weighted, n_zero = divide_by_amplitudes(right, psi)
    return nll_gradient(merged, left.T @ weighted, psi.shape[0] - n_zero), psi


@pytest.mark.parametrize("seed", range(4))
def test_line_search_takes_the_best_step_of_its_grid(seed):
    left, right, merged = problem(seed)
    grad, psi = gradient(merged, left, right)
    g = ((left @ grad) * right).sum(1)
    eta_max = 0.3 / float(grad.norm())
    norms = (float((merged * merged).sum()), float((merged * grad).sum()), float((grad * grad).sum()))
    eta = line_search(psi, g, psi.shape[0], norms, eta_max)
    grid = [0.0] + [eta_max * f for f in LINE_SEARCH_FRACTIONS]
    direct = [local_nll(merged - e * grad, left, right) for e in grid]
    assert eta == pytest.approx(grid[min(range(len(grid)), key=direct.__getitem__)])
    assert eta > 0 and local_nll(merged - eta * grad, left, right) < local_nll(merged, left, right)
    assert abs(float((merged * grad).sum())) < 1e-10  # the gradient is orthogonal to B (scale invariance)


def test_the_line_search_replaces_only_steps_the_trust_region_would_cut():
    left, right, merged = problem(7)
    grad, _ = gradient(merged, left, right)
    norm = float(grad.norm())
    calls = []

    def search(eta_max):
        calls.append(eta_max)
        return 0.5 * eta_max

    inside = LocalUpdate(lr=0.1 / norm, n_steps=1, batch_size=None, max_step=0.3, generator=gen(0))
    assert inside.step_size(norm, search) == pytest.approx(0.1 / norm) and not calls
    outside = LocalUpdate(lr=1.0 / norm, n_steps=1, batch_size=None, max_step=0.3, generator=gen(0))
    assert outside.step_size(norm, search) == pytest.approx(0.15 / norm) and calls == [pytest.approx(0.3 / norm)]
    assert LocalUpdate(lr=1.0 / norm, n_steps=1, batch_size=None, max_step=None,
                       generator=gen(0)).step_size(norm, search) == pytest.approx(1.0 / norm)


def test_optimise_lowers_the_local_nll_and_draws_minibatches_of_the_global_rows():
    left, right, merged = problem(3, n=120)

    def sample_sum_of(b, idx, step):
        sub_left, sub_right = (left, right) if idx is None else (left[idx], right[idx])
        psi = ((sub_left @ b) * sub_right).sum(1)
        weighted, n_zero = divide_by_amplitudes(sub_right, psi)
        return sub_left.T @ weighted, psi.shape[0] - n_zero, n_zero, psi

    def amplitudes_of(direction, idx):
        sub_left, sub_right = (left, right) if idx is None else (left[idx], right[idx])
        return ((sub_left @ direction) * sub_right).sum(1)

    update = LocalUpdate(lr=10.0, n_steps=5, batch_size=None, max_step=0.3, generator=gen(0))
    out, zero = update.optimise(merged.clone(), sample_sum_of, amplitudes_of, Shard(0, 120, 120), "cpu", "test")
    assert zero == 0 and math.isclose(float(out.norm()), 1.0, rel_tol=1e-12)
    assert local_nll(out, left, right) < local_nll(merged, left, right) - 0.1
    batches = LocalUpdate(lr=0.1, n_steps=1, batch_size=30, max_step=0.3, generator=gen(1))
    idx = batches.minibatch(Shard(40, 80, 120), "cpu")  # this rank holds rows 40..79 of 120
    assert idx.numel() < 30 and int(idx.min()) >= 0 and int(idx.max()) < 40


def test_amplitude_weights_leave_out_zero_nan_and_tiny_amplitudes_without_a_host_read():
    from bornmachine.training.local_update import amplitude_weights, zero_amplitude_floor

    floor = zero_amplitude_floor(torch.float64)
    psi = torch.tensor([0.5, -2.0, 0.0, -0.0, floor, -floor, 2 * floor, float("nan")], dtype=torch.float64)
    out = torch.empty_like(psi)
    w = amplitude_weights(psi, out=out)
    assert w is out and torch.isfinite(w).all()
    expected = torch.tensor([2.0, -0.5, 0, 0, 0, 0, 1 / (2 * floor), 0], dtype=torch.float64)
    torch.testing.assert_close(w, expected, rtol=1e-15, atol=0)
    assert int(torch.count_nonzero(w)) == 3
    weighted, n_zero = divide_by_amplitudes(torch.ones(8, 2, dtype=torch.float64), psi)
    assert n_zero == 5 and torch.equal(weighted[:, 0], expected)


def test_a_settled_proposal_is_the_step_of_the_trust_region_and_line_search():
    """propose + settle (device step, two numbers read) take the η that step_size and line_search choose."""
    from bornmachine.training.local_update import line_search_step

    left, right, merged = problem(5)
    grad, psi = gradient(merged, left, right)
    g = ((left @ grad) * right).sum(1)
    norm = float(grad.norm())

    def sample_sum_of(b, idx, step):
        p = ((left @ b) * right).sum(1)
        weighted, n_zero = divide_by_amplitudes(right, p)
        return left.T @ weighted, p.shape[0] - n_zero, n_zero, p

    for lr in (0.1 / norm, 1.0 / norm):  # inside and beyond the trust region
        update = LocalUpdate(lr=lr, n_steps=1, batch_size=None, max_step=0.3, generator=gen(0))
        proposal = update.propose(merged, sample_sum_of, Shard(0, 200, 200), "cpu")
        assert proposal.summary.tolist()[0] == pytest.approx(norm, rel=1e-12)
        settled, check = update.settle(proposal, proposal.summary.tolist(), lambda d, idx: ((left @ d) * right).sum(1),
                                       "test")
        norms = (float((merged * merged).sum()), float((merged * grad).sum()), norm ** 2)
        eta = update.step_size(norm, lambda eta_max: line_search(psi, g, 200, norms, eta_max))
        expected = (merged - eta * grad) / (merged - eta * grad).norm()
        torch.testing.assert_close(settled, expected, rtol=1e-12, atol=1e-14)
        assert (check is None) == (lr < 0.3 / norm)
        assert float(line_search_step(psi, g, torch.tensor(200), norms, 0.3 / norm)) == line_search(psi, g, 200, norms,
                                                                                                  0.3 / norm)
