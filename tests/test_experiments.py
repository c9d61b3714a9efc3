"""Experiments, tables and the report on tiny data (end to end, seconds), and the claim checks."""
import json
import math
import os

import numpy as np
import pytest
import torch

from bornmachine import MPS, TTN
from comparison import bipartitions as bp
from comparison import experiments, report
from comparison.capacity import network_bound, rbm_bound
from comparison.cli import main as cli_main
from comparison.information import data_renyi2, ksg_mutual_information, plugin_mutual_information
from comparison.table import RowStore, Table
from rbm import RBM

SHAPE = (6, 6)


@pytest.fixture(scope="module")
def tiny_data():
    """Correlated 6×6 binary images: a random blob of rows and columns switched on, plus noise."""
    rng = np.random.default_rng(0)
    n = 240
    rows = rng.random((n, 6, 1)) < 0.35
    cols = rng.random((n, 1, 6)) < 0.35
    x = (rows & cols) | (rng.random((n, 6, 6)) < 0.05)
    return x.reshape(n, 36).astype(np.uint8)


# ------------------------------------------------------------------------------------------------
# tables
# ------------------------------------------------------------------------------------------------
def test_table_files_and_markdown(tmp_path):
    t = Table("t", ["a", "b", "c"], [{"a": 1, "b": 0.5, "c": "x"}, {"a": 2, "b": math.inf}], shown=["a", "b"])
    paths = t.write(tmp_path)
    assert [os.path.basename(p) for p in paths] == ["t.csv", "t.json"]
    with open(paths[0]) as f:
        assert f.read().splitlines() == ["a,b,c", "1,0.5,x", "2,inf,"]
    with open(paths[1]) as f:
        saved = json.load(f)
    assert saved["columns"] == ["a", "b", "c"] and saved["rows"][0] == {"a": 1, "b": 0.5, "c": "x"}
    md = t.to_markdown().splitlines()
    assert md[0] == "| a | b |" and md[2] == "| 1 | 0.500 |" and md[3] == "| 2 | ∞ |"
    assert t.column("a") == [1, 2] and t.where(a=2)[0]["b"] == math.inf
    with pytest.raises(ValueError, match="not in"):
        Table("t", ["a"], [{"z": 1}])


def test_row_store_resumes_and_drops_other_settings(tmp_path):
    path = tmp_path / "store.json"
    s = RowStore(path, {"k": 1})
    s.put("x", {"v": 1.5})
    assert RowStore(path, {"k": 1}).get("x") == {"v": 1.5}
    assert "x" not in RowStore(path, {"k": 2})  # other settings: old rows are not reused
    path.write_text("{not json")
    with pytest.raises(ValueError, match="corrupt"):
        RowStore(path, {"k": 1})


def test_parse_name():
    assert experiments.parse_name("up_down(row=14)") == ("up_down", 14)
    assert experiments.parse_name("checkerboard(block=2)") == ("checkerboard", 2)
    assert experiments.parse_name("random(seed=3)") == ("random", 3)
    assert experiments.parse_name("custom") == ("custom", None)


def test_local_windows_grow_and_1d_crosses_a_row():
    n = 784
    budgets = [n + h * (n + 1) for h in (4, 8, 16, 32, 64)]
    w1 = [experiments.local_windows(b, (28, 28))[0] for b in budgets]
    w2 = [experiments.local_windows(b, (28, 28))[1] for b in budgets]
    assert w1 == sorted(w1) and w2 == sorted(w2)
    assert w1[2] < 28 < w1[3]  # 16 → 32 dense-equivalent hidden units: the 1D window starts to span two rows
    for b, L, k in zip(budgets, w1, w2):  # the chosen window's convolution layer is near the budget
        assert abs((n - L + 1) * (L + 1) + n - b) < 0.25 * b
        assert k <= 14


def test_profile_bipartitions():
    full = experiments.profile_bipartitions((28, 28))
    assert len(full) == 73 and {b.name for b in full} == {b.name for b in bp.standard_set((28, 28))}
    half = experiments.profile_bipartitions((28, 28), step=2)
    names = [b.name for b in half]
    assert "up_down(row=14)" in names and "up_down(row=3)" not in names and len(half) == 13 + 13 + 3 + 13 + 3


# ------------------------------------------------------------------------------------------------
# information table
# ------------------------------------------------------------------------------------------------
def test_information_table_matches_direct_calls(tiny_data, tmp_path):
    gen = torch.Generator().manual_seed(1)
    mps = MPS(SHAPE, 3, generator=gen)
    ttn = TTN(SHAPE, 2, generator=gen)
    rbm = RBM(36, 5, generator=gen)
    bips = [bp.up_down(SHAPE, 3), bp.checkerboard(SHAPE, 1), bp.center_margin(SHAPE, 1)]
    store = RowStore(tmp_path / "info.json", {})
    t = experiments.information_table(tiny_data, bips, {"m": mps, "t": ttn, "r": rbm}, model_samples=200, seed=0,
                                      store=store, progress=False)
    assert len(t) == 3 and "r_bound" in t.columns and "r_s2" not in t.columns
    for row, b in zip(t.rows, bips):
        assert row["ksg_mi"] == pytest.approx(float(ksg_mutual_information(tiny_data, b, seed=0)))
        assert row["plugin_mi"] == pytest.approx(float(plugin_mutual_information(tiny_data, b)))
        assert row["data_s2"] == pytest.approx(float(data_renyi2(tiny_data, b)))
        assert row["m_s2"] == pytest.approx(mps.renyi2(b.sites_x.tolist()).value)
        assert row["t_s2"] == pytest.approx(ttn.renyi2(b.sites_x.tolist()).value)
        assert row["m_bound"] == pytest.approx(network_bound(mps, b)) and row["m_s2"] <= row["m_bound"] + 1e-9
        assert row["r_bound"] == pytest.approx(rbm_bound(rbm.mask, b))
        assert row["m_s2_method"] == "exact" and row["m_mi_stderr"] > 0
    again = experiments.information_table(tiny_data, bips, {"m": mps, "t": ttn, "r": rbm}, model_samples=200,
                                          seed=0, store=RowStore(tmp_path / "info.json", {}), progress=False)
    assert again.rows == t.rows  # re-read from the store


def test_information_table_cache_keys_masks_not_names(tiny_data, tmp_path):
    store = RowStore(tmp_path / "info.json", {})
    a = bp.from_mask(bp.up_down(SHAPE, 2).mask)  # both named "custom"
    b = bp.from_mask(bp.checkerboard(SHAPE, 1).mask)
    t = experiments.information_table(tiny_data, [a, b], store=store, progress=False)
    assert t.rows[0]["plugin_mi"] == pytest.approx(float(plugin_mutual_information(tiny_data, a)))
    assert t.rows[1]["plugin_mi"] == pytest.approx(float(plugin_mutual_information(tiny_data, b)))
    assert t.rows[0]["plugin_mi"] != t.rows[1]["plugin_mi"]


def test_information_table_rejects_bad_input(tiny_data):
    with pytest.raises(ValueError, match="no bipartitions"):
        experiments.information_table(tiny_data, [])
    with pytest.raises(ValueError):
        experiments.information_table(tiny_data[:, :30], [bp.up_down(SHAPE, 3)], progress=False)
    with pytest.raises(ValueError):
        experiments.information_table(tiny_data * 2, [bp.up_down(SHAPE, 3)], progress=False)


# ------------------------------------------------------------------------------------------------
# experiments end to end (tiny)
# ------------------------------------------------------------------------------------------------
def test_mi_profile_end_to_end(tiny_data, tmp_path):
    mps = MPS(SHAPE, 2, generator=torch.Generator().manual_seed(0))
    res = experiments.mi_profile(tiny_data, SHAPE, models={"mps": mps}, model_samples=100, out=str(tmp_path),
                                 progress=False)
    table = res.tables["fig3"]
    assert len(table) == len(experiments.profile_bipartitions(SHAPE))
    for f in ("fig3.csv", "fig3.json", "fig3.png", "summary.md", "information.json"):
        assert (tmp_path / f).exists(), f
    assert any("rises toward the centre" in line for line in res.findings)
    assert "![" in (tmp_path / "summary.md").read_text()


def test_rbm_architectures_end_to_end_and_resume(tiny_data, tmp_path):
    n = 36
    budgets = [n + 3 * (n + 1), n + 6 * (n + 1)]
    kw = dict(budgets=budgets, max_epochs=3, patience=1, lrs=(0.01, 0.03), eval_ais=(8, 20), ais_chains=8,
              ais_betas=50, n_gibbs=5, out=str(tmp_path), progress=False)
    res = experiments.rbm_architectures(tiny_data[:200], tiny_data[200:], SHAPE, **kw)
    t = res.tables["fig4"]
    assert len(t) == 2 * 4 and {r["kind"] for r in t.rows} == set(experiments.RBM_KINDS)
    curves = res.tables["convergence"]
    stored = json.loads((tmp_path / "runs.json").read_text())["rows"]
    for r in t.rows:
        assert abs(r["n_params"] - r["budget"]) <= 0.01 * r["budget"]
        assert math.isfinite(r["test_nll"]) and r["test_nll"] > 0 and math.isfinite(r["valid_nll"])
        assert r["lr"] in (0.01, 0.03) and 1 <= r["epochs"] <= 3 and isinstance(r["converged"], bool)
        mine = [c for c in curves.rows if c["model"] == r["model_file"].removesuffix(".npz")]
        assert {c["lr"] for c in mine} == {0.01, 0.03}  # both candidates' curves are written
        # the candidates are compared by the final log Z: the kept one has the lowest such validation NLL, and
        # its estimate is the one reported (evaluated once, not again)
        candidates = stored[r["model_file"].removesuffix(".npz")]["candidates"]
        (kept,) = [c for c in candidates if c["lr"] == r["lr"] and c["restart"] == r["restart"]]
        assert kept["valid_nll_rescored"] == min(c["valid_nll_rescored"] for c in candidates)
        assert r["valid_nll"] == pytest.approx(kept["valid_nll_rescored"], abs=1e-9)
        scores = dict(part.split(": ") for part in r["lrs_tried"].split("; "))  # the table shows the comparison
        assert set(scores) == {"0.01", "0.03"} and float(scores[f"{r['lr']:g}"]) == pytest.approx(r["valid_nll"], abs=0.006)
    for r in t.rows:  # each local kind also tried a smaller window; the kept one has the lower validation NLL
        if r["kind"] in ("local_1d", "local_2d") and r["windows_tried"]:
            tried = dict(part.split(": ") for part in r["windows_tried"].split("; "))
            assert len(tried) == 2 and r["window"] in tried
            assert float(tried[r["window"]]) == pytest.approx(min(map(float, tried.values())), abs=0.006)
            losers = {c["model"] for c in curves.rows if c["model"].startswith(f"{r['kind']}-{r['budget']}")} - {
                r["model_file"].removesuffix(".npz")}
            assert len(losers) == 1 and not any(c["selected"] for c in curves.rows if c["model"] in losers)
    assert any(r["windows_tried"] for r in t.rows if r["kind"] == "local_1d")
    for f in ("fig4.png", "fig4.csv", "convergence.csv", "convergence.png"):
        assert (tmp_path / f).exists(), f
    assert any("2D-local has the lowest test NLL at every budget" in line for line in res.findings)
    again = experiments.rbm_architectures(tiny_data[:200], tiny_data[200:], SHAPE, **kw)
    assert again.tables["fig4"].rows == t.rows  # resumed from runs.json, not retrained


def test_born_vs_boltzmann_end_to_end(tiny_data, tmp_path):
    kw = dict(bond_dims=(2, 3), max_sweeps=2, patience=1, rbm_max_epochs=2, rbm_patience=1, eval_ais=(8, 20),
              ais_chains=8, ais_betas=50, n_gibbs=5, model_samples=100, out=str(tmp_path), progress=False)
    res = experiments.born_vs_boltzmann(tiny_data[:200], tiny_data[200:], SHAPE, **kw)
    nll, cuts = res.tables["nll"], res.tables["cuts"]
    fams = {r["family"] for r in nll.rows}
    assert fams == {"mps-row-major", "mps-snake", "ttn", "rbm-local_2d", "rbm-dense"}
    for r in nll.where(family="mps-row-major"):  # RBM budgets follow the MPS's counts (dense: steps of n + 1)
        tol = 0.01 * r["n_params"] + (36 + 1) / 2
        assert len([q for q in nll.rows if q["family"].startswith("rbm") and abs(q["n_params"] - r["n_params"]) <= tol]) == 2
    for r in nll.rows:
        assert math.isfinite(r["valid_nll"]) and 1 <= r["epochs"] <= 2
    for m in ("mps-row-major-D3", "mps-snake-D3", "ttn-D3"):
        for s2, bound in zip(cuts.column(f"{m}_s2"), cuts.column(f"{m}_bound")):
            assert s2 <= bound + 1e-9
    for f in ("nll.csv", "cuts.json", "convergence.csv", "nll_vs_params.png", "convergence.png", "cuts.png",
              "samples_ttn.png", "entropy_profile.png", "summary.md"):
        assert (tmp_path / f).exists(), f
    assert len(list((tmp_path / "models").glob("mps-snake-D3-*.ckpt.npz"))) == 1
    # the structure experiment's bisection tree at the same bond is this run: copied from its models, not retrained
    from comparison import structure

    arch = structure.structure_experiment(tiny_data[:200], tiny_data[200:], SHAPE, mps_bond=3, ttn_bond=3, max_sweeps=2,
                                          patience=1, structures=["ttn:bisection"], out=str(tmp_path / "structure"),
                                          reuse=str(tmp_path / "models"), progress=False)
    tree = arch.tables["structure"].where(variant="images", structure="bisection")[0]
    assert tree["test_nll"] == nll.where(family="ttn", size="D=3")[0]["test_nll"]
    [original] = (tmp_path / "models").glob("ttn-D3-*.ckpt.npz")
    assert (tmp_path / "structure" / "models" / "images" / original.name).read_bytes() == original.read_bytes()
    assert not list((tmp_path / "structure" / "models" / "shuffled").glob(original.name))  # other data: trained
    again = experiments.born_vs_boltzmann(tiny_data[:200], tiny_data[200:], SHAPE, **dict(kw, max_sweeps=3))
    assert len(list((tmp_path / "models").glob("mps-snake-D3-*.ckpt.npz"))) == 2  # other settings: trained anew
    assert again.tables["nll"].where(family="mps-snake", size="D=3")[0]["epochs"] >= 2
    assert any("A Born machine beats the RBMs at every matched budget" in line for line in res.findings)


def test_born_vs_boltzmann_caps(tiny_data, tmp_path):
    kw = dict(bond_dims=(2, 3), max_sweeps=1, patience=1, rbm_max_epochs=1, rbm_patience=1, eval_ais=(8, 20),
              ais_chains=8, ais_betas=50, n_gibbs=5, model_samples=50, out=str(tmp_path), progress=False)
    res = experiments.born_vs_boltzmann(tiny_data[:200], tiny_data[200:], SHAPE, ttn_max_bond=2,
                                        rbm_max_params=300, **kw)
    nll = res.tables["nll"]
    assert [r["size"] for r in nll.where(family="ttn")] == ["D=2"]
    assert {r["size"] for r in nll.where(family="mps-snake")} == {"D=2", "D=3"}
    rbm_params = [r["n_params"] for r in nll.rows if r["family"].startswith("rbm")]
    assert rbm_params and max(rbm_params) <= 1.02 * 300
    assert "ttn-D2" in res.models and "mps-snake-D3" in res.models
    assert any("no RBM at this budget" in line for line in res.findings)


def test_report_tiny(tiny_data, tmp_path):
    data = (tiny_data[:200], tiny_data[200:], SHAPE)
    ov = dict(bond_dims=[2], max_sweeps=1, rbm_hidden=[3, 6], rbm_max_epochs=1, eval_ais=[8, 20], ais_chains=8,
              ais_betas=50, n_gibbs=5, model_samples=50, structure_bonds=[3, 3])
    index = report.report(str(tmp_path), data=data, overrides=ov, progress=False)
    with open(index) as f:
        text = f.read()
    for needle in ("## Headlines", "fig3/fig3.png", "fig4/fig4.png", "born_vs_boltzmann/cuts.png", "ln N",
                   "structure/structure.png", "born_vs_boltzmann/convergence.png", "not decided"):
        assert needle in text, needle
    meta = json.loads((tmp_path / "report.json").read_text())
    assert meta["settings"]["bond_dims"] == [2] and set(meta["findings"]) == {"fig3", "fig4", "born_vs_boltzmann",
                                                                                       "structure"}
    with pytest.raises(ValueError, match="unknown setting"):
        report.report(str(tmp_path), data=data, overrides={"nope": 1})
    with pytest.raises(ValueError, match="unknown preset"):
        report.report(str(tmp_path), preset="huge", data=data)


def test_cli_reports_missing_dataset_cleanly(tmp_path, capsys):
    from bornmachine.datasets import FASHION_MNIST_DIR

    if os.path.isdir(FASHION_MNIST_DIR):
        pytest.skip("dataset-fashion-mnist is installed")
    assert cli_main(["fig4", "--data", "fashion-mnist", "--out", str(tmp_path), "--no-progress"]) == 2
    assert "dataset-fashion-mnist" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli_main(["report", "--data", "cifar"])


def test_fig4_findings_detect_the_row_crossing():
    rows = []
    for b, w1, nll1 in ((1000, 10, 120.0), (2000, 20, 118.0), (4000, 40, 100.0), (8000, 60, 99.0)):
        rows += [{"budget": b, "kind": "local_1d", "n_params": b, "window": str(w1), "test_nll": nll1},
                 {"budget": b, "kind": "local_2d", "n_params": b, "window": "5x5", "test_nll": nll1 - 5},
                 {"budget": b, "kind": "dense", "n_params": b, "window": None, "test_nll": nll1 + 5}]
    for r in rows:
        r.update(converged=True, test_nll_stderr=0.5, ais_gap=1.0)
    t = Table("fig4", ["budget", "kind", "n_params", "window", "test_nll", "converged", "test_nll_stderr", "ais_gap"],
              rows)
    lines = experiments.fig4_findings(t, (28, 28))
    assert "at every budget (paper): holds (4 of 4 budgets decided in its favour, 0 against" in lines[0]
    assert "Dense has the highest test NLL at every budget (paper): holds" in lines[1]
    assert "starts to span two image rows" in lines[2] and "20 → 40" in lines[2]
    rows[0]["converged"] = False  # one unconverged model: its budget cannot be decided
    lines = experiments.fig4_findings(Table("fig4", t.columns, rows), (28, 28))
    assert "at every budget (paper): not decided (3 of 4" in lines[0]
    assert any("Not converged" in line and "local_1d@1000" in line for line in lines)
    rows[0].update(converged=True, test_nll=113.5)  # 1D below 2D (115) by more than the margins (0.5 + 0.5)
    lines = experiments.fig4_findings(Table("fig4", t.columns, rows), (28, 28))
    assert "at every budget (paper): does not hold" in lines[0]


def test_select_compares_candidates_by_the_rescore_when_given(tmp_path):
    from types import SimpleNamespace

    from comparison.selection import select

    curve_min = {0.1: 90.0, 0.2: 95.0}  # the per-epoch curves favour lr 0.1 ...
    precise = {0.1: 99.0, 0.2: 97.0}  # ... a precise score of the trained models favours lr 0.2

    def train_one(lr, restart, checkpoint):
        history = [{"epoch": 1, "train_nll": 120.0, "valid_nll": curve_min[lr] + 5}, {"epoch": 2, "train_nll": 110.0,
                                                                                     "valid_nll": curve_min[lr]}]
        return SimpleNamespace(lr=lr), SimpleNamespace(history=history, best_epoch=2)

    calls = []

    def rescore(model):
        calls.append(model.lr)
        return precise[model.lr], f"detail {model.lr}"

    plain = select(train_one, [0.1, 0.2], 1, "m", str(tmp_path))
    assert plain.lr == 0.1 and plain.rescored is None and "valid_nll_rescored" not in plain.candidates[0]
    chosen = select(train_one, [0.1, 0.2], 1, "m", str(tmp_path), rescore=rescore)
    assert chosen.lr == 0.2 and chosen.rescored == "detail 0.2" and calls == [0.1, 0.2]
    assert [c["valid_nll_rescored"] for c in chosen.candidates] == [99.0, 97.0]
    assert chosen.valid_nll == 95.0  # the kept candidate's own curve minimum
    one = select(train_one, [0.1], 1, "m", str(tmp_path), rescore=rescore)  # a single candidate: nothing to compare
    assert one.lr == 0.1 and one.rescored is None and calls == [0.1, 0.2]


def test_converged_looks_at_the_last_fifth_of_the_curve():
    from comparison.selection import converged

    assert converged([150, 120, 110, 109.5, 109.4, 109.6, 109.3, 109.8, 109.9, 110.0])
    assert not converged([150, 140, 130, 120, 115, 112, 110, 108, 104, 102])  # still 2 nats a step
    assert not converged([100.0]) and not converged([None, 100.0])  # one evaluated epoch tells nothing
    assert converged([100.0, 99.5]) and not converged([100.0, 98.0])
    assert converged([120, 110, 105, 104.5, 104.2], tolerance=1.0) and not converged([120, 110, 105, 104.5, 103.0])


def test_verdicts_need_convergence_and_a_gap_beyond_the_uncertainties():
    from comparison import verdicts

    a = {"test_nll": 100.0, "converged": True, "test_nll_stderr": 0.2, "ais_gap": 2.0}  # uncertainty 1.0
    b = {"test_nll": 102.5, "converged": True}  # exact: uncertainty 0
    assert verdicts.uncertainty(a) == 1.0 and verdicts.uncertainty(b) == 0.0
    assert verdicts.better(a, b) == verdicts.HOLDS and verdicts.better(b, a) == verdicts.FAILS
    assert verdicts.better(a, dict(b, test_nll=100.9)) == verdicts.UNDECIDED  # within the AIS uncertainty
    assert verdicts.better(a, dict(b, converged=False)) == verdicts.UNDECIDED  # b might still come down
    assert verdicts.better(dict(a, converged=False), b) == verdicts.HOLDS  # more training only widens a's lead
    assert verdicts.better(b, dict(a, converged=False)) == verdicts.FAILS
    assert verdicts.better(dict(b, converged=False), a) == verdicts.UNDECIDED  # b might still overtake a
    assert verdicts.combine([verdicts.HOLDS, verdicts.UNDECIDED]) == verdicts.UNDECIDED
    assert verdicts.combine([verdicts.HOLDS, verdicts.FAILS]) == verdicts.FAILS
    assert verdicts.combine([]) == verdicts.UNDECIDED and verdicts.best_of(a, [b, b]) == verdicts.HOLDS


def test_structure_experiment_end_to_end_and_resume(tiny_data, tmp_path):
    from comparison import structure

    kw = dict(mps_bond=3, ttn_bond=3, max_sweeps=2, patience=1, rbm_max_epochs=2, rbm_patience=1, eval_ais=(8, 20),
              ais_chains=8, ais_betas=50, n_gibbs=5, out=str(tmp_path), progress=False)
    res = structure.structure_experiment(tiny_data[:200], tiny_data[200:], SHAPE, **kw)
    t = res.tables["structure"]
    assert len(t) == 2 * len(structure.STRUCTURES) and {r["variant"] for r in t.rows} == {"images", "shuffled"}
    mps = t.where(variant="images", family="mps", structure="row-major")[0]
    for r in t.rows:
        assert math.isfinite(r["test_nll"]) and math.isfinite(r["valid_nll"]) and 1 <= r["epochs"] <= 2
        if r["family"] != "rbm":  # images of p = 0 counted (an NLL of ∞ would come with a count > 0)
            assert r["valid_zero_prob"] == 0 and r["test_zero_prob"] == 0
        if r["family"] == "rbm":  # matched to the row-major MPS
            assert abs(r["n_params"] - mps["n_params"]) <= 0.01 * mps["n_params"] + 1
    for f in ("structure.csv", "structure.png", "convergence.csv", "convergence.png", "summary.md"):
        assert (tmp_path / f).exists(), f
    assert any("from-data on shuffled pixels" in line for line in res.findings)
    assert any("restructure='mi'" in line for line in res.findings)
    again = structure.structure_experiment(tiny_data[:200], tiny_data[200:], SHAPE, **kw)
    assert again.tables["structure"].rows == t.rows  # re-read from runs.json
    with pytest.raises(ValueError, match="no structure selected"):
        structure.structure_experiment(tiny_data[:200], tiny_data[200:], SHAPE, structures=["mps:nope"], **kw)


def test_zero_probability_images_are_named_in_the_findings():
    rows = [{"variant": "shuffled", "family": "mps", "structure": "from-data", "valid_zero_prob": 1, "test_zero_prob": 0},
            {"variant": "images", "family": "mps", "structure": "snake", "valid_zero_prob": 0, "test_zero_prob": 0},
            {"variant": "images", "family": "rbm", "structure": "local_2d"}]  # RBMs: p > 0 always, no such columns
    line = experiments.zero_probability_finding(rows)
    assert "shuffled mps:from-data (1 validation, 0 test)" in line and "snake" not in line and "rbm" not in line
    assert experiments.zero_probability_finding(rows[1:]) is None


def test_shuffle_pixels_is_a_fixed_permutation(tiny_data):
    from comparison.structure import shuffle_pixels

    x = torch.from_numpy(tiny_data)
    y, perm = shuffle_pixels(x, 1)
    assert sorted(perm.tolist()) == list(range(36)) and torch.equal(y, x[:, perm])
    assert np.array_equal(shuffle_pixels(x[:5], 1)[1], perm)  # the same permutation for train and test


def test_renyi2_retries_the_swap_estimator_with_more_samples_and_leaves_failures_out():
    from bornmachine.estimate import Estimate

    class Model:  # exact refused; the swap estimator fails below 400 samples
        def __init__(self):
            self.calls = []

        def renyi2(self, sites, method, n_samples=None, generator=None):
            self.calls.append((method, n_samples))
            if method == "exact" or n_samples < 400:
                raise ValueError("too expensive" if method == "exact" else "swap estimator mean is -0.1 ≤ 0")
            return Estimate(1.5, 0.1)

    m = Model()
    s2, method = experiments._renyi2(m, [0, 1], 100, None)
    assert (s2.value, method) == (1.5, "mc") and m.calls == [("exact", None), ("mc", 100), ("mc", 400)]
    assert experiments._renyi2(Model(), [0], 10, None) == (None, "mc: too few samples")  # 10, 40, 160: all fail


def test_bvb_findings_report_a_cut_without_an_s2_estimate():
    """A model whose S₂ at the checkerboard cut could not be estimated (swap estimator: too few samples) is
    said so in the findings, not a crash."""
    cuts = Table("cuts", ["bipartition", "family", "position", "ksg_mi", "ttn_s2", "ttn_bound", "mps_s2", "mps_bound"],
                 [{"bipartition": "checkerboard(block=1)", "family": "checkerboard", "position": 1, "ksg_mi": 3.0,
                   "ttn_s2": None, "ttn_bound": 20.0, "mps_s2": 5.5, "mps_bound": 30.0}])
    nll = Table("nll", ["family", "n_params", "test_nll", "converged"], [])
    lines = experiments.bvb_findings(nll, cuts, {"ttn": None, "mps": None})
    checker = [line for line in lines if line.startswith("Checkerboard(1)")]
    assert checker == ["Checkerboard(1) cut, nats: data KSG MI 3.00; ttn S₂ not estimated (bound 20.0); "
                       "mps S₂ 5.50 (bound 30.0)."]
    assert "ttn: no S₂ against a finite min-cut bound; 0 cuts above the bound (must be 0); 1 cuts without an S₂ " \
           "estimate (swap estimator: too few samples)." in lines
