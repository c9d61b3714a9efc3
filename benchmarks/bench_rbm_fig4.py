"""Fig.-4-style table: test NLL of dense / random / 1D-local / 2D-local RBMs at matched parameter counts.

For each budget, :func:`rbm.masks.matched` builds the four architectures (counts within 1 %), each is
trained by PCD-1 on the mnist5k train split (momentum 0.5, learning rate decayed linearly to 0), once
per learning rate in ``--lrs``; the run with the lowest *training* NLL (quick AIS: 50 chains x 1000
betas, or exact) is kept — kinds learn at very different speeds (a unit's escape from the initial
plateau scales with the top eigenvalue of the data covariance inside its receptive field, ~25x larger
for dense than for random units), so one shared learning rate would compare optimisation budgets, not
architectures. The kept model's test NLL is estimated with forward AIS (± one standard error of
log Z) and bracketed by reverse AIS (from data-initialised Gibbs chains), or computed exactly when the
model is small enough. Models and checkpoints go to ``--out`` so an interrupted run resumes.

    PYTHONPATH=. python benchmarks/bench_rbm_fig4.py --out runs/fig4             # default budgets
    PYTHONPATH=. python benchmarks/bench_rbm_fig4.py --quick                      # smoke run
"""
from __future__ import annotations

import argparse
import json
import os
import time

import torch

from rbm import CDTrainer, ais_log_z, exact_log_z, masks, reverse_ais_log_z
from rbm.io import load


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--budgets", type=int, nargs="+", default=[16484, 40034],
                   help="parameter budgets (defaults: dense RBMs with 20 and 50 hidden units)")
    p.add_argument("--kinds", nargs="+", default=list(masks.KINDS), choices=masks.KINDS)
    p.add_argument("--window-2d", type=int, default=5)
    p.add_argument("--window-1d", type=int, default=None, help="default: window_2d² (equal fan-in)")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--lrs", type=float, nargs="+", default=[0.1, 0.3], help="initial learning rates to try")
    p.add_argument("--momentum", type=float, default=0.5)
    p.add_argument("--weight-decay", type=float, default=1e-4)
    p.add_argument("--ais-chains", type=int, default=100)
    p.add_argument("--ais-betas", type=int, default=10000)
    p.add_argument("--n-gibbs", type=int, default=1000, help="Gibbs sweeps before reverse AIS")
    p.add_argument("--exact-max-units", type=int, default=20)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--out", default=None, help="folder for models, checkpoints and fig4.json")
    p.add_argument("--quick", action="store_true", help="tiny settings (1 epoch, 500 betas, 1000 images)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    from bornmachine import datasets

    x, _ = datasets.load("mnist5k", split="train")
    xt, _ = datasets.load("mnist5k", split="test")
    if args.quick:
        x, args.epochs, args.ais_betas, args.n_gibbs, args.lrs = x[:1000], 1, 500, 100, args.lrs[:1]
    if args.out:
        os.makedirs(args.out, exist_ok=True)
    load_avg = os.getloadavg()
    print(f"mnist5k: {len(x)} train / {len(xt)} test; PCD-1, {args.epochs} epochs, lr in {args.lrs}, momentum "
          f"{args.momentum}; AIS {args.ais_chains} chains x {args.ais_betas} betas; torch "
          f"{torch.get_num_threads()} threads; load average {load_avg[0]:.2f}")
    rows = []
    for budget in args.budgets:
        archs = masks.matched(budget, args.kinds, (28, 28), window_1d=args.window_1d, window_2d=args.window_2d,
                              seed=args.seed)
        for kind, arch in archs.items():
            t0 = time.perf_counter()
            candidates = []
            for lr in args.lrs:
                tag = f"{kind}-{budget}-lr{lr:g}"
                model_path = os.path.join(args.out, f"{tag}.npz") if args.out else None
                if model_path and os.path.exists(model_path):
                    model = load(model_path)
                else:
                    model = arch.build(generator=torch.Generator().manual_seed(args.seed))
                    ckpt = os.path.join(args.out, f"{tag}.ckpt.npz") if args.out else None
                    CDTrainer(model, lr=lr, lr_decay="linear", momentum=args.momentum,
                              weight_decay=args.weight_decay, batch_size=100, n_epochs=args.epochs, eval_every=0,
                              seed=args.seed, progress=False).fit(x, checkpoint=ckpt)
                    if model_path:
                        model.save(model_path)
                if min(model.n_visible, model.n_hidden) <= args.exact_max_units:
                    quick = exact_log_z(model)
                else:
                    quick = ais_log_z(model, 50, 1000, data=x, seed=args.seed)
                candidates.append((model.nll(x, quick).value, lr, model))
                print(f"  {tag}: train NLL {candidates[-1][0]:.2f} (quick log Z)", flush=True)
            _, lr, model = min(candidates, key=lambda item: item[0])
            tag = f"{kind}-{budget}"
            t_train = time.perf_counter() - t0
            t0 = time.perf_counter()
            gen = torch.Generator().manual_seed(args.seed + 1)
            if min(model.n_visible, model.n_hidden) <= args.exact_max_units:
                fwd = rev = exact_log_z(model)
                method = "exact"
            else:
                fwd = ais_log_z(model, args.ais_chains, args.ais_betas, data=x, generator=gen)
                rev = reverse_ais_log_z(model, args.ais_chains, args.ais_betas, data=x, n_gibbs=args.n_gibbs,
                                        generator=gen)
                method = "ais"
            t_eval = time.perf_counter() - t0
            row = {"budget": budget, "kind": kind, "lr": lr, "n_hidden": model.n_hidden, "n_params": model.n_params,
                   "options": {k: (list(v) if isinstance(v, tuple) else v) for k, v in arch.options.items()},
                   "log_z": fwd.value, "log_z_stderr": fwd.stderr, "log_z_reverse": rev.value,
                   "log_z_reverse_stderr": rev.stderr, "method": method,
                   "test_nll": model.nll(xt, fwd).value, "test_nll_reverse": model.nll(xt, rev).value,
                   "train_nll": model.nll(x, fwd).value, "train_s": t_train, "eval_s": t_eval}
            rows.append(row)
            print(f"{tag}: {arch.describe()}: test NLL {row['test_nll']:.2f} ± {fwd.stderr:.2f} "
                  f"(reverse {row['test_nll_reverse']:.2f}), train NLL {row['train_nll']:.2f}, "
                  f"lr {lr:g}, training + selection {t_train:.0f} s, log Z {t_eval:.0f} s", flush=True)
            if args.out:
                with open(os.path.join(args.out, "fig4.json.tmp"), "w") as f:
                    json.dump(rows, f, indent=2)
                os.replace(os.path.join(args.out, "fig4.json.tmp"), os.path.join(args.out, "fig4.json"))

    print()
    print("| budget | kind | hidden | #params | lr | test NLL (forward AIS ± SE) | reverse AIS | train NLL |")
    print("|---:|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        err = "exact" if r["method"] == "exact" else f"± {r['log_z_stderr']:.2f}"
        print(f"| {r['budget']} | {r['kind']} | {r['n_hidden']} | {r['n_params']} | {r['lr']:g} | "
              f"{r['test_nll']:.2f} {err} | {r['test_nll_reverse']:.2f} | {r['train_nll']:.2f} |")


if __name__ == "__main__":
    main()
