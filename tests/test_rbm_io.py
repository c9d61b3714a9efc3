"""RBM files: exact round trip, atomic writes, rejection of corrupt or foreign files."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch

import rbm
from bornmachine.io import read_npz, write_npz
from rbm import RBM, masks


def model(mask=None, dtype=torch.float64) -> RBM:
    g = torch.Generator().manual_seed(0)
    n_h = 4 if mask is None else mask.shape[1]
    r = RBM(9, n_h, mask=mask, init_std=0.5, dtype=dtype, generator=g)
    r.b = torch.randn(9, generator=g, dtype=torch.float64)
    r.c = torch.randn(n_h, generator=g, dtype=torch.float64)
    return r


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("masked", [False, True])
def test_round_trip_is_exact(tmp_path, dtype, masked):
    r = model(masks.local_2d((3, 3), 2) if masked else None, dtype)
    path = tmp_path / "sub" / "m.npz"
    r.save(path)
    back = rbm.load(path)
    assert back.dtype == dtype and back.is_dense == (not masked)
    for a, b in zip(r.parameters(), back.parameters()):
        assert torch.equal(a, b)
    assert torch.equal(back.mask, r.mask) and back.n_params == r.n_params
    assert rbm.load(path, dtype=torch.float64).dtype == torch.float64
    assert [p.name for p in path.parent.iterdir()] == ["m.npz"]  # no temporary files left


def test_save_replaces_existing_file(tmp_path):
    path = tmp_path / "m.npz"
    model().save(path)
    r2 = model()
    r2.c = torch.zeros(4)
    r2.save(path)
    assert torch.equal(rbm.load(path).c, torch.zeros(4, dtype=torch.float64))


def _rewrite(src, dst, **changes):
    meta, arrays = read_npz(src)
    kind = meta.pop("kind")
    meta.pop("version")
    arrays.update({k: v for k, v in changes.items() if k != "meta"})
    meta.update(changes.get("meta", {}))
    write_npz(dst, kind if "kind" not in changes.get("meta", {}) else meta["kind"], meta, arrays)


def test_nan_weights_in_a_file_are_rejected(tmp_path):
    """A file with NaN weights (written by hand, bypassing the model's checks) must not load."""
    r = model()
    path = tmp_path / "nan.npz"
    W = r.W.numpy().copy()
    W[2, 1] = np.nan
    arrays = {"W": W, "b": r.b.numpy(), "c": r.c.numpy(), "mask": np.ones((9, 4), dtype=bool)}
    np.savez(path, __format__=np.frombuffer(b"bornmachine", dtype=np.uint8),
             __meta__=np.frombuffer(json.dumps({"kind": "RBM", "version": 1, "rbm_version": 1, "n_visible": 9,
                                                "n_hidden": 4, "dtype": "float64"}).encode(), dtype=np.uint8),
             **arrays)
    with pytest.raises(ValueError, match="NaN"):
        rbm.load(path)


@pytest.mark.parametrize("change, match", [
    ({"mask": np.zeros((9, 4), dtype=bool)}, "non-zero entries where the mask forbids"),
    ({"mask": np.ones((4, 9), dtype=bool)}, "mask must be a bool array of shape"),
    ({"b": np.zeros(8)}, "b must be a float array of shape"),
    ({"W": np.zeros((9, 5))}, "header sizes"),
    ({"meta": {"rbm_version": 99}}, "newer version"),
    ({"meta": {"kind": "MPS"}}, "holds a 'MPS' model, not an RBM"),
    ({"meta": {"dtype": "complex128"}}, "unknown dtype"),
])
def test_corrupt_files_are_rejected(tmp_path, change, match):
    good = tmp_path / "good.npz"
    model().save(good)
    bad = tmp_path / "bad.npz"
    _rewrite(good, bad, **change)
    with pytest.raises(ValueError, match=match):
        rbm.load(bad)


def test_missing_array_garbage_and_missing_file(tmp_path):
    good = tmp_path / "good.npz"
    model().save(good)
    meta, arrays = read_npz(good)
    arrays.pop("c")
    write_npz(tmp_path / "noc.npz", "RBM", {k: v for k, v in meta.items() if k not in ("kind", "version")}, arrays)
    with pytest.raises(ValueError, match="missing array 'c'"):
        rbm.load(tmp_path / "noc.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip file at all")
    with pytest.raises(ValueError, match="not a readable"):
        rbm.load(tmp_path / "junk.npz")
    np.savez(tmp_path / "plain.npz", W=np.zeros((2, 2)))
    with pytest.raises(ValueError, match="not a bornmachine model file"):
        rbm.load(tmp_path / "plain.npz")
    with pytest.raises(FileNotFoundError):
        rbm.load(tmp_path / "nowhere.npz")


def test_file_never_holds_pickled_objects(tmp_path):
    path = tmp_path / "m.npz"
    model().save(path)
    with np.load(path, allow_pickle=False) as f:  # would raise on object arrays
        assert set(f.files) >= {"W", "b", "c", "mask"}
        assert all(f[k].dtype != object for k in f.files)
    assert os.path.getsize(path) > 0
