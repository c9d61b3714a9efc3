"""TTN Born machine on mnist5k: speed (sweep, sampling, log_prob) and quality against the MPS.

``speed``: one two-site tree sweep over 1000 training images at max_bond 16 and 32 (the TTN starts at
bond D everywhere, random and canonical, so the sweep runs at its cap): seconds and peak memory;
exact samples per second; log_prob GFLOP/s (2·N·n_params flops) against a plain matmul measured in
the same run. ``--with-mps`` adds the MPS sweep at the same D for reference.

``quality``: TTN (2D bisection tree) and MPS trained from bond 2 by SweepTrainer with the same data,
lr, trust region (max_step, default 0.3), sweeps and cutoff; test NLL (nats per image, 1000 test images) at equal max bond and at
(nominally) equal parameter count, with wall times.

``targets``: the three ratios of issue 13 in one run against a 1024³ matmul of the same run: log_prob of
4000 images at D = 16 and exact sampling at D = 16 (both counting 2·a·b·c flops per internal node (a, b, c)
per image), and one sweep over 1000 images of the TTN at D = 8 against the snake MPS at D = 9 (about equal
parameter counts; both after two sweeps from bond 2, timed in 9 alternating rounds). For sampling it also
prints the time of the two GEMMs per node the algorithm needs (a floor under the sampler's time).

``restructure``: the adaptive tree (``SweepTrainer(restructure=)``) on mnist5k (``--n-train`` rows, 1000 test
images, trainer defaults, from bond 2, max bond ``--bond``): a random tree (``Tree.random``, balanced over
randomly permuted pixels) fixed, with ``restructure="mi"`` and ``"nll"``, against the 2D bisection tree; test
NLL and rewirings per sweep (``--runs`` picks some). Run ``local-optimum`` bounds what the adaptive tree's moves can
reach: the random tree rewired by the same three-pairing moves at every edge (depth-first, until none helps)
under an oracle criterion, the data's pairwise mutual information across the edge, Σ_{i below, j not} I_ij
(:func:`bornmachine.pairwise_mutual_information` of the training rows), then trained fixed. Every run prints its
tree's cut information (that sum over all edges; lower = correlated pixels kept together) and height.

Usage:
  python benchmarks/bench_ttn.py targets
  python benchmarks/bench_ttn.py speed [--bonds 16 32] [--n-images 1000] [--with-mps]
  python benchmarks/bench_ttn.py quality [--bonds 8 16 32] [--n-train 1000] [--sweeps 3] [--lr 0.1]
  python benchmarks/bench_ttn.py restructure [--bond 8] [--n-train 4000] [--sweeps 6] [--lr 0.1]
                                             [--runs mi fixed nll bisection]
"""
import argparse
import time

import numpy as np
import torch

from bornmachine import MPS, TTN, Tree, datasets, pairwise_mutual_information, tree_kernels
from bornmachine import SweepTrainer
from bornmachine.distributed import Shard
from common import best_time, header, matmul_gflops, peak_memory_mib, reset_peak_memory


def data(n_train):
    train, _ = datasets.load("mnist5k", split="train")
    test, _ = datasets.load("mnist5k", split="test")
    return torch.as_tensor(train[:n_train]).long(), torch.as_tensor(test).long()


def speed(args):
    dtype = getattr(torch, args.dtype)
    header(f"TTN speed (cpu, {args.dtype}, {args.n_images} mnist5k images, 2D bisection tree of 28x28)")
    ref = matmul_gflops(dtype)
    print(f"reference matmul 1024^3: {ref:.1f} GFLOP/s", flush=True)
    x, _ = data(args.n_images)
    print(f"{'model':>5} {'D':>3} {'params':>9} {'sweep s':>8} {'peak MiB':>9} {'samples/s':>10} "
          f"{'log_prob s':>10} {'GFLOP/s':>8} {'vs matmul':>9}", flush=True)
    for bond in args.bonds:
        model = TTN((28, 28), bond, dtype=dtype, generator=torch.Generator().manual_seed(0)).canonicalize()
        flops = 2.0 * x.shape[0] * model.n_params  # Σ_nodes N·d0·d1·dp multiply-adds
        t_lp = best_time(lambda: model.log_prob(x), repeats=2)
        t_s = best_time(lambda: model.sample(1000, generator=torch.Generator().manual_seed(1)), repeats=1)
        reset_peak_memory()
        trainer = SweepTrainer(model.copy(), max_bond=bond, n_sweeps=1, max_step=0.3)
        record = trainer.fit(x, progress=False)[0]
        peak = peak_memory_mib()
        print(f"{'TTN':>5} {bond:3d} {model.n_params:9d} {record['time_s']:8.1f} {peak:9.0f} {1000 / t_s:10.0f} "
              f"{t_lp:10.2f} {flops / t_lp / 1e9:8.2f} {flops / t_lp / 1e9 / ref:9.2f}", flush=True)
        if args.with_mps:
            mps = MPS((28, 28), bond, dtype=dtype, generator=torch.Generator().manual_seed(0)).canonicalize(0)
            t_lp = best_time(lambda: mps.log_prob(x), repeats=2)
            t_s = best_time(lambda: mps.sample(1000, generator=torch.Generator().manual_seed(1)), repeats=1)
            reset_peak_memory()
            record = SweepTrainer(mps, max_bond=bond, n_sweeps=1, max_step=0.3).fit(x, progress=False)[0]
            flops = 2.0 * x.shape[0] * mps.n_params / 2  # one of the two physical slices per site
            print(f"{'MPS':>5} {bond:3d} {mps.n_params:9d} {record['time_s']:8.1f} {peak_memory_mib():9.0f} "
                  f"{1000 / t_s:10.0f} {t_lp:10.2f} {flops / t_lp / 1e9:8.2f} {flops / t_lp / 1e9 / ref:9.2f}",
                  flush=True)


def sweep_ratio(x, rounds: int = 9):
    """TTN (D = 8) and snake MPS (D = 9) sweeps over x, both after two sweeps from bond 2, timed in
    alternation ``rounds`` times (a busy or throttled machine then slows both alike): (TTN seconds,
    MPS seconds, median of the per-round ratios, (lowest, highest) ratio), times the best of the rounds."""
    part = Shard(0, x.shape[0], x.shape[0])
    engines = []
    for model, bond in ((TTN((28, 28), 2, generator=torch.Generator().manual_seed(0)), 8),
                        (MPS((28, 28), 2, ordering="snake", generator=torch.Generator().manual_seed(0)), 9)):
        trainer = SweepTrainer(model, max_bond=bond, n_sweeps=2)
        trainer.fit(x, progress=False)
        engines.append(trainer.engine)
    times = [[], []]
    for _ in range(rounds):
        for engine, out in zip(engines, times):
            t0 = time.perf_counter()
            engine.sweep(x, part)
            out.append(time.perf_counter() - t0)
    ratios = sorted(a / b for a, b in zip(*times))
    return min(times[0]), min(times[1]), ratios[len(ratios) // 2], (ratios[0], ratios[-1])


def sampling_gemm_bound(model, n_samples):
    """Seconds of the two GEMMs exact sampling needs at every node above the lookup tables (top-down
    M = t·v, (d0·d1, dp) @ (dp, N), and the bottom-up amplitude, (d1·dp, d0) @ (d0, N)), on random
    vectors of the right shapes: a floor under the sampler's time, whatever its other passes cost."""
    tables = tree_kernels.subtree_tables(model.tree, model.tensors, tree_kernels._SAMPLE_TABLE_SITES)
    n = model.n_sites
    total = 0.0
    for v in model.tree.internal:
        if v in tables:
            continue
        t = model.tensors[v - n]
        d0, d1, dp = t.shape
        top, left = t.reshape(d0 * d1, dp), t.permute(1, 2, 0).reshape(d1 * dp, d0)
        vp, v0 = torch.randn(dp, n_samples, dtype=t.dtype), torch.randn(d0, n_samples, dtype=t.dtype)
        total += best_time(lambda: (top @ vp, left @ v0), repeats=2)
    return total


def targets(args):
    header("TTN speed targets (issue 13), cpu float64, 2D bisection tree of 28x28")
    ref = matmul_gflops(torch.float64)
    x, _ = data(4000)
    model = TTN((28, 28), 16, generator=torch.Generator().manual_seed(0)).canonicalize()
    flops = 2.0 * model.n_params  # per image: Σ_nodes 2·a·b·c
    t_lp = best_time(lambda: model.log_prob(x), repeats=3)
    t_s = best_time(lambda: model.sample(2000, generator=torch.Generator().manual_seed(1)), repeats=2)
    t_ttn, t_mps, ratio, (low, high) = sweep_ratio(x[:1000])
    print(f"matmul 1024^3: {ref:.1f} GFLOP/s", flush=True)
    print(f"log_prob, 4000 images, D=16: {t_lp:.3f} s, {4000 * flops / t_lp / 1e9:.2f} GFLOP/s = "
          f"{4000 * flops / t_lp / 1e9 / ref:.1%} of matmul (target >= 30 %)")
    print(f"exact samples, D=16: {2000 / t_s:.0f} /s, {2000 * flops / t_s / 1e9:.2f} GFLOP/s = "
          f"{2000 * flops / t_s / 1e9 / ref:.1%} of matmul (target >= 20 %)")
    t_gemm = sampling_gemm_bound(model, 2000)
    print(f"  floor: its two GEMMs per node alone take {t_gemm:.3f} s (at most {2000 * flops / t_gemm / 1e9 / ref:.1%} "
          f"of matmul); the other {max(t_s - t_gemm, 0):.3f} s are passes over the (d0·d1, N) intermediates, "
          "draws and table lookups")
    print(f"one sweep over 1000 images: TTN D=8 {t_ttn:.2f} s, snake MPS D=9 {t_mps:.2f} s (best of 9 alternating "
          f"rounds), median ratio of the rounds {ratio:.2f} (range {low:.2f}-{high:.2f}; target <= 1.25)", flush=True)


def train_one(model, bond, args, train, test):
    trainer = SweepTrainer(model, max_bond=bond, lr=args.lr, n_steps=args.steps, cutoff=args.cutoff,
                           n_sweeps=args.sweeps, seed=0, max_step=args.max_step)
    t0 = time.perf_counter()
    history = trainer.fit(train, valid=test, progress=False)
    return history, time.perf_counter() - t0


def matched_mps_bond(n_params):
    """The MPS max bond whose nominal parameter count is closest to ``n_params``."""
    best = min(range(2, 200), key=lambda d: abs(MPS((28, 28), d).n_params - n_params))
    return best


def quality(args):
    header(f"TTN vs MPS test NLL on mnist5k ({args.n_train} train / 1000 test, {args.sweeps} sweeps, "
           f"lr {args.lr}, max_step {args.max_step}, {args.steps} step(s) per edge, cutoff {args.cutoff}, "
           "both from bond 2)")
    train, test = data(args.n_train)
    print(f"{'model':>14} {'max_bond':>8} {'params':>9} {'train NLL':>10} {'test NLL':>9} {'seconds':>8}  "
          "test NLL per sweep", flush=True)

    def report(name, bond, model, history, seconds):
        last = history[-1]
        curve = " ".join(f"{r['valid_nll']:.2f}" for r in history)
        print(f"{name:>14} {bond:8d} {model.n_params:9d} {last['train_nll']:10.2f} {last['valid_nll']:9.2f} "
              f"{seconds:8.1f}  {curve}", flush=True)

    for bond in args.bonds:
        ttn = TTN((28, 28), 2, generator=torch.Generator().manual_seed(0))
        report("TTN bisection", bond, ttn, *train_one(ttn, bond, args, train, test))
        for ordering in args.orderings:
            mps = MPS((28, 28), 2, ordering=ordering, generator=torch.Generator().manual_seed(0))
            report(f"MPS {ordering}", bond, mps, *train_one(mps, bond, args, train, test))
        matched = matched_mps_bond(TTN((28, 28), bond).n_params)
        mps = MPS((28, 28), 2, ordering=args.orderings[0], generator=torch.Generator().manual_seed(0))
        report(f"MPS {args.orderings[0][:3]} =par", matched, mps, *train_one(mps, matched, args, train, test))


RESTRUCTURE_RUNS = {"fixed": ("random", None), "mi": ("random", "mi"), "nll": ("random", "nll"),
                    "local-optimum": ("local-optimum", None), "bisection": ("bisection", None)}


def cut_information(tree, info) -> float:
    """Σ over the edges of Σ_{i below the edge, j not} info[i, j] (info: (n, n) pairwise MI, zero diagonal)."""
    total = 0.0
    for v in range(tree.n_nodes):
        if v != tree.root:
            below = np.zeros(tree.n_sites, bool)
            below[tree.sites_below(v)] = True
            row = info[below].sum(0)
            total += row.sum() - row[below].sum()
    return float(total)


def local_pairing_optimum(tree, info, max_passes: int = 50) -> tuple:
    """(tree, passes): the adaptive tree's moves (at the edge u–w, pair two of u's children a, b and w's other
    child c under u) applied greedily at every edge, depth-first from the root, each lowering the edge's cut
    information Σ_{i under u, j not} info[i, j], until a pass makes none."""
    n = tree.n_sites
    children = {v: [int(c) for c in tree.children[v]] for v in tree.internal}
    parent = {c: v for v, pair in children.items() for c in pair}
    below = {v: np.eye(1, n, v, dtype=bool)[0] for v in range(n)}
    rows = {v: info[v].copy() for v in range(n)}
    for v in tree.internal:  # children before parents
        a, b = children[v]
        below[v], rows[v] = below[a] | below[b], rows[a] + rows[b]

    def cut(x, y):
        row, mask = rows[x] + rows[y], below[x] | below[y]
        return row.sum() - row[mask].sum()

    for passes in range(1, max_passes + 1):
        moved, stack = 0, [tree.root]
        while stack:
            u = stack.pop()
            stack += [c for c in children[u] if c >= n]
            if u == tree.root:
                continue
            w = parent[u]
            (a, b), c = children[u], next(k for k in children[w] if k != u)
            options = [(a, b, c), (a, c, b), (b, c, a)]
            scores = [cut(x, y) for x, y, _ in options]
            k = int(np.argmin(scores))
            if k and scores[k] < scores[0] - 1e-12 * abs(scores[0]):
                x, y, z = options[k]
                children[u], children[w] = [x, y], [u, z] if children[w][0] == u else [z, u]
                parent[x] = parent[y] = u
                parent[z] = w
                below[u], rows[u] = below[x] | below[y], rows[x] + rows[y]
                moved += 1
        if not moved:
            break
    return Tree(np.array([children[v] for v in range(n, 2 * n - 1)])), passes


def restructure(args):
    header(f"adaptive tree on mnist5k ({args.n_train} train / 1000 test, D={args.bond}, {args.sweeps} sweeps, "
           f"lr {args.lr}, trainer defaults otherwise, from bond 2)")
    train, test = data(args.n_train)
    info = pairwise_mutual_information(train).double().numpy().copy()
    np.fill_diagonal(info, 0.0)
    for name in args.runs:
        kind, criterion = RESTRUCTURE_RUNS[name]
        tree = kind
        if kind in ("random", "local-optimum"):
            tree = Tree.random(784, torch.Generator().manual_seed(args.tree_seed))
            print(f"{name:>10} random tree: cut information {cut_information(tree, info):.0f}")
        if kind == "local-optimum":
            tree, passes = local_pairing_optimum(tree, info)
            print(f"{name:>10} after {passes} passes of oracle moves: cut information {cut_information(tree, info):.0f}")
        model = TTN((28, 28), 2, tree=tree, generator=torch.Generator().manual_seed(0))
        trainer = SweepTrainer(model, max_bond=args.bond, lr=args.lr, n_sweeps=args.sweeps, seed=0,
                               restructure=criterion)

        def report(record, name=name):
            print(f"{name:>10} sweep {record['epoch']}: test NLL {record['valid_nll']:.2f} train NLL "
                  f"{record['train_nll']:.2f} rewired {record.get('rewired', 0)} {record['time_s']:.0f} s", flush=True)

        history = trainer.fit(train, valid=test, callback=report, progress=False)
        curve = " ".join(f"{r['valid_nll']:.2f}" for r in history)
        print(f"{name:>10} final test NLL {history[-1]['valid_nll']:.2f}  per sweep: {curve}  "
              f"({sum(r['time_s'] for r in history):.0f} s, height {int(model.tree.height[model.tree.root])}, "
              f"cut information {cut_information(model.tree, info):.0f})", flush=True)


def main():
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="what", required=True)
    sub.add_parser("targets")
    p = sub.add_parser("speed")
    p.add_argument("--bonds", type=int, nargs="+", default=[16, 32])
    p.add_argument("--n-images", type=int, default=1000)
    p.add_argument("--dtype", default="float64", choices=["float64", "float32"])
    p.add_argument("--with-mps", action="store_true")
    p = sub.add_parser("quality")
    p.add_argument("--bonds", type=int, nargs="+", default=[8, 16, 32])
    p.add_argument("--n-train", type=int, default=1000)
    p.add_argument("--sweeps", type=int, default=3)
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--steps", type=int, default=1)
    p.add_argument("--cutoff", type=float, default=1e-7)
    p.add_argument("--max-step", type=float, default=0.3, help="SweepTrainer trust region, same for both models")
    p.add_argument("--orderings", nargs="+", default=["row_major"])
    p = sub.add_parser("restructure")
    p.add_argument("--bond", type=int, default=8)
    p.add_argument("--n-train", type=int, default=4000)
    p.add_argument("--sweeps", type=int, default=6)
    p.add_argument("--tree-seed", type=int, default=0, help="seed of the random tree")
    p.add_argument("--lr", type=float, default=0.1, help="learning rate (0.1: SweepTrainer's default)")
    p.add_argument("--runs", nargs="+", default=list(RESTRUCTURE_RUNS), choices=list(RESTRUCTURE_RUNS))
    args = parser.parse_args()
    torch.set_num_threads(1)
    {"targets": targets, "speed": speed, "quality": quality, "restructure": restructure}[args.what](args)


if __name__ == "__main__":
    main()
