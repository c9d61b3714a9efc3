"""Input checks shared by every model: binary data, site subsets, image shapes.

Each check either returns a clean tensor/list or raises a ``ValueError``/``TypeError`` whose message
names the offending argument, shape or value.
"""
from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np
import torch


def as_binary(x, n_sites: int, *, name: str = "x", device=None, shape: Sequence[int] | None = None) -> torch.Tensor:
    """Return ``x`` as a (N, n_sites) uint8 tensor of 0/1 values (one byte a pixel; ``x`` itself, reshaped,
    when it already is a uint8 tensor on ``device``).

    Accepts numpy arrays or torch tensors of any integer, bool or float dtype, shape (N, n_sites),
    (n_sites,) (one configuration) or, when ``shape`` (the image shape) is given, (N, *shape).
    Raises ``ValueError`` for a wrong shape, NaN/inf, or values other than 0 and 1, and ``TypeError``
    for objects that are not arrays. Integer and bool data are checked without a full-size temporary.
    """
    if isinstance(x, torch.Tensor):
        t = x.detach()
    elif isinstance(x, (np.ndarray, list, tuple)):
        arr = np.asarray(x)
        if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_):
            raise TypeError(f"{name} must be a numeric array of 0/1 values, got dtype {arr.dtype}")
        t = torch.from_numpy(np.ascontiguousarray(arr))
    else:
        raise TypeError(f"{name} must be a numpy array or torch tensor, got {type(x).__name__}")
    if t.is_complex():
        raise TypeError(f"{name} must be real 0/1 data, got complex dtype {t.dtype}")
    if shape is not None and t.dim() >= 2 and tuple(t.shape[-len(shape):]) == tuple(shape) and t.dim() == len(shape) + 1:
        t = t.reshape(t.shape[0], -1)
    elif shape is not None and tuple(t.shape) == tuple(shape) and len(shape) > 1:
        t = t.reshape(1, -1)
    if t.dim() == 1:
        t = t.reshape(1, -1)
    if t.dim() != 2 or t.shape[1] != n_sites:
        hint = f" or (N, {', '.join(map(str, shape))})" if shape is not None and len(shape) > 1 else ""
        raise ValueError(f"{name} has shape {tuple(t.shape)}; expected (N, {n_sites}){hint}")
    if t.dtype == torch.bool:
        t = t.view(torch.uint8)
    else:
        _check_zero_one(t, name)
    return t.to(device=device, dtype=torch.uint8) if device is not None else t.to(torch.uint8)


def _check_zero_one(t: torch.Tensor, name: str) -> None:
    """``ValueError`` unless every entry of the integer or float tensor ``t`` is 0 or 1 (naming one that is not)."""
    if t.is_floating_point():
        if not torch.isfinite(t).all():
            raise ValueError(f"{name} contains NaN or inf; data must be binary (0/1)")
        fine = not ((t != 0) & (t != 1)).any()
    else:  # two reductions, no mask
        fine = t.numel() == 0 or all(0 <= int(v) <= 1 for v in torch.aminmax(t))
    if not fine:
        value = t[(t != 0) & (t != 1)][0].item()
        raise ValueError(f"{name} must be binary (0/1); found value {value!r}")


def as_sites(sites: Iterable[int] | torch.Tensor | np.ndarray, n_sites: int, *, name: str = "sites",
             allow_empty: bool = False) -> list[int]:
    """Return ``sites`` as a list of distinct ints in [0, n_sites); raise ``ValueError`` otherwise.

    A boolean mask of length ``n_sites`` is also accepted (its True positions are the sites).
    """
    if isinstance(sites, (torch.Tensor, np.ndarray)):
        arr = sites.detach().cpu().numpy() if isinstance(sites, torch.Tensor) else sites
        if arr.dtype == np.bool_:
            if arr.size != n_sites:
                raise ValueError(f"boolean {name} mask has {arr.size} entries; expected {n_sites}")
            arr = np.flatnonzero(arr.reshape(-1))
        sites = arr.reshape(-1).tolist()
    try:
        out = [int(s) for s in sites]
    except (TypeError, ValueError) as err:
        raise TypeError(f"{name} must be a sequence of integer site indices") from err
    if any(isinstance(s, float) and not float(s).is_integer() for s in sites):
        raise TypeError(f"{name} must hold integers")
    if not out and not allow_empty:
        raise ValueError(f"{name} is empty")
    bad = [s for s in out if not 0 <= s < n_sites]
    if bad:
        raise ValueError(f"{name} has out-of-range site {bad[0]} (valid: 0..{n_sites - 1})")
    if len(set(out)) != len(out):
        dup = next(s for s in out if out.count(s) > 1)
        raise ValueError(f"{name} has duplicated site {dup}")
    return out


def check_positive_int(value, name: str) -> int:
    """Return ``value`` as an int ≥ 1, else raise ``ValueError``/``TypeError`` naming it."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__}")
    if value < 1:
        raise ValueError(f"{name} must be >= 1, got {value}")
    return int(value)


def check_float_dtype(value, name: str) -> torch.dtype | None:
    """Return ``value`` if it is None, ``torch.float32`` or ``torch.float64``, else raise ``TypeError``/``ValueError``."""
    if value is not None and not isinstance(value, torch.dtype):
        raise TypeError(f"{name} must be a torch dtype or None, got {type(value).__name__}")
    if value is not None and value not in (torch.float32, torch.float64):
        raise ValueError(f"{name} must be torch.float32 or torch.float64, got {value}")
    return value


def log_base(base) -> float:
    """Natural log of an entropy base: ``"e"`` → 1.0, ``2`` → ln 2."""
    if base == "e":
        return 1.0
    if base == 2 or base == "2":
        return float(np.log(2.0))
    raise ValueError(f"base must be 'e' or 2, got {base!r}")


def check_alpha(alpha) -> float:
    """A Rényi order: a number > 0 or inf, as float; ``ValueError`` otherwise."""
    alpha = float(alpha)
    if not alpha > 0:
        raise ValueError(f"alpha must be > 0 (or inf), got {alpha}")
    return alpha


def parse_sites(n_sites) -> tuple[int, tuple[int, ...] | None]:
    """A model's ``n_sites`` argument → (number of sites, image shape or None): an int, or an image
    shape such as (28, 28) (sites = its pixels, row-major)."""
    if isinstance(n_sites, (tuple, list)):
        shape = tuple(check_positive_int(int(s) if isinstance(s, np.integer) else s, "shape entry") for s in n_sites)
        return int(np.prod(shape)), shape
    return check_positive_int(n_sites, "n_sites"), None


def as_binary_data(data, *, name: str = "data", device=None) -> torch.Tensor:
    """A data set as a (N, n) uint8 tensor of 0/1 values: rows (N, n) or images (N, H, W) (flattened
    row-major), numpy or torch, any integer/bool/float dtype. ``ValueError`` for another number of
    dimensions, no rows, or values other than 0 and 1; ``TypeError`` for non-arrays."""
    if not isinstance(data, (torch.Tensor, np.ndarray)):
        raise TypeError(f"{name} must be a numpy array or torch tensor, got {type(data).__name__}")
    if data.ndim not in (2, 3):
        raise ValueError(f"{name} has shape {tuple(data.shape)}; expected rows (N, n) or images (N, H, W)")
    if data.shape[0] == 0 or int(np.prod(data.shape[1:])) == 0:
        raise ValueError(f"{name} has shape {tuple(data.shape)}; it needs at least one row and one pixel")
    shape = tuple(int(s) for s in data.shape[1:])
    return as_binary(data, int(np.prod(shape)), name=name, device=device, shape=shape)
