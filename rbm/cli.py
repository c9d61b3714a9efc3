"""Command line: ``python -m rbm train|evaluate ...`` (console script ``rbm``).

Examples::

    rbm train --data mnist5k --hidden 100 --mask local_2d --window 5 --epochs 20 --out runs/rbm.npz
    rbm train --data mnist5k --params 40000 --mask local_1d --window 56 --out runs/rbm1d.npz
    rbm evaluate runs/rbm.npz --data mnist5k --split test --ais-betas 10000 --reverse

``--data`` takes what :func:`bornmachine.datasets.by_name` takes: ``mnist5k`` (28 x 28, fixed
train/test split), ``fashion-mnist``, ``bars-and-stripes`` or ``bars-and-stripes:HxW`` (all patterns,
same for every split), or a path to a ``.npy`` file (an (N, n) or (N, H, W) binary array) or ``.npz``
file (the array named after the split, else the only array). ``--limit N`` keeps the first N rows
(quick runs).

``train`` also runs data-parallel under torchrun (``torchrun --nproc_per_node=P -m rbm train ...``):
it joins the process group itself (gloo), every rank trains on its block of each minibatch and of the
persistent chains, and only rank 0 prints and writes files.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time

import torch
from tqdm import tqdm

from bornmachine import datasets, distributed
from bornmachine.cli import DATA_HELP, HelpFormatter, choice_name

from . import masks
from .io import load
from .model import RBM
from .partition import estimate_log_z, reverse_ais_log_z
from .training import CDTrainer

__all__ = ["main", "build_parser"]


def _image_shape(shape_arg, data_shape, n_visible: int) -> tuple[int, int]:
    if shape_arg is not None:
        shape = tuple(shape_arg)
    elif data_shape is not None:
        shape = data_shape
    else:
        side = math.isqrt(n_visible)
        if side * side != n_visible:
            raise ValueError(f"{n_visible} visible units are not a square image; pass --shape H W")
        shape = (side, side)
    if shape[0] * shape[1] != n_visible:
        raise ValueError(f"--shape {shape} has {shape[0] * shape[1]} pixels but the data have {n_visible}")
    return shape


def _build_rbm(args, x, shape, generator) -> RBM:
    """The RBM the options ask for; a ``from_data`` mask comes from the training rows ``x``."""
    n_visible = x.shape[1]
    dtype = torch.float32 if args.float32 else torch.float64
    if args.params is not None:
        if args.hidden is not None:
            raise ValueError("pass either --hidden or --params, not both")
        window_1d = args.window if args.mask == "local_1d" else None
        window_2d = args.window if args.mask in ("local_2d", "random") and args.window is not None else 5
        arch = masks.matched(args.params, [args.mask], shape, window_1d=window_1d, stride_1d=args.stride,
                             window_2d=window_2d, stride_2d=args.stride, seed=args.seed, data=x,
                             fan_in=args.fan_in)[args.mask]
        return arch.build(dtype=dtype, generator=generator)
    if args.hidden is None:
        raise ValueError("pass --hidden N (or --params N for a parameter budget)")
    n_hidden = args.hidden
    if args.mask == "dense":
        mask = None
    elif args.mask == "random":
        if args.edges is None:
            raise ValueError("--mask random needs --edges N")
        mask = masks.random(n_visible, n_hidden, args.edges, args.seed)
    elif args.mask == "from_data":
        mask = masks.from_data(x, n_hidden, args.fan_in or 25)
    elif args.mask == "local_1d":
        if args.window is None:
            raise ValueError("--mask local_1d needs --window N (fragment length in pixels)")
        mask = masks.local_1d(n_visible, args.window, args.stride, n_hidden=n_hidden)
    else:
        mask = masks.local_2d(shape, args.window or 5, args.stride, n_hidden=n_hidden)
    return RBM(n_visible, n_hidden, mask=mask, dtype=dtype, generator=generator)


def _train(args) -> int:
    with distributed.launched():
        return _train_here(args)


def _train_here(args) -> int:
    main = distributed.is_main()  # rank 0 of a torchrun launch, or the only process
    x, data_shape = datasets.by_name(args.data, split="train", limit=args.limit)
    valid = datasets.by_name(args.data, split=args.valid, limit=args.limit)[0] if args.valid else None
    shape = _image_shape(args.shape, data_shape, x.shape[1])
    gen = torch.Generator().manual_seed(args.seed)
    rbm = _build_rbm(args, x, shape, gen)
    if main:
        print(f"model: {rbm!r}", flush=True)
    trainer = CDTrainer(rbm, k=args.k, persistent=not args.cd, lr=args.lr, lr_decay=args.lr_decay,
                        momentum=args.momentum,
                        weight_decay=args.weight_decay, batch_size=args.batch_size, n_epochs=args.epochs,
                        centering=not args.no_centering, adaptive=not args.no_adaptive, patience=args.patience,
                        average=args.average if args.average > 0 else None,
                        eval_every=args.eval_every, log_z=args.log_z, ais_chains=args.ais_chains,
                        ais_betas=args.ais_betas, track_log_z=not args.no_track_log_z, generator=gen)

    def report(rec):
        if not main:
            return
        parts = [f"epoch {rec['epoch']}", f"{rec['time_s']:.2f} s"]
        if rec["train_nll"] is not None:
            err = f" ± {rec['log_z_stderr']:.2g}" if rec["log_z_stderr"] else ""
            parts.append(f"train NLL {rec['train_nll']:.4f}{err} ({rec['log_z_method']})")
        if rec["valid_nll"] is not None:
            parts.append(f"{args.valid} NLL {rec['valid_nll']:.4f}")
        tqdm.write(", ".join(parts))

    history = trainer.fit(x, valid, checkpoint=args.checkpoint, callback=report, progress=not args.no_progress)
    if not main:
        return 0
    if args.out:
        rbm.save(args.out)
        print(f"saved {args.out}")
    if args.history:
        _write_json(args.history, {"hyper_parameters": trainer.hyper_parameters(), "n_params": rbm.n_params,
                                   "history": history})
        print(f"wrote {args.history}")
    return 0


def _evaluate(args) -> int:
    rbm = load(args.model)
    x, _ = datasets.by_name(args.data, split=args.split, limit=args.limit)
    base, _ = datasets.by_name(args.data, split=args.base_split)
    gen = torch.Generator().manual_seed(args.seed)
    t0 = time.perf_counter()
    log_z = estimate_log_z(rbm, args.method, exact_max_units=args.exact_max_units, n_chains=args.ais_chains,
                           n_betas=args.ais_betas, data=base, generator=gen)
    exact = args.method == "exact" or (args.method == "auto"
                                        and min(rbm.n_visible, rbm.n_hidden) <= args.exact_max_units)
    method = "exact" if exact else "ais"
    result = {"model": args.model, "n_params": rbm.n_params, "data": args.data, "split": args.split,
              "n_samples": int(x.shape[0]), "log_z": log_z.value, "log_z_stderr": log_z.stderr,
              "log_z_method": method, "log_z_seconds": time.perf_counter() - t0}
    print(f"log Z ({method}) = {log_z}")
    nll = rbm.nll(x, log_z)
    result.update(nll=nll.value, nll_stderr=nll.stderr)
    if args.reverse and method == "ais":
        rev = reverse_ais_log_z(rbm, args.ais_chains, args.ais_betas, data=base, n_gibbs=args.n_gibbs, generator=gen)
        result.update(reverse_log_z=rev.value, reverse_log_z_stderr=rev.stderr,
                      nll_bracket=[nll.value, rbm.nll(x, rev).value])
        print(f"log Z (reverse AIS) = {rev}; bracket width {rev.value - log_z.value:.4g} nats")
    print(f"NLL ({args.split}, {x.shape[0]} samples) = {nll} nats")
    if "nll_bracket" in result:
        lo, hi = result["nll_bracket"]
        print(f"NLL bracket (forward, reverse AIS): [{min(lo, hi):.4f}, {max(lo, hi):.4f}]")
    if args.json:
        _write_json(args.json, result)
    return 0


def _write_json(path, obj) -> None:
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=2)
    os.replace(tmp, path)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="rbm", description="Train and evaluate reference RBMs (NLL in nats).",
                                formatter_class=HelpFormatter)
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND",
                           help="what to do (COMMAND --help lists its options)")

    t = sub.add_parser("train", help="train an RBM by CD-k / PCD-k", description="Train an RBM by CD-k / PCD-k.",
                       formatter_class=HelpFormatter)
    t.add_argument("--data", required=True, help=DATA_HELP)
    t.add_argument("--valid", default=None,
                   help="split (or .npz array) to report a validation NLL on, e.g. test (none when not given)")
    t.add_argument("--limit", type=int, default=None, help="use only the first LIMIT rows (all when not given)")
    t.add_argument("--shape", type=int, nargs=2, metavar=("H", "W"),
                   help="image shape for local_2d masks (from the data, else square, when not given)")
    t.add_argument("--hidden", type=int, default=None, help="number of hidden units (or give --params)")
    t.add_argument("--params", type=int, default=None,
                   help="parameter budget instead of --hidden (picks the hidden count, see rbm.masks.matched)")
    t.add_argument("--mask", choices=masks.KINDS, default="dense", type=choice_name,
                   help="connectivity of the weights; from_data (or from-data): receptive fields of --fan-in "
                        "pixels from the training rows' mutual information (rbm.masks.from_data)")
    t.add_argument("--fan-in", type=int, default=None,
                   help="pixels per hidden unit of a from_data mask (when not given: 25, the 5x5 window; "
                        "with --params: the fan-in of the local masks)")
    t.add_argument("--window", type=int, default=None,
                   help="local window (1D: pixels, required; 2D: side, 5 when not given; with --params and "
                        "--mask random: the 2D window whose hidden count the random mask copies)")
    t.add_argument("--stride", type=int, default=1, help="step between the windows of local masks")
    t.add_argument("--edges", type=int, default=None, help="number of edges of a random mask (required for it)")
    t.add_argument("--k", type=int, default=1, help="Gibbs sweeps per update")
    t.add_argument("--cd", action="store_true", help="plain CD-k instead of persistent CD")
    t.add_argument("--lr", type=float, default=0.01, help="learning rate")
    t.add_argument("--lr-decay", choices=("none", "linear"), default="none",
                   help="linear: decay the learning rate to 0 over the epochs")
    t.add_argument("--momentum", type=float, default=0.5, help="momentum of the updates")
    t.add_argument("--weight-decay", type=float, default=1e-4, help="L2 penalty on the weights")
    t.add_argument("--batch-size", type=int, default=100, help="minibatch size")
    t.add_argument("--epochs", type=int, default=10, help="passes over the training rows")
    t.add_argument("--no-centering", action="store_true", help="plain CD gradient instead of the centered one")
    t.add_argument("--no-adaptive", action="store_true", help="heavy-ball momentum instead of Adam's adaptive step")
    t.add_argument("--patience", type=int, default=None,
                   help="with --valid: stop after this many epochs without a lower validation NLL and keep the "
                        "best epoch's parameters (none when not given)")
    t.add_argument("--average", type=float, default=0.99,
                   help="decay per update of the parameter average that is evaluated and saved (0: the current "
                        "parameters)")
    t.add_argument("--eval-every", type=int, default=1, help="NLL every N epochs (0: never)")
    t.add_argument("--log-z", choices=("auto", "exact", "ais"), default="auto",
                   help="how to get log Z for the NLL (auto: exact when a layer is small enough)")
    t.add_argument("--ais-chains", type=int, default=100, help="AIS chains for log Z")
    t.add_argument("--ais-betas", type=int, default=1000, help="AIS temperatures for log Z")
    t.add_argument("--no-track-log-z", action="store_true",
                   help="each epoch's own AIS log Z instead of the AIS runs joined by bridge sampling (rbm.tracking)")
    t.add_argument("--seed", type=int, default=0, help="seed of the initial weights, random masks, minibatches and Gibbs chains")
    t.add_argument("--float32", action="store_true", help="train in float32 instead of float64")
    t.add_argument("--out", default=None, help="model file to write (.npz; none when not given)")
    t.add_argument("--checkpoint", default=None,
                   help="checkpoint file, written every epoch; a rerun resumes from it (none when not given)")
    t.add_argument("--history", default=None, help="write the history as JSON here (not written when not given)")
    t.add_argument("--no-progress", action="store_true", help="no progress bar")

    e = sub.add_parser("evaluate", help="log Z (exact or AIS) and NLL of a saved RBM",
                       description="log Z (exact or AIS) and NLL of a saved RBM.", formatter_class=HelpFormatter)
    e.add_argument("model", help="model file written by rbm train --out")
    e.add_argument("--data", required=True, help=DATA_HELP)
    e.add_argument("--split", default="test", help="split (or .npz array) to compute the NLL on")
    e.add_argument("--base-split", default="train", help="split whose marginals define the AIS base model")
    e.add_argument("--limit", type=int, default=None,
                   help="use only the first LIMIT rows of --split (all when not given)")
    e.add_argument("--method", choices=("auto", "exact", "ais"), default="auto",
                   help="log Z by enumeration or AIS (auto: exact up to --exact-max-units)")
    e.add_argument("--exact-max-units", type=int, default=20,
                   help="auto: enumerate when the smaller layer has at most this many units")
    e.add_argument("--ais-chains", type=int, default=100, help="AIS chains")
    e.add_argument("--ais-betas", type=int, default=10000, help="AIS temperatures")
    e.add_argument("--reverse", action="store_true", help="also run reverse AIS (an NLL bracket)")
    e.add_argument("--n-gibbs", type=int, default=1000, help="Gibbs sweeps before reverse AIS")
    e.add_argument("--seed", type=int, default=0, help="seed of AIS and the Gibbs chains")
    e.add_argument("--json", default=None, help="write the results as JSON here (not written when not given)")
    return p


def main(argv=None) -> int:
    """Entry point of ``rbm`` / ``python -m rbm``; returns the exit status (2 on bad input)."""
    args = build_parser().parse_args(argv)
    try:
        return _train(args) if args.command == "train" else _evaluate(args)
    except (ValueError, TypeError, FileNotFoundError) as err:
        print(f"rbm: error: {err}", file=sys.stderr)
        return 2
