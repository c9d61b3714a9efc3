"""Bipartitions: every pixel on exactly one side, the named shapes, validation of masks and arguments."""
from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from comparison import bipartitions as bp


def _assert_partition(b: bp.Bipartition, shape):
    n = int(np.prod(shape))
    assert b.shape == tuple(shape) and b.n_sites == n and b.mask.shape == tuple(shape)
    assert b.mask.dtype == np.bool_
    assert b.sites_x.size > 0 and b.sites_y.size > 0
    both = np.concatenate([b.sites_x, b.sites_y])
    assert np.array_equal(np.sort(both), np.arange(n))  # each pixel on exactly one side
    assert np.array_equal(b.sites_x, np.flatnonzero(b.mask.reshape(-1)))
    assert np.all(np.diff(b.sites_x) > 0) and np.all(np.diff(b.sites_y) > 0)


@pytest.mark.parametrize("shape", [(28, 28), (5, 7)])
def test_standard_set_partitions_every_pixel(shape):
    bips = bp.standard_set(shape)
    h, w = shape
    margins = sum(1 for k in range(1, min(h, w)) if 2 * k < min(h, w))
    assert len(bips) == (h - 1) + (w - 1) + 3 + margins + 3
    if shape == (28, 28):
        assert len(bips) == 73
    for b in bips:
        _assert_partition(b, shape)
    names = [b.name for b in bips]
    assert len(set(names)) == len(names)
    assert len({b.mask.tobytes() for b in bips}) == len(bips)  # no duplicated cut


def test_up_down_and_left_right():
    b = bp.up_down((4, 5), 1)
    assert b.sites_x.tolist() == [0, 1, 2, 3, 4] and b.name == "up_down(row=1)"
    b = bp.up_down((4, 5), 3)
    assert b.sites_y.tolist() == [15, 16, 17, 18, 19]
    b = bp.left_right((3, 4), 1)
    assert b.sites_x.tolist() == [0, 4, 8]
    b = bp.left_right((3, 4), 3)
    assert b.sites_y.tolist() == [3, 7, 11]


@pytest.mark.parametrize("block", [1, 2, 3, 4, 5])
def test_checkerboard(block):
    h, w = 6, 9
    b = bp.checkerboard((h, w), block)
    for r in range(h):
        for c in range(w):
            assert b.mask[r, c] == (((r // block) + (c // block)) % 2 == 0)
    assert b.mask[0, 0]
    if block == 1:  # neighbours always on opposite sides
        assert not np.any(b.mask[:, 1:] == b.mask[:, :-1]) and not np.any(b.mask[1:] == b.mask[:-1])


def test_center_margin():
    b = bp.center_margin((5, 7), 2)
    assert b.sites_y.tolist() == [16, 17, 18]  # row 2, columns 2..4
    b = bp.center_margin((28, 28), 1)
    assert b.sites_x.size == 4 * 27 and b.sites_y.size == 26 * 26
    b = bp.center_margin((28, 28), 13)
    assert b.sites_y.size == 4


def test_random_balanced_and_seeded():
    a = bp.random((28, 28), 0)
    assert a.sites_x.size == 392 and a.sites_y.size == 392
    assert a == bp.random((28, 28), 0)
    assert a != bp.random((28, 28), 1)
    odd = bp.random((5, 7), 3)
    assert odd.sites_x.size == 17 and odd.sites_y.size == 18
    g = np.random.default_rng(5)
    assert bp.random((4, 4), g).sites_x.size == 8
    line = bp.random(10, 2)
    assert line.shape == (10,) and line.sites_x.size == 5


def test_from_mask_accepts_bool_int_and_torch():
    m = np.array([[1, 0, 1], [0, 0, 1]])
    a = bp.from_mask(m, name="mine")
    assert a.name == "mine" and a.sites_x.tolist() == [0, 2, 5]
    assert a == bp.from_mask(m.astype(bool), name="mine")
    assert a == bp.from_mask(torch.tensor(m.astype(bool)), name="mine")
    assert bp.from_mask([1, 0, 0, 1]).sites_y.tolist() == [1, 2]  # 1-D data (chain)
    m[0, 0] = 0  # the bipartition keeps its own copy
    assert a.sites_x.tolist() == [0, 2, 5]


def test_immutable_swapped_hashable():
    a = bp.up_down((4, 4), 2)
    with pytest.raises(AttributeError):
        a.name = "other"
    with pytest.raises(ValueError):
        a.mask[0, 0] = False
    s = a.swapped()
    assert np.array_equal(s.sites_x, a.sites_y) and s.name == "up_down(row=2)~"
    assert len({a, bp.up_down((4, 4), 2), s}) == 2
    assert "up_down(row=2)" in repr(a) and "|X|=8" in repr(a)
    again = pickle.loads(pickle.dumps(a))  # worker processes receive cuts pickled
    assert again == a and not again.mask.flags.writeable and np.array_equal(again.sites_x, a.sites_x)


@pytest.mark.parametrize("mask, match", [
    (np.ones((3, 3), bool), "Y is empty"),
    (np.zeros((3, 3), bool), "X is empty"),
    (np.array([[0, 1], [2, 0]]), "found value 2"),
    (np.array([[0, 0.5], [1, 0]]), "found value 0.5"),
    (np.zeros((2, 2, 2), bool), r"shape \(2, 2, 2\)"),
    (np.array([True]), "at least 2 pixels"),
])
def test_bad_masks(mask, match):
    with pytest.raises(ValueError, match=match):
        bp.from_mask(mask)


def test_bad_mask_types():
    with pytest.raises(TypeError, match="dtype"):
        bp.from_mask(np.array([["a", "b"]]))
    with pytest.raises(TypeError, match="name"):
        bp.from_mask([0, 1], name=3)


@pytest.mark.parametrize("call, match", [
    (lambda: bp.up_down((4, 5), 0), "row = 0 out of range"),
    (lambda: bp.up_down((4, 5), 4), "row = 4 out of range"),
    (lambda: bp.left_right((4, 5), 5), "col = 5 out of range"),
    (lambda: bp.checkerboard((4, 5), 5), "Y would be empty"),
    (lambda: bp.checkerboard((4, 5), 0), "block = 0"),
    (lambda: bp.center_margin((5, 7), 3), "leaves no centre"),
    (lambda: bp.center_margin((5, 7), 0), "width = 0"),
    (lambda: bp.up_down((2, 2, 2), 1), "shape must be"),
    (lambda: bp.up_down((10,), 1), r"needs an image shape \(H, W\)"),
    (lambda: bp.random((1, 1), 0), "fewer than 2 pixels"),
    (lambda: bp.random((3, 3), -1), "seed must be >= 0"),
])
def test_bad_arguments(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_bad_argument_types():
    with pytest.raises(TypeError, match="row must be an integer"):
        bp.up_down((4, 4), 1.5)
    with pytest.raises(TypeError, match="seed"):
        bp.random((4, 4), "0")
