"""PNG figures of the comparison experiments (matplotlib, non-interactive backend). Values in nats."""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from bornmachine.plots import pyplot, save_figure

from .table import Table

_PROFILE_PANELS = (("up_down", "up/down cut after row"), ("left_right", "left/right cut after column"),
                   ("center_margin", "margin width (pixels)"))


def _family(table: Table, family: str, column: str):
    rows = sorted((r for r in table.rows if r["family"] == family and r.get(column) is not None),
                  key=lambda r: r["position"])
    return np.array([r["position"] for r in rows]), np.array([float(r[column]) for r in rows])


def _others(table: Table) -> list[dict]:
    return [r for r in table.rows if r["family"] not in {f for f, _ in _PROFILE_PANELS}]


def information_profile(table: Table, path: str, models: Sequence[str]) -> None:
    """Fig. 3: four panels (up/down, left/right, centre/margin, other cuts), every estimator per panel."""
    plt = pyplot()
    series = [("ksg_mi", "KSG MI (data)", "C0", "-"), ("plugin_mi", "plug-in MI (data)", "C1", ":"),
              ("data_s2", "Rényi-2 S₂ (data state)", "C2", "--")]
    for i, m in enumerate(models):
        if f"{m}_mi" in table.columns:
            series += [(f"{m}_mi", f"MI ({m})", f"C{3 + i}", "-"), (f"{m}_s2", f"S₂ ({m})", f"C{3 + i}", "--")]
    fig, axes = plt.subplots(2, 2, figsize=(12, 8))
    ln_n = table.rows[0]["ln_n"] if table.rows else None
    for ax, (family, xlabel) in zip(axes.flat, _PROFILE_PANELS):
        for col, label, color, style in series:
            pos, val = _family(table, family, col)
            if pos.size:
                ax.plot(pos, val, style, color=color, marker=".", label=label)
        if ln_n is not None:
            ax.axhline(ln_n, color="0.5", lw=0.8, ls="--")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("nats")
    axes.flat[0].legend(fontsize=7, loc="best")
    ax = axes.flat[3]
    others = _others(table)
    width = 0.8 / max(len(series), 1)
    for j, (col, label, color, _) in enumerate(series):
        vals = [float(r[col]) if r.get(col) is not None else math.nan for r in others]
        ax.bar(np.arange(len(others)) + j * width, vals, width, color=color, label=label)
    if ln_n is not None:
        ax.axhline(ln_n, color="0.5", lw=0.8, ls="--")
    ax.set_xticks(np.arange(len(others)) + 0.4 - width / 2)
    ax.set_xticklabels([r["bipartition"] for r in others], rotation=30, ha="right", fontsize=7)
    ax.set_ylabel("nats")
    fig.suptitle("Information across bipartitions of the image (dashed grey: ln N, the sample-size ceiling)")
    save_figure(fig, path)


def rbm_nll(table: Table, path: str, shape: Sequence[int]) -> None:
    """Fig. 4: test NLL against #params per connectivity, forward-AIS error bars, reverse AIS as crosses."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for i, kind in enumerate(sorted({r["kind"] for r in table.rows})):
        rows = sorted(table.where(kind=kind), key=lambda r: r["n_params"])
        p = [r["n_params"] for r in rows]
        ax.errorbar(p, [r["test_nll"] for r in rows], yerr=[r["test_nll_stderr"] for r in rows], marker="o",
                    capsize=3, color=f"C{i}", label=kind)
        ax.plot(p, [r["test_nll_reverse"] for r in rows], "x", color=f"C{i}")
    ax.set_xscale("log")
    ax.set_xlabel("number of parameters")
    ax.set_ylabel("test NLL (nats)")
    ax.set_title(f"RBMs on {shape[0]}×{shape[1]} images at matched parameter counts")
    ax.legend()
    save_figure(fig, path)


def nll_vs_params(table: Table, path: str) -> None:
    """Test NLL against #params for every model family (log x)."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for i, family in enumerate(sorted({r["family"] for r in table.rows})):
        rows = sorted(table.where(family=family), key=lambda r: r["n_params"])
        style = "--" if family.startswith("rbm") else "-"
        ax.errorbar([r["n_params"] for r in rows], [r["test_nll"] for r in rows],
                    yerr=[r["test_nll_stderr"] or 0.0 for r in rows], ls=style, marker="o", capsize=3,
                    color=f"C{i}", label=family)
    ax.set_xscale("log")
    ax.set_xlabel("number of parameters")
    ax.set_ylabel("test NLL (nats)")
    ax.set_title("Born machines (solid) and RBMs (dashed)")
    ax.legend(fontsize=8)
    save_figure(fig, path)


def cut_profile(table: Table, path: str, models: Sequence[str]) -> None:
    """Per up/down and left/right cut: data MI and S₂, each Born machine's S₂ (solid) and bound (dashed),
    RBM bounds (dotted); log y so that bounds and entropies share one axis."""
    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
    panels = (("up_down", "up/down cut after row"), ("left_right", "left/right cut after column"))
    for ax, (family, xlabel) in zip(axes, panels):
        for col, label, color in (("ksg_mi", "KSG MI (data)", "k"), ("data_s2", "S₂ (data state)", "0.5")):
            pos, val = _family(table, family, col)
            ax.plot(pos, val, color=color, marker=".", label=label)
        for i, m in enumerate(models):
            pos, bound = _family(table, family, f"{m}_bound")
            if f"{m}_s2" in table.columns:
                at, s2 = _family(table, family, f"{m}_s2")  # cuts without an estimate are left out
                ax.plot(at, s2, color=f"C{i}", marker=".", label=f"S₂ {m}")
                ax.plot(pos, bound, "--", color=f"C{i}", label=f"bound {m}")
            else:
                ax.plot(pos, bound, ":", color=f"C{i}", label=f"|Z| ln 2, {m}")
        ax.set_yscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("nats")
    axes[0].legend(fontsize=6)
    ax = axes[2]
    others = _others(table)
    cols = [("ksg_mi", "KSG MI", "k")] + [(f"{m}_s2", f"S₂ {m}", f"C{i}") for i, m in enumerate(models)
                                          if f"{m}_s2" in table.columns]
    width = 0.8 / len(cols)
    for j, (col, label, color) in enumerate(cols):
        ax.bar(np.arange(len(others)) + j * width, [np.nan if r[col] is None else max(float(r[col]), 1e-3) for r in others], width, color=color,
               label=label)
    ax.set_yscale("log")
    ax.set_xticks(np.arange(len(others)) + 0.4 - width / 2)
    ax.set_xticklabels([r["bipartition"] for r in others], rotation=30, ha="right", fontsize=7)
    ax.legend(fontsize=6)
    fig.suptitle("What the data has against what each model carries and can carry (nats)")
    save_figure(fig, path)


def convergence(table: Table, path: str) -> None:
    """Validation NLL against epoch (sweep) for every model of a ``convergence`` table: the kept candidate
    solid with a marker at its last epoch, the other candidates dotted."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8, 5))
    models = list(dict.fromkeys(r["model"] for r in table.rows))
    for i, name in enumerate(models):
        runs: dict[tuple, list[dict]] = {}
        for r in table.where(model=name):
            if r["valid_nll"] is not None:
                runs.setdefault((r["lr"], r["restart"], r["selected"]), []).append(r)
        for (lr, restart, kept), rows in runs.items():
            epochs, valid = [r["epoch"] for r in rows], [r["valid_nll"] for r in rows]
            ax.plot(epochs, valid, ls="-" if kept else ":", color=f"C{i % 10}", lw=1.2 if kept else 0.8,
                    label=name if kept else None)
            if kept:
                ax.plot(epochs[-1:], valid[-1:], "o", color=f"C{i % 10}", ms=3)
    ax.set_xlabel("epoch / sweep")
    ax.set_ylabel("validation NLL (nats)")
    ax.set_title("Convergence: validation NLL of every model (kept candidate solid)")
    if models:
        ax.legend(fontsize=6, ncol=2 if len(models) > 12 else 1)
    save_figure(fig, path)


def structure_bars(table: Table, path: str) -> None:
    """Test NLL per structure, grouped by family: the images (left bar) beside the shuffled pixels (right bar)."""
    plt = pyplot()
    labels = list(dict.fromkeys(f"{r['family']}:{r['structure']}" for r in table.rows))
    fig, ax = plt.subplots(figsize=(max(6, 0.8 * len(labels)), 4.5))
    for j, (variant, color) in enumerate((("images", "C0"), ("shuffled", "C1"))):
        xs, ys, err = [], [], []
        for i, label in enumerate(labels):
            family, name = label.split(":", 1)
            rows = table.where(variant=variant, family=family, structure=name)
            if rows:
                r = rows[0]
                xs.append(i + (j - 0.5) * 0.4)
                ys.append(r["test_nll"])
                err.append(max(r.get("test_nll_stderr") or 0.0, 0.5 * (r.get("ais_gap") or 0.0)))
        ax.bar(xs, ys, width=0.4, yerr=err, color=color, label=variant, capsize=2)
    if table.rows:
        low = min(r["test_nll"] for r in table.rows)
        ax.set_ylim(low - 15, max(r["test_nll"] for r in table.rows) + 10)
    ax.set_xticks(range(len(labels)))
    ax.set_xticklabels(labels, rotation=40, ha="right", fontsize=8)
    ax.set_ylabel("test NLL (nats)")
    ax.set_title("Structure from geometry or from the data's mutual information")
    ax.legend()
    save_figure(fig, path)
