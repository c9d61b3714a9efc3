"""Scaling of SweepTrainer: one two-site sweep of a 28 x 28 MPS at bond D against the number of training
images N and the number of processes, and its memory against the README's formula.

Prints, per run: seconds per sweep, peak resident memory of rank 0 and the part of it the training
added, the memory the formula predicts (:func:`sweep_bytes`: cached environments, sample orders, per-step
buffers) and the bound the sweep should stay within (environments + 25 % + 300 MiB), and the achieved
GFLOP/s (the flop model of bench_mps_sweep.py) against a plain matmul measured in the same run. Every run is
a fresh process (clean peak memory); P > 1 runs go through ``python -m torch.distributed.run
--nproc_per_node=P`` (gloo), each process with ``--threads`` intra-op threads. Data: mnist5k training images
cycled and 1% of the pixels flipped (seeded), so any N gives distinct, MNIST-like rows ("synthetic"), or
``--data fashion-mnist`` (Debian's files, the first N training images). The MPS starts at random with bond
``--start`` (default D, every bond at the cap: the worst case; 2 is what ``bornmachine train`` starts from).

Usage:
  PYTHONPATH=. python benchmarks/bench_scale.py                      # N = 1000, 4000 at D = 32; 1 and 2 processes
  PYTHONPATH=. python benchmarks/bench_scale.py --sizes 500 --bond 8 # a quick sanity run
  PYTHONPATH=. python benchmarks/bench_scale.py --full               # adds N = 60000 (hours on 2 cores)
  ... --env-dtype float32                                            # float32 environments
  PYTHONPATH=. python benchmarks/bench_scale.py --data fashion-mnist --sizes 60000 --bond 8 --start 2 --procs 1 --threads 2
                                    # the first sweep of `bornmachine train --data fashion-mnist --max-bond 8`
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


def slot_dims(dims, max_bond: int) -> list[int]:
    """The environment width the sweep stores per bond, from the bond dimensions before it (D_0 … D_n):
    D_k, or what the left→right pass can grow it to, min(max_bond, 2 D_{k+1}), if larger."""
    inner = [max(dims[k], min(max_bond, 2 * dims[k + 1])) for k in range(1, len(dims) - 1)]
    return [1] + inner + [1]


def sweep_bytes(n_rows: int, n_pixels: int, dims, max_bond: int, env_size: int, model_size: int = 8) -> dict:
    """The README's memory of one MPS sweep of one process over ``n_rows`` rows (bond dimensions before it):
    environments N · Σ_k D_k · b_env, sample orders N · (n − 1) · b_idx and the per-step buffers
    N · D · (m · b + 2 b_env) (m = 1 model-dtype matrix, 4 when the environments are stored in another dtype) plus
    208 bytes a row (four columns, three index rows, positions, ones and the line search's 17 float64 terms)."""
    from bornmachine.linalg import index_dtype

    width = max([max_bond] + list(dims))
    index_size = torch.empty(0, dtype=index_dtype(n_rows)).element_size()
    matrices = 1 if env_size == model_size else 4
    return {"env": env_bytes(n_rows, slot_dims(dims, max_bond), env_size),
            "orders": n_rows * (n_pixels - 1) * index_size,
            "buffers": n_rows * width * (matrices * model_size + 2 * env_size) + n_rows * 8 * (4 + 3 + 1 + 1 + 17)}


def worker(args) -> None:
    """One run (one rank of it under torchrun): print a JSON line from rank 0."""
    from bornmachine import MPS, SweepTrainer, datasets, distributed
    from bench_mps_sweep import sweep_flops
    from common import peak_memory_mib, reset_peak_memory

    torch.set_num_threads(args.threads)
    env_dtype = getattr(torch, args.env_dtype)
    with distributed.launched():
        if args.data == "fashion-mnist":
            x = datasets.load_fashion_mnist("train")[0][: args.rows]
        else:
            x = synthetic_mnist(args.rows)
        model = MPS((28, 28), args.start or args.bond, generator=torch.Generator().manual_seed(0))
        before = [1] + model.bond_dims + [1]
        trainer = SweepTrainer(model, max_bond=args.bond, n_sweeps=1, env_dtype=env_dtype)
        reset_peak_memory()
        base = peak_memory_mib()
        record = trainer.fit(x, progress=False)[0]
        peak = peak_memory_mib()
        part = distributed.shard(args.rows)
        dims = [1] + model.bond_dims + [1]
        predicted = sweep_bytes(part.size, 784, before, args.bond, env_dtype.itemsize)
        if distributed.is_main():
            print(json.dumps({"n": args.rows, "procs": distributed.world_size(), "seconds": record["time_s"],
                              "peak_mib": peak, "added_mib": peak - base, "train_nll": record["train_nll"],
                              **{f"{k}_mib": v / 2 ** 20 for k, v in predicted.items()},
                              "gflops": sweep_flops(dims, args.rows) / record["time_s"] / 1e9}), flush=True)


def launch(args, n: int, procs: int) -> dict:
    """Run :func:`worker` in a fresh process (or ``procs`` processes under torchrun); its JSON record."""
    base = [os.path.join(HERE, "bench_scale.py"), "--worker", "--rows", str(n), "--bond", str(args.bond),
            "--threads", str(args.threads), "--env-dtype", args.env_dtype, "--data", args.data,
            "--start", str(args.start or args.bond)]
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
    parser.add_argument("--data", default="synthetic", choices=["synthetic", "fashion-mnist"])
    parser.add_argument("--start", type=int, default=None, help="bond of the random start (default: --bond)")
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
          f"{'env MiB':>8} {'formula':>8} {'bound':>8} {'GFLOP/s':>8} {'vs matmul':>9} {'train NLL':>10}", flush=True)
    for n in sizes:
        single = None
        for procs in args.procs:
            t0 = time.perf_counter()
            r = launch(args, n, procs)
            single = single or (r["seconds"] if procs == 1 else None)
            speed = f"{single / r['seconds']:8.2f}" if single else f"{'-':>8}"
            formula = r["env_mib"] + r["orders_mib"] + r["buffers_mib"]
            bound = 1.25 * r["env_mib"] + 300
            verdict = "within" if r["added_mib"] <= bound else "OVER"
            print(f"{n:7d} {procs:5d} {r['seconds']:8.2f} {speed} {r['peak_mib']:9.0f} {r['added_mib']:9.0f} "
                  f"{r['env_mib']:8.0f} {formula:8.0f} {bound:8.0f} {r['gflops']:8.2f} {r['gflops'] / ref:9.2f} "
                  f"{r['train_nll']:10.4f}   ({verdict} the bound; {time.perf_counter() - t0:.0f} s wall)", flush=True)
    dims = [1] + [min(2 ** k, 2 ** (784 - k), 64) for k in range(1, 784)] + [1]
    for name, size in (("float64", 8), ("float32", 4)):
        print(f"extrapolated environments, 60000 x 784 at D = 64, one process, {name}: "
              f"{env_bytes(60000, dims, size) / 2 ** 30:.1f} GiB", flush=True)


if __name__ == "__main__":
    main()
