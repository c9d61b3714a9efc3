"""Speed of the RBM kernels: exact log Z, forward/reverse AIS, one PCD epoch on mnist5k.

Prints seconds and, for scale, the ratio to a reference float64 matmul measured in the same run
(the cost floor of the work: AIS needs two (chains × 784) @ (784 × hidden) products per beta).

    PYTHONPATH=. python benchmarks/bench_rbm.py            # all figures (a few minutes on 2 cores)
    PYTHONPATH=. python benchmarks/bench_rbm.py --quick    # smaller sizes, seconds

Targets (issue): exact_log_z for 20 hidden x 784 visible < 5 s; AIS with 500 hidden, 100 chains x
10^4 betas < 60 s.
"""
from __future__ import annotations

import argparse
import os
import time

import torch

from rbm import RBM, CDTrainer, ais_log_z, exact_log_z, reverse_ais_log_z


def matmul_seconds(m: int, k: int, n: int, repeats: int = 50) -> float:
    a = torch.rand(m, k, dtype=torch.float64)
    b = torch.rand(k, n, dtype=torch.float64)
    a @ b
    t0 = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return (time.perf_counter() - t0) / repeats


def mnist_train():
    try:
        from bornmachine import datasets

        return datasets.load("mnist5k", split="train")[0]
    except (ImportError, FileNotFoundError, ValueError) as err:  # pragma: no cover - data missing
        print(f"mnist5k unavailable ({err}); using random binary data of the same shape")
        return (torch.rand(4000, 784, generator=torch.Generator().manual_seed(0)) < 0.13).to(torch.uint8).numpy()


def trained_model(x, n_hidden: int, epochs: int) -> RBM:
    """A model with realistic (MNIST-trained) weights, so AIS faces a real landscape."""
    r = RBM(784, n_hidden, generator=torch.Generator().manual_seed(0))
    CDTrainer(r, lr=0.01, momentum=0.5, batch_size=100, n_epochs=epochs, eval_every=0, seed=0).fit(x, progress=False)
    return r


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="smaller sizes (smoke run)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    n_betas = 1000 if args.quick else 10000
    exact_hidden = 14 if args.quick else 20
    load = os.getloadavg()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, load average {load[0]:.2f} "
          f"{load[1]:.2f} {load[2]:.2f}")

    mm = matmul_seconds(100, 784, 500)
    print(f"reference matmul (100x784)@(784x500) float64: {mm * 1e3:.3f} ms")

    # exact log Z -------------------------------------------------------------------------------
    r = RBM(784, exact_hidden, init_std=0.05, generator=torch.Generator().manual_seed(1))
    r.c = torch.randn(exact_hidden, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    t0 = time.perf_counter()
    lz = exact_log_z(r)
    dt = time.perf_counter() - t0
    per = dt / (2 ** exact_hidden * 784) * 1e9
    print(f"exact_log_z {exact_hidden} hidden x 784 visible: {dt:.2f} s ({per:.2f} ns per (h, i) term), "
          f"log Z = {lz.value:.6f}")

    # AIS --------------------------------------------------------------------------------------
    x = mnist_train()
    t0 = time.perf_counter()
    model = trained_model(x, 500, 1 if args.quick else 3)
    t_train = time.perf_counter() - t0
    n_epochs = 1 if args.quick else 3
    print(f"PCD-1 epoch, 500 hidden, {x.shape[0]} mnist5k train images, batch 100: {t_train / n_epochs:.2f} s "
          f"(mean of {n_epochs} epochs)")
    t0 = time.perf_counter()
    fwd = ais_log_z(model, 100, n_betas, data=x, generator=torch.Generator().manual_seed(3))
    t_fwd = time.perf_counter() - t0
    floor = 2 * n_betas * mm
    print(f"AIS forward, 500 hidden, 100 chains x {n_betas} betas: {t_fwd:.1f} s "
          f"({t_fwd / floor:.2f} x the two-matmul floor {floor:.1f} s), log Z = {fwd}, ESS {fwd.ess:.1f}")
    t0 = time.perf_counter()
    rev = reverse_ais_log_z(model, 100, n_betas, data=x, n_gibbs=1000, generator=torch.Generator().manual_seed(4))
    t_rev = time.perf_counter() - t0
    print(f"AIS reverse (1000 Gibbs sweeps from data, then anneal): {t_rev:.1f} s, log Z = {rev}, ESS {rev.ess:.1f}")
    print(f"forward/reverse spread: {rev.value - fwd.value:+.4f} nats "
          f"(mean train NLL bracket [{model.nll(x, fwd).value:.3f}, {model.nll(x, rev).value:.3f}])")


if __name__ == "__main__":
    main()
