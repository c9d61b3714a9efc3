"""Learning rate of the sweep trainer, decided on validation at convergence (the default of SweepTrainer).

Each Born machine is trained as the comparison trains it (:func:`comparison.training.train_born_machine`:
sweeps from bond 2 up to the cap, early stopping on the validation NLL with ``--patience``, best-validation
tensors kept) on the quick report's split of mnist5k (3600 fit / 400 validation rows of the 4000 training
images; the 1000 test images only for the last column), once per learning rate. Prints per run the best
validation NLL, the test NLL, the best / last sweep and the validation curve. A zero-probability test image
shows as test NLL inf.

  python benchmarks/bench_born_lr.py [--kinds ttn mps-snake] [--bonds 2 4 8] [--lrs 0.05 0.1 0.2]
      [--max-sweeps 20] [--patience 3] [--folder runs/bench_born_lr]
"""
from __future__ import annotations

import argparse
import time

import torch

from comparison.experiments import split_rows
from comparison.report import load_dataset
from comparison.training import train_born_machine
from bornmachine.validation import as_binary


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--kinds", nargs="+", default=["ttn", "mps-snake"])
    p.add_argument("--bonds", type=int, nargs="+", default=[2, 4, 8])
    p.add_argument("--lrs", type=float, nargs="+", default=[0.05, 0.1, 0.2])
    p.add_argument("--max-sweeps", type=int, default=20)
    p.add_argument("--patience", type=int, default=3)
    p.add_argument("--folder", default="runs/bench_born_lr", help="checkpoints (a rerun re-reads finished runs)")
    args = p.parse_args()
    torch.set_num_threads(1)
    train, test, shape = load_dataset("mnist5k", 4000, 1000)
    n = shape[0] * shape[1]
    x, xv = split_rows(as_binary(train, n, name="train", shape=shape), 0.1, 0)
    xt = as_binary(test, n, name="test", shape=shape)
    print(f"== sweep-trainer learning rate on mnist5k ({len(x)} fit / {len(xv)} validation / {len(xt)} test, "
          f"<= {args.max_sweeps} sweeps, patience {args.patience}) | torch {torch.__version__}, 1 thread ==")
    for kind in args.kinds:
        for bond in args.bonds:
            for lr in args.lrs:
                t0 = time.perf_counter()
                run = train_born_machine(kind, x, xv, shape, bond, max_sweeps=args.max_sweeps, lrs=[lr],
                                         patience=args.patience, seed=0, folder=args.folder)
                curve = " ".join(f"{r['valid_nll']:.1f}" for r in run.history)
                print(f"{kind:>10} D={bond:<3d} lr {lr:<5g} valid {run.valid_nll:7.2f} test {run.model.nll(xt):7.2f} "
                      f"best sweep {run.best_epoch}/{len(run.history)} {time.perf_counter() - t0:5.0f} s | {curve}",
                      flush=True)


if __name__ == "__main__":
    main()
