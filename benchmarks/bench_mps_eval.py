"""MPS evaluation speed: log_prob GFLOP/s (D = 64, 4000 images), exact sampling samples/s (n = 784, D = 32),
and entanglement_profile vs quimb's per-bond entropies (D = 64), each against matmul in the same run.

Usage: python benchmarks/bench_mps_eval.py [--device cpu|cuda]
"""
import argparse
import math
import time

import torch

from bornmachine import MPS, datasets
from common import best_time, header, matmul_gflops


def chain_flops(model, n):
    """Flops of one row-vector × matrix product per site and sample, 2 N D_l D_r per site: the site-by-site
    work of an amplitude (the least a sampler needs). log_prob performs about half of it (one product per
    pair of sites, with the pair's two-site matrix), so its figure below is work-equivalent GFLOP/s."""
    return sum(2 * n * t.shape[0] * t.shape[2] for t in model.tensors[1:])


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    dev = args.device
    header(f"MPS evaluation ({dev})")
    images, _ = datasets.load("mnist5k", split="train")
    x = torch.as_tensor(images, device=dev)
    for dtype in (torch.float64, torch.float32):
        ref = matmul_gflops(dtype, device=dev)
        print(f"[{dtype}] plain matmul 1024^3: {ref:.1f} GFLOP/s")
        model = MPS((28, 28), 64, dtype=dtype, device=dev, generator=torch.Generator().manual_seed(0))
        model.canonicalize(0)
        t = best_time(lambda: model.log_prob(x), device=dev)
        gf = chain_flops(model, x.shape[0]) / t / 1e9
        ref = max(ref, matmul_gflops(dtype, device=dev))  # again right after: the larger (conservative) reference
        print(f"[{dtype}] log_prob 4000 images D=64: {t:.3f} s, {gf:.1f} GFLOP/s work-equivalent ({gf / ref:.0%} of "
              f"matmul {ref:.1f}, the better of the runs before and after; performed: about half)")
        model32 = MPS((28, 28), 32, dtype=dtype, device=dev, generator=torch.Generator().manual_seed(0))
        model32.canonicalize(0)
        n = 20000
        gen = torch.Generator(device=dev).manual_seed(1)
        t = best_time(lambda: model32.sample(n, generator=gen), repeats=2, device=dev)
        gf = chain_flops(model32, n) / t / 1e9
        print(f"[{dtype}] sample n=784 D=32: {n / t:,.0f} samples/s ({gf:.1f} GFLOP/s of one-branch work, "
              f"{gf / ref:.0%} of matmul; the sampler performs about 1.5× that)")
    model = MPS((28, 28), 64, generator=torch.Generator().manual_seed(0))
    t_ours = best_time(lambda: model.entanglement_profile(), repeats=2)
    try:
        qmps = model.to_quimb()
        qmps /= math.sqrt(float(qmps.H @ qmps))
        bonds = range(1, model.n_sites)
        t0 = time.perf_counter()
        ref_profile = [qmps.entropy(i) * math.log(2) for i in bonds]
        t_quimb = time.perf_counter() - t0
        err = max(abs(a - b) for a, b in zip(ref_profile, model.entanglement_profile().tolist()))
        print(f"entanglement_profile n=784 D=64: ours {t_ours:.3f} s, quimb per-bond entropy {t_quimb:.2f} s, "
              f"speed-up {t_quimb / t_ours:.1f}x, max |difference| {err:.2e} nats")
        model.canonicalize(0)  # as a trained or loaded model is: the canonical sweep is skipped
        t_canon = best_time(lambda: model.entanglement_profile(), repeats=2)
        print(f"entanglement_profile of a model already canonical at site 0 (after training): {t_canon:.3f} s, "
              f"speed-up {t_quimb / t_canon:.1f}x")
    except ImportError:
        print(f"entanglement_profile n=784 D=64: ours {t_ours:.3f} s (quimb not installed)")


if __name__ == "__main__":
    main()
