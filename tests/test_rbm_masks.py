"""Connection masks: counts, locality, clipping at borders, architectures matched within 1 %."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from rbm import RBM, CDTrainer, masks


def columns(mask: torch.Tensor) -> list[np.ndarray]:
    return [np.flatnonzero(mask[:, j].numpy()) for j in range(mask.shape[1])]


# ------------------------------------------------------------------------------------------------
def test_dense():
    m = masks.dense(5, 3)
    assert m.dtype == torch.bool and m.shape == (5, 3) and m.all()
    assert masks.n_params(m) == 15 + 5 + 3


@pytest.mark.parametrize("balanced", [True, False])
def test_random_has_exact_edge_count_and_is_seeded(balanced):
    m = masks.random(20, 7, 45, seed=3, balanced=balanced)
    assert m.shape == (20, 7) and int(m.sum()) == 45
    assert torch.equal(m, masks.random(20, 7, 45, seed=3, balanced=balanced))
    assert not torch.equal(m, masks.random(20, 7, 45, seed=4, balanced=balanced))
    if balanced:
        deg = m.sum(0)
        assert int(deg.max()) - int(deg.min()) <= 1  # 45 / 7: degrees 6 or 7


def test_random_rejects_impossible_counts():
    with pytest.raises(ValueError, match="exceeds"):
        masks.random(4, 3, 13, seed=0)
    with pytest.raises(ValueError, match="n_edges"):
        masks.random(4, 3, 0, seed=0)


def test_local_1d_contiguous_windows_clipped_at_the_end():
    # 11 units, window 4, stride 3: starts 0, 3, 6, 9 (P = ceil(7/3) + 1 = 4), the last clipped to [9, 11)
    m = masks.local_1d(11, 4, 3)
    cols = columns(m)
    assert [c.tolist() for c in cols] == [[0, 1, 2, 3], [3, 4, 5, 6], [6, 7, 8, 9], [9, 10]]
    # every unit covered, overlaps where stride < window
    assert m.any(1).all()
    # stride tiling exactly: no clipped window
    assert [len(c) for c in columns(masks.local_1d(10, 4, 3))] == [4, 4, 4]


def test_local_1d_same_padding_clips_both_ends():
    cols = columns(masks.local_1d(6, 3, 1, padding="same"))
    assert [c.tolist() for c in cols] == [[0, 1], [0, 1, 2], [1, 2, 3], [2, 3, 4], [3, 4, 5], [4, 5]]


def test_local_1d_channels_are_spread_evenly():
    m = masks.local_1d(12, 3, 3, n_hidden=10)  # 4 positions, 10 units -> 2 or 3 units per position
    starts = [int(c[0]) for c in columns(m)]
    counts = np.bincount(starts)[[0, 3, 6, 9]]
    assert sorted(counts.tolist()) == [2, 2, 3, 3]
    assert starts == sorted(starts)
    fewer = masks.local_1d(12, 3, 1, n_hidden=3)  # 10 positions, 3 units: spread, not bunched
    assert [int(c[0]) for c in columns(fewer)] == [0, 3, 6]


def test_local_2d_windows_are_rectangles_clipped_at_borders():
    shape = (6, 8)
    m = masks.local_2d(shape, window=3, stride=2)
    # rows: starts 0, 2, 4 -> [0,3), [2,5), [4,6) clipped; cols: starts 0, 2, 4, 6 -> [6,8) clipped; P = 3 * 4
    assert m.shape == (48, 12)
    sizes = []
    for j, c in enumerate(columns(m)):
        y, x = np.divmod(c, shape[1])
        # a full rectangle: every (y, x) in the bounding box is present
        box = (y.max() - y.min() + 1) * (x.max() - x.min() + 1)
        assert box == len(c) and y.max() - y.min() < 3 and x.max() - x.min() < 3
        sizes.append(len(c))
    assert sorted(set(sizes)) == [4, 6, 9]  # 9 inside, 6 clipped on one side, 4 in the corner
    assert m.any(1).all()  # all pixels covered
    last = columns(m)[-1]
    assert np.divmod(last, 8)[0].tolist() == [4, 4, 5, 5] and np.divmod(last, 8)[1].tolist() == [6, 7, 6, 7]


def test_local_2d_rectangular_window_and_locality_on_mnist_shape():
    m = masks.local_2d((28, 28), window=(2, 5), stride=(2, 5))
    for c in columns(m):
        y, x = np.divmod(c, 28)
        assert np.ptp(y) <= 1 and np.ptp(x) <= 4
    assert int(m.sum()) == 28 * 28  # stride = window: a partition of the image


def test_bad_mask_options():
    with pytest.raises(ValueError, match="shape"):
        masks.local_2d((28,), 5)
    with pytest.raises(ValueError, match="padding"):
        masks.local_1d(10, 3, padding="full")
    with pytest.raises(ValueError, match="window"):
        masks.local_2d((8, 8), 0)


# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("budget", [20000, 80000])
def test_matched_counts_within_one_percent(budget):
    archs = masks.matched(budget, shape=(28, 28))
    assert list(archs) == ["dense", "random", "local_1d", "local_2d"]
    counts = {k: a.n_params for k, a in archs.items()}
    ref = counts["dense"]
    assert abs(ref - budget) <= (784 + 1) / 2
    for kind, n in counts.items():
        assert abs(n - ref) <= 0.01 * ref, (kind, n, ref)
    assert counts["random"] == ref  # exact by construction
    assert archs["random"].n_hidden == archs["local_2d"].n_hidden
    for a in archs.values():
        r = a.build(generator=torch.Generator().manual_seed(0))
        assert r.n_params == a.n_params and r.n_hidden == a.n_hidden
        assert torch.equal(r.mask, a.mask)
    assert "local_2d(window=(5, 5)" in archs["local_2d"].describe()


def test_matched_without_dense_targets_the_budget():
    archs = masks.matched(5000, ["local_1d", "local_2d"], shape=(10, 10), window_1d=20, window_2d=3)
    for a in archs.values():
        assert abs(a.n_params - 5000) <= 50


def test_matched_errors():
    with pytest.raises(ValueError, match="unknown mask kind"):
        masks.matched(20000, ["conv"])
    with pytest.raises(ValueError, match="too small"):
        masks.matched(1000, shape=(28, 28))
    with pytest.raises(ValueError, match="differs from the budget"):
        masks.matched(1700, ["local_2d"], shape=(28, 28), window_2d=28, tol=0.001)


def test_mask_is_enforced_after_training_steps():
    m = masks.local_1d(12, 4, 2)
    r = RBM(12, m.shape[1], mask=m, generator=torch.Generator().manual_seed(0))
    data = (torch.rand(60, 12, generator=torch.Generator().manual_seed(1)) < 0.4).to(torch.uint8)
    CDTrainer(r, lr=0.5, adaptive=False, batch_size=10, n_epochs=3, eval_every=0, seed=0).fit(data, progress=False)
    assert torch.all(r.W[~m] == 0)
    assert torch.all(r.W[m] != 0)


# ------------------------------------------------------------------------------------------------
def blocks_data(n_rows: int = 1000, seed: int = 0) -> np.ndarray:
    """12 pixels: three blocks of four noisy copies of a hidden bit (0-3, 4-7, 8-11), then pixels
    12 (always 0) and 13 (always 1)."""
    rng = np.random.default_rng(seed)
    z = rng.random((n_rows, 3)) < 0.5
    x = np.repeat(z, 4, axis=1) ^ (rng.random((n_rows, 12)) < 0.05)
    return np.concatenate([x, np.zeros((n_rows, 1)), np.ones((n_rows, 1))], axis=1).astype(np.uint8)


@pytest.mark.parametrize("n_hidden", [3, 5, 12, 20])
def test_from_data_exact_count_and_no_constant_pixel(n_hidden):
    m = masks.from_data(blocks_data(), n_hidden, 4)
    assert m.dtype == torch.bool and m.shape == (14, n_hidden)
    assert int(m.sum()) == n_hidden * 4 and (m.sum(0) == 4).all()
    assert not m[12:].any()


def test_from_data_fields_follow_the_information_and_seeds_spread():
    x = blocks_data()
    m = masks.from_data(x, 3, 4)
    assert sorted(tuple(c.tolist()) for c in columns(m)) == [(0, 1, 2, 3), (4, 5, 6, 7), (8, 9, 10, 11)]
    wide = masks.from_data(x, 12, 3)
    for j, field in enumerate(columns(wide)):
        earlier = wide[:, :j].any(1).numpy()
        if not earlier[:12].all():  # a new seed lies outside the earlier fields while any pixel is uncovered
            assert not earlier[field].all()
        assert np.ptp(field // 4) == 0  # the partners come from the seed's block


def test_from_data_seeds_are_distinct_then_repeat_evenly():
    x = blocks_data()
    seeds = masks.from_data(x, 12, 1)  # fan_in 1: each field is its seed
    assert seeds[:12].sum(1).tolist() == [1] * 12
    repeated = masks.from_data(x, 20, 1).sum(1)[:12]
    assert set(repeated.tolist()) == {1, 2} and int(repeated.sum()) == 20


def test_from_data_accepts_any_array_type_and_images():
    x = blocks_data(200)
    expected = masks.from_data(x, 4, 3)
    for data in (torch.from_numpy(x), x.astype(bool), torch.from_numpy(x).to(torch.int32), x.reshape(200, 2, 7)):
        assert torch.equal(masks.from_data(data, 4, 3), expected)


def test_from_data_errors():
    x = blocks_data(100)
    with pytest.raises(ValueError, match="fan_in = 13 exceeds the 12 non-constant pixels"):
        masks.from_data(x, 2, 13)
    with pytest.raises(ValueError, match="fan_in"):
        masks.from_data(x, 2, 0)
    with pytest.raises(TypeError, match="n_hidden"):
        masks.from_data(x, 2.5, 3)
    with pytest.raises(ValueError, match="binary"):
        masks.from_data(x * 2, 2, 3)
    with pytest.raises(ValueError, match="expected rows"):
        masks.from_data(x[0], 2, 3)


def test_matched_offers_from_data_at_the_same_budget():
    x = blocks_data(300)[:, :12]
    archs = masks.matched(300, ["local_1d", "from_data"], shape=(3, 4), window_1d=4, data=x)
    a = archs["from_data"]
    assert a.options == {"fan_in": 4} and int(a.mask.sum()) == 4 * a.n_hidden
    assert abs(a.n_params - archs["local_1d"].n_params) <= 0.01 * 300
    assert "from_data" in masks.KINDS and list(masks.matched(20000)) == list(masks.PAPER_KINDS)
    with pytest.raises(ValueError, match="needs the data"):
        masks.matched(300, ["from_data"], shape=(3, 4))
    with pytest.raises(ValueError, match="12 pixels but shape"):
        masks.matched(300, ["from_data"], shape=(4, 4), data=x)
