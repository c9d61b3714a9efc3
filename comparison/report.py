"""One-command report: the three experiments on one dataset, written as ``index.md`` + CSV/JSON/PNG.

``report(out, preset="quick")`` trains (or re-reads) the models and writes::

    out/index.md                  tables, figures and one-line readings of every claim
    out/report.json               settings, timings and the findings
    out/information.json          per-cut numbers (cache shared by the experiments)
    out/born_vs_boltzmann/ ...    nll.csv/json, cuts.csv/json, PNGs, models/ (checkpoints)
    out/fig3/ ...                 fig3.csv/json, fig3.png
    out/fig4/ ...                 fig4.csv/json, fig4.png, models/

Everything is cached in ``out``: run the same command again after an interruption and it resumes.
Presets: ``"quick"`` (≈ 10–15 minutes on 2 cores for mnist5k), ``"full"`` (paper-scale settings: hours),
``"smoke"`` (tiny sizes, under a minute: checks that the whole pipeline runs; its numbers mean nothing).
"""
from __future__ import annotations

import json
import os
import platform
import time

import numpy as np
import torch

from . import experiments
from .table import write_text

__all__ = ["PRESETS", "report", "load_dataset"]

#: Settings of the presets. ``rbm_hidden``: Fig.-4 budgets as the parameter counts of dense RBMs
#: with that many hidden units (the other kinds are matched to them).
PRESETS = {
    "quick": {"bond_dims": [2, 4, 8], "sweeps": 3, "rbm_hidden": [4, 8, 16, 32, 64], "rbm_epochs": 10,
              "rbm_lrs": [0.1], "ais_chains": 50, "ais_betas": 1000, "n_gibbs": 200, "cut_step": 2,
              "model_samples": 500, "max_train": 4000, "max_test": 1000},
    "full": {"bond_dims": [2, 4, 8, 16, 32], "sweeps": 6, "rbm_hidden": [4, 8, 16, 32, 64, 100], "rbm_epochs": 30,
             "rbm_lrs": [0.03, 0.1, 0.3], "ais_chains": 100, "ais_betas": 10000, "n_gibbs": 1000, "cut_step": 1,
             "model_samples": 2000, "max_train": None, "max_test": None},
    "smoke": {"bond_dims": [2], "sweeps": 1, "rbm_hidden": [2, 3], "rbm_epochs": 1, "rbm_lrs": [0.1], "ais_chains": 8,
              "ais_betas": 50, "n_gibbs": 5, "cut_step": 14, "model_samples": 50, "max_train": 100, "max_test": 50},
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
    """Run the three experiments and write ``out/index.md``; return its path.

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
    bvb = experiments.born_vs_boltzmann(
        train, test, shape, bond_dims=settings["bond_dims"], sweeps=settings["sweeps"],
        rbm_epochs=settings["rbm_epochs"], rbm_lrs=settings["rbm_lrs"], ais_chains=settings["ais_chains"],
        ais_betas=settings["ais_betas"], n_gibbs=settings["n_gibbs"], bipartitions=bips, info_data=all_data,
        model_samples=settings["model_samples"], seed=seed, out=os.path.join(out, "born_vs_boltzmann"),
        cache=os.path.join(out, "information.json"), progress=progress)
    timings["born_vs_boltzmann"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    d = max(settings["bond_dims"])
    folder = os.path.join(out, "born_vs_boltzmann", "models")
    models = {f"{k}-D{d}": experiments.train_born_machine(k, train, shape, d, sweeps=settings["sweeps"], seed=seed,
                                                         folder=folder)[0] for k in experiments.BORN_KINDS}
    fig3 = experiments.mi_profile(all_data, shape, models=models, bipartitions=bips,
                                  model_samples=settings["model_samples"], seed=seed, out=os.path.join(out, "fig3"),
                                  cache=os.path.join(out, "information.json"), progress=progress)
    timings["fig3"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    n = shape[0] * shape[1]
    budgets = [n + h * (n + 1) for h in settings["rbm_hidden"]]
    fig4 = experiments.rbm_architectures(
        train, test, shape, budgets=budgets, epochs=settings["rbm_epochs"], lrs=settings["rbm_lrs"],
        ais_chains=settings["ais_chains"], ais_betas=settings["ais_betas"], n_gibbs=settings["n_gibbs"], seed=seed,
        out=os.path.join(out, "fig4"), progress=progress)
    timings["fig4"] = time.perf_counter() - t0
    timings["total"] = time.perf_counter() - t_start

    results = [("fig3/", fig3), ("fig4/", fig4), ("born_vs_boltzmann/", bvb)]
    index = os.path.join(out, "index.md")
    write_text(index, _index(results, data, preset, settings, len(train), len(test), timings))
    meta = {"data": data, "preset": preset, "settings": settings, "seed": seed, "timings_s": timings,
            "n_train": len(train), "n_test": len(test), "torch": torch.__version__, "threads": torch.get_num_threads(),
            "machine": platform.platform(), "findings": {r.name: r.findings for _, r in results}}
    write_text(os.path.join(out, "report.json"), json.dumps(meta, indent=1) + "\n")
    return index


def _index(results, data, preset, settings, n_train, n_test, timings) -> str:
    lines = [f"# Born machines vs Boltzmann machines: {data}", "",
             f"Preset `{preset}`: {n_train} training / {n_test} test images; Born machines at bond caps "
             f"{settings['bond_dims']} ({settings['sweeps']} two-site sweeps); RBMs by PCD-1, "
             f"{settings['rbm_epochs']} epochs, test NLL by AIS ({settings['ais_chains']} chains × "
             f"{settings['ais_betas']} temperatures). All entropies and NLLs in nats. "
             f"Wall time {timings['total'] / 60:.1f} min (per part: "
             + ", ".join(f"{k} {v:.0f} s" for k, v in timings.items() if k != "total") + ").", "",
             "The data's information measures: KSG = Kraskov–Stögbauer–Grassberger kNN estimate (ties of binary "
             "pixels broken by a tiny seeded jitter); plug-in = exact MI of the empirical distribution; data S₂ = "
             "Rényi-2 entropy of the state Σ_v √π(v)|v⟩. The last two are bounded by ln N (N images) and sit at "
             "that ceiling whenever both halves of almost every image are distinct, which is the case for every "
             "cut with many pixels on both sides; only KSG and the models' own estimates measure correlation there.",
             "", f"Each RBM is trained at the learning rates {settings['rbm_lrs']} and the one with the lowest training "
             "NLL is kept. Kinds that learn slowly (random masks, whose units see weakly correlated pixels) can stay on "
             "the initial plateau (test NLL of the independent-pixel model) when few epochs or one learning rate are "
             "given, as in the quick preset; `--full` selects among three learning rates over 30 epochs.",
             "", "## Headlines", ""]
    for _, r in results:
        lines += [f"- **{r.title}**: " + " ".join(r.findings[:2])]
    lines.append("")
    for prefix, r in results:
        lines.append(r.markdown(prefix))
    return "\n".join(lines)
