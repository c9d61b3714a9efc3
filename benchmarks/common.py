"""Shared helpers for the benchmark scripts: reference matmul speed, peak memory, load average.

Benchmarks print figures and never assert times. Run them alone: one busy core slows small-matrix
work many times over.
"""
from __future__ import annotations

import os
import time

import torch


def matmul_gflops(dtype=torch.float64, size: int = 1024, device="cpu", repeats: int = 5) -> float:
    """Best achieved GFLOP/s of a plain (size × size) @ (size × size) matmul in this process."""
    a = torch.randn(size, size, dtype=dtype, device=device)
    b = torch.randn(size, size, dtype=dtype, device=device)
    a @ b
    best = float("inf")
    for _ in range(repeats):
        _sync(device)
        t0 = time.perf_counter()
        a @ b
        _sync(device)
        best = min(best, time.perf_counter() - t0)
    return 2 * size ** 3 / best / 1e9


def best_time(fn, repeats: int = 3, device="cpu") -> float:
    """Smallest wall time of ``fn()`` over ``repeats`` runs (after one warm-up call)."""
    fn()
    best = float("inf")
    for _ in range(repeats):
        _sync(device)
        t0 = time.perf_counter()
        fn()
        _sync(device)
        best = min(best, time.perf_counter() - t0)
    return best


def reset_peak_memory() -> None:
    """Reset the process's peak resident set size (Linux: /proc/self/clear_refs)."""
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
    except OSError:
        pass
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()


def peak_memory_mib() -> float:
    """Peak resident set size since the last reset, MiB (VmHWM)."""
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def header(title: str) -> None:
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"== {title} | torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"load average {load:.2f} ==", flush=True)


def _sync(device) -> None:
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()
