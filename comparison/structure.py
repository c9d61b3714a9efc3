"""Architecture from the data's information: geometric against mutual-information structures.

:func:`structure_experiment` trains, on the images and on the same images with their pixels shuffled by
one fixed random permutation, at (nearly) equal parameter counts:

* MPS on the row-major, snake, Hilbert and from-data (:func:`bornmachine.orderings.from_data`) chains;
* TTN on the image-bisection tree, a random tree, the from-data (spectral MI bisection) tree, and the random tree
  rewired during training (``restructure="mi"``, the adaptive tree);
* RBMs with 2D-local, random and from-data (MI receptive fields) masks.

On shuffled pixels the geometric structures see a scrambled image; the from-data ones are recomputed
from the shuffled training rows, so they should not care. Every choice is made on the validation rows
(:mod:`~comparison.selection`); findings read holds / does not hold / not decided
(:mod:`~comparison.verdicts`).
"""
from __future__ import annotations

import os
from functools import partial
from typing import Sequence

import numpy as np
import torch

from bornmachine import MPS
from bornmachine.validation import as_binary

from . import figures, verdicts
from .experiments import (Result, born_result_row, convergence_finding, rbm_jobs, rbm_result_row, split_rows,
                          table_row, write_curves, zero_probability_finding)
from .parallel import run_jobs
from .table import RowStore, Table
from .training import RBM_SELECTION, fingerprint

__all__ = ["structure_experiment", "STRUCTURES", "shuffle_pixels"]

#: (family, structure name, Born kind or RBM mask kind, restructure criterion) of every model.
STRUCTURES = (("mps", "row-major", "mps-row-major", None), ("mps", "snake", "mps-snake", None),
              ("mps", "hilbert", "mps-hilbert", None), ("mps", "from-data", "mps-from-data", None),
              ("ttn", "bisection", "ttn", None), ("ttn", "random", "ttn-random", None),
              ("ttn", "from-data", "ttn-from-data", None), ("ttn", "random+mi", "ttn-random", "mi"),
              ("rbm", "local_2d", "local_2d", None), ("rbm", "random", "random", None),
              ("rbm", "from-data", "from_data", None))
#: The geometric structures of each family (the from-data ones are measured against the best of these).
GEOMETRIC = {"mps": ("row-major", "snake", "hilbert"), "ttn": ("bisection",), "rbm": ("local_2d",)}


def shuffle_pixels(x: torch.Tensor, seed: int) -> tuple[torch.Tensor, np.ndarray]:
    """(x[:, perm], perm): the pixels of (N, n) data permuted by one seeded random permutation."""
    perm = np.random.default_rng(seed).permutation(x.shape[1])
    return x[:, torch.from_numpy(perm)], perm


def structure_experiment(train, test, shape: Sequence[int], *, mps_bond: int = 9, ttn_bond: int = 8,
                         max_sweeps: int = 10, lrs: Sequence[float] = (0.1,), patience: int = 2, restarts: int = 1,
                         rbm_max_epochs: int = 30, rbm_lrs: Sequence[float] = (0.01,), rbm_patience: int = 4,
                         valid_fraction: float = 0.1, eval_ais: Sequence[int] = (32, 300), ais_chains: int = 50,
                         ais_betas: int = 1000, n_gibbs: int = 200, shuffle_seed: int = 1, seed: int = 0,
                         structures: Sequence[str] | None = None, workers: int = 1, out: str = "structure",
                         reuse: str | None = None, progress: bool = True) -> Result:
    """Geometric vs mutual-information structures on the images and on pixel-shuffled images.

    MPS at bond ``mps_bond``, TTN at ``ttn_bond`` (9 and 8 give nearly equal counts on 28×28), RBMs matched
    to the row-major MPS's parameter count. ``structures``: names ``family:structure`` to run (default all
    of :data:`STRUCTURES`); ``workers`` models train side by side (:func:`~comparison.parallel.run_jobs`).
    ``reuse``: a folder of Born-machine checkpoints trained on these images with the same settings and
    validation split, copied instead of retrained where the names match (the report passes the Born-vs-Boltzmann
    models: its bisection TTN at ``ttn_bond`` is the same run; a reused row's ``seconds`` is its scoring only).
    Writes ``structure.csv/json``, ``convergence.csv/json``, ``structure.png``, ``convergence.png`` and
    ``summary.md`` into ``out``; checkpoints under ``out/models``.
    """
    shape = tuple(int(s) for s in shape)
    n = shape[0] * shape[1]
    x_all = as_binary(train, n, name="train", shape=shape)
    xt_all = as_binary(test, n, name="test", shape=shape)
    chosen = [s for s in STRUCTURES if structures is None or f"{s[0]}:{s[1]}" in structures]
    if not chosen:
        raise ValueError(f"no structure selected; names are {[f'{s[0]}:{s[1]}' for s in STRUCTURES]}")
    settings = {"mps_bond": mps_bond, "ttn_bond": ttn_bond, "max_sweeps": max_sweeps, "lrs": list(lrs),
                "patience": patience, "restarts": restarts, "rbm_max_epochs": rbm_max_epochs, "rbm_lrs": list(rbm_lrs),
                "rbm_patience": rbm_patience, "valid_fraction": valid_fraction, "eval_ais": list(eval_ais),
                "ais": [ais_chains, ais_betas], "n_gibbs": n_gibbs, "shuffle_seed": shuffle_seed, "seed": seed,
                "data": fingerprint(x_all, xt_all), "rbm_selection": RBM_SELECTION}
    store = RowStore(os.path.join(out, "runs.json"), settings)
    folder = os.path.join(out, "models")
    data = {"images": (x_all, xt_all),
            "shuffled": (shuffle_pixels(x_all, shuffle_seed)[0], shuffle_pixels(xt_all, shuffle_seed)[0])}
    data = {variant: (*split_rows(x_raw, valid_fraction, seed), xt) for variant, (x_raw, xt) in data.items()}
    jobs = {f"{variant}|{s[0]}:{s[1]}": (variant, *s) for variant in ("images", "shuffled") for s in chosen}

    def store_row(key, row):
        variant, family, name = jobs[key][:3]
        store.put(key, dict(row, variant=variant, family=family, structure=name))

    born_jobs = {key: (kind, *data[variant], shape, mps_bond if family == "mps" else ttn_bond, criterion,
                       os.path.join(folder, variant), reuse if variant == "images" else None)
                 for key, (variant, family, name, kind, criterion) in jobs.items()
                 if family != "rbm" and key not in store}
    run_jobs(partial(_born_row, max_sweeps=max_sweeps, lrs=lrs, restarts=restarts, patience=patience, seed=seed),
             born_jobs, workers=workers, done=store_row, cost=lambda key: jobs[key][1] == "ttn",  # trees first
             desc="structures: Born machines", progress=progress)
    rbm_keys = [key for key, job in jobs.items() if job[1] == "rbm" and key not in store]
    budget = _row_major_params(store, "images", shape, mps_bond)  # one budget for both variants
    rbm_tasks = {}
    for key in rbm_keys:
        variant, kind = jobs[key][0], jobs[key][3]
        x, xv, xt = data[variant]
        arch = next(a for b, k, a in rbm_jobs([budget], [kind], shape, seed, data=x) if k == kind)
        rbm_tasks[key] = (arch, x, xv, xt, f"{variant}-{kind}")
    run_jobs(partial(rbm_result_row, max_epochs=rbm_max_epochs, lrs=rbm_lrs, restarts=restarts, patience=rbm_patience,
                     batch_size=100, eval_ais=eval_ais, ais_chains=ais_chains, ais_betas=ais_betas, n_gibbs=n_gibbs,
                     seed=seed, folder=folder),
             rbm_tasks, workers=workers, done=store_row, desc="structures: RBMs", progress=progress)
    keyed = [(key, store.get(key)) for key in jobs]
    columns = ["variant", "family", "structure", "n_params", "lr", "lrs_tried", "epochs", "best_epoch", "converged",
               "valid_nll", "test_nll", "test_nll_stderr", "ais_gap", "train_nll", "valid_zero_prob", "test_zero_prob",
               "seconds"]
    table = Table("structure", columns, [table_row(row, columns) for _, row in keyed],
                  shown=["variant", "family", "structure", "n_params", "lr", "lrs_tried", "epochs", "converged",
                         "valid_nll", "test_nll", "test_nll_stderr"])
    result = Result("structure", out, {"structure": table},
                    title="Architecture from the data's information: geometric vs mutual-information structures")
    result.tables["convergence"] = write_curves("model", keyed, out, result, "sweep or epoch")
    figures.structure_bars(table, os.path.join(out, "structure.png"))
    result.figures["structure.png"] = ("Test NLL of every structure on the images and on the same images with "
                                       "shuffled pixels (RBM bars: ± AIS uncertainty)")
    result.findings = structure_findings(table)
    result.write()
    return result


def _born_row(kind, x, xv, xt, shape, bond, criterion, folder, reuse, **settings) -> dict:
    return born_result_row(kind, x, xv, xt, shape, bond, restructure=criterion, folder=folder, reuse=reuse, **settings)


def _row_major_params(store: RowStore, variant: str, shape, bond: int) -> int:
    """The RBMs' budget: the row-major MPS's parameter count (from its row, else a fresh bond-``bond`` MPS)."""
    row = store.get(f"{variant}|mps:row-major")
    if row is not None:
        return int(row["n_params"])
    return MPS(tuple(shape), bond, generator=torch.Generator().manual_seed(0)).n_params


def structure_findings(table: Table) -> list[str]:
    """The issue's readings: from-data on shuffled pixels vs the best geometric structure on the images
    (within 3 nats), from-data vs row-major on shuffled pixels (≥ 15 nats better), from-data on the images
    (within 1 nat of the best geometric), the adaptive random tree vs the bisection tree (within 3 nats)."""
    def row(variant, family, name):
        rows = table.where(variant=variant, family=family, structure=name)
        return rows[0] if rows else None

    out = []
    for family in ("mps", "ttn", "rbm"):
        geometric = [r for r in (row("images", family, g) for g in GEOMETRIC[family]) if r is not None]
        best = min(geometric, key=lambda r: r["test_nll"]) if geometric else None
        shuffled, plain = row("shuffled", family, "from-data"), row("images", family, "from-data")
        if best and shuffled:
            out.append(f"{family.upper()}: from-data on shuffled pixels {shuffled['test_nll']:.1f} vs best geometric on "
                       f"the images ({best['structure']}) {best['test_nll']:.1f}, within 3 nats: "
                       f"{verdicts.lower_by(shuffled, best, -3.0)}.")
        if best and plain:
            out.append(f"{family.upper()}: from-data on the images {plain['test_nll']:.1f} vs best geometric "
                       f"{best['test_nll']:.1f}, within 1 nat or better: {verdicts.lower_by(plain, best, -1.0)}.")
    mps_shuffled, row_major = row("shuffled", "mps", "from-data"), row("shuffled", "mps", "row-major")
    if mps_shuffled and row_major:
        out.append(f"MPS on shuffled pixels: from-data {mps_shuffled['test_nll']:.1f} vs row-major "
                   f"{row_major['test_nll']:.1f}, ≥ 15 nats better: {verdicts.lower_by(mps_shuffled, row_major, 15.0)}.")
    adaptive, fixed, bisection = (row("images", "ttn", s) for s in ("random+mi", "random", "bisection"))
    if adaptive and bisection:
        out.append(f"TTN: a random tree rewired by restructure='mi' {adaptive['test_nll']:.1f} vs the bisection tree "
                   f"{bisection['test_nll']:.1f}, within 3 nats: {verdicts.lower_by(adaptive, bisection, -3.0)}"
                   + (f"; the fixed random tree {fixed['test_nll']:.1f}, ≥ 10 nats worse than bisection: "
                      f"{verdicts.lower_by(bisection, fixed, 10.0)}." if fixed else "."))
    out.append(convergence_finding(table.rows, "sweep or epoch"))
    zeros = zero_probability_finding(table.rows)
    return out + ([zeros] if zeros else [])
