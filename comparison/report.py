"""One-command report: the four experiments on one dataset, written as ``index.md`` + CSV/JSON/PNG.

``report(out, preset="quick")`` trains (or re-reads) the models and writes::

    out/index.md                  tables, figures and one-line readings of every claim
    out/report.json               settings, timings and the findings
    out/information.json          per-cut numbers (cache shared by the experiments)
    out/born_vs_boltzmann/ ...    nll.csv/json, cuts.csv/json, PNGs, models/ (checkpoints)
    out/fig3/ ...                 fig3.csv/json, fig3.png
    out/fig4/ ...                 fig4.csv/json, fig4.png, models/
    out/structure/ ...            structure.csv/json, structure.png: geometric vs mutual-information structures
    (each folder also: convergence.csv/json + convergence.png, the validation curve of every model)

Everything is cached in ``out``: run the same command again after an interruption and it resumes.
Presets: ``"quick"`` (mnist5k, bond ≤ 16: 16.4–18.4 minutes alone on a 2-core AMD EPYC VM, 2026-12-07; 13.0 on a faster
Xeon VM before the float32 evaluation AIS, 2026-12-03),
``"full"`` (paper-scale settings: 113.4 minutes alone on 2 cores on 2026-12-03; 121.8 with the Born learning rates
0.1 / 0.2 on a slower VM, 2026-12-07),
``"smoke"`` (tiny sizes, under a minute: checks that the whole pipeline runs; its numbers mean nothing).
"""
from __future__ import annotations

import json
import os
import platform
import time

import numpy as np
import torch

from . import experiments, structure
from .parallel import default_workers
from .table import write_text

__all__ = ["PRESETS", "report", "load_dataset"]

#: Settings of the presets. ``rbm_hidden``: Fig.-4 budgets as the parameter counts of dense RBMs
#: with that many hidden units (the other kinds are matched to them). ``workers``: models trained side by
#: side in that many processes (None: one per core, :func:`~comparison.parallel.default_workers`).
PRESETS = {
    "quick": {"bond_dims": [2, 4, 8, 16], "max_sweeps": 10, "born_lrs": [0.1], "born_patience": 2, "restarts": 1,
              "rbm_hidden": [4, 8, 16, 32, 64], "rbm_max_epochs": 30, "rbm_lrs": [0.04], "rbm_patience": 4,
              "valid_fraction": 0.1, "eval_ais": [32, 300], "ais_chains": 50, "ais_betas": 1000, "n_gibbs": 200,
              "cut_step": 2, "model_samples": 500, "max_train": 4000, "max_test": 1000, "structure_bonds": [9, 8],
              "structures": None, "ttn_max_bond": None, "rbm_max_params": None, "workers": None},
    "full": {"bond_dims": [2, 4, 8, 16, 32], "max_sweeps": 20, "born_lrs": [0.1, 0.2], "born_patience": 3,
             "restarts": 1, "rbm_hidden": [4, 8, 16, 32, 64], "rbm_max_epochs": 60, "rbm_lrs": [0.02, 0.05],
             "rbm_patience": 6, "valid_fraction": 0.1, "eval_ais": [64, 500], "ais_chains": 100, "ais_betas": 5000,
             "n_gibbs": 1000, "cut_step": 1, "model_samples": 2000, "max_train": None, "max_test": None,
             "structure_bonds": [9, 8], "structures": None, "ttn_max_bond": 16, "rbm_max_params": 400_000,
             "workers": None},
    "smoke": {"bond_dims": [2], "max_sweeps": 2, "born_lrs": [0.1], "born_patience": 1, "restarts": 1,
              "rbm_hidden": [2, 3], "rbm_max_epochs": 2, "rbm_lrs": [0.01], "rbm_patience": 1, "valid_fraction": 0.1,
              "eval_ais": [8, 20], "ais_chains": 8, "ais_betas": 50, "n_gibbs": 5, "cut_step": 14, "model_samples": 50,
              "max_train": 100, "max_test": 50, "structure_bonds": [2, 2],
              "structures": ["mps:row-major", "mps:from-data", "ttn:random+mi", "rbm:from-data"],
              "ttn_max_bond": None, "rbm_max_params": None, "workers": None},
}

#: Data sets of the command line (any name of :func:`bornmachine.datasets.by_name` with an image shape works here).
DATASETS = ("mnist5k", "fashion-mnist")


def load_dataset(name: str, max_train: int | None = None, max_test: int | None = None, seed: int = 0):
    """``(train, test, (H, W))`` as binary uint8 (N, H·W) for a name of :func:`bornmachine.datasets.by_name`;
    larger sets are subsampled (seeded) to the maxima."""
    from bornmachine import datasets

    train, shape = datasets.by_name(name, split="train")
    test, _ = datasets.by_name(name, split="test")
    if shape is None:
        raise ValueError(f"data set {name!r} has no image shape; the comparison needs (N, H, W) images")
    rng = np.random.default_rng(seed)
    if max_train is not None and len(train) > max_train:
        train = train[np.sort(rng.choice(len(train), max_train, replace=False))]
    if max_test is not None and len(test) > max_test:
        test = test[np.sort(rng.choice(len(test), max_test, replace=False))]
    return train, test, shape


def report(out: str = "report", preset: str = "quick", data="mnist5k", seed: int = 0,
           progress: bool = True, overrides: dict | None = None) -> str:
    """Run the four experiments and write ``out/index.md``; return its path.

    preset : "quick", "full" or "smoke" (see :data:`PRESETS`); ``overrides`` replaces single settings.
    data : a name of :func:`bornmachine.datasets.by_name` with an image shape ("mnist5k" shipped,
    "fashion-mnist" from Debian's dataset-fashion-mnist, ...), or your own ``(train, test, (H, W))``
    binary arrays.
    """
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of {tuple(PRESETS)}")
    settings = dict(PRESETS[preset])
    for key, value in (overrides or {}).items():
        if key not in settings:
            raise ValueError(f"unknown setting {key!r}; known: {sorted(settings)}")
        settings[key] = value
    t_start = time.perf_counter()
    if isinstance(data, str):
        train, test, shape = load_dataset(data, settings["max_train"], settings["max_test"], seed)
    else:
        train, test, shape = data
        train, test, shape, data = np.asarray(train), np.asarray(test), tuple(shape), "user data"
    all_data = np.concatenate([train, test])
    bips = experiments.profile_bipartitions(shape, step=settings["cut_step"], seed=seed)
    os.makedirs(out, exist_ok=True)
    timings = {}

    t0 = time.perf_counter()
    bvb = experiments.born_vs_boltzmann(train, test, shape, bipartitions=bips, info_data=all_data,
                                        out=os.path.join(out, "born_vs_boltzmann"),
                                        cache=os.path.join(out, "information.json"), progress=progress,
                                        **bvb_settings(settings, seed))
    timings["born_vs_boltzmann"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    models = {name: model for name, model in bvb.models.items() if not name.startswith("rbm")}
    fig3 = experiments.mi_profile(all_data, shape, models=models, bipartitions=bips,
                                  model_samples=settings["model_samples"], seed=seed,
                                  workers=_shared(settings)["workers"], out=os.path.join(out, "fig3"),
                                  cache=os.path.join(out, "information.json"), progress=progress)
    timings["fig3"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    fig4 = experiments.rbm_architectures(train, test, shape, out=os.path.join(out, "fig4"), progress=progress,
                                         **fig4_settings(settings, shape, seed))
    timings["fig4"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    arch = structure.structure_experiment(train, test, shape, out=os.path.join(out, "structure"), progress=progress,
                                          reuse=os.path.join(out, "born_vs_boltzmann", "models"),
                                          **structure_settings(settings, seed))
    timings["structure"] = time.perf_counter() - t0
    timings["total"] = time.perf_counter() - t_start

    results = [("fig3/", fig3), ("fig4/", fig4), ("born_vs_boltzmann/", bvb), ("structure/", arch)]
    index = os.path.join(out, "index.md")
    write_text(index, _index(results, data, preset, settings, len(train), len(test), timings))
    meta = {"data": data, "preset": preset, "settings": settings, "seed": seed, "timings_s": timings,
            "n_train": len(train), "n_test": len(test), "torch": torch.__version__, "threads": torch.get_num_threads(),
            "machine": platform.platform(), "findings": {r.name: r.findings for _, r in results}}
    write_text(os.path.join(out, "report.json"), json.dumps(meta, indent=1) + "\n")
    return index


def bvb_settings(settings: dict, seed: int) -> dict:
    """Keyword arguments of :func:`~comparison.experiments.born_vs_boltzmann` from a preset's settings."""
    return {"bond_dims": settings["bond_dims"], "max_sweeps": settings["max_sweeps"], "lrs": settings["born_lrs"],
            "patience": settings["born_patience"], "restarts": settings["restarts"],
            "rbm_max_epochs": settings["rbm_max_epochs"], "rbm_lrs": settings["rbm_lrs"],
            "rbm_patience": settings["rbm_patience"], "model_samples": settings["model_samples"],
            "ttn_max_bond": settings["ttn_max_bond"], "rbm_max_params": settings["rbm_max_params"], "seed": seed,
            **_shared(settings)}


def fig4_settings(settings: dict, shape, seed: int, hidden=None) -> dict:
    """Keyword arguments of :func:`~comparison.experiments.rbm_architectures` from a preset's settings; budgets
    are the parameter counts of dense RBMs with ``hidden`` (default the preset's ``rbm_hidden``) units."""
    n = shape[0] * shape[1]
    return {"budgets": [n + h * (n + 1) for h in (hidden or settings["rbm_hidden"])],
            "max_epochs": settings["rbm_max_epochs"], "lrs": settings["rbm_lrs"], "restarts": settings["restarts"],
            "patience": settings["rbm_patience"], "seed": seed, **_shared(settings)}


def structure_settings(settings: dict, seed: int) -> dict:
    """Keyword arguments of :func:`~comparison.structure.structure_experiment` from a preset's settings."""
    mps_bond, ttn_bond = settings["structure_bonds"]
    return {"mps_bond": mps_bond, "ttn_bond": ttn_bond, "max_sweeps": settings["max_sweeps"],
            "lrs": settings["born_lrs"], "patience": settings["born_patience"], "restarts": settings["restarts"],
            "rbm_max_epochs": settings["rbm_max_epochs"], "rbm_lrs": settings["rbm_lrs"],
            "rbm_patience": settings["rbm_patience"], "structures": settings["structures"], "seed": seed,
            **_shared(settings)}


def _shared(settings: dict) -> dict:
    workers = settings["workers"] if settings["workers"] is not None else default_workers()
    return {"workers": workers,
            **{key: settings[key] for key in ("valid_fraction", "eval_ais", "ais_chains", "ais_betas", "n_gibbs")}}


def _index(results, data, preset, settings, n_train, n_test, timings) -> str:
    lines = [f"# Born machines vs Boltzmann machines: {data}", "",
             f"Preset `{preset}`: {n_train} training images, of which a seeded {settings['valid_fraction']:.0%} are "
             f"held out for validation, and {n_test} test images; Born machines at bond caps {settings['bond_dims']}"
             + (f" (TTN ≤ {settings['ttn_max_bond']})" if settings["ttn_max_bond"] else "")
             + (f", RBMs up to {settings['rbm_max_params']} parameters" if settings["rbm_max_params"] else "") + " "
             f"(two-site sweeps from bond 2, at most {settings['max_sweeps']}); RBMs by PCD-1 (centered, Adam, at most "
             f"{settings['rbm_max_epochs']} epochs), test NLL by AIS ({settings['ais_chains']} chains × "
             f"{settings['ais_betas']} temperatures, bracketed by reverse AIS). All entropies and NLLs in nats. "
             f"Wall time {timings['total'] / 60:.1f} min (per part: "
             + ", ".join(f"{k} {v:.0f} s" for k, v in timings.items() if k != "total") + ").", "",
             "Every choice is made on the validation rows: each model trains until its validation NLL has not "
             f"improved for {settings['born_patience']} sweeps (Born machines) or {settings['rbm_patience']} epochs "
             f"(RBMs) and keeps its best-validation parameters; learning rates (Born {settings['born_lrs']}, RBM "
             f"{settings['rbm_lrs']}) and {settings['restarts']} restart(s) are chosen by the lowest validation NLL. "
             "The test rows are only scored. `convergence.csv` and `convergence.png` in each folder hold every "
             "model's validation curve; a model whose validation NLL still fell by more than 1 nat over its last "
             "20 % of training is marked not converged. A claim \"A below B\" reads *holds* when the gap exceeds the "
             "AIS uncertainty (max of the standard error and half the forward/reverse gap) and B converged, *does "
             "not hold* when the reverse gap does and A converged (more training only lowers a model's "
             "best-validation NLL); otherwise *not decided*. RBMs are evaluated on their parameters averaged over "
             "the updates (`CDTrainer(average=0.99)`).", "",
             "The data's information measures: KSG = Kraskov–Stögbauer–Grassberger kNN estimate (ties of binary "
             "pixels broken by a tiny seeded jitter); plug-in = exact MI of the empirical distribution; data S₂ = "
             "Rényi-2 entropy of the state Σ_v √π(v)|v⟩. The last two are bounded by ln N (N images) and sit at "
             "that ceiling whenever both halves of almost every image are distinct, which is the case for every "
             "cut with many pixels on both sides; only KSG and the models' own estimates measure correlation there.",
             "", "## Headlines", ""]
    for _, r in results:
        lines += [f"- **{r.title}**: " + " ".join(r.findings[:2])]
    lines.append("")
    for prefix, r in results:
        lines.append(r.markdown(prefix))
    return "\n".join(lines)
