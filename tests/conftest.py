"""Shared fixtures: seeded random MPS (package constructor and hand-built Gaussian tensors)."""
from __future__ import annotations

import pytest
import torch

# The test tensors are tiny (D <= 8): intra-op threads only add synchronisation, and on a shared
# 2-core machine an oversubscribed OpenMP pool made n = 784 contractions ~40x slower. One thread.
torch.set_num_threads(1)


def pytest_collection_modifyitems(config, items):
    """Skip tests marked ``gpu`` when CUDA is unavailable."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs CUDA (marked gpu)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


def gaussian_tensors(n: int, bond_dim: int, seed: int, dtype=torch.float64) -> list[torch.Tensor]:
    """Random chain tensors (D_{k-1}, 2, D_k) with i.i.d. N(0, 1) entries (mixed signs).

    Bonds are min(bond_dim, 2**k, 2**(n-k)) so every bond is full rank, which gives generic,
    non-trivial Schmidt spectra for the entropy tests.
    """
    g = torch.Generator().manual_seed(seed)
    dims = [1] + [min(bond_dim, 2 ** k, 2 ** (n - k)) for k in range(1, n)] + [1]
    return [torch.randn(dims[k], 2, dims[k + 1], generator=g, dtype=dtype) for k in range(n)]


# (n, bond_dim, seed): small chains with varied bonds, all <= 10 sites (2**10 configs).
CASES = [(5, 2, 0), (8, 3, 1), (8, 6, 2), (10, 4, 3), (10, 5, 4)]
CASE_IDS = [f"n{n}-D{d}" for n, d, _ in CASES]


def make_mps(origin: str, n: int, bond_dim: int, seed: int):
    """``origin`` "package": ``MPS(n, bond_dim, generator=...)``; "gaussian": ``from_tensors`` of
    :func:`gaussian_tensors`."""
    from bornmachine import MPS

    if origin == "package":
        return MPS(n, bond_dim, generator=torch.Generator().manual_seed(seed))
    return MPS.from_tensors(gaussian_tensors(n, bond_dim, 100 + seed))


@pytest.fixture(params=[(o, c) for o in ("package", "gaussian") for c in CASES],
                ids=[f"{o}-{i}" for o in ("package", "gaussian") for i in CASE_IDS])
def small_mps(request):
    """Every small case, from both the package's random constructor and Gaussian ``from_tensors``."""
    origin, (n, d, seed) = request.param
    return make_mps(origin, n, d, seed)


@pytest.fixture(params=CASES, ids=CASE_IDS)
def random_mps(request):
    """An MPS from the package's own random constructor (seeded generator)."""
    n, d, seed = request.param
    return make_mps("package", n, d, seed)


@pytest.fixture(params=CASES, ids=CASE_IDS)
def gaussian_mps(request):
    """An MPS built with ``from_tensors`` from i.i.d. Gaussian tensors (signs mixed, generic spectra)."""
    n, d, seed = request.param
    return make_mps("gaussian", n, d, seed)


@pytest.fixture(params=["package", "gaussian"])
def any_mps(request):
    """One mid-sized MPS of each origin (n = 8): for the slower statistical tests."""
    from bornmachine import MPS

    if request.param == "package":
        return MPS(8, 4, generator=torch.Generator().manual_seed(7))
    return MPS.from_tensors(gaussian_tensors(8, 4, 8))


@pytest.fixture
def quimb_tensor():
    """``quimb.tensor``, or skip when quimb is not installed."""
    return pytest.importorskip("quimb.tensor")
