"""RBM model files: versioned, atomic, code-free npz (the package-wide format of :mod:`bornmachine.io`).

A file holds the header written by :func:`bornmachine.io.write_npz` (format tag ``"bornmachine"``,
JSON metadata with ``kind = "RBM"``, the RBM file version ``rbm_version``, sizes and dtype) and the
arrays ``W`` (n_visible, n_hidden), ``b`` (n_visible,), ``c`` (n_hidden,) and ``mask`` (n_visible,
n_hidden, bool). Saving writes a temporary file then renames it (an interrupted save leaves the old
file intact); loading never unpickles (``allow_pickle=False``) and rejects foreign or corrupt files —
wrong kind, missing arrays, wrong shapes or dtypes, NaN/inf, non-zero masked weights — with a
``ValueError`` that names the problem.
"""
from __future__ import annotations

import os

import numpy as np
import torch

from bornmachine.io import read_npz, register_loader

from .model import RBM, RBM_FILE_VERSION

__all__ = ["save", "load", "RBM_FILE_VERSION"]
_DTYPES = {"float64": torch.float64, "float32": torch.float32, "float16": torch.float16,
           "bfloat16": torch.bfloat16}


def save(rbm: RBM, path) -> None:
    """Write ``rbm`` atomically to ``path`` (npz; parameters stored in float64): :meth:`RBM.save`."""
    if not isinstance(rbm, RBM):
        raise TypeError(f"expected an RBM, got {type(rbm).__name__}")
    rbm.save(path)


def load(path, *, dtype: torch.dtype | None = None, device=None) -> RBM:
    """Read an RBM written by :meth:`RBM.save` / :func:`save`.

    Parameters
    ----------
    path : str or os.PathLike
    dtype : torch dtype, optional
        Default: the dtype the model was saved with.
    device : torch device, optional

    Raises
    ------
    FileNotFoundError
        No file at ``path``.
    ValueError
        Not an RBM file, a newer file version, or corrupt contents (names the offending array).
    """
    meta, arrays = read_npz(path)
    return from_contents(meta, arrays, path, dtype=dtype, device=device)


def from_contents(meta: dict, arrays: dict, path, *, dtype: torch.dtype | None = None, device=None) -> RBM:
    """The RBM in a file's header ``meta`` and ``arrays`` (as :func:`bornmachine.io.read_npz` returns them);
    ``ValueError`` naming the problem if they are not a valid RBM file."""
    where = repr(os.fspath(path))
    if meta.get("kind") != RBM.kind:
        raise ValueError(f"{where} holds a {meta.get('kind')!r} model, not an RBM")
    version = meta.get("rbm_version")
    if not isinstance(version, int) or version < 1:
        raise ValueError(f"{where} is a corrupt RBM file (bad rbm_version {version!r})")
    if version > RBM_FILE_VERSION:
        raise ValueError(f"{where} was written by a newer version (RBM file version {version}, "
                         f"this package reads up to {RBM_FILE_VERSION})")
    for key in ("W", "b", "c", "mask"):
        if key not in arrays:
            raise ValueError(f"{where} is a corrupt RBM file (missing array {key!r})")
    W, b, c, mask = arrays["W"], arrays["b"], arrays["c"], arrays["mask"]
    if W.ndim != 2 or W.dtype.kind != "f":
        raise ValueError(f"{where}: W must be a 2D float array, got shape {W.shape} dtype {W.dtype}")
    n_visible, n_hidden = W.shape
    if (meta.get("n_visible"), meta.get("n_hidden")) != (n_visible, n_hidden):
        raise ValueError(f"{where}: header sizes ({meta.get('n_visible')}, {meta.get('n_hidden')}) do not match "
                         f"W of shape {W.shape}")
    for key, arr, shape in (("b", b, (n_visible,)), ("c", c, (n_hidden,))):
        if arr.shape != shape or arr.dtype.kind != "f":
            raise ValueError(f"{where}: {key} must be a float array of shape {shape}, got {arr.shape} {arr.dtype}")
    if mask.shape != W.shape or mask.dtype != np.bool_:
        raise ValueError(f"{where}: mask must be a bool array of shape {W.shape}, got {mask.shape} {mask.dtype}")
    for key, arr in (("W", W), ("b", b), ("c", c)):
        if not np.isfinite(arr).all():
            raise ValueError(f"{where}: {key} holds NaN or inf")
    if np.any(W[~mask] != 0):
        raise ValueError(f"{where}: W has non-zero entries where the mask forbids connections")
    if dtype is None:
        name = meta.get("dtype", "float64")
        if name not in _DTYPES:
            raise ValueError(f"{where}: unknown dtype {name!r} in header")
        dtype = _DTYPES[name]
    rbm = RBM(n_visible, n_hidden, mask=mask, init_std=0.0, dtype=dtype, device=device,
              generator=torch.Generator().manual_seed(0))
    rbm.set_parameters(torch.from_numpy(W), torch.from_numpy(b), torch.from_numpy(c))
    return rbm


register_loader(RBM.kind, from_contents)  # bornmachine.load opens RBM files once rbm is imported
