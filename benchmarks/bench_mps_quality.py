"""Quality: train/test NLL (nats per image) of SweepTrainer on the mnist5k split (4000 train / 1000 test)
at max_bond 16, 32, 64, with the number of sweeps and the wall time of each run.

Usage: python benchmarks/bench_mps_quality.py [--sweeps 4] [--bonds 16 32 64] [--lr 0.01] [--n-train 4000]
"""
import argparse
import time

import torch

from bornmachine import MPS, datasets
from bornmachine import SweepTrainer
from common import header


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--sweeps", type=int, default=4)
    parser.add_argument("--bonds", type=int, nargs="+", default=[16, 32, 64])
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--steps", type=int, default=1)
    parser.add_argument("--n-train", type=int, default=4000)
    parser.add_argument("--ordering", default="row_major")
    args = parser.parse_args()
    header(f"MPS quality on mnist5k ({args.n_train} train / 1000 test, {args.sweeps} sweeps, "
           f"lr {args.lr}, {args.steps} step(s) per bond, {args.ordering})")
    train, _ = datasets.load("mnist5k", split="train")
    test, _ = datasets.load("mnist5k", split="test")
    train = train[: args.n_train]
    print(f"{'max_bond':>8} {'sweeps':>6} {'train NLL':>10} {'test NLL':>10} {'params':>9} {'seconds':>8}")
    for bond in args.bonds:
        model = MPS((28, 28), 2, ordering=args.ordering, generator=torch.Generator().manual_seed(0))
        trainer = SweepTrainer(model, max_bond=bond, lr=args.lr, n_steps=args.steps, n_sweeps=args.sweeps)
        t0 = time.perf_counter()
        history = trainer.fit(train, valid=test, progress=False)
        seconds = time.perf_counter() - t0
        last = history[-1]
        curve = " ".join(f"{r['valid_nll']:.1f}" for r in history)
        print(f"{bond:8d} {args.sweeps:6d} {last['train_nll']:10.2f} {last['valid_nll']:10.2f} "
              f"{model.n_params:9d} {seconds:8.1f}   test NLL per sweep: {curve}", flush=True)


if __name__ == "__main__":
    main()
