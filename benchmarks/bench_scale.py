"""Scaling of SweepTrainer: one two-site sweep of a 28 x 28 MPS at bond D (random start, every bond at
the cap: the worst case) against the number of training images N and the number of processes.

Prints, per run: seconds per sweep, peak resident memory of rank 0 and the part of it the training
added, the cached-environment memory the formula predicts (N_rank · Σ_k D_k · itemsize), and the
achieved GFLOP/s (the flop model of bench_mps_sweep.py) against a plain matmul measured in the same
run. Every run is a fresh process (clean peak memory); P > 1 runs go through
``python -m torch.distributed.run --nproc_per_node=P`` (gloo), each process with ``--threads``
intra-op threads. Data: mnist5k training images cycled and 1% of the pixels flipped (seeded), so any
N gives distinct, MNIST-like rows ("synthetic").

Usage:
  PYTHONPATH=. python benchmarks/bench_scale.py                      # N = 1000, 4000 at D = 32; 1 and 2 processes
  PYTHONPATH=. python benchmarks/bench_scale.py --sizes 500 --bond 8 # a quick sanity run
  PYTHONPATH=. python benchmarks/bench_scale.py --full               # adds N = 60000 (hours on 2 cores)
  ... --env-dtype float32                                            # float32 environments
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))


def synthetic_mnist(n: int, seed: int = 0) -> np.ndarray:
    """(n, 784) uint8: mnist5k training images cycled, 1% of the pixels flipped."""
    from bornmachine import datasets

    base, _ = datasets.load("mnist5k", split="train")
    x = base[np.arange(n) % base.shape[0]].reshape(n, -1)
    flip = np.random.default_rng(seed).random(x.shape) < 0.01
    return np.where(flip, 1 - x, x).astype(np.uint8)


def env_bytes(n_rows: int, dims, itemsize: int) -> int:
    """Cached environments of one sweep: N · Σ_k D_k · itemsize (bond dimensions D_1 … D_{n−1})."""
    return n_rows * sum(dims[1:-1]) * itemsize


def worker(args) -> None:
    """One run (one rank of it under torchrun): print a JSON line from rank 0."""
    from bornmachine import MPS, distributed
    from bornmachine import SweepTrainer
    from bench_mps_sweep import sweep_flops
    from common import peak_memory_mib, reset_peak_memory

    torch.set_num_threads(args.threads)
    env_dtype = getattr(torch, args.env_dtype)
    with distributed.launched():
        x = synthetic_mnist(args.rows)
        model = MPS((28, 28), args.bond, generator=torch.Generator().manual_seed(0))
        trainer = SweepTrainer(model, max_bond=args.bond, n_sweeps=1, env_dtype=env_dtype)
        reset_peak_memory()
        base = peak_memory_mib()
        record = trainer.fit(x, progress=False)[0]
        peak = peak_memory_mib()
        part = distributed.shard(args.rows)
        dims = [1] + model.bond_dims + [1]
        if distributed.is_main():
            print(json.dumps({"n": args.rows, "procs": distributed.world_size(), "seconds": record["time_s"],
                              "peak_mib": peak, "added_mib": peak - base, "train_nll": record["train_nll"],
                              "env_mib": env_bytes(part.size, dims, env_dtype.itemsize) / 2 ** 20,
                              "gflops": sweep_flops(dims, args.rows) / record["time_s"] / 1e9}), flush=True)


def launch(args, n: int, procs: int) -> dict:
    """Run :func:`worker` in a fresh process (or ``procs`` processes under torchrun); its JSON record."""
    base = [os.path.join(HERE, "bench_scale.py"), "--worker", "--rows", str(n), "--bond", str(args.bond),
            "--threads", str(args.threads), "--env-dtype", args.env_dtype]
    cmd = [sys.executable] + (["-m", "torch.distributed.run", f"--nproc_per_node={procs}"] if procs > 1 else []) + base
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
    done = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"run N={n} P={procs} failed:\n{done.stdout}")
    return json.loads(lines[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 4000])
    parser.add_argument("--full", action="store_true", help="also N = 60000")
    parser.add_argument("--bond", type=int, default=32)
    parser.add_argument("--procs", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--threads", type=int, default=1, help="intra-op threads per process")
    parser.add_argument("--env-dtype", default="float64", choices=["float64", "float32"])
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--rows", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args)
    from common import header, matmul_gflops

    sizes = args.sizes + ([60000] if args.full else [])
    torch.set_num_threads(args.threads)
    header(f"MPS sweep scaling (cpu, float64 model, {args.env_dtype} environments, D = {args.bond}, "
           f"{args.threads} thread(s) per process)")
    ref = matmul_gflops(torch.float64)
    print(f"plain matmul 1024^3, {args.threads} thread(s): {ref:.1f} GFLOP/s", flush=True)
    print(f"{'N':>7} {'procs':>5} {'s/sweep':>8} {'speed-up':>8} {'peak MiB':>9} {'added MiB':>9} "
          f"{'env MiB':>8} {'GFLOP/s':>8} {'vs matmul':>9} {'train NLL':>10}", flush=True)
    for n in sizes:
        single = None
        for procs in args.procs:
            t0 = time.perf_counter()
            r = launch(args, n, procs)
            single = single or (r["time_s"] if procs == 1 else None)
            speed = f"{single / r['seconds']:8.2f}" if single else f"{'-':>8}"
            print(f"{n:7d} {procs:5d} {r['seconds']:8.2f} {speed} {r['peak_mib']:9.0f} {r['added_mib']:9.0f} "
                  f"{r['env_mib']:8.0f} {r['gflops']:8.2f} {r['gflops'] / ref:9.2f} {r['train_nll']:10.4f}"
                  f"   ({time.perf_counter() - t0:.0f} s wall)", flush=True)
    dims = [1] + [min(2 ** k, 2 ** (784 - k), 64) for k in range(1, 784)] + [1]
    for name, size in (("float64", 8), ("float32", 4)):
        print(f"extrapolated environments, 60000 x 784 at D = 64, one process, {name}: "
              f"{env_bytes(60000, dims, size) / 2 ** 30:.1f} GiB", flush=True)


if __name__ == "__main__":
    main()
