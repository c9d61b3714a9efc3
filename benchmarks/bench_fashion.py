"""Reference table on full binarized Fashion-MNIST: Born machines and RBMs trained to validation convergence.

Models (defaults): MPS on the snake chain at D = 16 and 32, TTN on the bisection tree at D = 8 and 16, a dense
RBM of 500 hidden units and a 2D-local RBM with the same parameter count (:func:`comparison.experiments.rbm_jobs`).
A seeded 10 % of the 60000 training images is held out: every choice (sweeps or epochs by early stopping, the
RBMs' learning rate) is made on it; the 10000 test images are only scored (exact NLL for the Born machines,
forward AIS ± its standard error, bracketed by reverse AIS, for the RBMs). Each model trains in a fresh process,
so its wall time and peak resident memory (VmHWM) are its own. Every sweep and epoch is checkpointed under
``OUT/models`` and every finished model's row is kept in ``OUT/rows.json``: the same command resumes.
Writes ``OUT/table.md``, ``table.csv``/``.json``, ``convergence.csv`` and ``convergence.png``.

Usage:
  PYTHONPATH=. python benchmarks/bench_fashion.py --out runs/fashion --sweep-caps ttn-D16=12   # the table (2 cores)
  PYTHONPATH=. python benchmarks/bench_fashion.py --data mnist5k --max-train 300 --max-test 100 \\
      --mps-bonds 2 --ttn-bonds 2 --hidden 8 --max-sweeps 2 --max-epochs 2 --out /tmp/smoke   # a smoke run
"""
from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

COLUMNS = ["model", "n_params", "lr", "max_sweeps", "epochs", "best_epoch", "converged", "valid_nll", "test_nll",
           "test_nll_stderr", "ais_gap", "train_nll", "seconds", "peak_mib"]


def model_names(args) -> list[str]:
    """The table's models in order: ``mps-snake-D<D>``, ``ttn-D<D>``, ``rbm-dense-<h>``, ``rbm-local_2d-<h>``."""
    return ([f"mps-snake-D{d}" for d in args.mps_bonds] + [f"ttn-D{d}" for d in args.ttn_bonds]
            + [f"rbm-{kind}-{h}" for h in args.hidden for kind in ("dense", "local_2d")])


def sweep_cap(name: str, args) -> int | None:
    """The most sweeps of a Born machine (its ``--sweep-caps`` entry, else ``--max-sweeps``); None for RBMs."""
    if name.startswith("rbm-"):
        return None
    caps = dict(item.split("=") for item in args.sweep_caps)
    return int(caps[name]) if name in caps else args.max_sweeps


def load(args):
    """(fit rows, validation rows, test rows, shape) as uint8 tensors (N, n)."""
    from comparison.experiments import split_rows
    from comparison.report import load_dataset

    train, test, shape = load_dataset(args.data, args.max_train, args.max_test, seed=args.seed)
    fit, valid = split_rows(torch.from_numpy(train), args.valid_fraction, args.seed)
    return fit, valid, torch.from_numpy(test), shape


def train_one(name: str, args) -> dict:
    """Train and score one model of the table (in this process); its result row."""
    from comparison.experiments import born_result_row, rbm_jobs, rbm_result_row

    from common import peak_memory_mib

    t0 = time.perf_counter()
    x, xv, xt, shape = load(args)
    folder = os.path.join(args.out, "models")
    if name.startswith("rbm-"):
        _, kind, hidden = name.split("-")
        budget = shape[0] * shape[1] + int(hidden) * (shape[0] * shape[1] + 1)
        (arch,) = [a for _, k, a in rbm_jobs([budget], [kind], shape, args.seed)]
        row = rbm_result_row(arch, x, xv, xt, name, max_epochs=args.max_epochs, lrs=args.rbm_lrs, restarts=1,
                             patience=args.rbm_patience, batch_size=100, eval_ais=args.eval_ais,
                             ais_chains=args.ais[0], ais_betas=args.ais[1], n_gibbs=args.n_gibbs, seed=args.seed,
                             folder=folder)
    else:
        kind, bond = name.rsplit("-D", 1)
        row = born_result_row(kind, x, xv, xt, shape, int(bond), max_sweeps=sweep_cap(name, args),
                              lrs=args.born_lrs, restarts=1, patience=args.born_patience, seed=args.seed, folder=folder)
    row.update(model=name, max_sweeps=sweep_cap(name, args), seconds=time.perf_counter() - t0,
               peak_mib=peak_memory_mib(),
               n_fit=len(x), n_valid=len(xv), n_test=len(xt), threads=torch.get_num_threads())
    return row


def write_outputs(rows: dict, names: list[str], args, total: float) -> str:
    """table.md/csv/json and the convergence curves from the finished rows; the markdown."""
    from comparison import figures
    from comparison.selection import curve_rows, curve_table
    from comparison.table import Table, write_text

    done = [dict(rows[n], max_sweeps=rows[n].get("max_sweeps", sweep_cap(n, args))) for n in names if n in rows]
    table = Table("table", COLUMNS, [{c: r.get(c) for c in COLUMNS} for r in done])
    table.to_csv(os.path.join(args.out, "table.csv"))
    table.to_json(os.path.join(args.out, "table.json"))
    curves = curve_table("convergence", [c for r in done for c in curve_rows(r["model"], r)])
    curves.to_csv(os.path.join(args.out, "convergence.csv"))
    if done:
        figures.convergence(curves, os.path.join(args.out, "convergence.png"))
    first = done[0] if done else {}
    text = (f"# Reference table: {args.data}\n\n{first.get('n_fit')} training rows (a seeded "
            f"{args.valid_fraction:.0%} more, {first.get('n_valid')} rows, for validation), {first.get('n_test')} "
            f"test rows; NLL in nats per image. Born machines: two-site sweeps from bond 2, at most "
            f"{args.max_sweeps} (or the row's max_sweeps), stopped {args.born_patience} sweeps after the lowest "
            f"validation NLL, exact NLL. "
            f"RBMs: PCD-1 (centered, Adam), at most {args.max_epochs} epochs, patience {args.rbm_patience}, lr among "
            f"{args.rbm_lrs} by validation, test NLL by forward AIS ({args.ais[0]} chains × {args.ais[1]} "
            f"temperatures) ± its standard error; ais_gap = |forward − reverse AIS|. seconds: training and scoring "
            f"of the model in its own process ({first.get('threads')} threads); peak_mib: that process's peak "
            f"resident memory. Total {total / 60:.1f} min this run; {platform.platform()}, torch {torch.__version__}."
            f"\n\n{table.to_markdown(digits=2)}\n")
    write_text(os.path.join(args.out, "table.md"), text)
    return text


def parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="runs/fashion", help="folder of checkpoints and results (resumes)")
    p.add_argument("--data", default="fashion-mnist", help="a data set of bornmachine.datasets.by_name")
    p.add_argument("--max-train", type=int, default=None, help="subsample the training images (seeded)")
    p.add_argument("--max-test", type=int, default=None, help="subsample the test images (seeded)")
    p.add_argument("--mps-bonds", type=int, nargs="*", default=[16, 32])
    p.add_argument("--ttn-bonds", type=int, nargs="*", default=[8, 16])
    p.add_argument("--hidden", type=int, nargs="*", default=[500], help="dense RBM sizes (local_2d matched)")
    p.add_argument("--max-sweeps", type=int, default=40)
    p.add_argument("--sweep-caps", nargs="*", default=[], metavar="NAME=N",
                   help="the most sweeps of single models, e.g. ttn-D16=15 (a D = 16 tree sweep over 54000 rows "
                        "takes minutes); the others get --max-sweeps")
    p.add_argument("--born-patience", type=int, default=2)
    p.add_argument("--born-lrs", type=float, nargs="+", default=[0.05])
    p.add_argument("--max-epochs", type=int, default=30)
    p.add_argument("--rbm-patience", type=int, default=4)
    p.add_argument("--rbm-lrs", type=float, nargs="+", default=[0.003, 0.01])
    p.add_argument("--eval-ais", type=int, nargs=2, default=[32, 300], help="per-epoch validation AIS")
    p.add_argument("--ais", type=int, nargs=2, default=[100, 3000], help="chains, temperatures of the test AIS")
    p.add_argument("--n-gibbs", type=int, default=500, help="Gibbs steps before the reverse AIS")
    p.add_argument("--valid-fraction", type=float, default=0.1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--one", help=argparse.SUPPRESS)  # internal: train this model in this process
    return p.parse_args(argv)


def main(argv=None) -> None:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse(argv)
    torch.set_num_threads(args.threads)
    os.makedirs(args.out, exist_ok=True)
    store_path = os.path.join(args.out, "rows.json")
    # the model lists, the single models' sweep caps (kept in each row) and threads are left out: adding a model
    # keeps the finished rows
    settings = {k: v for k, v in vars(args).items()
                if k not in ("out", "one", "threads", "mps_bonds", "ttn_bonds", "hidden", "sweep_caps")}
    from comparison.table import RowStore

    store = RowStore(store_path, settings)
    if args.one:
        store.put(args.one, train_one(args.one, args))
        return
    names = model_names(args)
    t0 = time.perf_counter()
    for name in names:
        if name in store and store.get(name).get("max_sweeps", sweep_cap(name, args)) == sweep_cap(name, args):
            print(f"{name}: done (cached)", flush=True)
            continue
        print(f"{name}: training ...", flush=True)
        subprocess.run([sys.executable, os.path.abspath(__file__), *argv, "--one", name], check=True)
        store = RowStore(store_path, settings)
        row = store.get(name)
        print(f"{name}: test NLL {row['test_nll']:.2f}, {row['seconds']:.0f} s, {row['peak_mib']:.0f} MiB",
              flush=True)
    print(write_outputs({n: store.get(n) for n in names if n in store}, names, args, time.perf_counter() - t0))


if __name__ == "__main__":
    main()
