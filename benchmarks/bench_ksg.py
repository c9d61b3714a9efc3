"""KSG mutual information on 5000 MNIST digits (up/down cut at row 14), beside the exact empirical
plug-in MI and data Rényi-2 of the same cut, and the tree min-cut bounds of 28×28 MPS/TTN models.

Prints wall times, values (nats), the saturation record and the load average. Never asserts times.

Usage (package installed, or PYTHONPATH=. from the repository root):
    python benchmarks/bench_ksg.py [--n 5000] [--k 3] [--threads T] [--repeats 1]
"""
import argparse
import math
import os
import time

import torch

from bornmachine import MPS, TTN, datasets
from common import header, matmul_gflops
from comparison import bipartitions, capacity, information


def timed(fn, repeats):
    best, value = math.inf, None
    for _ in range(repeats):
        t0 = time.perf_counter()
        value = fn()
        best = min(best, time.perf_counter() - t0)
    return value, best


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=5000, help="number of images (mnist5k 'all': at most 5000)")
    parser.add_argument("--k", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    header("KSG / plug-in / data Rényi-2 on mnist5k, up_down(row=14)")
    print(f"load average (1, 5, 15 min): {', '.join(f'{x:.2f}' for x in os.getloadavg())}; "
          f"cpu count {os.cpu_count()}")
    print(f"reference float64 matmul: {matmul_gflops(torch.float64):.1f} GFLOP/s")
    images, _ = datasets.load("mnist5k", split="all")
    x = images[: args.n]
    bip = bipartitions.up_down((28, 28), 14)
    n, n_x, n_y = x.shape[0], bip.sites_x.size, bip.sites_y.size
    flops = 2.0 * n * n * (n_x + n_y)  # the two Gram products of the kNN search

    ksg, t_ksg = timed(lambda: information.ksg_mutual_information(x, bip, k=args.k), args.repeats)
    print(f"KSG (k={args.k}, N={n}, {n_x}+{n_y} pixels): I = {ksg:.4f} nats in {t_ksg:.2f} s "
          f"({flops / t_ksg / 1e9:.1f} GFLOP/s of Gram products)")
    seeds = [information.ksg_mutual_information(x, bip, k=args.k, seed=s) for s in (1, 2)]
    print(f"KSG with jitter seeds 1, 2: {seeds[0]:.4f}, {seeds[1]:.4f} nats")
    (mi, sat), t_mi = timed(lambda: information.plugin_mutual_information(x, bip, return_saturation=True),
                            args.repeats)
    s2, t_s2 = timed(lambda: information.data_renyi2(x, bip), args.repeats)
    print(f"plug-in MI: {mi:.4f} nats in {t_mi:.3f} s; data S2: {s2:.4f} nats in {t_s2:.3f} s")
    print(f"saturation: ln N = {sat.log_n:.4f}, MI ceiling {sat.mi_ceiling:.4f}, S2 ceiling "
          f"{sat.renyi2_ceiling:.4f}, distinct X/Y/rows = {sat.n_distinct_x}/{sat.n_distinct_y}/"
          f"{sat.n_distinct}, saturated = {sat.saturated}")

    bips = bipartitions.standard_set((28, 28))
    checker = bipartitions.checkerboard((28, 28), 1)
    for model in (MPS((28, 28), 32, generator=torch.Generator().manual_seed(0)),
                  TTN((28, 28), 32, generator=torch.Generator().manual_seed(0))):
        t0 = time.perf_counter()
        for b in bips:
            capacity.network_bound(model, b)
        dt = time.perf_counter() - t0
        virtual = capacity.network_bound(model, checker, physical_legs=False)
        print(f"{model.kind} D=32: min-cut bounds of the {len(bips)} standard bipartitions in {dt:.2f} s; "
              f"up_down(14): {capacity.network_bound(model, bip):.3f} nats, checkerboard(1): "
              f"{capacity.network_bound(model, checker):.3f} nats (virtual bonds only: {virtual:.3f})")
    print(f"load average at the end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
