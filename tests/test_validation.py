"""Tests of the shared input checks (``bornmachine.validation``): binary data come back as uint8, one byte a
pixel, without a copy when they already are; anything not 0/1 is a ValueError naming a bad value."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from bornmachine import MPS, SweepTrainer
from bornmachine.validation import as_binary, as_binary_data


@pytest.mark.parametrize("make", [lambda a: a, lambda a: a.astype(np.int64), lambda a: a.astype(bool),
                                  lambda a: a.astype(np.float32), lambda a: torch.from_numpy(a).to(torch.int16),
                                  lambda a: torch.from_numpy(a).bool(), lambda a: torch.from_numpy(a).double()])
def test_binary_data_of_any_dtype_become_uint8(make):
    x = (np.arange(24).reshape(4, 6) % 3 == 0).astype(np.uint8)
    out = as_binary(make(x), 6)
    assert out.dtype == torch.uint8 and torch.equal(out, torch.from_numpy(x))


def test_uint8_and_bool_tensors_are_not_copied():
    x = torch.randint(0, 2, (5, 2, 3), dtype=torch.uint8)
    assert as_binary(x, 6, shape=(2, 3)).data_ptr() == x.data_ptr()
    mask = x.bool()
    assert as_binary(mask, 6, shape=(2, 3)).data_ptr() == mask.data_ptr()
    assert as_binary_data(x).data_ptr() == x.data_ptr()


@pytest.mark.parametrize("bad, value", [(np.array([[0, 1], [-1, 0]]), "-1"), (np.array([[0, 2]], np.uint8), "2"),
                                        (torch.tensor([[0, 1], [1, 300]]), "300"), (np.array([[0.0, 0.5]]), "0.5")])
def test_values_other_than_zero_and_one_are_named(bad, value):
    with pytest.raises(ValueError, match=f"x must be binary.*found value {value}"):
        as_binary(bad, 2)


def test_nan_and_empty_data():
    with pytest.raises(ValueError, match="NaN or inf"):
        as_binary(np.array([[0.0, np.nan]]), 2)
    assert as_binary(torch.zeros(0, 3, dtype=torch.int64), 3).shape == (0, 3)


def test_trainers_hold_the_data_as_uint8():
    trainer = SweepTrainer(MPS(4, 2, generator=torch.Generator().manual_seed(0)), max_bond=2, n_sweeps=1)
    x = np.array([[0, 1, 1, 0], [1, 1, 0, 0]], dtype=np.int64)
    assert trainer._as_data(x, "train").dtype == torch.uint8
