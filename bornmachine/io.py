"""Versioned, atomic, code-free model files (npz).

A model file is an ``.npz`` archive holding ``__format__`` (the string ``"bornmachine"``),
``__meta__`` (UTF-8 JSON: kind, version, constructor metadata) and numeric arrays. Writing goes to a
temporary file in the target directory followed by ``os.replace``, so an interrupted save leaves the
previous file intact. Loading uses ``allow_pickle=False``: no code is ever unpickled.
"""
from __future__ import annotations

import json
import os
import tempfile
import zipfile
from typing import Any, Callable

import numpy as np

FORMAT = "bornmachine"
VERSION = 1


def write_npz(path, kind: str, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
    """Atomically write ``arrays`` plus a JSON header describing ``kind`` to ``path``."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    header = dict(meta, kind=kind, version=VERSION)
    payload = {
        "__format__": np.frombuffer(FORMAT.encode(), dtype=np.uint8),
        "__meta__": np.frombuffer(json.dumps(header).encode(), dtype=np.uint8),
        **arrays,
    }
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".npz", dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            np.savez(handle, **payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def read_npz(path, format_name: str = FORMAT) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Read a file written by :func:`write_npz`; raise ``ValueError`` if corrupt or foreign."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"no model file at {path!r}")
    try:
        with open(path, "rb") as handle, np.load(handle, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as err:
        raise ValueError(f"{path!r} is not a readable {format_name} model file ({err})") from err
    fmt = arrays.pop("__format__", None)
    meta_raw = arrays.pop("__meta__", None)
    if fmt is None or meta_raw is None or bytes(fmt.astype(np.uint8)).decode(errors="replace") != format_name:
        raise ValueError(f"{path!r} is not a {format_name} model file (missing or foreign header)")
    try:
        meta = json.loads(bytes(meta_raw.astype(np.uint8)).decode())
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{path!r} has a corrupt header") from err
    if not isinstance(meta, dict) or "kind" not in meta:
        raise ValueError(f"{path!r} has a corrupt header (no model kind)")
    if meta.get("version", 0) > VERSION:
        raise ValueError(f"{path!r} was written by a newer version (file version {meta.get('version')}, "
                         f"this package reads up to {VERSION})")
    for key, value in arrays.items():
        if value.dtype.kind == "f" and not np.isfinite(value).all():
            raise ValueError(f"{path!r}: array {key!r} holds NaN or inf")
    return meta, arrays


_LOADERS: dict[str, Callable[[dict, dict, Any], Any]] = {}


def register_loader(kind: str, loader: Callable[[dict, dict, Any], Any]) -> None:
    """Let :func:`load` open files of model ``kind``: ``loader(meta, arrays, path)`` builds the model from a
    file's contents (as :func:`read_npz` returns them). MPS and TTN register themselves; so does
    :mod:`rbm` when it is imported (``bornmachine`` never imports ``rbm``)."""
    _LOADERS[str(kind)] = loader


def load(path):
    """Load any model saved with ``model.save(path)``: MPS, TTN, and RBM once :mod:`rbm` is imported."""
    meta, arrays = read_npz(path)
    kind = meta["kind"]
    if kind not in _LOADERS:
        raise ValueError(f"{os.fspath(path)!r} holds a {kind!r} file, which no imported package reads (known kinds: "
                         f"{', '.join(sorted(_LOADERS))}); RBM files need `import rbm` first, or rbm.load")
    return _LOADERS[kind](meta, arrays, path)
