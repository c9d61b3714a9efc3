"""Command line: ``bornmachine train|sample|evaluate|entropy`` (also ``python -m bornmachine``).

``train`` also runs data-parallel under torchrun (``torchrun --nproc_per_node=P -m bornmachine train
...``): it then joins the process group itself (gloo on CPU, nccl with ``--device cuda``), every rank
trains on its block of the data, and only rank 0 prints and writes files.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np
import torch

from . import datasets, distributed, orderings
from .io import load as load_model
from .mps import MPS
from .training import GradientTrainer, SweepTrainer

DATA_HELP = (f"data set: {', '.join(datasets.NAMES)}, or a .npy/.npz file of binary (N, n) or (N, H, W) arrays "
             "(an .npz holds arrays named train and test); see bornmachine.datasets.by_name")


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Help that ends with "(default: ...)" for every option whose default is not None (a None default
    means "not set", and the option's help says what happens then). Shared by the three CLIs."""

    def _get_help_string(self, action):
        if action.default is None:
            return action.help
        return super()._get_help_string(action)


def choice_name(text: str) -> str:
    """An argparse ``type`` for names: ``from-data`` and ``from_data`` alike (hyphens become underscores)."""
    return text.replace("-", "_")


def _load_data(name: str, limit: int | None):
    """(train, test, image shape or None) for ``--data`` (:func:`bornmachine.datasets.by_name`)."""
    train, shape = datasets.by_name(name, split="train", limit=limit)
    test, _ = datasets.by_name(name, split="test", limit=limit)
    return train, test, shape


def _build_model(args, sites, train):
    """A bond-2 MPS or TTN over ``sites`` (an image shape (H, W) or a number of sites); ``from_data``
    orderings and trees come from the training rows ``train``."""
    if args.model == "ttn":
        from .tree import Tree
        from .ttn import TTN

        if args.tree == "from_data":
            tree = Tree.from_data(train)
        elif args.tree == "random":
            tree = Tree.random(int(np.prod(train.shape[1:])), torch.Generator().manual_seed(args.seed))
        else:
            tree = args.tree
        return TTN(sites, 2, tree=tree, dtype=_dtype(args.dtype), device=args.device,
                   generator=torch.Generator().manual_seed(args.seed))
    ordering = orderings.from_data(train) if args.ordering == "from_data" else args.ordering
    return MPS(sites, 2, ordering=ordering, dtype=_dtype(args.dtype), device=args.device,
               generator=torch.Generator().manual_seed(args.seed))


def _given(**options) -> dict:
    """The options the command line set (not None): the others keep the trainer's defaults."""
    return {k: v for k, v in options.items() if v is not None}


def _dtype(name: str) -> torch.dtype:
    return {"float64": torch.float64, "float32": torch.float32}[name]


def cmd_train(args) -> int:
    with distributed.launched(args.device):
        return _train(args)


def _train(args) -> int:
    from . import plots

    main = distributed.is_main()  # rank 0 of a torchrun launch, or the only process
    if main:
        os.makedirs(args.out, exist_ok=True)
    train, test, shape = _load_data(args.data, args.limit)
    if args.valid_fraction < 0 or args.valid_fraction >= 1:
        raise ValueError(f"--valid-fraction must be in [0, 1), got {args.valid_fraction}")
    valid = None
    if args.valid_fraction > 0:
        train, valid = datasets.split_validation(train, args.valid_fraction, seed=args.seed)
    if args.patience is not None and valid is None:
        raise ValueError("--patience stops on the validation NLL: it needs --valid-fraction > 0")
    model_path = os.path.join(args.out, "model.npz")
    checkpoint = os.path.join(args.out, "checkpoint.npz")
    restructure = None if args.restructure == "none" else args.restructure
    if restructure is not None and (args.model != "ttn" or args.trainer != "sweep"):
        raise ValueError("--restructure rewires a TTN's tree during sweeps: use it with --model ttn "
                         "(and the sweep trainer)")
    model = _build_model(args, shape or train.shape[1], train)
    if args.trainer == "sweep":
        trainer = SweepTrainer(model, max_bond=args.max_bond, cutoff=args.cutoff, **_given(lr=args.lr),
                               n_steps=args.steps, batch_size=args.batch_size, n_sweeps=args.sweeps, seed=args.seed,
                               max_step=args.max_step, restructure=restructure, patience=args.patience,
                               env_dtype=None if args.env_dtype is None else _dtype(args.env_dtype))
    else:
        if args.max_bond != 2:
            model = _resize(model, args)
        trainer = GradientTrainer(model, **_given(lr=args.lr), batch_size=args.batch_size or 100,
                                  n_epochs=args.sweeps, seed=args.seed, device=args.device, patience=args.patience)
    if main:
        processes = f", {distributed.world_size()} processes" if distributed.world_size() > 1 else ""
        n_valid = 0 if valid is None else len(valid)
        print(f"training {type(model).__name__} on {args.data}: {len(train)} train / {n_valid} validation / "
              f"{len(test)} test images, max bond {args.max_bond}, {args.sweeps} sweeps{processes} -> {args.out}",
              flush=True)

    def report(record):
        if main:
            valid_nll = "-" if record["valid_nll"] is None else f"{record['valid_nll']:.4f}"
            zeros = f"  ({record['valid_zero_prob']} of p = 0 left out)" if record.get("valid_zero_prob") else ""
            print(f"sweep {record['epoch']:3d}  train NLL {record['train_nll']:9.4f}  valid NLL {valid_nll:>9}  "
                  f"max bond {record['max_bond']:4d}  {record['time_s']:7.2f} s{zeros}", flush=True)

    history = trainer.fit(train, valid=valid, callback=report, checkpoint=checkpoint, progress=not args.quiet)
    if not main:
        return 0
    model = trainer.model
    model.save(model_path)
    with open(os.path.join(args.out, "history.json"), "w") as handle:
        json.dump(history, handle, indent=1)
    logp = model.log_prob(test)
    finite = torch.isfinite(logp)
    result = {"test_nll": float(-logp[finite].mean()) if bool(finite.any()) else float("inf"),
              "test_zero_prob": int((~finite).sum()), "n_train": len(train), "n_valid": 0 if valid is None else len(valid),
              "n_test": len(test), "valid_fraction": args.valid_fraction, "best_epoch": trainer.best_epoch,
              "sweeps": len(history)}
    with open(os.path.join(args.out, "result.json"), "w") as handle:
        json.dump(result, handle, indent=1)
    zero = f"; {result['test_zero_prob']} of zero probability left out" if result["test_zero_prob"] else ""
    kept = f", tensors of sweep {trainer.best_epoch} (lowest valid NLL)" if trainer.best_epoch is not None else ""
    print(f"test NLL {result['test_nll']:.4f} ({len(test)} images{zero}{kept})")
    samples, _ = model.sample(args.n_samples, generator=torch.Generator().manual_seed(args.seed + 1))
    plots.sample_grid(samples.cpu().numpy(), shape or (1, model.n_sites), os.path.join(args.out, "samples.png"),
                      title=f"exact samples, {type(model).__name__} D={max(model.bond_dims)}")
    profile = model.entanglement_profile().numpy()
    if args.model == "ttn":  # one entry per tree edge (TTN.edges), not chain positions
        plots.entropy_profile(profile, os.path.join(args.out, "entanglement.png"),
                              label="von Neumann entropy of each tree edge (TTN.edges order)")
    else:
        plots.entropy_profile(profile, os.path.join(args.out, "entanglement.png"), shape=shape)
    print(f"wrote {model_path}, samples.png, entanglement.png, history.json, result.json in {args.out}")
    return 0


def _resize(model, args):
    """A random MPS (or TTN on the same tree) with fixed bond ``max_bond`` for the gradient trainer."""
    if args.model == "ttn":
        from .ttn import TTN

        return TTN(model.shape or model.n_sites, args.max_bond, tree=model.tree, dtype=model.dtype,
                   device=args.device, generator=torch.Generator().manual_seed(args.seed))
    return MPS(model.shape or model.n_sites, args.max_bond, ordering=model.ordering, dtype=model.dtype,
               device=args.device, generator=torch.Generator().manual_seed(args.seed))


def cmd_sample(args) -> int:
    from . import plots

    model = load_model(args.model_file)
    samples, logp = model.sample(args.n, generator=torch.Generator().manual_seed(args.seed))
    if args.out.endswith(".npy"):
        np.save(args.out, samples.numpy())
    elif args.out.endswith(".png"):
        plots.sample_grid(samples.numpy(), model.shape or (1, model.n_sites), args.out, title="exact samples")
    else:
        raise ValueError(f"--out must end in .png or .npy, got {args.out!r}")
    print(f"{args.n} samples, mean log p = {float(logp.mean()):.4f} nats -> {args.out}")
    return 0


def cmd_evaluate(args) -> int:
    model = load_model(args.model_file)
    train, test, _ = _load_data(args.data, args.limit)
    result = {"train_nll": model.nll(train), "test_nll": model.nll(test), "n_params": model.n_params,
              "max_bond": max(model.bond_dims, default=1)}
    print(json.dumps(result, indent=1))
    return 0


def cmd_entropy(args) -> int:
    model = load_model(args.model_file)
    if args.sites:
        sites = [int(s) for s in args.sites.split(",")]
        est = model.renyi2(sites, method=args.method, generator=torch.Generator().manual_seed(args.seed))
        print(f"S2(X) = {est.value:.6f} ± {est.stderr:.2g} nats  (|X| = {len(sites)})")
        return 0
    profile = model.entanglement_profile(alpha=args.alpha)
    for k, s in enumerate(profile.tolist()):
        print(f"{k}\t{s:.6f}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bornmachine", description=__doc__, formatter_class=HelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND",
                                help="what to do (COMMAND --help lists its options)")

    def command(name, func, help):
        p = sub.add_parser(name, help=help, description=help, formatter_class=HelpFormatter)
        p.set_defaults(func=func)
        return p

    p = command("train", cmd_train, "train a Born machine; write model, samples and entanglement plots")
    p.add_argument("--data", default="mnist5k", help=DATA_HELP)
    p.add_argument("--model", choices=("mps", "ttn"), default="mps",
                   help="matrix product state (chain) or tree tensor network")
    p.add_argument("--ordering", default="row_major", type=choice_name,
                   help="MPS pixel order along the chain: row_major, snake, column_major, hilbert or from-data "
                        "(the leaf order of a spectral bisection of the training data's mutual information, see "
                        "bornmachine.orderings.from_data); saved with the model")
    p.add_argument("--tree", default=None, type=choice_name,
                   help="TTN tree: bisection, balanced, caterpillar or from-data (a spectral bisection of the training "
                        "data's mutual information, see bornmachine.Tree.from_data) or random (balanced over pixels "
                        "permuted by --seed, bornmachine.Tree.random); saved with the model. When not "
                        "given: bisection for images, balanced otherwise")
    p.add_argument("--restructure", choices=("none", "nll", "mi"), default="none",
                   help="TTN sweep trainer: rewire the tree at each two-node step to the pairing of lowest "
                        "local NLL (nll) or bond entropy (mi), the adaptive tree; the saved model has the new tree")
    p.add_argument("--trainer", choices=("sweep", "gradient"), default="sweep",
                   help="two-site sweeps with SVD truncation (bonds grow up to --max-bond), or Adam on "
                        "all tensors at fixed bond --max-bond")
    p.add_argument("--max-bond", type=int, default=32, help="largest bond dimension")
    p.add_argument("--cutoff", type=float, default=1e-7,
                   help="sweep trainer: keep singular values s_i > CUTOFF * s_0")
    p.add_argument("--lr", type=float, default=None,
                   help="learning rate (default: the trainer's, 0.1 for sweeps, 1e-3 for Adam)")
    p.add_argument("--steps", type=int, default=1, help="sweep trainer: gradient steps per bond")
    p.add_argument("--max-step", type=float, default=0.3,
                   help="sweep trainer: trust region, the longest gradient step on a unit-norm merged tensor")
    p.add_argument("--batch-size", type=int, default=None,
                   help="minibatch size (sweep trainer: all rows when not given; gradient trainer: 100)")
    p.add_argument("--sweeps", type=int, default=4,
                   help="sweeps (sweep trainer) or epochs (gradient trainer); raise it to extend a finished run")
    p.add_argument("--valid-fraction", type=float, default=0.1,
                   help="fraction of the training rows held out (seeded by --seed) for the validation NLL of every "
                        "sweep and for --patience; 0: none (the test split is only scored after training)")
    p.add_argument("--patience", type=int, default=None,
                   help="stop after this many sweeps without a lower validation NLL and keep the best sweep's tensors")
    p.add_argument("--limit", type=int, default=None,
                   help="use only the first LIMIT train and test images (all when not given)")
    p.add_argument("--dtype", choices=("float64", "float32"), default="float64", help="floating-point type")
    p.add_argument("--env-dtype", choices=("float64", "float32"), default=None,
                   help="sweep trainer: storage of the cached per-sample environments, most of its memory "
                        "(float32 halves them; arithmetic stays in --dtype); --dtype when not given")
    p.add_argument("--device", default=None,
                   help="torch device, e.g. cuda (CPU when not given); under torchrun cuda means the "
                        "GPU of LOCAL_RANK")
    p.add_argument("--seed", type=int, default=0, help="seed of the initial tensors, minibatches and samples")
    p.add_argument("--n-samples", type=int, default=64, help="exact samples drawn into samples.png")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--out", required=True,
                   help="output folder for model.npz, checkpoint.npz, history.json and the plots; a rerun "
                        "resumes from its checkpoint")

    p = command("sample", cmd_sample, "draw exact samples from a saved model")
    p.add_argument("model_file", help="model file written by bornmachine train (OUT/model.npz)")
    p.add_argument("-n", type=int, default=64, help="number of samples")
    p.add_argument("--seed", type=int, default=0, help="seed of the sampler")
    p.add_argument("--out", required=True, help="a .png grid or a .npy array of shape (n, n_sites)")

    p = command("evaluate", cmd_evaluate, "train/test NLL (nats) of a saved model, printed as JSON")
    p.add_argument("model_file", help="model file written by bornmachine train (OUT/model.npz)")
    p.add_argument("--data", default="mnist5k", help=DATA_HELP)
    p.add_argument("--limit", type=int, default=None,
                   help="use only the first LIMIT train and test images (all when not given)")

    p = command("entropy", cmd_entropy, "entanglement profile, or S2 of a pixel set")
    p.add_argument("model_file", help="model file written by bornmachine train (OUT/model.npz)")
    p.add_argument("--alpha", type=float, default=1.0, help="Renyi order of the per-bond entropies (1: von Neumann)")
    p.add_argument("--sites", default=None,
                   help="comma-separated pixel indices: print S2 of that set instead of the profile")
    p.add_argument("--method", choices=("exact", "mc"), default="exact",
                   help="with --sites: exact swap contraction or the Monte Carlo swap estimator")
    p.add_argument("--seed", type=int, default=0, help="with --sites --method mc: seed of the samples")
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, TypeError, FileNotFoundError) as err:
        print(f"bornmachine {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
