"""Speed of the RBM kernels (exact log Z, forward/reverse AIS, one PCD epoch on mnist5k) and CDTrainer
against scikit-learn's BernoulliRBM.

``kernels`` (the default) prints seconds and, for scale, the ratio to a reference float64 matmul
measured in the same run (the cost floor of the work: AIS needs two (chains × 784) @ (784 × hidden)
products per beta). ``sklearn`` trains BernoulliRBM (100 hidden, 20 epochs, batch 100, lr 0.1 and
0.05) and CDTrainer with its training defaults (100 hidden, no evaluation during training) on the
4000 training rows back to back, and with ``--patience P`` also CDTrainer with early stopping on
validation rows carved from the training rows (seeded); it scores all by this package's forward AIS
on the 1000 test images and prints test NLL ± AIS error, training seconds and whether CDTrainer is
≥ 3 nats better than the best BernoulliRBM in ≤ 2× its time. scikit-learn is a benchmark-only extra
(``pip install .[bench]``).

    PYTHONPATH=. python benchmarks/bench_rbm.py            # all kernel figures (a few minutes on 2 cores)
    PYTHONPATH=. python benchmarks/bench_rbm.py --quick    # smaller sizes, seconds
    PYTHONPATH=. python benchmarks/bench_rbm.py sklearn    # CDTrainer vs BernoulliRBM (about a minute)

Targets (issue): exact_log_z for 20 hidden x 784 visible < 5 s; AIS with 500 hidden, 100 chains x
10^4 betas < 60 s; CDTrainer ≥ 3 nats below BernoulliRBM in ≤ 2× its time.
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch

from rbm import RBM, CDTrainer, ais_log_z, exact_log_z, reverse_ais_log_z

SKLEARN_LRS = (0.1, 0.05)


def matmul_seconds(m: int, k: int, n: int, repeats: int = 50) -> float:
    a = torch.rand(m, k, dtype=torch.float64)
    b = torch.rand(k, n, dtype=torch.float64)
    a @ b
    t0 = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return (time.perf_counter() - t0) / repeats


def mnist(split: str = "train"):
    """mnist5k rows (N, 784) uint8: 4000 train or 1000 test."""
    try:
        from bornmachine import datasets

        return datasets.load("mnist5k", split=split)[0].reshape(-1, 784)
    except (ImportError, FileNotFoundError, ValueError) as err:  # pragma: no cover - data missing
        print(f"mnist5k unavailable ({err}); using random binary data of the same shape")
        n = 4000 if split == "train" else 1000
        seed = 0 if split == "train" else 1
        return (torch.rand(n, 784, generator=torch.Generator().manual_seed(seed)) < 0.13).to(torch.uint8).numpy()


def trained_model(x, n_hidden: int, epochs: int) -> RBM:
    """A model with realistic (MNIST-trained) weights, so AIS faces a real landscape."""
    r = RBM(784, n_hidden, generator=torch.Generator().manual_seed(0))
    CDTrainer(r, lr=0.01, momentum=0.5, batch_size=100, n_epochs=epochs, eval_every=0, seed=0).fit(x, progress=False)
    return r


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("command", nargs="?", choices=("kernels", "sklearn"), default="kernels",
                   help="kernels: speed of log Z, AIS and PCD (default); sklearn: CDTrainer vs BernoulliRBM")
    p.add_argument("--quick", action="store_true", help="smaller sizes (smoke run)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    p.add_argument("--patience", type=int, default=None,
                   help="sklearn: also train CDTrainer with this patience on validation rows (none when not given)")
    p.add_argument("--valid", type=int, default=500, help="sklearn: validation rows carved from the training rows")
    p.add_argument("--seed", type=int, default=0, help="sklearn: seed of the models, the split and AIS")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    load = os.getloadavg()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, load average {load[0]:.2f} "
          f"{load[1]:.2f} {load[2]:.2f}")
    if args.command == "sklearn":
        against_sklearn(args.patience, args.valid, args.seed, n_betas=1000 if args.quick else 10000)
    else:
        kernels(args.quick)


def kernels(quick: bool) -> None:
    """Print the speed of exact log Z, forward/reverse AIS and a PCD epoch."""
    n_betas = 1000 if quick else 10000
    exact_hidden = 14 if quick else 20
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
    x = mnist("train")
    t0 = time.perf_counter()
    model = trained_model(x, 500, 1 if quick else 3)
    t_train = time.perf_counter() - t0
    n_epochs = 1 if quick else 3
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


def sklearn_rbm(x: np.ndarray, lr: float, seed: int) -> tuple[RBM, float]:
    """BernoulliRBM (100 hidden, 20 epochs, batch 100) fitted to x (N, 784) as an :class:`RBM`, and its seconds."""
    from sklearn.neural_network import BernoulliRBM

    model = BernoulliRBM(n_components=100, learning_rate=lr, batch_size=100, n_iter=20, random_state=seed)
    xf = x.astype(np.float64)
    t0 = time.perf_counter()
    model.fit(xf)
    seconds = time.perf_counter() - t0
    r = RBM(784, 100)
    r.set_parameters(torch.from_numpy(model.components_.T.copy()), torch.from_numpy(model.intercept_visible_),
                     torch.from_numpy(model.intercept_hidden_))
    return r, seconds


def cd_rbm(x: np.ndarray, valid: np.ndarray | None, seed: int, **hyper) -> tuple[RBM, float, CDTrainer]:
    """A 100-hidden RBM trained by CDTrainer (its defaults and ``hyper``) on x (N, 784), its seconds, the trainer."""
    model = RBM(784, 100, generator=torch.Generator().manual_seed(seed))
    trainer = CDTrainer(model, seed=seed, **hyper)
    t0 = time.perf_counter()
    trainer.fit(x, valid, progress=False)
    return model, time.perf_counter() - t0, trainer


def against_sklearn(patience: int | None, n_valid: int, seed: int, n_betas: int) -> None:
    """Print test NLL (forward AIS, 100 chains) and training seconds of BernoulliRBM and CDTrainer at 100 hidden."""
    x, xt = mnist("train"), mnist("test")
    runs = []
    for lr in SKLEARN_LRS:
        model, seconds = sklearn_rbm(x, lr, seed)
        runs.append((f"BernoulliRBM lr {lr:g}, 20 epochs, {len(x)} rows", model, seconds))
    model, seconds, trainer = cd_rbm(x, None, seed, eval_every=0)
    runs.append((f"CDTrainer defaults, {trainer.epoch} epochs, {len(x)} rows", model, seconds))
    print(f"CDTrainer defaults: {trainer.hyper_parameters()}")
    if patience is not None:
        order = np.random.default_rng(seed).permutation(len(x))
        fit_rows, valid_rows = x[np.sort(order[n_valid:])], x[np.sort(order[:n_valid])]
        model, seconds, trainer = cd_rbm(fit_rows, valid_rows, seed, patience=patience)
        runs.append((f"CDTrainer patience {patience}, {trainer.epoch} epochs (kept {trainer.best_epoch}), "
                     f"{len(fit_rows)} + {len(valid_rows)} valid rows, evaluated every epoch", model, seconds))
    print(f"test NLL on {len(xt)} mnist5k images, forward AIS 100 chains x {n_betas} betas (nats):")
    nll = []
    for name, model, seconds in runs:
        log_z = ais_log_z(model, 100, n_betas, data=x, generator=torch.Generator().manual_seed(seed + 1))
        nll.append(model.nll(xt, log_z).value)
        print(f"  {name}: {nll[-1]:.2f} ± {log_z.stderr:.2f}, {seconds:.1f} s")
    best = int(np.argmin(nll[:2]))
    gain, ratio = nll[best] - nll[2], runs[2][2] / runs[best][2]
    holds = gain >= 3.0 and ratio <= 2.0
    print(f"target (CDTrainer defaults >= 3 nats below the best BernoulliRBM in <= 2x its time): {gain:+.2f} nats, "
          f"{ratio:.2f}x the time -> {'holds' if holds else 'MISSED'}")


if __name__ == "__main__":
    main()
