"""Command line: ``comparison report|fig3|fig4|born-vs-boltzmann|structure`` (also ``python -m comparison``)."""
from __future__ import annotations

import argparse
import os
import sys

import numpy as np

from bornmachine.cli import HelpFormatter

from . import experiments, report as report_module, structure
from .parallel import default_workers


def _overrides(args) -> dict:
    return {} if args.workers is None else {"workers": args.workers}


def _settings(args) -> dict:
    return {**report_module.PRESETS[args.preset], **_overrides(args)}


def cmd_report(args) -> int:
    index = report_module.report(args.out, preset=args.preset, data=args.data, seed=args.seed,
                                 progress=not args.no_progress, overrides=_overrides(args))
    print(f"report written to {index}")
    return 0


def cmd_fig3(args) -> int:
    from bornmachine.io import load as load_model

    s = _settings(args)
    train, test, shape = report_module.load_dataset(args.data, s["max_train"], s["max_test"], args.seed)
    models = {}
    for item in args.model or []:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise SystemExit(f"--model takes NAME=PATH, got {item!r}")
        models[name] = load_model(path)
    bips = experiments.profile_bipartitions(shape, step=s["cut_step"], seed=args.seed)
    result = experiments.mi_profile(np.concatenate([train, test]), shape, models=models, bipartitions=bips,
                                    model_samples=s["model_samples"], seed=args.seed,
                                    workers=s["workers"] or default_workers(), out=args.out,
                                    progress=not args.no_progress)
    return _done(result)


def cmd_fig4(args) -> int:
    s = _settings(args)
    train, test, shape = report_module.load_dataset(args.data, s["max_train"], s["max_test"], args.seed)
    result = experiments.rbm_architectures(train, test, shape, out=args.out, progress=not args.no_progress,
                                           **report_module.fig4_settings(s, shape, args.seed, hidden=args.hidden))
    return _done(result)


def cmd_bvb(args) -> int:
    s = _settings(args)
    if args.bond_dims:
        s["bond_dims"] = args.bond_dims
    train, test, shape = report_module.load_dataset(args.data, s["max_train"], s["max_test"], args.seed)
    result = experiments.born_vs_boltzmann(
        train, test, shape, bipartitions=experiments.profile_bipartitions(shape, step=s["cut_step"], seed=args.seed),
        info_data=np.concatenate([train, test]), out=args.out, progress=not args.no_progress,
        **report_module.bvb_settings(s, args.seed))
    return _done(result)


def cmd_structure(args) -> int:
    s = _settings(args)
    train, test, shape = report_module.load_dataset(args.data, s["max_train"], s["max_test"], args.seed)
    if args.structures:
        s["structures"] = args.structures
    result = structure.structure_experiment(train, test, shape, out=args.out, progress=not args.no_progress,
                                            **report_module.structure_settings(s, args.seed))
    return _done(result)


def _done(result) -> int:
    for line in result.findings:
        print(f"- {line}")
    print(f"written to {os.path.join(result.folder, 'summary.md')}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="comparison", description="Born machines vs Boltzmann machines: "
                                "information per bipartition, RBM architectures, one-command report.",
                                formatter_class=HelpFormatter)
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND",
                           help="what to do (COMMAND --help lists its options)")

    def command(name, func, help, out):
        q = sub.add_parser(name, help=help, description=help, formatter_class=HelpFormatter)
        q.set_defaults(func=func)
        q.add_argument("--out", default=out, help="output folder; re-running resumes from what it holds")
        q.add_argument("--data", default="mnist5k", choices=report_module.DATASETS,
                       help="mnist5k (shipped) or fashion-mnist (Debian's dataset-fashion-mnist files)")
        preset = q.add_mutually_exclusive_group()
        preset.add_argument("--preset", choices=tuple(report_module.PRESETS), default="quick",
                            help="sizes (comparison.report.PRESETS): quick (Born machines up to bond 16, models to "
                                 "validation convergence), full (paper scale, 93 min on 2 cores) or smoke (tiny sizes: checks that "
                                 "everything runs)")
        preset.add_argument("--quick", dest="preset", action="store_const", const="quick", default=argparse.SUPPRESS,
                            help="same as --preset quick")
        preset.add_argument("--full", dest="preset", action="store_const", const="full", default=argparse.SUPPRESS,
                            help="same as --preset full")
        q.add_argument("--seed", type=int, default=0, help="seed of subsampling, cuts, models and estimators")
        q.add_argument("--no-progress", action="store_true", help="no progress bars")
        q.add_argument("--workers", type=int, help="models trained side by side in this many processes "
                       "(default: one per core)")
        return q

    command("report", cmd_report, "the four experiments → OUT/index.md", "report")
    q = command("fig3", cmd_fig3, "MI per bipartition (paper Fig. 3)", "fig3")
    q.add_argument("--model", action="append", metavar="NAME=PATH",
                   help="a saved Born machine whose MI and S2 to add, e.g. mps=runs/mps32/model.npz "
                        "(repeat for several; none when not given)")
    q = command("fig4", cmd_fig4, "RBM connectivities at equal #params (paper Fig. 4)", "fig4")
    q.add_argument("--hidden", type=int, nargs="+",
                   help="parameter budgets as those of dense RBMs with these hidden counts (the preset's when "
                        "not given)")
    q = command("born-vs-boltzmann", cmd_bvb, "MPS/TTN vs RBMs at matched #params", "born_vs_boltzmann")
    q.add_argument("--bond-dims", type=int, nargs="+",
                   help="bond caps of the Born machines (the preset's when not given)")
    q = command("structure", cmd_structure, "geometric vs mutual-information structures (MPS orderings, TTN trees, "
                "RBM masks) on the images and on pixel-shuffled images", "structure")
    q.add_argument("--structures", nargs="+", metavar="FAMILY:NAME",
                   help="run only these, e.g. mps:from-data ttn:random+mi (all of comparison.structure.STRUCTURES "
                        "when not given)")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, TypeError, FileNotFoundError) as err:
        print(f"comparison {args.command}: error: {err}", file=sys.stderr)
        return 2
