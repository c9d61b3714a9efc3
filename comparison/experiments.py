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

Fig. 4 and Born vs Boltzmann hold out a seeded ``valid_fraction`` (default 10 %) of the training rows:
learning rate, restart and the number of epochs/sweeps (early stopping, best-validation parameters)
are chosen on it (:mod:`~comparison.selection`); the test rows are only scored. Every model's
validation curve is written (``convergence.csv``, ``convergence.png``), and every claim is read as
holds / does not hold / not decided (:mod:`~comparison.verdicts`).
"""
from __future__ import annotations

import hashlib
import math
import os
import re
import time
import zlib
from dataclasses import dataclass, field
from functools import partial
from typing import Mapping, Sequence

import numpy as np
import torch

from bornmachine import datasets
from bornmachine.validation import as_binary, check_positive_int
from rbm.io import load as load_rbm

from . import bipartitions as bp
from . import figures, verdicts
from .capacity import network_bound, rbm_bound
from .information import data_renyi2, ksg_mutual_information, plugin_mutual_information
from .parallel import run_jobs
from .selection import curve_rows, curve_table, tried
from .table import RowStore, Table, write_text
from .training import BORN_KINDS, RBM_SELECTION, evaluate_rbm, fingerprint, train_born_machine, train_rbm

__all__ = ["Result", "information_table", "mi_profile", "rbm_architectures", "born_vs_boltzmann",
           "local_windows", "smaller_windows", "train_born_machine", "BORN_KINDS", "RBM_KINDS"]

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
    models: dict = field(default_factory=dict)  # name → trained model the experiment reports on (not written)

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
                      workers: int = 1, progress: bool = True, name: str = "information") -> Table:
    """One row per bipartition: data MI (KSG, plug-in), data S₂, and per model its S₂, MI and bound.

    data : binary (N, n) or (N, H, W). bips : bipartitions of the n pixels.
    models : name → Born machine (MPS/TTN: columns ``<name>_s2`` (exact swap contraction, Monte
        Carlo with ``model_samples`` when the exact one is too expensive; ``<name>_s2_stderr``),
        ``<name>_mi`` ± ``<name>_mi_stderr`` (exact samples + marginals), ``<name>_bound`` (min cut,
        :func:`~comparison.capacity.network_bound`), ``<name>_seconds``) or RBM (``<name>_bound`` =
        |Z| ln 2 only). ``seconds``: time of the data columns.
    store : cache of finished rows (resume). workers : cuts computed side by side
    (:func:`~comparison.parallel.run_jobs`; the numbers do not depend on it). All values in nats.
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
    found, jobs, keys = {}, {}, []
    for i, bip in enumerate(bips):
        mask_tag = hashlib.sha1(np.packbits(bip.flat_mask).tobytes()).hexdigest()[:8]  # names need not be unique
        cut_seed = seed + zlib.crc32(mask_tag.encode())  # per cut, independent of the list's order
        data_key = f"data|{data_tag}|k{ksg_k}|seed{seed}|{bip.name}|{mask_tag}"
        model_keys = {m: f"model|{m}|{model_tags[m]}|s{model_samples}|seed{seed}|{bip.name}|{mask_tag}" for m in models}
        keys.append((data_key, model_keys))
        for key in (data_key, *model_keys.values()):
            if store is not None and key in store:
                found[key] = store.get(key)
        missing = {model_keys[m]: (m, model) for m, model in models.items() if model_keys[m] not in found}
        if data_key not in found or missing:
            jobs[i] = (x, bip, None if data_key in found else data_key, missing, ksg_k, seed, model_samples, cut_seed)

    def done(_, parts):
        for key, part in parts.items():
            found[key] = part if store is None else store.put(key, part)

    run_jobs(_cut_parts, jobs, workers=workers, done=done, desc="bipartitions", unit="cut", progress=progress)
    rows = []
    for data_key, model_keys in keys:
        row = {c: found[data_key][c] for c in columns[:11]}
        for key in model_keys.values():
            row.update(found[key])
        rows.append(row)
    return Table(name, columns, rows)


def _cut_parts(x: np.ndarray, bip: bp.Bipartition, data_key: str | None, models: dict, ksg_k: int, seed: int,
               model_samples: int, cut_seed: int) -> dict:
    """The missing parts of one cut's row: ``{data_key: data columns}`` (if a key is given) and ``{key: model
    columns}`` for every ``key → (name, model)`` of ``models``."""
    parts = {}
    if data_key is not None:
        family, position = parse_name(bip.name)
        t0 = time.perf_counter()
        plug, sat = plugin_mutual_information(x, bip, return_saturation=True)
        s2, sat2 = data_renyi2(x, bip, return_saturation=True)
        parts[data_key] = {"bipartition": bip.name, "family": family, "position": position,
                           "n_x": int(bip.sites_x.size), "ksg_mi": float(ksg_mutual_information(x, bip, k=ksg_k, seed=seed)),
                           "plugin_mi": float(plug), "plugin_saturated": bool(sat.saturated), "data_s2": float(s2),
                           "data_s2_saturated": bool(sat2.saturated), "ln_n": math.log(x.shape[0]),
                           "seconds": time.perf_counter() - t0}
    for key, (name, model) in models.items():
        parts[key] = _model_columns(name, model, bip, model_samples, cut_seed)
    return parts


def _model_columns(name: str, model, bip: bp.Bipartition, n_samples: int, seed: int) -> dict:
    if getattr(model, "kind", None) == "RBM":
        return {f"{name}_bound": rbm_bound(model.mask.cpu(), bip)}
    t0 = time.perf_counter()
    sites = bip.sites_x.tolist()
    gen = torch.Generator().manual_seed(seed)
    s2, method = _renyi2(model, sites, n_samples, gen)
    mi = model.mutual_information(sites, n_samples=n_samples, generator=gen)
    return {f"{name}_s2": None if s2 is None else s2.value, f"{name}_s2_stderr": None if s2 is None else s2.stderr,
            f"{name}_s2_method": method,
            f"{name}_mi": mi.value, f"{name}_mi_stderr": mi.stderr, f"{name}_bound": network_bound(model, bip),
            f"{name}_seconds": time.perf_counter() - t0}


def _renyi2(model, sites, n_samples: int, generator, retries: int = 2):
    """(S₂ estimate, method): exact where the model allows it, else the swap estimator with ``n_samples``,
    4× more on each of ``retries`` retries when its mean is not positive; (None, "mc: too few samples")
    when that never succeeds (the cut is then left out of S₂ comparisons, not guessed)."""
    try:
        return model.renyi2(sites, method="exact"), "exact"
    except ValueError:  # the TTN refuses an exact contraction above ~2e10 flops
        pass
    for attempt in range(retries + 1):
        try:
            return model.renyi2(sites, method="mc", n_samples=n_samples * 4 ** attempt, generator=generator), "mc"
        except ValueError:  # the swap estimator's mean was ≤ 0: too few samples for this cut
            continue
    return None, "mc: too few samples"


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
               seed: int = 0, workers: int = 1, out: str = "fig3", cache: str | None = None,
               progress: bool = True) -> Result:
    """The paper's Fig. 3: MI of the data per bipartition by every estimator, with trained models beside.

    data : binary (N, H·W) or (N, H, W); shape : (H, W). models : name → trained MPS/TTN (optional).
    bipartitions : default :func:`profile_bipartitions` (the 73 cuts of the standard set on 28×28).
    Writes ``fig3.csv/json``, ``fig3.png``, ``summary.md`` into ``out``; per-cut numbers are cached in
    ``cache`` (default ``out/information.json``; experiments given one file share their numbers);
    ``workers`` cuts are computed side by side.
    """
    shape = tuple(int(s) for s in shape)
    bips = list(bipartitions) if bipartitions is not None else profile_bipartitions(shape)
    store = RowStore(cache or os.path.join(out, "information.json"), {"kind": "information"})
    table = information_table(data, bips, models, ksg_k=ksg_k, model_samples=model_samples, seed=seed,
                              store=store, workers=workers, progress=progress, name="fig3")
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


def smaller_windows(window_1d: int, window_2d: int) -> tuple[int, int]:
    """Windows of about half the area of ``(window_1d, window_2d)``: half the 1D length, the 2D side over √2
    (at least 2; equal to the given window when it cannot shrink)."""
    return max(2, round(window_1d / 2)), max(2, round(window_2d / math.sqrt(2)))


def rbm_jobs(budgets: Sequence[int], kinds: Sequence[str], shape: Sequence[int], seed: int = 0,
             data=None, smaller: bool = False) -> list[tuple]:
    """``(budget, kind, Architecture)`` for every budget and kind: :func:`rbm.masks.matched` with the
    windows of :func:`local_windows`; a ``from_data`` mask (needs ``data``) gets the 2D window's fan-in.
    ``smaller``: each local kind also gets :func:`smaller_windows` with as many hidden units as the budget
    pays for (more units with narrower fields; the validation NLL chooses), listed after the first."""
    from rbm import masks

    jobs = []
    for budget in budgets:
        w1, w2 = local_windows(budget, shape)
        fan_in = w2 * w2 if "from_data" in kinds else None
        for kind, arch in masks.matched(budget, kinds, shape, window_1d=w1, window_2d=w2, seed=seed, data=data,
                                        fan_in=fan_in).items():
            jobs.append((budget, kind, arch))
        s1, s2 = smaller_windows(w1, w2)
        local = [k for k in kinds if (k == "local_1d" and s1 < w1) or (k == "local_2d" and s2 < w2)]
        if smaller and local:
            # dense among the kinds fixes the common budget, as in the first call
            alternatives = masks.matched(budget, [k for k in kinds if k == "dense"] + local, shape, window_1d=s1,
                                         window_2d=s2, seed=seed)
            jobs += [(budget, kind, alternatives[kind]) for kind in local]
    return jobs


def split_rows(train: torch.Tensor, valid_fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(fit rows, validation rows) of the training data (N, n): :func:`bornmachine.datasets.split_validation`."""
    fit, valid = datasets.split_validation(train.numpy(), valid_fraction, seed=seed)
    return torch.from_numpy(fit), torch.from_numpy(valid)


def table_row(row: dict, columns: Sequence[str]) -> dict:
    """A stored result row's values of ``columns``; ``lrs_tried`` from its candidates
    (:func:`~comparison.selection.tried`)."""
    return {c: tried(row.get("candidates", [])) if c == "lrs_tried" else row.get(c) for c in columns}


def selection_columns(selected) -> dict:
    """What a result row records of the model selection (the candidates' curves go to ``convergence``)."""
    return {"lr": selected.lr, "restart": selected.restart, "epochs": len(selected.history),
            "best_epoch": selected.best_epoch, "converged": selected.converged,
            "candidates": selected.candidates}


def write_curves(name: str, keyed_rows: Sequence[tuple[str, dict]], out: str, result: Result, what: str,
                 others: Sequence[tuple[str, dict]] = ()) -> Table:
    """The ``convergence`` table (validation and training NLL per epoch of every candidate) and figure;
    ``others``: models set aside by a choice (e.g. a window), all their candidates unselected."""
    rows = [row for key, stored in keyed_rows for row in curve_rows(key, stored)]
    rows += [dict(row, selected=False) for key, stored in others for row in curve_rows(key, stored)]
    curves = curve_table("convergence", rows)
    figures.convergence(curves, os.path.join(out, "convergence.png"))
    result.figures["convergence.png"] = (f"Validation NLL per {what} of every {name} (solid: the kept candidate; "
                                         "dotted: the others); training stops a few epochs after the lowest")
    return curves


def convergence_finding(rows: Sequence[dict], label: str) -> str:
    late = [label_of(r) for r in rows if not r.get("converged")]
    if not late:
        return (f"Convergence: every model's validation NLL settled (no drop of more than 1 nat over the last 20 % "
                f"of its {label}s; see convergence.csv).")
    return (f"Not converged (validation NLL still fell by > 1 nat over the last 20 % of training, or fewer than 2 "
            f"{label}s): {', '.join(late)} — claims resting on them read 'not decided'.")


def zero_probability_finding(rows: Sequence[dict]) -> str | None:
    """The models that give some validation or test image probability 0 (their NLL reads ∞), or None."""
    hits = [f"{label_of(r)} ({r.get('valid_zero_prob') or 0} validation, {r.get('test_zero_prob') or 0} test)"
            for r in rows if r.get("valid_zero_prob") or r.get("test_zero_prob")]
    if not hits:
        return None
    return ("Images of probability 0 (the NLL reads ∞; the validation curves that chose the model leave them out): "
            + ", ".join(hits) + ".")


def label_of(row: dict) -> str:
    """Short name of a result row: ``images mps:snake`` / ``local_2d@7834`` / ``mps-snake D=16``."""
    if "structure" in row:
        return f"{row['variant']} {row['family']}:{row['structure']}"
    return f"{row['kind']}@{row['n_params']}" if "kind" in row else f"{row['family']} {row['size']}"


def rbm_architectures(train, test, shape: Sequence[int], *, budgets: Sequence[int], kinds: Sequence[str] = RBM_KINDS,
                      max_epochs: int = 40, lrs: Sequence[float] = (0.01,), restarts: int = 1, patience: int = 4,
                      batch_size: int = 100, valid_fraction: float = 0.1, eval_ais: Sequence[int] = (32, 300),
                      ais_chains: int = 100, ais_betas: int = 10000, n_gibbs: int = 1000, seed: int = 0,
                      window_choice: bool = True, workers: int = 1, out: str = "fig4", progress: bool = True) -> Result:
    """The paper's Fig. 4: test NLL of RBM connectivities against #params at matched budgets.

    For each budget, :func:`rbm.masks.matched` builds one architecture per kind (counts within 1 %;
    local windows from :func:`local_windows`; with ``window_choice`` each local kind is also trained with
    :func:`smaller_windows` and more hidden units, and the window of lower validation NLL is kept — the
    table's ``windows_tried``). A seeded ``valid_fraction`` of the training rows is held
    out; each architecture is trained by :func:`~comparison.training.train_rbm` for every learning rate
    in ``lrs`` and ``restarts`` seeds, up to ``max_epochs`` with early stopping (``patience``) on the
    validation NLL, and the candidate of lowest validation NLL is kept. Its test NLL is estimated by
    forward AIS (± one standard error) and bracketed by reverse AIS from data-initialised chains
    (``n_gibbs`` sweeps), or computed exactly for ≤ 20 hidden units; ``workers`` models train side by side
    (:func:`~comparison.parallel.run_jobs`). Writes ``fig4.csv/json``,
    ``convergence.csv/json``, ``fig4.png``, ``convergence.png``, ``summary.md``; checkpoints under ``out/models``.
    """
    shape = tuple(int(s) for s in shape)
    n = shape[0] * shape[1]
    x, xv = split_rows(as_binary(train, n, name="train", shape=shape), valid_fraction, seed)
    xt = as_binary(test, n, name="test", shape=shape)
    settings = {"max_epochs": max_epochs, "lrs": list(lrs), "restarts": restarts, "patience": patience,
                "batch_size": batch_size, "valid_fraction": valid_fraction, "eval_ais": list(eval_ais),
                "ais": [ais_chains, ais_betas], "n_gibbs": n_gibbs, "seed": seed, "data": fingerprint(x, xv, xt),
                "rbm_selection": RBM_SELECTION}
    store = RowStore(os.path.join(out, "runs.json"), settings)
    archs = {}
    for budget, kind, arch in rbm_jobs(budgets, kinds, shape, seed, smaller=window_choice):
        key = f"{kind}-{budget}"
        archs[key if key not in archs else f"{key}-w{window_label(arch)}"] = (budget, arch)
    train_one = partial(rbm_result_row, max_epochs=max_epochs, lrs=lrs, restarts=restarts, patience=patience,
                        batch_size=batch_size, eval_ais=eval_ais, ais_chains=ais_chains, ais_betas=ais_betas,
                        n_gibbs=n_gibbs, seed=seed, folder=os.path.join(out, "models"))
    run_jobs(train_one, {key: (arch, x, xv, xt, key) for key, (_, arch) in archs.items() if key not in store},
             workers=workers, done=lambda key, row: store.put(key, dict(row, budget=int(archs[key][0]))),
             cost=lambda key: archs[key][0], desc="RBMs", progress=progress)
    kept, others = pick_windows([(key, store.get(key)) for key in archs])
    columns = ["budget", "kind", "n_hidden", "n_params", "window", "windows_tried", "lr", "lrs_tried", "restart",
               "epochs", "best_epoch", "converged", "valid_nll", "test_nll", "test_nll_stderr", "test_nll_reverse",
               "ais_gap", "train_nll", "log_z_method", "seconds", "model_file"]
    table = Table("fig4", columns, [table_row(row, columns) for _, row in kept],
                  shown=["budget", "kind", "n_hidden", "n_params", "window", "windows_tried", "lr", "lrs_tried", "epochs",
                         "converged", "valid_nll", "test_nll", "test_nll_stderr", "test_nll_reverse", "train_nll"])
    result = Result("fig4", out, {"fig4": table}, title="RBM connectivity at equal parameter count (paper Fig. 4)")
    result.tables["convergence"] = write_curves("RBM", kept, out, result, "epoch", others=others)
    figures.rbm_nll(table, os.path.join(out, "fig4.png"), shape)
    result.figures["fig4.png"] = ("Test NLL (forward AIS, error bar = one standard error of log Z; crosses: reverse "
                                  "AIS) against #params for the four connectivities")
    result.findings = fig4_findings(table, shape)
    result.write()
    return result


def window_label(arch) -> str | None:
    """``"7x7"`` / ``"32"`` / None: the window of a mask's :class:`~rbm.masks.Architecture`."""
    window = arch.options.get("window")
    return None if window is None else "x".join(map(str, window)) if isinstance(window, tuple) else str(window)


def pick_windows(keyed: Sequence[tuple[str, dict]]) -> tuple[list, list]:
    """(kept, others): per (budget, kind), the result row of lowest validation NLL among its windows (in the
    order of the first of each), with ``windows_tried`` = "window: validation NLL; ..."; others = the rest."""
    groups: dict[tuple, list] = {}
    for key, row in keyed:
        groups.setdefault((row["budget"], row["kind"]), []).append((key, row))
    kept, others = [], []
    for group in groups.values():
        best = min(group, key=lambda kr: kr[1]["valid_nll"])
        tried = "; ".join(f"{r['window']}: {r['valid_nll']:.2f}" for _, r in group) if len(group) > 1 else None
        kept.append((best[0], dict(best[1], windows_tried=tried)))
        others += [kr for kr in group if kr is not best]
    return kept, others


def rbm_result_row(arch, x, xv, xt, tag: str, *, max_epochs, lrs, restarts, patience, batch_size, eval_ais, ais_chains,
             ais_betas, n_gibbs, seed, folder) -> dict:
    """Train (validation-selected, candidates compared by the final log Z) and evaluate one RBM architecture: its
    result row."""
    t0 = time.perf_counter()
    selected = train_rbm(arch, x, xv, tag=tag, max_epochs=max_epochs, lrs=lrs, restarts=restarts, patience=patience,
                         batch_size=batch_size, eval_ais=eval_ais, final_ais=(ais_chains, ais_betas), seed=seed,
                         folder=folder)
    model = selected.model
    model.save(os.path.join(folder, f"{tag}.npz"))
    scores = evaluate_rbm(model, x, xv, xt, ais_chains=ais_chains, ais_betas=ais_betas, n_gibbs=n_gibbs, seed=seed,
                          forward=selected.rescored)
    return {"kind": arch.kind, "n_hidden": model.n_hidden, "n_params": model.n_params, "window": window_label(arch),
            **selection_columns(selected), **scores, "seconds": time.perf_counter() - t0, "model_file": f"{tag}.npz"}


def born_result_row(kind: str, x, xv, xt, shape: Sequence[int], bond_dim: int, *, max_sweeps, lrs, restarts, patience,
                    restructure=None, seed, folder, reuse=None) -> dict:
    """Train (validation-selected, :func:`~comparison.training.train_born_machine`) and score one Born machine:
    its result row (exact NLLs; ∞ where an image has probability 0, their number in ``valid_zero_prob`` /
    ``test_zero_prob``: the validation curves leave such images out)."""
    t0 = time.perf_counter()
    selected = train_born_machine(kind, x, xv, shape, bond_dim, max_sweeps=max_sweeps, lrs=lrs, restarts=restarts,
                                  patience=patience, restructure=restructure, seed=seed, folder=folder, reuse=reuse)
    model = selected.model
    valid_logp, test_logp = model.log_prob(xv), model.log_prob(xt)
    return {"n_params": model.n_params, "max_bond": max(model.bond_dims), **selection_columns(selected),
            "valid_nll": float(-valid_logp.mean()), "test_nll": float(-test_logp.mean()),
            "valid_zero_prob": int(torch.isinf(valid_logp).sum()), "test_zero_prob": int(torch.isinf(test_logp).sum()),
            "test_nll_stderr": 0.0, "ais_gap": 0.0, "train_nll": model.nll(x), "seconds": time.perf_counter() - t0}


def fig4_findings(table: Table, shape: Sequence[int]) -> list[str]:
    """Readings of the Fig.-4 claims (2D best, dense worst: holds / does not hold / not decided, see
    :mod:`~comparison.verdicts`), 1D's sharp drop once a window spans two rows, plateaus, convergence."""
    summary, per_budget = [], []
    budgets = sorted({r["budget"] for r in table.rows})
    best_2d, worst_dense = [], []
    for b in budgets:
        rows = sorted(table.where(budget=b), key=lambda r: r["test_nll"])
        order = " < ".join(f"{r['kind']} {r['test_nll']:.1f}" for r in rows)
        two = [r for r in rows if r["kind"] == "local_2d"]
        dense = [r for r in rows if r["kind"] == "dense"]
        if two:
            best_2d.append(verdicts.best_of(two[0], [r for r in rows if r is not two[0]]))
        if dense:
            worst_dense.append(verdicts.combine(verdicts.better(r, dense[0]) for r in rows if r is not dense[0]))
        per_budget.append(f"{b} params: {order} (test NLL, nats; 2D-local best: {best_2d[-1] if two else '-'}).")
    if budgets:
        summary.append(f"2D-local has the lowest test NLL at every budget (paper): {verdicts.combine(best_2d)} "
                       f"({best_2d.count(verdicts.HOLDS)} of {len(budgets)} budgets decided in its favour, "
                       f"{best_2d.count(verdicts.FAILS)} against; a gap counts when it exceeds the AIS uncertainties "
                       "and the model behind converged).")
        summary.append(f"Dense has the highest test NLL at every budget (paper): {verdicts.combine(worst_dense)} "
                       f"({worst_dense.count(verdicts.HOLDS)} of {len(budgets)} budgets decided).")
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
    chosen = [f"{label_of(r)} {r['window']} ({r['windows_tried']})" for r in table.rows if r.get("windows_tried")]
    if chosen:
        summary.append("Windows chosen on the validation NLL (window: validation NLL): " + ", ".join(chosen) + ".")
    stuck = [r for r in table.rows if r["n_params"] >= 10000 and r["test_nll"] >= 190]
    summary.append(f"RBMs of ≥ 10k parameters at test NLL ≥ 190 (the independent-pixel plateau): "
                   f"{', '.join(label_of(r) for r in stuck) or 'none'}.")
    uncertain = [r for r in table.rows if r.get("ais_gap", 0) > 1.0]
    if uncertain:
        summary.append("Forward and reverse AIS differ by more than 1 nat for " + ", ".join(
            f"{label_of(r)} ({r['ais_gap']:.1f})" for r in uncertain) + "; such gaps widen the margins above.")
    summary.append(convergence_finding(table.rows, "epoch"))
    return summary + per_budget


# ------------------------------------------------------------------------------------------------
# Born vs Boltzmann
# ------------------------------------------------------------------------------------------------
def born_vs_boltzmann(train, test, shape: Sequence[int], *, bond_dims: Sequence[int] = (2, 4, 8, 16),
                      born_kinds: Sequence[str] = BORN_KINDS, rbm_kinds: Sequence[str] = ("local_2d", "dense"),
                      max_sweeps: int = 12, lrs: Sequence[float] = (0.1,), patience: int = 2, restarts: int = 1,
                      rbm_max_epochs: int = 40, rbm_lrs: Sequence[float] = (0.01,), rbm_patience: int = 4,
                      valid_fraction: float = 0.1, eval_ais: Sequence[int] = (32, 300), ais_chains: int = 100,
                      ais_betas: int = 10000, n_gibbs: int = 1000, bipartitions: Sequence[bp.Bipartition] | None = None,
                      info_data=None, model_samples: int = 1000, ttn_max_bond: int | None = None,
                      rbm_max_params: int | None = None, seed: int = 0, workers: int = 1,
                      out: str = "born_vs_boltzmann", cache: str | None = None, progress: bool = True) -> Result:
    """Born machines and RBMs at matched parameter counts, and what each carries across every cut.

    A seeded ``valid_fraction`` of the training rows is held out for every choice. Each of ``born_kinds``
    is trained at every bond cap in ``bond_dims`` by :func:`~comparison.training.train_born_machine`
    (≤ ``max_sweeps`` sweeps, early stopping with ``patience``, learning rate among ``lrs`` and
    ``restarts`` seeds chosen on the validation NLL; exact test NLL), and RBMs of ``rbm_kinds`` whose
    budgets equal the first kind's parameter counts (within 1 %, or half a dense step of n + 1 parameters
    when "dense" is among them) as in :func:`rbm_architectures`; ``ttn_max_bond`` caps the bond of TTN kinds and
    ``rbm_max_params`` the RBM budgets (None: no cap). Then, for the largest models, the
    per-bipartition table of :func:`information_table` on ``info_data`` (default: train + test): data MI
    and S₂ beside each Born machine's S₂, MI and min-cut bound and each RBM's |Z| ln 2 bound.
    ``workers`` models train side by side (:func:`~comparison.parallel.run_jobs`).
    Writes ``nll``, ``convergence`` and ``cuts`` tables (CSV/JSON), ``nll_vs_params.png``,
    ``convergence.png``, ``cuts.png``, sample grids, the MPS entanglement profile and ``summary.md``;
    ``cache`` as in :func:`mi_profile`.
    """
    shape = tuple(int(s) for s in shape)
    n = shape[0] * shape[1]
    x, xv = split_rows(as_binary(train, n, name="train", shape=shape), valid_fraction, seed)
    xt = as_binary(test, n, name="test", shape=shape)
    bond_dims = sorted(check_positive_int(d, "bond_dim") for d in bond_dims)
    settings = {"max_sweeps": max_sweeps, "lrs": list(lrs), "patience": patience, "restarts": restarts,
                "rbm_max_epochs": rbm_max_epochs, "rbm_lrs": list(rbm_lrs), "rbm_patience": rbm_patience,
                "valid_fraction": valid_fraction, "eval_ais": list(eval_ais), "ais": [ais_chains, ais_betas],
                "n_gibbs": n_gibbs, "seed": seed, "data": fingerprint(x, xv, xt), "rbm_selection": RBM_SELECTION}
    if ttn_max_bond is not None or rbm_max_params is not None:
        settings.update(ttn_max_bond=ttn_max_bond, rbm_max_params=rbm_max_params)
    store = RowStore(os.path.join(out, "runs.json"), settings)
    folder = os.path.join(out, "models")
    train_one = partial(born_result_row, max_sweeps=max_sweeps, lrs=lrs, restarts=restarts, patience=patience,
                        seed=seed, folder=folder)
    jobs = {f"{k}-D{d}": (k, d) for d in bond_dims for k in born_kinds
            if not (k.startswith("ttn") and ttn_max_bond is not None and d > ttn_max_bond)}
    run_jobs(train_one, {key: (k, x, xv, xt, shape, d) for key, (k, d) in jobs.items() if key not in store},
             workers=workers, done=lambda key, row: store.put(key, dict(row, family=jobs[key][0],
                                                                         size=f"D={jobs[key][1]}")),
             cost=lambda key: jobs[key][1] ** 3 * (2 if jobs[key][0].startswith("ttn") else 1),
             desc="Born machines", progress=progress)
    keyed = [(key, store.get(key)) for key in jobs]
    born = {(k, d): train_born_machine(k, x, xv, shape, d, max_sweeps=max_sweeps, lrs=lrs, restarts=restarts,
                                       patience=patience, seed=seed, folder=folder).model  # re-read, not retrained
            for k, d in jobs.values()}
    budgets = sorted({born[(k, d)].n_params for (k, d) in born if k == born_kinds[0]
                      and (rbm_max_params is None or born[(k, d)].n_params <= rbm_max_params)})
    archs = {f"rbm-{kind}-{budget}": (budget, kind, arch) for budget, kind, arch in rbm_jobs(budgets, rbm_kinds,
                                                                                               shape, seed)}
    train_rbm_one = partial(rbm_result_row, max_epochs=rbm_max_epochs, lrs=rbm_lrs, restarts=restarts,
                            patience=rbm_patience, batch_size=100, eval_ais=eval_ais, ais_chains=ais_chains,
                            ais_betas=ais_betas, n_gibbs=n_gibbs, seed=seed, folder=folder)
    run_jobs(train_rbm_one, {key: (arch, x, xv, xt, key) for key, (_, _, arch) in archs.items() if key not in store},
             workers=workers, cost=lambda key: archs[key][0], desc="RBMs", progress=progress,
             done=lambda key, row: store.put(key, dict(row, family=f"rbm-{archs[key][1]}",
                                                       size=f"{row['n_hidden']} hidden", max_bond=None)))
    keyed += [(key, store.get(key)) for key in archs]
    rbm_models = {f"rbm-{kind}": load_rbm(os.path.join(folder, store.get(key)["model_file"]))
                  for key, (budget, kind, _) in archs.items() if budget == budgets[-1]}
    columns = ["family", "size", "n_params", "max_bond", "lr", "lrs_tried", "epochs", "best_epoch", "converged",
               "valid_nll", "test_nll", "test_nll_stderr", "ais_gap", "train_nll", "valid_zero_prob", "test_zero_prob",
               "seconds"]
    nll = Table("nll", columns, [table_row(row, columns) for _, row in keyed],
                shown=["family", "size", "n_params", "lr", "lrs_tried", "epochs", "converged", "valid_nll", "test_nll",
                       "test_nll_stderr", "train_nll"])
    top = {k: max(d for kind, d in born if kind == k) for k in born_kinds}
    largest = {k: born[(k, top[k])] for k in born_kinds}
    models = {**{f"{k}-D{top[k]}": m for k, m in largest.items()}, **rbm_models}
    bips = list(bipartitions) if bipartitions is not None else profile_bipartitions(shape)
    info = RowStore(cache or os.path.join(out, "information.json"), {"kind": "information"})
    cuts = information_table(torch.cat([x, xv]) if info_data is None else info_data, bips, models,
                             model_samples=model_samples, seed=seed, store=info, workers=workers, progress=progress,
                             name="cuts")
    cuts.shown = ["bipartition", "ksg_mi", "data_s2"] + [f"{m}_{q}" for m in models
                                                           for q in (("s2", "bound") if not m.startswith("rbm")
                                                                     else ("bound",))]
    result = Result("born_vs_boltzmann", out, {"nll": nll, "cuts": cuts},
                    title="Born machines vs Boltzmann machines at matched parameter counts")
    result.tables["convergence"] = write_curves("model", keyed, out, result, "sweep or epoch")
    figures.nll_vs_params(nll, os.path.join(out, "nll_vs_params.png"))
    result.figures["nll_vs_params.png"] = "Test NLL against #params: MPS (row-major, snake), TTN and RBMs"
    figures.cut_profile(cuts, os.path.join(out, "cuts.png"), list(models))
    result.figures["cuts.png"] = ("What the data has (KSG MI, data S₂) against what each model carries (its S₂, "
                                  "solid) and can carry (capacity bound, dashed), per bipartition")
    _model_pictures(largest, shape, out, result, seed)
    result.models = models
    result.findings = bvb_findings(nll, cuts, models, slack=(n + 1) / 2 if "dense" in rbm_kinds else 0.0)
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


def bvb_findings(nll: Table, cuts: Table, models: Mapping[str, object], slack: float = 0.0) -> list[str]:
    """Readings: Born vs RBM at every matched budget (peers: within 2 % + ``slack`` parameters; holds / does not
    hold / not decided); where models sit against data and bounds; convergence."""
    out = []
    families = sorted({r["family"] for r in nll.rows})
    born = [f for f in families if not f.startswith("rbm")]
    rbms = [f for f in families if f.startswith("rbm")]
    sizes = sorted({r["n_params"] for r in nll.where(family=born[0])}) if born else []
    per_size = []
    for p in sizes:
        peers = [row for row in nll.rows if abs(row["n_params"] - p) <= 0.02 * p + slack]
        b = min((r for r in peers if r["family"] in born), key=lambda r: r["test_nll"])
        r = [row for row in peers if row["family"] in rbms]
        ranked = " < ".join(f"{row['family']} {row['test_nll']:.1f}" for row in sorted(peers, key=lambda q: q["test_nll"]))
        if not r:
            out.append(f"At {p} params: {ranked}; no RBM at this budget (above the RBM cap).")
            continue
        verdict = verdicts.best_of(b, r)
        per_size.append(verdict)
        out.append(f"At {p} params ({born[0]} {nll.where(family=born[0], n_params=p)[0]['size']}): {ranked}; "
                   f"the best Born machine ({label_of(b)}) beats every RBM: {verdict}.")
    if per_size:
        out.insert(0, f"A Born machine beats the RBMs at every matched budget: {verdicts.combine(per_size)} "
                      f"({per_size.count(verdicts.HOLDS)} of {len(per_size)} budgets decided in its favour, "
                      f"{per_size.count(verdicts.FAILS)} against).")
    for m in models:
        if f"{m}_s2" not in cuts.columns:
            continue
        pairs = [(s, b) for s, b in zip(cuts.column(f"{m}_s2"), cuts.column(f"{m}_bound")) if s is not None]
        ratio = [s / b for s, b in pairs if b and math.isfinite(b)]
        over = sum(s > b + 1e-6 for s, b in pairs)
        missing = len(cuts) - len(pairs)
        reach = (f"S₂ reaches on average {np.mean(ratio):.0%} of its min-cut bound (max {max(ratio):.0%}); "
                 if ratio else "no S₂ against a finite min-cut bound; ")
        out.append(f"{m}: {reach}{over} cuts above the bound (must be 0)"
                   + (f"; {missing} cuts without an S₂ estimate (swap estimator: too few samples)." if missing else "."))
    cb = cuts.where(family="checkerboard", position=1)
    if cb:
        row = cb[0]
        parts = [f"data KSG MI {row['ksg_mi']:.2f}"] + [
            f"{m} S₂ " + ("not estimated" if row[f"{m}_s2"] is None else f"{row[f'{m}_s2']:.2f}")
            + f" (bound {row[f'{m}_bound']:.1f})" for m in models if f"{m}_s2" in row]
        parts += [f"{m} bound {row[f'{m}_bound']:.0f}" for m in models if f"{m}_s2" not in row]
        out.append("Checkerboard(1) cut, nats: " + "; ".join(parts) + ".")
    out.append(convergence_finding(nll.rows, "sweep or epoch"))
    zeros = zero_probability_finding(nll.rows)
    return out + ([zeros] if zeros else [])
