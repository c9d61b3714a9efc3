"""Tests for bornmachine.datasets: shipped MNIST subset, IDX/.amat readers, binarization, toy data."""
from __future__ import annotations

import gzip
import hashlib
import re
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest

from bornmachine import datasets

REPO = Path(__file__).resolve().parents[1]


# --------------------------------------------------------------------------- mnist5k

@pytest.fixture(scope="module")
def raw_splits():
    """Raw (0..255) train and test images and labels, loaded once."""
    return {split: datasets.load("mnist5k", split=split, binarize=None) for split in ("train", "test")}


@pytest.mark.parametrize("split, n", [("train", 4000), ("test", 1000), ("all", 5000)])
def test_load_shapes_dtypes_binary(split, n):
    x, y = datasets.load("mnist5k", split=split)
    assert x.shape == (n, 784) and x.dtype == np.uint8
    assert y.shape == (n,) and y.dtype == np.int64
    assert set(np.unique(x)) == {0, 1}
    assert set(np.unique(y)) == set(range(10))


def test_class_balance(raw_splits):
    (_, y_train), (_, y_test) = raw_splits["train"], raw_splits["test"]
    assert np.bincount(y_train, minlength=10).tolist() == [400] * 10
    assert np.bincount(y_test, minlength=10).tolist() == [100] * 10
    _, y_all = datasets.load("mnist5k", split="all")
    assert np.bincount(y_all, minlength=10).tolist() == [500] * 10


def test_split_disjoint_and_shuffled(raw_splits):
    (x_train, y_train), (x_test, _) = raw_splits["train"], raw_splits["test"]
    train_rows = {row.tobytes() for row in x_train}
    test_rows = {row.tobytes() for row in x_test}
    assert len(train_rows) == 4000 and len(test_rows) == 1000  # no duplicates within a split
    assert not train_rows & test_rows
    assert not np.all(np.diff(y_train) >= 0)  # not sorted by label


def test_load_deterministic_and_consistent(raw_splits):
    x1, y1 = datasets.load("mnist5k", split="all")
    x2, y2 = datasets.load("mnist5k", split="all")
    assert np.array_equal(x1, x2) and np.array_equal(y1, y2)
    (x_train, y_train), (x_test, y_test) = raw_splits["train"], raw_splits["test"]
    assert np.array_equal(y1, np.concatenate([y_train, y_test]))
    assert np.array_equal(x1, (np.concatenate([x_train, x_test]) > 127).astype(np.uint8))


def test_raw_intensities(raw_splits):
    x, _ = raw_splits["train"]
    assert x.dtype == np.uint8 and x.shape == (4000, 784)
    assert x.min() == 0 and x.max() == 255


def test_threshold_matches_half_intensity(raw_splits):
    x_raw, _ = raw_splits["test"]
    x_bin, _ = datasets.load("mnist5k", split="test")
    assert np.array_equal(x_bin, (x_raw / 255.0 > 0.5).astype(np.uint8))
    x_low, _ = datasets.load("mnist5k", split="test", threshold=0.1)
    assert x_low.sum() > x_bin.sum()


def test_load_stochastic_needs_seed_and_is_reproducible():
    with pytest.raises(ValueError, match="seed"):
        datasets.load("mnist5k", split="test", binarize="stochastic")
    a, _ = datasets.load("mnist5k", split="test", binarize="stochastic", seed=3)
    b, _ = datasets.load("mnist5k", split="test", binarize="stochastic", seed=3)
    c, _ = datasets.load("mnist5k", split="test", binarize="stochastic", seed=4)
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert set(np.unique(a)) == {0, 1}


@pytest.mark.parametrize("kwargs, word", [
    ({"name": "mnist"}, "mnist5k"),
    ({"split": "valid"}, "train"),
    ({"binarize": "otsu"}, "threshold"),
])
def test_load_rejects_unknown_options(kwargs, word):
    with pytest.raises(ValueError, match=word):
        datasets.load(**kwargs)


def test_image_shape():
    assert datasets.image_shape("mnist5k") == (28, 28) == datasets.IMAGE_SHAPE
    assert datasets.image_shape("fashion-mnist") == (28, 28)
    with pytest.raises(ValueError, match="mnist5k"):
        datasets.image_shape("cifar")


def test_shipped_file_checksum_matches_constant():
    path = datasets._data_path("mnist5k.npz")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    assert digest == datasets._SHA256["mnist5k.npz"]


def test_data_path_is_independent_of_cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert datasets._data_path("mnist5k.npz").is_file()
    with pytest.raises(FileNotFoundError, match="no-such-file.npz"):
        datasets._data_path("no-such-file.npz")


def test_corrupt_file_rejected(tmp_path, monkeypatch):
    corrupt = tmp_path / "mnist5k.npz"
    shutil.copy(datasets._data_path("mnist5k.npz"), corrupt)
    data = bytearray(corrupt.read_bytes())
    data[len(data) // 2] ^= 0xFF
    corrupt.write_bytes(bytes(data))
    monkeypatch.setattr(datasets, "_data_path", lambda name: corrupt)
    with pytest.raises(ValueError, match="SHA-256"):
        datasets.load("mnist5k")


def test_missing_file_is_file_not_found(tmp_path, monkeypatch):
    def missing(name):
        raise FileNotFoundError(f"data file {name!r} not found")
    monkeypatch.setattr(datasets, "_data_path", missing)
    with pytest.raises(FileNotFoundError, match="mnist5k.npz"):
        datasets.load("mnist5k")


def test_make_script_split_matches_shipped_file(raw_splits):
    """The documented split procedure, applied to the shipped data, reproduces the label order."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_mnist5k", REPO / "data" / "make_mnist5k.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.SPLIT_SEED == 20180406
    sorted_labels = np.repeat(np.arange(10), 500)  # the CSV is sorted by label, 500 per digit
    train_idx, test_idx = module.split(sorted_labels)
    assert np.array_equal(sorted_labels[train_idx], raw_splits["train"][1])
    assert np.array_equal(sorted_labels[test_idx], raw_splits["test"][1])
    assert len(np.intersect1d(train_idx, test_idx)) == 0


# --------------------------------------------------------------------------- binarize

def test_binarize_threshold_uint8_and_float():
    pixels = np.array([[0, 127, 128, 255]], dtype=np.uint8)
    assert datasets.binarize(pixels).tolist() == [[0, 0, 1, 1]]
    floats = np.array([0.0, 0.5, 0.5001, 1.0])
    out = datasets.binarize(floats)
    assert out.dtype == np.uint8 and out.tolist() == [0, 0, 1, 1]
    assert datasets.binarize(floats, threshold=0.0).tolist() == [0, 1, 1, 1]


def test_binarize_accepts_torch_and_bool():
    torch = pytest.importorskip("torch")
    out = datasets.binarize(torch.tensor([0.2, 0.9]))
    assert isinstance(out, np.ndarray) and out.tolist() == [0, 1]
    assert datasets.binarize(np.array([True, False])).tolist() == [1, 0]


def test_binarize_stochastic_deterministic_and_unbiased():
    p = np.full((200, 100), 0.3)
    a = datasets.binarize(p, "stochastic", seed=0)
    b = datasets.binarize(p, "stochastic", seed=0)
    c = datasets.binarize(p, "stochastic", seed=1)
    assert a.dtype == np.uint8 and a.shape == p.shape
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert abs(a.mean() - 0.3) < 5 * np.sqrt(0.3 * 0.7 / a.size)
    edges = datasets.binarize(np.array([0, 255] * 50, dtype=np.uint8), "stochastic", seed=2)
    assert edges.tolist() == [0, 1] * 50
    rng = np.random.default_rng(5)
    assert datasets.binarize(p, "stochastic", seed=rng).shape == p.shape


@pytest.mark.parametrize("x, kwargs, exc, word", [
    (np.array([0.5]), {"method": "stochastic"}, ValueError, "seed"),
    (np.array([0.5]), {"method": "median"}, ValueError, "threshold"),
    (np.array([1.5]), {}, ValueError, r"\[0, 1\]"),
    (np.array([np.nan]), {}, ValueError, "NaN"),
    (np.array([0, 1], dtype=np.int64), {}, TypeError, "uint8"),
    (np.array(["a"]), {}, TypeError, "numeric"),
    (np.array([0.5]), {"threshold": 2.0}, ValueError, "threshold"),
    (np.array([0.5]), {"method": "stochastic", "seed": 1.5}, TypeError, "seed"),
])
def test_binarize_errors(x, kwargs, exc, word):
    with pytest.raises(exc, match=word):
        datasets.binarize(x, **kwargs)


# --------------------------------------------------------------------------- IDX

def _idx_bytes(arr: np.ndarray, type_byte: int) -> bytes:
    header = bytes([0, 0, type_byte, arr.ndim]) + b"".join(struct.pack(">I", d) for d in arr.shape)
    return header + arr.astype(arr.dtype.newbyteorder(">")).tobytes()


@pytest.mark.parametrize("compress", [False, True], ids=["raw", "gz"])
def test_load_idx_round_trip(tmp_path, compress):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(7, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, size=7, dtype=np.uint8)
    for name, arr in (("images-idx3-ubyte", images), ("labels-idx1-ubyte", labels)):
        blob = _idx_bytes(arr, 0x08)
        path = tmp_path / (name + (".gz" if compress else ""))
        path.write_bytes(gzip.compress(blob) if compress else blob)
        out = datasets.load_idx(path)
        assert out.dtype == np.uint8 and np.array_equal(out, arr)
    assert datasets.load_idx(str(tmp_path / ("images-idx3-ubyte" + (".gz" if compress else "")))).shape == (7, 28, 28)


def test_load_idx_magic_numbers(tmp_path):
    labels = np.arange(5, dtype=np.uint8)
    path = tmp_path / "labels"
    path.write_bytes(_idx_bytes(labels, 0x08))
    assert path.read_bytes()[:4] == (0x00000801).to_bytes(4, "big")
    images = np.zeros((2, 28, 28), dtype=np.uint8)
    path.write_bytes(_idx_bytes(images, 0x08))
    assert path.read_bytes()[:4] == (0x00000803).to_bytes(4, "big")


def test_load_idx_other_types(tmp_path):
    arr = np.array([[1.5, -2.0], [3.25, 0.0]], dtype=np.float32)
    path = tmp_path / "floats.idx"
    path.write_bytes(_idx_bytes(arr, 0x0D))
    out = datasets.load_idx(path)
    assert out.dtype == np.float32 and out.dtype.isnative and np.array_equal(out, arr)
    ints = np.array([-70000, 5, 123456], dtype=np.int32)
    path.write_bytes(_idx_bytes(ints, 0x0C))
    assert np.array_equal(datasets.load_idx(path), ints)


@pytest.mark.parametrize("header", [
    b"\x01\x00\x08\x01", b"\x00\x00\x07\x01", b"\x00\x00\x08\x00", b"PK\x03\x04",
], ids=["nonzero-lead", "bad-type", "zero-dims", "zip"])
def test_load_idx_bad_magic(tmp_path, header):
    path = tmp_path / "bad"
    path.write_bytes(header + struct.pack(">I", 3) + b"\x00\x01\x02")
    with pytest.raises(ValueError, match="magic"):
        datasets.load_idx(path)


@pytest.mark.parametrize("compress", [False, True], ids=["raw", "gz"])
def test_load_idx_truncated_and_trailing(tmp_path, compress):
    blob = _idx_bytes(np.zeros((3, 28, 28), dtype=np.uint8), 0x08)
    path = tmp_path / "images"
    for bad, word in ((blob[:-10], "truncated"), (blob + b"\x00", "trailing"), (blob[:10], "truncated")):
        path.write_bytes(gzip.compress(bad) if compress else bad)
        with pytest.raises(ValueError, match=word):
            datasets.load_idx(path)
    path.write_bytes(b"\x00\x00")
    with pytest.raises(ValueError, match="too short"):
        datasets.load_idx(path)


def test_load_idx_truncated_gzip_stream(tmp_path):
    blob = gzip.compress(_idx_bytes(np.zeros((3, 28, 28), dtype=np.uint8), 0x08))
    path = tmp_path / "images.gz"
    path.write_bytes(blob[: len(blob) // 2])
    with pytest.raises(ValueError, match="gzip"):
        datasets.load_idx(path)


# --------------------------------------------------------------------------- amat

def test_load_amat(tmp_path):
    rng = np.random.default_rng(1)
    rows = rng.integers(0, 2, size=(4, 784))
    text = "\n".join(" ".join(map(str, row)) for row in rows) + "\n"
    path = tmp_path / "binarized_mnist_test.amat"
    path.write_text(text)
    out = datasets.load_amat(path)
    assert out.dtype == np.uint8 and out.shape == (4, 784) and np.array_equal(out, rows)
    gz = tmp_path / "small.amat.gz"
    gz.write_bytes(gzip.compress(b"0 1 1\n1 0 0\n"))
    assert datasets.load_amat(gz, n_features=3).tolist() == [[0, 1, 1], [1, 0, 0]]


@pytest.mark.parametrize("text, word", [
    ("0 1 1\n1 0\n", "line 2 has 2 values"),
    ("0 1 2\n", "0 or 1"),
    ("0 x 1\n", "non-numeric"),
    ("\n\n", "no data rows"),
])
def test_load_amat_errors(tmp_path, text, word):
    path = tmp_path / "bad.amat"
    path.write_text(text)
    with pytest.raises(ValueError, match=word):
        datasets.load_amat(path, n_features=3)


# --------------------------------------------------------------------------- Fashion-MNIST

def test_fashion_mnist_absent(tmp_path, monkeypatch):
    monkeypatch.setattr(datasets, "FASHION_MNIST_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(FileNotFoundError, match="apt-get install dataset-fashion-mnist"):
        datasets.load_fashion_mnist()
    with pytest.raises(FileNotFoundError, match="directory="):
        datasets.load_fashion_mnist("test", directory=tmp_path)


def _write_fashion_files(folder: Path) -> None:
    """Fake Fashion-MNIST IDX files in ``folder``: 6 train and 4 test images (random intensities)."""
    rng = np.random.default_rng(2)
    for part, n in (("train", 6), ("t10k", 4)):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, size=n, dtype=np.uint8)
        (folder / f"{part}-images-idx3-ubyte.gz").write_bytes(gzip.compress(_idx_bytes(images, 0x08)))
        (folder / f"{part}-labels-idx1-ubyte").write_bytes(_idx_bytes(labels, 0x08))  # uncompressed too


def test_fashion_mnist_from_directory(tmp_path):
    _write_fashion_files(tmp_path)
    x, y = datasets.load_fashion_mnist("test", directory=tmp_path)
    assert x.shape == (4, 784) and x.dtype == np.uint8 and y.dtype == np.int64
    assert set(np.unique(x)) <= {0, 1}
    x_all, y_all = datasets.load_fashion_mnist("all", binarize=None, directory=tmp_path)
    assert x_all.shape == (10, 784) and x_all.max() > 1 and np.array_equal(y_all[6:], y)
    with pytest.raises(ValueError, match="split"):
        datasets.load_fashion_mnist("validation", directory=tmp_path)


def test_fashion_mnist_mismatched_files(tmp_path):
    (tmp_path / "t10k-images-idx3-ubyte").write_bytes(_idx_bytes(np.zeros((3, 28, 28), np.uint8), 0x08))
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(_idx_bytes(np.zeros(2, np.uint8), 0x08))
    with pytest.raises(ValueError, match="labels"):
        datasets.load_fashion_mnist("test", directory=tmp_path)


FASHION_MNIST_INSTALLED = all(Path(datasets.FASHION_MNIST_DIR, f"{kind}-{part}-idx{dim}-ubyte.gz").is_file()
                              for kind in ("train", "t10k") for part, dim in (("images", 3), ("labels", 1)))
# .ci/run installs the package (apt-get, as root); elsewhere these tests say why they skip
needs_fashion_mnist = pytest.mark.skipif(not FASHION_MNIST_INSTALLED, reason="Debian's dataset-fashion-mnist is "
                                         "not installed (apt-get install dataset-fashion-mnist)")


@needs_fashion_mnist
@pytest.mark.parametrize("split, n_rows, first_labels, mean_intensity",
                         [("train", 60000, [9, 0, 0, 3, 0], 0.28604), ("test", 10000, [9, 2, 1, 1, 6], 0.28685)])
def test_fashion_mnist_debian_files(split, n_rows, first_labels, mean_intensity):
    """The real files: 60000/10000 images of 784 pixels, 10 balanced classes, the published mean
    intensity (0.2860 train), threshold binarisation to {0, 1} in uint8."""
    raw, y = datasets.load_fashion_mnist(split, binarize=None)
    assert raw.shape == (n_rows, 784) and raw.dtype == np.uint8 and int(raw.max()) == 255
    assert raw.mean() / 255 == pytest.approx(mean_intensity, abs=1e-5)
    assert y.shape == (n_rows,) and y[:5].tolist() == first_labels
    assert np.bincount(y, minlength=10).tolist() == [n_rows // 10] * 10
    x, y2 = datasets.load_fashion_mnist(split)
    assert x.shape == raw.shape and x.dtype == np.uint8 and set(np.unique(x)) == {0, 1}
    assert np.array_equal(y, y2) and np.array_equal(x, datasets.binarize(raw, "threshold"))


@needs_fashion_mnist
def test_fashion_mnist_by_name_and_all_split():
    x, _ = datasets.by_name("fashion-mnist", split="all", limit=70000)
    assert x.shape == (70000, 784)
    head, _ = datasets.by_name("fashion-mnist", split="test", limit=5)
    assert head.shape == (5, 784) and np.array_equal(head, x[60000:60005])


# --------------------------------------------------------------------------- synthetic

@pytest.mark.parametrize("h, w", [(1, 1), (1, 3), (2, 2), (2, 3), (3, 3), (4, 2)])
def test_bars_and_stripes(h, w):
    data = datasets.bars_and_stripes(h, w)
    assert data.dtype == np.uint8 and data.shape == (2 ** h + 2 ** w - 2, h * w)
    assert len(np.unique(data, axis=0)) == len(data)
    images = data.reshape(-1, h, w)
    rows_constant = (images == images[:, :, :1]).all(axis=(1, 2))
    cols_constant = (images == images[:, :1, :]).all(axis=(1, 2))
    assert np.all(rows_constant | cols_constant)


def test_bars_and_stripes_counts():
    assert len(datasets.bars_and_stripes(3, 3)) == 14
    assert len(datasets.bars_and_stripes(2, 2)) == 6
    assert datasets.bars_and_stripes(2, 2).tolist() == [
        [0, 0, 0, 0], [0, 0, 1, 1], [0, 1, 0, 1], [1, 0, 1, 0], [1, 1, 0, 0], [1, 1, 1, 1]]
    with pytest.raises(ValueError, match="h"):
        datasets.bars_and_stripes(0, 3)
    with pytest.raises(TypeError, match="w"):
        datasets.bars_and_stripes(3, 2.0)


@pytest.mark.parametrize("n, n_sites", [(10, 4), (16, 4), (100, 30), (1, 1)])
def test_random_patterns(n, n_sites):
    a = datasets.random_patterns(n, n_sites, seed=7)
    b = datasets.random_patterns(n, n_sites, seed=7)
    assert a.dtype == np.uint8 and a.shape == (n, n_sites)
    assert np.array_equal(a, b)
    assert len(np.unique(a, axis=0)) == n
    assert set(np.unique(a)) <= {0, 1}


def test_random_patterns_seed_matters_and_errors():
    assert not np.array_equal(datasets.random_patterns(20, 30, seed=1), datasets.random_patterns(20, 30, seed=2))
    assert not np.array_equal(datasets.random_patterns(20, 10, seed=1), datasets.random_patterns(20, 10, seed=2))
    with pytest.raises(ValueError, match="distinct"):
        datasets.random_patterns(17, 4, seed=0)
    with pytest.raises(TypeError, match="seed"):
        datasets.random_patterns(3, 4, seed=None)


# --------------------------------------------------------------------------- by_name

@pytest.mark.parametrize("split", ["train", "test", "all"])
def test_by_name_mnist5k_is_load(split):
    x, shape = datasets.by_name("mnist5k", split=split)
    assert shape == (28, 28)
    assert np.array_equal(x, datasets.load("mnist5k", split=split)[0])
    x5, _ = datasets.by_name("mnist5k", split=split, limit=5)
    assert np.array_equal(x5, x[:5])


def test_by_name_fashion_mnist_reads_the_debian_folder(tmp_path, monkeypatch):
    monkeypatch.setattr(datasets, "FASHION_MNIST_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(FileNotFoundError, match="dataset-fashion-mnist"):
        datasets.by_name("fashion-mnist")
    _write_fashion_files(tmp_path)
    monkeypatch.setattr(datasets, "FASHION_MNIST_DIR", str(tmp_path))
    for split, n in (("train", 6), ("test", 4), ("all", 10)):
        x, shape = datasets.by_name("fashion-mnist", split=split)
        assert shape == (28, 28) and x.shape == (n, 784)
        assert np.array_equal(x, datasets.load_fashion_mnist(split, directory=tmp_path)[0])
    assert datasets.by_name("fashion-mnist", split="test", limit=3)[0].shape == (3, 784)


@pytest.mark.parametrize("name, shape", [("bars-and-stripes", datasets.BARS_AND_STRIPES_SHAPE),
                                         ("bars-and-stripes:2x3", (2, 3)), ("bars_and_stripes:4X2", (4, 2)),
                                         ("bars_and_stripes", datasets.BARS_AND_STRIPES_SHAPE)])
def test_by_name_bars_and_stripes(name, shape):
    expected = datasets.bars_and_stripes(*shape)
    for split in datasets.SPLITS:  # the same patterns for every split
        x, got = datasets.by_name(name, split=split)
        assert got == shape and np.array_equal(x, expected)
    assert np.array_equal(datasets.by_name(name, limit=2)[0], expected[:2])


def test_by_name_npy_files(tmp_path):
    rng = np.random.default_rng(0)
    flat = rng.integers(0, 2, size=(6, 5), dtype=np.uint8)
    images = rng.integers(0, 2, size=(4, 2, 3)).astype(np.float32)
    np.save(tmp_path / "flat.npy", flat)
    np.save(tmp_path / "images.npy", images)
    for split in ("train", "test", "anything"):  # one array for every split
        x, shape = datasets.by_name(str(tmp_path / "flat.npy"), split=split)
        assert shape is None and np.array_equal(x, flat)
    x, shape = datasets.by_name(tmp_path / "images.npy", limit=3)  # a Path works too; dtype kept
    assert shape == (2, 3) and x.dtype == np.float32 and np.array_equal(x, images[:3].reshape(3, 6))
    np.save(tmp_path / "empty.npy", np.zeros((0, 2, 2), np.uint8))
    x, shape = datasets.by_name(tmp_path / "empty.npy")
    assert x.shape == (0, 4) and shape == (2, 2)


def test_by_name_npz_files(tmp_path):
    train, test = np.eye(4, dtype=np.uint8), 1 - np.eye(4, dtype=np.uint8)[:2]
    np.savez(tmp_path / "split.npz", train=train, test=test)
    np.savez(tmp_path / "single.npz", data=train.reshape(4, 2, 2))
    assert np.array_equal(datasets.by_name(tmp_path / "split.npz")[0], train)
    assert np.array_equal(datasets.by_name(tmp_path / "split.npz", split="test")[0], test)
    x, shape = datasets.by_name(tmp_path / "single.npz", split="test")  # the only array, for any split
    assert shape == (2, 2) and np.array_equal(x, train)
    with pytest.raises(ValueError, match=r"arrays \['train', 'test'\].*'valid'"):
        datasets.by_name(tmp_path / "split.npz", split="valid")


def test_by_name_bad_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.npz"):
        datasets.by_name(str(tmp_path / "missing.npz"))
    (tmp_path / "garbage.npy").write_bytes(b"not numpy")
    (tmp_path / "garbage.npz").write_bytes(b"PK not a zip")
    for name in ("garbage.npy", "garbage.npz"):
        with pytest.raises(ValueError, match=name):
            datasets.by_name(tmp_path / name)
    np.save(tmp_path / "objects.npy", np.array([{"a": 1}], dtype=object))
    with pytest.raises(ValueError, match="objects.npy"):  # never unpickled
        datasets.by_name(tmp_path / "objects.npy")
    for shape in ((5,), (2, 2, 2, 2)):
        np.save(tmp_path / "odd.npy", np.zeros(shape, np.uint8))
        with pytest.raises(ValueError, match=rf"odd.npy.*{re.escape(str(shape))}"):
            datasets.by_name(tmp_path / "odd.npy")


@pytest.mark.parametrize("kwargs, exc, match", [
    (dict(name="cifar"), ValueError, "unknown data set 'cifar'; valid: mnist5k, fashion-mnist, bars-and-stripes, "
                                     "bars-and-stripes:HxW, or a path"),
    (dict(name="mnist5k:2x2"), ValueError, "unknown data set 'mnist5k:2x2'"),
    (dict(name="bars-and-stripes:3by3"), ValueError, "HxW.*'3by3'"),
    (dict(name="bars-and-stripes:x3"), ValueError, "HxW"),
    (dict(name="bars-and-stripes:0x3"), ValueError, "h must be >= 1"),
    (dict(name="mnist5k", split="valid"), ValueError, "split 'valid'"),
    (dict(name="bars-and-stripes", split="valid"), ValueError, "split 'valid'"),
    (dict(name="mnist5k", limit=0), ValueError, "limit must be >= 1"),
    (dict(name="mnist5k", limit=2.5), TypeError, "limit"),
    (dict(name=3), TypeError, "name must be"),
    (dict(name="mnist5k", split=None), TypeError, "split must be a string"),
])
def test_by_name_errors(kwargs, exc, match):
    name = kwargs.pop("name")
    with pytest.raises(exc, match=match):
        datasets.by_name(name, **kwargs)


def test_split_validation_holds_out_a_seeded_fraction_of_the_rows():
    x = np.arange(200).reshape(100, 2)
    fit, valid = datasets.split_validation(x, 0.1, seed=3)
    assert fit.shape == (90, 2) and valid.shape == (10, 2)
    assert sorted(np.concatenate([fit[:, 0], valid[:, 0]]).tolist()) == list(range(0, 200, 2))  # a partition
    assert np.all(np.diff(fit[:, 0]) > 0) and np.all(np.diff(valid[:, 0]) > 0)  # row order kept
    again, _ = datasets.split_validation(x, 0.1, seed=3)
    other, _ = datasets.split_validation(x, 0.1, seed=4)
    assert np.array_equal(again, fit) and not np.array_equal(other, fit)
    assert [len(p) for p in datasets.split_validation(x[:3], 0.01, seed=0)] == [2, 1]  # at least one of each
    assert [len(p) for p in datasets.split_validation(x[:3], 0.99, seed=0)] == [1, 2]


@pytest.mark.parametrize("fraction", [0, 1, -0.1, 1.5, True, "0.1"])
def test_split_validation_refuses_bad_fractions(fraction):
    with pytest.raises(ValueError, match="fraction must be a number in"):
        datasets.split_validation(np.zeros((10, 3)), fraction)


def test_split_validation_needs_two_rows():
    with pytest.raises(ValueError, match="at least 2 rows"):
        datasets.split_validation(np.zeros((1, 3)), 0.5)
