"""MPS chains from the data against the geometric ones: locality, wall time and test NLL.

For each chain — row-major, snake, Hilbert and ``orderings.from_data`` (method ``--methods``: ``curve``, ``tree``,
``tree-plain`` = the tree order without the locality swaps, ``fiedler``) — prints
:func:`bornmachine.orderings.locality` of the training rows' pairwise MI, the seconds ``from_data`` took, and the
test NLL of an MPS (``SweepTrainer`` defaults, from bond 2, ``--bond``, ``--sweeps``) trained on the first
``--n-train`` training rows, scored on 1000 test images. ``--shuffle SEED`` permutes the pixels of both splits
first (the geometric chains then see a scrambled image).

Usage:
  python benchmarks/bench_orderings.py [--data mnist5k|fashion-mnist] [--n-train 3600] [--bond 9] [--sweeps 6]
                                       [--methods curve tree tree-plain] [--shuffle 7]
"""
import argparse
import time

import numpy as np
import torch

from bornmachine import MPS, SweepTrainer, datasets, orderings, pairwise_mutual_information
from bornmachine.spectral import significant_information
from common import header

GEOMETRIC = ("row_major", "snake", "hilbert")


def load(name: str, n_train: int):
    """(train (n_train, 784), test (1000, 784)) float64 tensors."""
    if name == "fashion-mnist":
        train, test = datasets.load_fashion_mnist("train")[0], datasets.load_fashion_mnist("test")[0][:1000]
    else:
        train, test = datasets.load("mnist5k", split="train")[0], datasets.load("mnist5k", split="test")[0]
    as_rows = lambda a: torch.as_tensor(np.asarray(a)).reshape(len(a), -1).double()
    return as_rows(train[:n_train]), as_rows(test)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", default="mnist5k", choices=["mnist5k", "fashion-mnist"])
    parser.add_argument("--n-train", type=int, default=3600)
    parser.add_argument("--bond", type=int, default=9)
    parser.add_argument("--sweeps", type=int, default=6)
    parser.add_argument("--methods", nargs="+", default=["curve", "tree", "tree-plain"])
    parser.add_argument("--shuffle", type=int, default=None, help="seed of a pixel permutation of both splits")
    args = parser.parse_args()
    train, test = load(args.data, args.n_train)
    if args.shuffle is not None:
        perm = torch.from_numpy(np.random.default_rng(args.shuffle).permutation(train.shape[1]))
        train, test = train[:, perm], test[:, perm]
    header(f"MPS chains on {args.data} ({len(train)} train / {len(test)} test, bond {args.bond}, {args.sweeps} sweeps"
           + (f", pixels shuffled by seed {args.shuffle})" if args.shuffle is not None else ")"))
    mi = significant_information(pairwise_mutual_information(train).numpy(), len(train))
    chains = {name: (getattr(orderings, name)((28, 28)), 0.0) for name in GEOMETRIC}
    for method in args.methods:
        t0 = time.perf_counter()
        order = orderings.from_data(train, method.replace("-plain", ""), refine=not method.endswith("-plain"))
        chains[f"from_data {method}"] = (order, time.perf_counter() - t0)
    print(f"{'chain':22s} {'locality':>9s} {'from_data s':>12s} {'test NLL':>9s} {'params':>8s} {'train s':>8s}")
    for name, (order, seconds) in chains.items():
        mps = MPS((28, 28), 2, ordering=order, generator=torch.Generator().manual_seed(0))
        t0 = time.perf_counter()
        SweepTrainer(mps, max_bond=args.bond, n_sweeps=args.sweeps).fit(train, progress=False)
        print(f"{name:22s} {orderings.locality(order, mi):9.1f} {seconds:12.1f} {mps.nll(test):9.2f} "
              f"{mps.n_params:8d} {time.perf_counter() - t0:8.1f}", flush=True)


if __name__ == "__main__":
    main()
