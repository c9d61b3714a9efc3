"""The paper's experiments: information per bipartition (Fig. 3), RBM architectures (Fig. 4), Born vs Boltzmann.

Every experiment takes binary data (N, H·W) with its image shape, writes into an output folder
CSV + JSON tables, PNG figures and ``summary.md``, and returns a :class:`Result`. Work is cached in
that folder (trained models as ``models/*.npz`` with their training checkpoints, per-bipartition
numbers in ``information.json``, per-model results in ``runs.json``), so an interrupted experiment
resumes where it stopped and a finished one is re-read, not recomputed.

* :func:`mi_profile` — Cheng, Chen & Wang (Entropy 2018) Fig. 3: I(X:Y) of the data for up/down and
  left/right cuts at every position, checkerboards, centre vs margin and random splits, by KSG, the
  plug-in estimate and the data Rényi-2 entropy, beside the MI and S₂ of trained Born machines.
* :func:`rbm_architectures` — Fig. 4: test NLL (AIS, ± one standard error) against #params for dense,
  random, 1D-local and 2D-local RBMs at matched parameter counts.
* :func:`born_vs_boltzmann` — MPS (row-major, snake), TTN and RBMs at matched #params: test NLL
  against #params, and per bipartition the data MI / S₂ against each model's S₂ and capacity bound.
"""
from __future__ import annotations

import hashlib
import math
import os
import re
import time
import zlib
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from bornmachine.validation import as_binary, check_positive_int

from . import bipartitions as bp
from . import figures
from .capacity import network_bound, rbm_bound
from .information import data_renyi2, ksg_mutual_information, plugin_mutual_information
from .table import RowStore, Table, write_text

__all__ = ["Result", "information_table", "mi_profile", "rbm_architectures", "born_vs_boltzmann",
           "local_windows", "train_born_machine", "BORN_KINDS", "RBM_KINDS"]

#: Born machines compared: MPS on the row-major and snake chains, TTN on the bisection tree.
BORN_KINDS = ("mps-row-major", "mps-snake", "ttn")
#: RBM connectivities of Fig. 4.
RBM_KINDS = ("dense", "random", "local_1d", "local_2d")


@dataclass
class Result:
    """What an experiment produced: tables, figure paths (relative to ``folder``) with captions, findings."""

    name: str
    folder: str
    tables: dict[str, Table]
    figures: dict[str, str] = field(default_factory=dict)  # file name → one-line caption
    findings: list[str] = field(default_factory=list)
    title: str = ""

    def markdown(self, prefix: str = "") -> str:
        """Markdown section: findings, figures (paths prefixed by ``prefix``) and tables."""
        out = [f"## {self.title or self.name}", ""]
        out += [f"- {line}" for line in self.findings]
        for png, caption in self.figures.items():
            out += ["", f"![{caption}]({prefix}{png})", "", f"*{caption}*"]
        for table in self.tables.values():
            out += ["", f"Table `{table.name}` ({len(table)} rows; "
                        f"[CSV]({prefix}{table.name}.csv), [JSON]({prefix}{table.name}.json)):", ""]
            out.append(table.to_markdown())
        return "\n".join(out) + "\n"

    def write(self) -> None:
        for table in self.tables.values():
            table.write(self.folder)
        write_text(os.path.join(self.folder, "summary.md"), self.markdown())


# ------------------------------------------------------------------------------------------------
# information per bipartition
# ------------------------------------------------------------------------------------------------
def information_table(data, bips: Sequence[bp.Bipartition], models: Mapping[str, object] | None = None, *,
                      ksg_k: int = 3, model_samples: int = 1000, seed: int = 0, store: RowStore | None = None,
                      progress: bool = True, name: str = "information") -> Table:
    """One row per bipartition: data MI (KSG, plug-in), data S₂, and per model its S₂, MI and bound.

    data : binary (N, n) or (N, H, W). bips : bipartitions of the n pixels.
    models : name → Born machine (MPS/TTN: columns ``<name>_s2`` (exact swap contraction, Monte
        Carlo with ``model_samples`` when the exact one is too expensive; ``<name>_s2_stderr``),
        ``<name>_mi`` ± ``<name>_mi_stderr`` (exact samples + marginals), ``<name>_bound`` (min cut,
        :func:`~comparison.capacity.network_bound`), ``<name>_seconds``) or RBM (``<name>_bound`` =
        |Z| ln 2 only). ``seconds``: time of the data columns.
    store : cache of finished rows (resume). All values in nats.
    """
    if not bips:
        raise ValueError("no bipartitions given")
    x = as_binary(data, bips[0].n_sites, name="data", shape=bips[0].shape if len(bips[0].shape) > 1 else None)
    x = x.numpy().astype(np.uint8)
    models = dict(models or {})
    model_tags = {m: _model_tag(model) for m, model in models.items()}
    data_tag = hashlib.sha1(np.packbits(x, axis=1).tobytes()).hexdigest()[:12]
    columns = ["bipartition", "family", "position", "n_x", "ksg_mi", "plugin_mi", "plugin_saturated",
               "data_s2", "data_s2_saturated", "ln_n", "seconds"]
    for m, model in models.items():
        if getattr(model, "kind", None) == "RBM":
            columns += [f"{m}_bound"]
        else:
            columns += [f"{m}_s2", f"{m}_s2_stderr", f"{m}_s2_method", f"{m}_mi", f"{m}_mi_stderr", f"{m}_bound",
                        f"{m}_seconds"]
    rows = []
    for bip in tqdm(bips, desc="bipartitions", unit="cut", disable=not progress, leave=False):
        family, position = parse_name(bip.name)
        mask_tag = hashlib.sha1(np.packbits(bip.flat_mask).tobytes()).hexdigest()[:8]  # names need not be unique
        cut_seed = seed + zlib.crc32(mask_tag.encode())  # per cut, independent of the list's order
        key = f"data|{data_tag}|k{ksg_k}|seed{seed}|{bip.name}|{mask_tag}"
        row = store.get(key) if store is not None else None
        if row is None:
            t0 = time.perf_counter()
            plug, sat = plugin_mutual_information(x, bip, return_saturation=True)
            s2, sat2 = data_renyi2(x, bip, return_saturation=True)
            row = {"bipartition": bip.name, "family": family, "position": position, "n_x": int(bip.sites_x.size),
                   "ksg_mi": float(ksg_mutual_information(x, bip, k=ksg_k, seed=seed)),
                   "plugin_mi": float(plug), "plugin_saturated": bool(sat.saturated), "data_s2": float(s2),
                   "data_s2_saturated": bool(sat2.saturated), "ln_n": math.log(x.shape[0]),
                   "seconds": time.perf_counter() - t0}
            if store is not None:
                store.put(key, row)
        row = {c: row[c] for c in columns[:11]}
        for m, model in models.items():
            key = f"model|{m}|{model_tags[m]}|s{model_samples}|seed{seed}|{bip.name}|{mask_tag}"
            part = store.get(key) if store is not None else None
            if part is None:
                part = _model_columns(m, model, bip, model_samples, cut_seed)
                if store is not None:
                    store.put(key, part)
            row.update(part)
        rows.append(row)
    return Table(name, columns, rows)


def _model_columns(name: str, model, bip: bp.Bipartition, n_samples: int, seed: int) -> dict:
    if getattr(model, "kind", None) == "RBM":
        return {f"{name}_bound": rbm_bound(model.mask.cpu(), bip)}
    t0 = time.perf_counter()
    sites = bip.sites_x.tolist()
    gen = torch.Generator().manual_seed(seed)
    try:
        s2, method = model.renyi2(sites, method="exact"), "exact"
    except ValueError:  # the TTN refuses an exact contraction above ~2e10 flops
        s2, method = model.renyi2(sites, method="mc", n_samples=n_samples, generator=gen), "mc"
    mi = model.mutual_information(sites, n_samples=n_samples, generator=gen)
    return {f"{name}_s2": s2.value, f"{name}_s2_stderr": s2.stderr, f"{name}_s2_method": method,
            f"{name}_mi": mi.value, f"{name}_mi_stderr": mi.stderr, f"{name}_bound": network_bound(model, bip),
            f"{name}_seconds": time.perf_counter() - t0}


def parse_name(name: str) -> tuple[str, int | None]:
    """``"up_down(row=14)"`` → ``("up_down", 14)``; names without an integer parameter → ``(family, None)``."""
    m = re.fullmatch(r"(\w+)\((\w+)=(-?\d+)\)", name)
    if m:
        return m.group(1), int(m.group(3))
    return re.split(r"\(", name, maxsplit=1)[0], None


def _model_tag(model) -> str:
    """Short hash of a model's parameters (cache key: a retrained model never reuses old numbers)."""
    h = hashlib.sha1()
    if getattr(model, "kind", None) == "RBM":
        tensors = [model.W, model.b, model.c]
    else:
        tensors = model.tensors
    for t in tensors:
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:12]


def profile_bipartitions(shape: Sequence[int], step: int = 1, n_random: int = 3, seed: int = 0) -> list[bp.Bipartition]:
    """Fig. 3's cuts: up/down and left/right every ``step`` rows/columns, checkerboards 1, 2, 4,
    centre vs margin at every width, ``n_random`` random balanced splits (``step=1``: the standard set)."""
    step = check_positive_int(step, "step")
    h, w = shape
    cuts = [c for c in bp.standard_set(shape, n_random=n_random, seed=seed)
            if parse_name(c.name)[0] not in ("up_down", "left_right")]
    rows = [bp.up_down(shape, r) for r in range(1, h) if r % step == 0 or r == h // 2]
    cols = [bp.left_right(shape, c) for c in range(1, w) if c % step == 0 or c == w // 2]
    return rows + cols + cuts


# ------------------------------------------------------------------------------------------------
# Fig. 3
# ------------------------------------------------------------------------------------------------
def mi_profile(data, shape: Sequence[int], *, models: Mapping[str, object] | None = None,
               bipartitions: Sequence[bp.Bipartition] | None = None, ksg_k: int = 3, model_samples: int = 1000,
               seed: int = 0, out: str = "fig3", cache: str | None = None, progress: bool = True) -> Result:
    """The paper's Fig. 3: MI of the data per bipartition by every estimator, with trained models beside.

    data : binary (N, H·W) or (N, H, W); shape : (H, W). models : name → trained MPS/TTN (optional).
    bipartitions : default :func:`profile_bipartitions` (the 73 cuts of the standard set on 28×28).
    Writes ``fig3.csv/json``, ``fig3.png``, ``summary.md`` into ``out``; per-cut numbers are cached in
    ``cache`` (default ``out/information.json``; experiments given one file share their numbers).
    """
    shape = tuple(int(s) for s in shape)
    bips = list(bipartitions) if bipartitions is not None else profile_bipartitions(shape)
    store = RowStore(cache or os.path.join(out, "information.json"), {"kind": "information"})
    table = information_table(data, bips, models, ksg_k=ksg_k, model_samples=model_samples, seed=seed,
                              store=store, progress=progress, name="fig3")
    table.shown = ["bipartition", "n_x", "ksg_mi", "plugin_mi", "data_s2"] + \
        [f"{m}_{q}" for m in (models or {}) for q in ("mi", "s2")]
    result = Result("fig3", out, {"fig3": table}, title="Mutual information per bipartition (paper Fig. 3)")
    figures.information_profile(table, os.path.join(out, "fig3.png"), list(models or {}))
    result.figures["fig3.png"] = ("MI and Rényi-2 entropy of the data (KSG, plug-in, data S₂) and of the trained "
                                  "Born machines, per bipartition; dashed: the sample-size ceiling ln N")
    result.findings = fig3_findings(table)
    result.write()
    return result


def fig3_findings(table: Table) -> list[str]:
    """One-line readings of the paper's Fig.-3 claims, checked on the KSG column."""
    out = []
    ud = {r["position"]: r["ksg_mi"] for r in table.where(family="up_down")}
    lr = {r["position"]: r["ksg_mi"] for r in table.where(family="left_right")}
    if len(ud) >= 3:
        mid = max(ud, key=lambda p: -abs(p - (max(ud) + min(ud)) / 2))
        edge = [ud[min(ud)], ud[max(ud)]]
        holds = ud[mid] > max(edge)
        out.append(f"MI rises toward the centre: KSG I(up:down) = {ud[mid]:.2f} nats at row {mid} vs "
                   f"{edge[0]:.2f} / {edge[1]:.2f} at rows {min(ud)} / {max(ud)} — "
                   f"{'holds' if holds else 'does not hold'}.")
        if mid in lr:
            rel = abs(ud[mid] - lr[mid]) / max(ud[mid], lr[mid], 1e-12)
            out.append(f"Vertical ≈ horizontal: central up/down {ud[mid]:.2f} vs left/right {lr[mid]:.2f} nats "
                       f"({rel:.0%} apart) — {'holds' if rel < 0.25 else 'does not hold'} (threshold 25 %).")
        cb = table.where(family="checkerboard", position=1)
        if cb:
            ratio = cb[0]["ksg_mi"] / max(ud[mid], 1e-12)
            out.append(f"Checkerboard ≫ up/down: KSG {cb[0]['ksg_mi']:.2f} vs {ud[mid]:.2f} nats ({ratio:.1f}×) — "
                       f"{'holds' if ratio > 2 else 'does not hold'} (threshold 2×).")
    cm = table.where(family="center_margin", position=1)
    if cm:
        out.append(f"Margin vs rest ≈ 0: the 1-pixel margin carries KSG {cm[0]['ksg_mi']:.3f} nats — "
                   f"{'holds' if cm[0]['ksg_mi'] < 0.1 else 'does not hold'} (threshold 0.1).")
    n_sat = sum(bool(r["plugin_saturated"]) for r in table.rows)
    if table.rows:
        out.append(f"The plug-in MI and the data S₂ sit at the sample-size ceiling ln N = {table.rows[0]['ln_n']:.2f} "
                   f"on {n_sat} of {len(table)} cuts: there they count distinct halves, not correlation "
                   "(KSG and the models' estimates do not saturate).")
    return out


# ------------------------------------------------------------------------------------------------
# Fig. 4
# ------------------------------------------------------------------------------------------------
def local_windows(budget: int, shape: Sequence[int]) -> tuple[int, int]:
    """Windows ``(window_1d, window_2d)`` of local RBMs at a parameter budget.

    Each local kind gets the window whose convolution-like layer (one hidden unit per stride-1 window
    position) has the parameter count nearest ``budget``, searched over windows up to the one of
    largest count (beyond, :func:`rbm.masks.matched` adds hidden units per position). So the window
    grows with the budget: 1D fragments span two image rows once ``window_1d > W``.
    """
    h, w = shape
    n = h * w

    def nearest(counts: list[tuple[int, int]]) -> int:
        peak = max(range(len(counts)), key=lambda i: counts[i][1])
        return min(counts[:peak + 1], key=lambda c: abs(c[1] - budget))[0]

    one = [(L, (n - L + 1) * (L + 1) + n) for L in range(2, n + 1)]
    two = [(k, (h - k + 1) * (w - k + 1) * (k * k + 1) + n) for k in range(2, min(h, w) + 1)]
    return nearest(one), nearest(two)


def rbm_jobs(budgets: Sequence[int], kinds: Sequence[str], shape: Sequence[int], seed: int = 0) -> list[tuple]:
    """``(budget, kind, Architecture)`` for every budget and kind: :func:`rbm.masks.matched` with the
    windows of :func:`local_windows`."""
    from rbm import masks

    jobs = []
    for budget in budgets:
        w1, w2 = local_windows(budget, shape)
        for kind, arch in masks.matched(budget, kinds, shape, window_1d=w1, window_2d=w2, seed=seed).items():
            jobs.append((budget, kind, arch))
    return jobs


def rbm_architectures(train, test, shape: Sequence[int], *, budgets: Sequence[int], kinds: Sequence[str] = RBM_KINDS,
                      epochs: int = 20, lrs: Sequence[float] = (0.1,), batch_size: int = 100, ais_chains: int = 100,
                      ais_betas: int = 10000, n_gibbs: int = 1000, seed: int = 0, out: str = "fig4",
                      progress: bool = True) -> Result:
    """The paper's Fig. 4: test NLL of RBM connectivities against #params at matched budgets.

    For each budget, :func:`rbm.masks.matched` builds one architecture per kind (counts within 1 %;
    local windows from :func:`local_windows`); each is trained by PCD-1 (momentum 0.5, learning
    rate decayed linearly) once per ``lrs``, the run with the lowest training NLL is kept, and its test
    NLL is estimated by forward AIS (± one standard error) and bracketed by reverse AIS from
    data-initialised chains (``n_gibbs`` sweeps), or computed exactly for ≤ 20 hidden units.
    Writes ``fig4.csv/json``, ``fig4.png``, ``summary.md``; models under ``out/models``.
    """
    shape = tuple(int(s) for s in shape)
    n = shape[0] * shape[1]
    x = as_binary(train, n, name="train", shape=shape)
    xt = as_binary(test, n, name="test", shape=shape)
    settings = {"epochs": epochs, "lrs": list(lrs), "batch_size": batch_size, "ais": [ais_chains, ais_betas],
                "n_gibbs": n_gibbs, "seed": seed, "data": _fingerprint(x, xt)}
    store = RowStore(os.path.join(out, "runs.json"), settings)
    rows = []
    jobs = rbm_jobs(budgets, kinds, shape, seed)
    for budget, kind, arch in tqdm(jobs, desc="RBMs", unit="model", disable=not progress, leave=False):
        key = f"{kind}-{budget}"
        row = store.get(key)
        if row is None:
            row = _train_and_evaluate_rbm(arch, x, xt, key, epochs=epochs, lrs=lrs, batch_size=batch_size,
                                          ais_chains=ais_chains, ais_betas=ais_betas, n_gibbs=n_gibbs, seed=seed,
                                          folder=os.path.join(out, "models"))
            row["budget"] = int(budget)
            store.put(key, row)
        rows.append(row)
    table = Table("fig4", ["budget", "kind", "n_hidden", "n_params", "window", "lr", "test_nll", "test_nll_stderr",
                           "test_nll_reverse", "train_nll", "log_z_method", "seconds", "model_file"], rows,
                  shown=["budget", "kind", "n_hidden", "n_params", "window", "test_nll", "test_nll_stderr",
                         "test_nll_reverse", "train_nll"])
    result = Result("fig4", out, {"fig4": table}, title="RBM connectivity at equal parameter count (paper Fig. 4)")
    figures.rbm_nll(table, os.path.join(out, "fig4.png"), shape)
    result.figures["fig4.png"] = ("Test NLL (forward AIS, error bar = one standard error of log Z; crosses: reverse "
                                  "AIS) against #params for the four connectivities")
    result.findings = fig4_findings(table, shape)
    result.write()
    return result


def _train_and_evaluate_rbm(arch, x, xt, tag: str, *, epochs, lrs, batch_size, ais_chains, ais_betas, n_gibbs,
                            seed, folder) -> dict:
    from rbm import CDTrainer, ais_log_z, exact_log_z, reverse_ais_log_z
    from rbm.io import load as load_rbm

    os.makedirs(folder, exist_ok=True)
    t0 = time.perf_counter()
    candidates = []
    stem = f"{tag}-{_settings_tag(epochs, batch_size, seed, arch.n_hidden, _fingerprint(x))}"  # other settings: other files
    for lr in lrs:
        path = os.path.join(folder, f"{stem}-lr{lr:g}.npz")
        if os.path.exists(path):
            model = load_rbm(path)
        else:
            model = arch.build(generator=torch.Generator().manual_seed(seed))
            CDTrainer(model, lr=lr, lr_decay="linear", momentum=0.5, weight_decay=1e-4, batch_size=batch_size,
                      n_epochs=epochs, eval_every=0, seed=seed).fit(
                x, checkpoint=os.path.join(folder, f"{stem}-lr{lr:g}.ckpt.npz"), progress=False)
            model.save(path)
        exact = min(model.n_visible, model.n_hidden) <= 20
        quick = exact_log_z(model) if exact else ais_log_z(model, 32, max(ais_betas // 10, 100), data=x, seed=seed)
        candidates.append((model.nll(x, quick).value, lr, model))
    _, lr, model = min(candidates, key=lambda c: c[0])
    gen = torch.Generator().manual_seed(seed + 1)
    if min(model.n_visible, model.n_hidden) <= 20:
        fwd = rev = exact_log_z(model)
        method = "exact"
    else:
        fwd = ais_log_z(model, ais_chains, ais_betas, data=x, generator=gen)
        rev = reverse_ais_log_z(model, ais_chains, ais_betas, data=x, n_gibbs=n_gibbs, generator=gen)
        method = "ais"
    window = arch.options.get("window")
    return {"kind": arch.kind, "n_hidden": model.n_hidden, "n_params": model.n_params,
            "window": None if window is None else "x".join(map(str, window)) if isinstance(window, tuple)
            else str(window), "lr": lr, "test_nll": model.nll(xt, fwd).value, "test_nll_stderr": fwd.stderr,
            "test_nll_reverse": model.nll(xt, rev).value, "train_nll": model.nll(x, fwd).value,
            "log_z_method": method, "seconds": time.perf_counter() - t0, "model_file": f"{stem}-lr{lr:g}.npz"}


def fig4_findings(table: Table, shape: Sequence[int]) -> list[str]:
    """Readings of the Fig.-4 claims: 2D best, dense worst, 1D's sharp drop once a window spans two rows."""
    summary, per_budget = [], []
    budgets = sorted({r["budget"] for r in table.rows})
    wins = worst_dense = 0
    for b in budgets:
        rows = sorted(table.where(budget=b), key=lambda r: r["test_nll"])
        order = " < ".join(f"{r['kind']} {r['test_nll']:.1f}" for r in rows)
        wins += rows[0]["kind"] == "local_2d"
        worst_dense += rows[-1]["kind"] == "dense"
        per_budget.append(f"{b} params: {order} (test NLL, nats).")
    if budgets:
        summary.append(f"2D-local has the lowest test NLL at {wins} of {len(budgets)} budgets and dense the highest "
                       f"at {worst_dense} of {len(budgets)} (paper: 2D best, dense worst).")
    ones = sorted(table.where(kind="local_1d"), key=lambda r: r["n_params"])
    if len(ones) >= 2:
        drops = [(ones[i]["test_nll"] - ones[i + 1]["test_nll"], ones[i], ones[i + 1]) for i in range(len(ones) - 1)]
        drop, a, b = max(drops, key=lambda d: d[0])
        w = shape[1]
        crosses = int(a["window"]) <= w < int(b["window"])
        summary.append(f"1D-local: the largest drop in test NLL ({drop:.1f} nats) comes between {a['n_params']} and "
                       f"{b['n_params']} params, window {a['window']} → {b['window']} pixels (rows are {w} wide): "
                       + ("the window starts to span two image rows there, as the paper says."
                          if crosses else "the window does not cross a row there."))
    return summary + per_budget


# ------------------------------------------------------------------------------------------------
# Born vs Boltzmann
# ------------------------------------------------------------------------------------------------
def train_born_machine(kind: str, train, shape: Sequence[int], bond_dim: int, *, sweeps: int = 4, lr: float = 0.05,
                       seed: int = 0, folder: str = "models", progress: bool = False):
    """Train (or re-read) one Born machine: ``kind`` in :data:`BORN_KINDS`, grown to bond ``bond_dim``.

    The model starts at bond 2 and grows by the sweep's SVD up to ``bond_dim``; it is saved as
    ``folder/<kind>-D<bond_dim>-<tag>.npz`` (tag: hash of sweeps, lr, seed and the data, so other settings
    train anew) and re-read from there; training checkpoints every sweep.
    Returns ``(model, history)`` (history empty when the model was re-read).
    """
    from bornmachine import MPS, TTN
    from bornmachine import SweepTrainer
    from bornmachine.io import load as load_model

    if kind not in BORN_KINDS:
        raise ValueError(f"unknown Born machine {kind!r}; choose from {BORN_KINDS}")
    os.makedirs(folder, exist_ok=True)
    shape = tuple(int(s) for s in shape)
    train = as_binary(train, shape[0] * shape[1], name="train", shape=shape)
    stem = f"{kind}-D{bond_dim}-{_settings_tag(sweeps, lr, seed, _fingerprint(train))}"
    path = os.path.join(folder, f"{stem}.npz")
    if os.path.exists(path):
        return load_model(path), []
    gen = torch.Generator().manual_seed(seed)
    if kind == "ttn":
        model = TTN(tuple(shape), 2, generator=gen)
    else:
        model = MPS(tuple(shape), 2, ordering=kind[len("mps-"):].replace("-", "_"), generator=gen)
    trainer = SweepTrainer(model, max_bond=bond_dim, lr=lr, n_sweeps=sweeps, seed=seed)
    history = trainer.fit(train, checkpoint=os.path.join(folder, f"{stem}.ckpt.npz"), progress=progress)
    model.save(path)
    return model, history


def born_vs_boltzmann(train, test, shape: Sequence[int], *, bond_dims: Sequence[int] = (2, 4, 8),
                      born_kinds: Sequence[str] = BORN_KINDS, rbm_kinds: Sequence[str] = ("local_2d", "dense"),
                      sweeps: int = 4, lr: float = 0.05, rbm_epochs: int = 20, rbm_lrs: Sequence[float] = (0.1,),
                      ais_chains: int = 100, ais_betas: int = 10000, n_gibbs: int = 1000,
                      bipartitions: Sequence[bp.Bipartition] | None = None, info_data=None, model_samples: int = 1000,
                      seed: int = 0, out: str = "born_vs_boltzmann", cache: str | None = None,
                      progress: bool = True) -> Result:
    """Born machines and RBMs at matched parameter counts, and what each carries across every cut.

    Trains each of ``born_kinds`` at every bond cap in ``bond_dims`` (exact test NLL), and RBMs of
    ``rbm_kinds`` whose budgets equal the first kind's parameter counts (within 1 %, or half a dense
    step of n + 1 parameters when "dense" is among them; AIS test NLL, as in
    :func:`rbm_architectures`). Then, for the largest models, the per-bipartition table of
    :func:`information_table` on ``info_data`` (default: train + test): data MI and S₂ beside each
    Born machine's S₂, MI and min-cut bound and each RBM's |Z| ln 2 bound.
    Writes ``nll.csv/json``, ``cuts.csv/json``, ``nll_vs_params.png``, ``cuts.png``, sample grids and
    the MPS entanglement profile, and ``summary.md``; ``cache`` as in :func:`mi_profile`.
    """
    shape = tuple(int(s) for s in shape)
    n = shape[0] * shape[1]
    x = as_binary(train, n, name="train", shape=shape)
    xt = as_binary(test, n, name="test", shape=shape)
    bond_dims = sorted(check_positive_int(d, "bond_dim") for d in bond_dims)
    settings = {"sweeps": sweeps, "lr": lr, "rbm_epochs": rbm_epochs, "rbm_lrs": list(rbm_lrs),
                "ais": [ais_chains, ais_betas], "n_gibbs": n_gibbs, "seed": seed, "data": _fingerprint(x, xt)}
    store = RowStore(os.path.join(out, "runs.json"), settings)
    folder = os.path.join(out, "models")
    rows, born = [], {}
    jobs = [(k, d) for d in bond_dims for k in born_kinds]
    for kind, d in tqdm(jobs, desc="Born machines", unit="model", disable=not progress, leave=False):
        t0 = time.perf_counter()
        model, _ = train_born_machine(kind, x, shape, d, sweeps=sweeps, lr=lr, seed=seed, folder=folder)
        born[(kind, d)] = model
        key = f"{kind}-D{d}"
        row = store.get(key) or store.put(key, {
            "family": kind, "size": f"D={d}", "n_params": model.n_params, "max_bond": max(model.bond_dims),
            "test_nll": model.nll(xt), "test_nll_stderr": 0.0, "train_nll": model.nll(x),
            "seconds": time.perf_counter() - t0})
        rows.append(row)
    budgets = sorted({born[(k, d)].n_params for (k, d) in born if k == born_kinds[0]})
    rbm_models = {}
    for budget, kind, arch in tqdm(rbm_jobs(budgets, rbm_kinds, shape, seed), desc="RBMs", unit="model", disable=not progress, leave=False):
        key = f"rbm-{kind}-{budget}"
        row = store.get(key)
        if row is None:
            r = _train_and_evaluate_rbm(arch, x, xt, key, epochs=rbm_epochs, lrs=rbm_lrs, batch_size=100,
                                        ais_chains=ais_chains, ais_betas=ais_betas, n_gibbs=n_gibbs, seed=seed,
                                        folder=folder)
            row = store.put(key, {"family": f"rbm-{kind}", "size": f"{r['n_hidden']} hidden", "n_params": r["n_params"],
                                  "max_bond": None, "test_nll": r["test_nll"], "test_nll_stderr": r["test_nll_stderr"],
                                  "train_nll": r["train_nll"], "seconds": r["seconds"], "model_file": r["model_file"]})
        rows.append({k: v for k, v in row.items() if k != "model_file"})
        if budget == budgets[-1]:
            from rbm.io import load as load_rbm

            rbm_models[f"rbm-{kind}"] = load_rbm(os.path.join(folder, row["model_file"]))
    nll = Table("nll", ["family", "size", "n_params", "max_bond", "test_nll", "test_nll_stderr", "train_nll",
                        "seconds"], rows, shown=["family", "size", "n_params", "test_nll", "test_nll_stderr",
                                                  "train_nll"])
    largest = {k: born[(k, bond_dims[-1])] for k in born_kinds}
    models = {**{f"{k}-D{bond_dims[-1]}": m for k, m in largest.items()}, **rbm_models}
    bips = list(bipartitions) if bipartitions is not None else profile_bipartitions(shape)
    info = RowStore(cache or os.path.join(out, "information.json"), {"kind": "information"})
    cuts = information_table(x if info_data is None else info_data, bips, models, model_samples=model_samples,
                             seed=seed, store=info, progress=progress, name="cuts")
    cuts.shown = ["bipartition", "ksg_mi", "data_s2"] + [f"{m}_{q}" for m in models
                                                           for q in (("s2", "bound") if not m.startswith("rbm")
                                                                     else ("bound",))]
    result = Result("born_vs_boltzmann", out, {"nll": nll, "cuts": cuts},
                    title="Born machines vs Boltzmann machines at matched parameter counts")
    figures.nll_vs_params(nll, os.path.join(out, "nll_vs_params.png"))
    result.figures["nll_vs_params.png"] = "Test NLL against #params: MPS (row-major, snake), TTN and RBMs"
    figures.cut_profile(cuts, os.path.join(out, "cuts.png"), list(models))
    result.figures["cuts.png"] = ("What the data has (KSG MI, data S₂) against what each model carries (its S₂, "
                                  "solid) and can carry (capacity bound, dashed), per bipartition")
    _model_pictures(largest, shape, out, result, seed)
    result.findings = bvb_findings(nll, cuts, models)
    result.write()
    return result


def _model_pictures(models: dict, shape, out: str, result: Result, seed: int) -> None:
    from bornmachine import plots

    for kind, model in models.items():
        samples, _ = model.sample(32, generator=torch.Generator().manual_seed(seed))
        png = f"samples_{kind}.png"
        plots.sample_grid(samples.cpu().numpy(), shape, os.path.join(out, png),
                          title=f"exact samples, {kind} (max bond {max(model.bond_dims)})")
        result.figures[png] = f"32 exact, independent samples of the {kind} Born machine"
    if "mps-row-major" in models:
        profile = models["mps-row-major"].entanglement_profile().numpy()
        plots.entropy_profile(profile, os.path.join(out, "entropy_profile.png"), shape)
        result.figures["entropy_profile.png"] = ("Von Neumann entanglement entropy at every bond of the row-major MPS; "
                                                 "grey lines: image-row boundaries")


def bvb_findings(nll: Table, cuts: Table, models: Mapping[str, object]) -> list[str]:
    """Readings: best Born vs best RBM at matched #params; where models sit against data and bounds."""
    out = []
    families = sorted({r["family"] for r in nll.rows})
    best = {f: min(nll.where(family=f), key=lambda r: r["test_nll"]) for f in families}
    born = [f for f in families if not f.startswith("rbm")]
    rbms = [f for f in families if f.startswith("rbm")]
    if born and rbms:
        b = min((best[f] for f in born), key=lambda r: r["test_nll"])
        r = min((best[f] for f in rbms), key=lambda r: r["test_nll"])
        winner = "the Born machine" if b["test_nll"] < r["test_nll"] else "the RBM"
        out.append(f"Best Born machine: {b['family']} {b['size']} ({b['n_params']} params) test NLL "
                   f"{b['test_nll']:.2f}; best RBM: {r['family']} {r['size']} ({r['n_params']} params) "
                   f"{r['test_nll']:.2f} ± {r['test_nll_stderr']:.2f} — {winner} wins.")
    sizes = sorted({r["n_params"] for r in nll.where(family=born[0])}) if born else []
    for p in sizes:
        row_b = nll.where(family=born[0], n_params=p)[0]
        peers = [row for f in families for row in nll.where(family=f) if abs(row["n_params"] - p) <= 0.02 * p]
        ranked = " < ".join(f"{row['family']} {row['test_nll']:.1f}" for row in sorted(peers, key=lambda r: r["test_nll"]))
        out.append(f"At {row_b['size']} of {born[0]} ({p} params), matched-budget ranking: {ranked}.")
    for m in models:
        if f"{m}_s2" not in cuts.columns:
            continue
        s2, bound = cuts.column(f"{m}_s2"), cuts.column(f"{m}_bound")
        ratio = [s / b for s, b in zip(s2, bound) if b and math.isfinite(b)]
        over = sum(s > b + 1e-6 for s, b in zip(s2, bound))
        out.append(f"{m}: S₂ reaches on average {np.mean(ratio):.0%} of its min-cut bound (max {max(ratio):.0%}); "
                   f"{over} cuts above the bound (must be 0).")
    cb = cuts.where(family="checkerboard", position=1)
    if cb:
        row = cb[0]
        parts = [f"data KSG MI {row['ksg_mi']:.2f}"] + [f"{m} S₂ {row[f'{m}_s2']:.2f} (bound {row[f'{m}_bound']:.1f})"
                                                      for m in models if f"{m}_s2" in row]
        parts += [f"{m} bound {row[f'{m}_bound']:.0f}" for m in models if f"{m}_s2" not in row]
        out.append("Checkerboard(1) cut, nats: " + "; ".join(parts) + ".")
    return out


def _settings_tag(*values) -> str:
    """Short hash of settings (file names of cached models)."""
    return hashlib.sha1(repr(values).encode()).hexdigest()[:8]


def _fingerprint(*arrays: torch.Tensor) -> str:
    h = hashlib.sha1()
    for a in arrays:
        h.update(np.packbits(a.cpu().numpy().astype(np.uint8), axis=1).tobytes())
    return h.hexdigest()[:12]
