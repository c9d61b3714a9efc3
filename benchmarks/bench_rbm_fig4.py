"""Fig.-4 table: test NLL of dense / random / 1D-local / 2D-local RBMs at matched parameter counts.

A timed front end to :func:`comparison.experiments.rbm_architectures` (see its docstring for the
protocol: matched budgets, windows growing with the budget, a validation split of the training rows,
PCD-1 with early stopping and learning-rate selection on the validation NLL, forward AIS ± standard
error bracketed by reverse AIS). Models, checkpoints and tables
go to ``--out``, so an interrupted run resumes.

    PYTHONPATH=. python benchmarks/bench_rbm_fig4.py --out runs/fig4              # 5 budgets, paper-like
    PYTHONPATH=. python benchmarks/bench_rbm_fig4.py --out runs/fig4q --quick      # smoke run
"""
from __future__ import annotations

import argparse
import os
import time

import torch

from comparison import experiments
from comparison.report import load_dataset
from rbm import masks


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--hidden", type=int, nargs="+", default=[4, 8, 16, 32, 64],
                   help="budgets, as the parameter counts of dense RBMs with these hidden counts")
    p.add_argument("--kinds", nargs="+", default=list(masks.PAPER_KINDS), choices=masks.PAPER_KINDS)
    p.add_argument("--epochs", type=int, default=40, help="most epochs (early stopping on the validation NLL)")
    p.add_argument("--patience", type=int, default=4, help="epochs without a lower validation NLL before stopping")
    p.add_argument("--lrs", type=float, nargs="+", default=[0.003, 0.01, 0.03], help="initial learning rates to try")
    p.add_argument("--ais-chains", type=int, default=100)
    p.add_argument("--ais-betas", type=int, default=10000)
    p.add_argument("--n-gibbs", type=int, default=1000, help="Gibbs sweeps before reverse AIS")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--out", default="runs/fig4", help="folder for models, checkpoints and tables")
    p.add_argument("--quick", action="store_true", help="tiny settings (1 epoch, 500 betas, 1000 images)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    train, test, shape = load_dataset("mnist5k")
    if args.quick:
        train, args.epochs, args.ais_betas, args.n_gibbs, args.lrs = train[:1000], 1, 500, 100, args.lrs[:1]
    n = shape[0] * shape[1]
    budgets = [n + h * (n + 1) for h in args.hidden]
    print(f"mnist5k: {len(train)} train (10 % held out) / {len(test)} test; PCD-1, ≤ {args.epochs} epochs, lr in "
          f"{args.lrs}; AIS "
          f"{args.ais_chains} chains x {args.ais_betas} betas; torch {torch.get_num_threads()} threads; load average "
          f"{os.getloadavg()[0]:.2f}")
    t0 = time.perf_counter()
    res = experiments.rbm_architectures(train, test, shape, budgets=budgets, kinds=args.kinds,
                                        max_epochs=args.epochs, patience=args.patience, lrs=args.lrs,
                                        ais_chains=args.ais_chains, ais_betas=args.ais_betas,
                                        n_gibbs=args.n_gibbs, seed=args.seed, out=args.out)
    print(f"{time.perf_counter() - t0:.0f} s (models already in {args.out} were re-read, not retrained)\n")
    print(res.tables["fig4"].to_markdown(digits=2))
    print()
    for line in res.findings:
        print(f"- {line}")


if __name__ == "__main__":
    main()
