"""Tests of the command line ``bornmachine train|sample|evaluate|entropy`` (``bornmachine.cli.main``).

``main(argv)`` is called in-process (output captured with capsys) on tmp_path folders; one test runs
``python -m bornmachine --help`` in a subprocess to check the module entry point. The trained
bars-and-stripes run is shared by the read-only commands (module-scoped fixture).
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from bornmachine import MPS, Tree, datasets, load, orderings
from bornmachine.cli import main

ROOT = Path(__file__).resolve().parents[1]
OUTPUTS = ("model.npz", "samples.png", "entanglement.png", "history.json", "checkpoint.npz")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
SWEEP_LINE = re.compile(r"^sweep +(\d+) +train NLL +([-\d.]+) +valid NLL +([-\d.]+) +max bond +(\d+) +[\d.]+ s$")
TEST_LINE = re.compile(r"^test NLL ([-\d.]+) \((\d+) images", re.M)

BAS_ARGS = ["train", "--data", "bars-and-stripes", "--valid-fraction", "0", "--max-bond", "16", "--lr", "0.1", "--steps", "3", "--sweeps", "3",
            "--n-samples", "8", "--quiet"]


def run(argv, capsys) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def sweep_lines(out: str) -> list[tuple[int, float, float, int]]:
    rows = []
    for line in out.splitlines():
        m = SWEEP_LINE.match(line.strip())
        if m:
            rows.append((int(m[1]), float(m[2]), None if m[3] == "-" else float(m[3]), int(m[4])))
    return rows


def assert_png(path: Path):
    assert path.is_file() and path.read_bytes()[:8] == PNG_MAGIC


@pytest.fixture(scope="module")
def bas_run(tmp_path_factory):
    """A 3-sweep bars-and-stripes training run: (output folder, stdout, stderr); shared, read-only."""
    out_dir = tmp_path_factory.mktemp("bas")
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(BAS_ARGS + ["--out", str(out_dir)])
    assert code == 0, err.getvalue()
    return out_dir, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def bas_dir(bas_run):
    return bas_run[0]


def copy_run(src: Path, dst: Path, names=OUTPUTS) -> Path:
    dst.mkdir(parents=True)
    for name in names:
        shutil.copy2(src / name, dst / name)
    return dst


# --- train ----------------------------------------------------------------------------------------

def test_train_patience_stops_on_the_validation_rows_and_keeps_the_best_sweep(tmp_path, capsys):
    out_dir = tmp_path / "es"
    code, out, err = run(["train", "--data", "mnist5k", "--limit", 60, "--max-bond", 16, "--lr", "0.2", "--sweeps", 12,
                          "--patience", 1, "--n-samples", 4, "--quiet", "--out", out_dir], capsys)
    assert code == 0, err
    rows = sweep_lines(out)
    valid = [r[2] for r in rows]
    summary = json.loads((out_dir / "result.json").read_text())
    best = int(np.argmin(valid)) + 1
    assert summary["best_epoch"] == best and len(rows) == best + 1 < 12  # 60 rows overfit at bond 16
    x, _ = datasets.load("mnist5k", split="train")
    _, valid_rows = datasets.split_validation(x[:60].reshape(60, -1), 0.1, seed=0)
    assert load(out_dir / "model.npz").nll(valid_rows) == pytest.approx(valid[best - 1], abs=1e-3)
    assert f"tensors of sweep {best}" in out
    code, out, err = run(["train", "--data", "mnist5k", "--valid-fraction", 0, "--patience", 2, "--out", out_dir], capsys)
    assert code == 2 and "--patience" in err and "--valid-fraction" in err


def test_train_bars_and_stripes_writes_outputs_and_prints_nll(bas_run):
    out_dir, out, err = bas_run
    for name in OUTPUTS:
        assert (out_dir / name).is_file(), name
    assert_png(out_dir / "samples.png")
    assert_png(out_dir / "entanglement.png")
    assert "bars-and-stripes" in out and "14 train" in out
    rows = sweep_lines(out)
    assert [r[0] for r in rows] == [1, 2, 3]
    assert all(np.isfinite(r[1]) and r[2] is None and r[3] <= 16 for r in rows)  # no validation rows
    assert rows[-1][1] < rows[0][1]
    assert "wrote" in out and "model.npz" in out
    assert err == ""  # --quiet: no progress bar

    history = json.loads((out_dir / "history.json").read_text())
    assert [r["epoch"] for r in history] == [1, 2, 3]
    assert {"epoch", "train_nll", "valid_nll", "time_s", "max_bond", "zero_prob"} <= set(history[0])
    for row, record in zip(rows, history):  # printed to 4 decimals
        assert row[1] == pytest.approx(record["train_nll"], abs=1e-4)
        assert row[3] == record["max_bond"]

    model = load(out_dir / "model.npz")
    assert isinstance(model, MPS) and model.n_sites == 9 and model.shape == (3, 3)
    assert max(model.bond_dims) <= 16
    x = datasets.bars_and_stripes(3, 3)
    assert model.nll(x) == pytest.approx(history[-1]["train_nll"], rel=1e-10)
    assert model.nll(x) < np.log(14) + 0.05  # these settings learn bars and stripes (see test_training)


def test_train_rerun_resumes_without_new_sweeps(bas_dir, tmp_path, capsys):
    out_dir = copy_run(bas_dir, tmp_path / "run", names=("checkpoint.npz",))
    code, out, err = run(BAS_ARGS + ["--out", out_dir], capsys)
    assert code == 0, err
    assert sweep_lines(out) == []  # all 3 requested sweeps are in the checkpoint
    first, again = load(bas_dir / "model.npz"), load(out_dir / "model.npz")
    assert all(torch.equal(a, b) for a, b in zip(first.tensors, again.tensors))
    history, history2 = (json.loads((d / "history.json").read_text()) for d in (bas_dir, out_dir))
    assert [{k: v for k, v in r.items() if k != "time_s"} for r in history2] == \
        [{k: v for k, v in r.items() if k != "time_s"} for r in history]
    for name in OUTPUTS:
        assert (out_dir / name).is_file(), name


def test_train_resumes_an_interrupted_run(bas_dir, tmp_path, capsys):
    """A run stopped after sweep 1 continues from its checkpoint with sweeps 2-3 and ends where an
    uninterrupted run ends (bit-identical tensors)."""
    from bornmachine import SweepTrainer

    class Stop(Exception):
        pass

    def stop(record):
        raise Stop

    # the interrupted run: what `train` builds for BAS_ARGS (seed 0), stopped after its first sweep
    part_dir = tmp_path / "part"
    model = MPS((3, 3), 2, generator=torch.Generator().manual_seed(0))
    trainer = SweepTrainer(model, max_bond=16, lr=0.1, n_steps=3, n_sweeps=3, seed=0)
    x = datasets.bars_and_stripes(3, 3)
    with pytest.raises(Stop):
        trainer.fit(x, valid=x, callback=stop, checkpoint=part_dir / "checkpoint.npz", progress=False)
    code, out, err = run(BAS_ARGS + ["--out", part_dir], capsys)
    assert code == 0, err
    assert [r[0] for r in sweep_lines(out)] == [2, 3]
    a, b = load(bas_dir / "model.npz"), load(part_dir / "model.npz")
    assert all(torch.equal(x, y) for x, y in zip(a.tensors, b.tensors))


def test_train_with_other_settings_on_an_existing_checkpoint_fails_cleanly(bas_dir, tmp_path, capsys):
    out_dir = copy_run(bas_dir, tmp_path / "run", names=("checkpoint.npz",))
    args = [a if a != "0.1" else "0.2" for a in BAS_ARGS]  # another learning rate
    code, out, err = run(args + ["--out", out_dir], capsys)
    assert code != 0
    assert "error" in err and "other settings" in err
    assert not (out_dir / "model.npz").exists()


def test_train_mnist5k_subset_float32_and_ordering(tmp_path, capsys):
    out_dir = tmp_path / "mnist"
    code, out, err = run(["train", "--data", "mnist5k", "--limit", 50, "--max-bond", 4, "--sweeps", 1, "--quiet",
                          "--dtype", "float32", "--ordering", "snake", "--n-samples", 4, "--out", out_dir], capsys)
    assert code == 0, err
    for name in OUTPUTS:
        assert (out_dir / name).is_file(), name
    assert "45 train / 5 validation / 50 test" in out
    rows = sweep_lines(out)
    assert len(rows) == 1 and rows[0][3] <= 4
    assert 0 < rows[0][1] < 784 * np.log(2) and 0 < rows[0][2] < 784 * np.log(2)  # better than uniform
    model = load(out_dir / "model.npz")
    assert model.n_sites == 784 and model.dtype == torch.float32 and model.shape == (28, 28)
    assert max(model.bond_dims) <= 4
    assert model.ordering.tolist() == orderings.snake((28, 28)).tolist()
    assert all(torch.isfinite(t).all() for t in model.tensors)

    m = TEST_LINE.search(out)
    test_nll, n_test = float(m[1]), int(m[2])
    summary = json.loads((out_dir / "result.json").read_text())
    assert n_test == summary["n_test"] == 50 and summary["n_valid"] == 5 and summary["n_train"] == 45
    assert summary["test_nll"] == pytest.approx(test_nll, abs=1e-4) and summary["best_epoch"] is None

    # evaluate on the same subset reproduces the printed test NLL; the validation rows came from the training rows
    code, out, err = run(["evaluate", out_dir / "model.npz", "--data", "mnist5k", "--limit", 50], capsys)
    assert code == 0, err
    result = json.loads(out)
    assert result["test_nll"] == pytest.approx(test_nll, abs=2e-3)
    train, _ = datasets.load("mnist5k", split="train")
    fit_rows, valid_rows = datasets.split_validation(train[:50].reshape(50, -1), 0.1, seed=0)
    assert model.nll(valid_rows) == pytest.approx(rows[0][2], abs=2e-3)
    assert model.nll(fit_rows) == pytest.approx(rows[0][1], abs=2e-3)
    assert result["n_params"] == model.n_params and result["max_bond"] == max(model.bond_dims)


def test_train_env_dtype_reaches_the_sweep_trainer(tmp_path, capsys, monkeypatch):
    import bornmachine.cli as cli

    seen = []

    class Spy(cli.SweepTrainer):
        def __init__(self, model, **hyper):
            seen.append(hyper["env_dtype"])
            super().__init__(model, **hyper)

    monkeypatch.setattr(cli, "SweepTrainer", Spy)
    for option in ([], ["--env-dtype", "float32"]):
        code, out, err = run(["train", "--data", "bars-and-stripes", "--max-bond", 2, "--sweeps", 1, "--quiet",
                              "--n-samples", 2, "--out", tmp_path / str(len(seen)), *option], capsys)
        assert code == 0, err
    assert seen == [None, torch.float32]
    assert json.loads((tmp_path / "1" / "history.json").read_text())[0]["train_nll"] > 0


@pytest.mark.parametrize("model, option", [("mps", "--ordering"), ("ttn", "--tree")])
def test_train_from_data_structure_is_computed_from_the_training_rows_and_saved(tmp_path, capsys, model, option):
    out_dir = tmp_path / model
    code, out, err = run(["train", "--data", "bars-and-stripes", "--model", model, option, "from-data", "--max-bond", 4,
                          "--sweeps", 1, "--n-samples", 4, "--quiet", "--out", out_dir], capsys)
    assert code == 0, err
    saved = load(out_dir / "model.npz")
    train, _ = datasets.by_name("bars-and-stripes", split="train")
    train, _ = datasets.split_validation(train, 0.1, seed=0)  # the rows left for fitting
    if model == "mps":
        assert saved.ordering.tolist() == orderings.from_data(train).tolist()
    else:
        assert saved.tree == Tree.from_data(train)


def test_train_gradient_trainer_with_progress_bar(tmp_path, capsys):
    out_dir = tmp_path / "grad"
    code, out, err = run(["train", "--data", "bars-and-stripes", "--trainer", "gradient", "--max-bond", 4,
                          "--lr", 0.05, "--sweeps", 3, "--batch-size", 7, "--n-samples", 4, "--out", out_dir], capsys)
    assert code == 0, err
    assert "gradient" in err and "epoch" in err  # no --quiet: the tqdm bar goes to stderr
    rows = sweep_lines(out)
    assert [r[0] for r in rows] == [1, 2, 3]
    assert rows[-1][1] < rows[0][1]
    model = load(out_dir / "model.npz")
    assert max(model.bond_dims) == 4  # fixed bonds at --max-bond


# --- evaluate, sample, entropy --------------------------------------------------------------------

def test_evaluate(bas_dir, capsys):
    code, out, err = run(["evaluate", bas_dir / "model.npz", "--data", "bars-and-stripes"], capsys)
    assert code == 0, err
    result = json.loads(out)
    assert set(result) == {"train_nll", "test_nll", "n_params", "max_bond"}
    model = load(bas_dir / "model.npz")
    x = datasets.bars_and_stripes(3, 3)
    assert result["train_nll"] == pytest.approx(model.nll(x), rel=1e-12)
    assert result["test_nll"] == pytest.approx(model.nll(x), rel=1e-12)  # bars-and-stripes: test = train
    assert result["n_params"] == model.n_params and result["max_bond"] == max(model.bond_dims)


def test_sample_npy(bas_dir, tmp_path, capsys):
    out_file = tmp_path / "x.npy"
    code, out, err = run(["sample", bas_dir / "model.npz", "-n", 200, "--seed", 3, "--out", out_file], capsys)
    assert code == 0, err
    x = np.load(out_file)
    assert x.shape == (200, 9) and x.dtype == np.uint8 and set(np.unique(x)) <= {0, 1}
    patterns = {tuple(r) for r in datasets.bars_and_stripes(3, 3)}
    assert np.mean([tuple(r) in patterns for r in x]) > 0.9  # the trained model samples bars and stripes
    assert "200 samples" in out and "nats" in out
    # same seed, same samples; another seed, other samples
    run(["sample", bas_dir / "model.npz", "-n", 200, "--seed", 3, "--out", tmp_path / "y.npy"], capsys)
    assert np.array_equal(np.load(tmp_path / "y.npy"), x)
    run(["sample", bas_dir / "model.npz", "-n", 200, "--seed", 4, "--out", tmp_path / "z.npy"], capsys)
    assert not np.array_equal(np.load(tmp_path / "z.npy"), x)


def test_sample_png(bas_dir, tmp_path, capsys):
    out_file = tmp_path / "x.png"
    code, out, err = run(["sample", bas_dir / "model.npz", "-n", 8, "--out", out_file], capsys)
    assert code == 0, err
    assert_png(out_file)


def test_sample_png_of_a_model_without_image_shape(tmp_path, capsys):
    path = tmp_path / "chain.npz"
    MPS(6, 2, generator=torch.Generator().manual_seed(0)).save(path)
    code, out, err = run(["sample", path, "-n", 3, "--out", tmp_path / "x.png"], capsys)
    assert code == 0, err
    assert_png(tmp_path / "x.png")


def test_entropy_profile(bas_dir, capsys):
    code, out, err = run(["entropy", bas_dir / "model.npz"], capsys)
    assert code == 0, err
    lines = out.strip().splitlines()
    model = load(bas_dir / "model.npz")
    expected = model.entanglement_profile().tolist()
    assert len(lines) == 8
    for k, line in enumerate(lines):
        bond, value = line.split("\t")
        assert int(bond) == k and float(value) == pytest.approx(expected[k], abs=1e-6)
    code, out, _ = run(["entropy", bas_dir / "model.npz", "--alpha", 2], capsys)
    assert code == 0
    values = [float(line.split("\t")[1]) for line in out.strip().splitlines()]
    np.testing.assert_allclose(values, model.entanglement_profile(alpha=2).tolist(), atol=1e-6)


def test_entropy_of_a_site_set(bas_dir, capsys):
    model = load(bas_dir / "model.npz")
    code, out, err = run(["entropy", bas_dir / "model.npz", "--sites", "0,4,8"], capsys)
    assert code == 0, err
    m = re.match(r"S2\(X\) = ([-\d.]+) ± (\S+) nats +\(\|X\| = 3\)", out.strip())
    assert m, out
    assert float(m[1]) == pytest.approx(model.renyi2([0, 4, 8]).value, abs=1e-6)
    assert float(m[2]) == 0.0
    code, out, err = run(["entropy", bas_dir / "model.npz", "--sites", "0,1,2", "--method", "mc", "--seed", 1],
                         capsys)
    assert code == 0, err
    value, stderr = map(float, re.match(r"S2\(X\) = ([-\d.]+) ± (\S+) nats", out.strip()).groups())
    exact = model.renyi2([0, 1, 2]).value
    assert stderr > 0 and abs(value - exact) < 5 * stderr + 1e-9


# --- errors ---------------------------------------------------------------------------------------

def test_corrupt_model_file(tmp_path, capsys):
    bad = tmp_path / "model.npz"
    bad.write_bytes(b"this is not an npz archive")
    for argv in (["evaluate", bad, "--data", "bars-and-stripes"], ["sample", bad, "--out", tmp_path / "x.npy"],
                 ["entropy", bad]):
        code, out, err = run(argv, capsys)
        assert code != 0
        assert "error" in err and "model.npz" in err
        assert "Traceback" not in err
    assert not (tmp_path / "x.npy").exists()


def test_foreign_npz_file(tmp_path, capsys):
    foreign = tmp_path / "foreign.npz"
    np.savez(foreign, a=np.zeros(3))
    code, out, err = run(["entropy", foreign], capsys)
    assert code != 0 and "not a bornmachine model file" in err


def test_missing_model_file(tmp_path, capsys):
    code, out, err = run(["evaluate", tmp_path / "nope.npz", "--data", "bars-and-stripes"], capsys)
    assert code != 0 and "nope.npz" in err


def test_sample_rejects_unknown_output_format(bas_dir, tmp_path, capsys):
    code, out, err = run(["sample", bas_dir / "model.npz", "--out", tmp_path / "x.txt"], capsys)
    assert code != 0 and ".png or .npy" in err
    assert not (tmp_path / "x.txt").exists()


def test_entropy_rejects_bad_sites(bas_dir, capsys):
    code, out, err = run(["entropy", bas_dir / "model.npz", "--sites", "0,99"], capsys)
    assert code != 0 and "99" in err
    code, out, err = run(["entropy", bas_dir / "model.npz", "--sites", "1,1"], capsys)
    assert code != 0 and "duplicate" in err


def test_evaluate_on_data_of_the_wrong_size(bas_dir, capsys):
    code, out, err = run(["evaluate", bas_dir / "model.npz", "--data", "mnist5k", "--limit", 5], capsys)
    assert code != 0 and "784" in err and "9" in err


@pytest.mark.skipif(os.path.isdir(datasets.FASHION_MNIST_DIR), reason="Debian's dataset-fashion-mnist is installed")
def test_train_on_missing_fashion_mnist_says_how_to_get_it(tmp_path, capsys):
    code, out, err = run(["train", "--data", "fashion-mnist", "--quiet", "--out", tmp_path / "r"], capsys)
    assert code != 0 and "fashion-mnist" in err.lower() and "Traceback" not in err


def test_unknown_data_set_lists_the_valid_names(tmp_path, capsys):
    MPS(9, 2, generator=torch.Generator().manual_seed(0)).save(tmp_path / "model.npz")
    for argv in (["train", "--data", "cifar", "--quiet", "--out", tmp_path / "r"],
                 ["evaluate", tmp_path / "model.npz", "--data", "cifar"]):
        code, out, err = run(argv, capsys)
        assert code == 2
        assert "unknown data set 'cifar'" in err and ", ".join(datasets.NAMES) in err and "Traceback" not in err
    assert not (tmp_path / "r" / "model.npz").exists()


@pytest.mark.parametrize("flat", [False, True], ids=["images", "flat"])
def test_train_on_data_files_and_sized_bars_and_stripes(tmp_path, capsys, flat):
    """--data also takes bars-and-stripes:HxW and .npz files (train/test arrays); (N, n) arrays train a chain
    without an image shape."""
    x = datasets.bars_and_stripes(2, 3)
    path = tmp_path / "bas.npz"
    np.savez(path, train=x if flat else x.reshape(-1, 2, 3), test=x[:4])
    for data in ("bars-and-stripes:2x3", path):
        out_dir = tmp_path / ("named" if data != path else "file")
        code, out, err = run(["train", "--data", data, "--max-bond", 4, "--sweeps", 1, "--n-samples", 4, "--quiet",
                              "--out", out_dir], capsys)
        assert code == 0, err
        assert_png(out_dir / "samples.png")
        model = load(out_dir / "model.npz")
        assert model.n_sites == 6
        assert model.shape == (None if flat and data == path else (2, 3))
    assert "9 train / 1 validation / 4 test" in out
    code, out, err = run(["evaluate", tmp_path / "file" / "model.npz", "--data", path], capsys)
    assert code == 0, err
    assert json.loads(out)["test_nll"] == pytest.approx(model.nll(x[:4]), rel=1e-12)


def test_train_rejects_bad_settings(tmp_path, capsys):
    for extra, word in ((["--max-bond", "0"], "max_bond"), (["--lr", "-1"], "lr"), (["--cutoff", "2"], "cutoff"),
                        (["--sweeps", "0"], "n_sweeps"), (["--ordering", "spiral"], "spiral"),
                        (["--model", "ttn", "--tree", "oak"], "oak")):
        code, out, err = run(["train", "--data", "bars-and-stripes", "--quiet", "--out", tmp_path / "r"] + extra,
                             capsys)
        assert code != 0, extra
        assert word in err and "Traceback" not in err


def test_argparse_errors_exit_with_usage(capsys):
    for argv in ([], ["train"], ["train", "--model", "peps", "--out", "x"], ["sample"], ["frobnicate"]):
        with pytest.raises(SystemExit) as info:
            main(argv)
        assert info.value.code == 2
        assert "usage" in capsys.readouterr().err


def test_help(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    for command in ("train", "sample", "evaluate", "entropy"):
        assert command in out


def test_python_dash_m_entry_point(tmp_path):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT)] + [p for p in [os.environ.get("PYTHONPATH")] if p]))
    result = subprocess.run([sys.executable, "-m", "bornmachine", "--help"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "usage: bornmachine" in result.stdout
    assert all(c in result.stdout for c in ("train", "sample", "evaluate", "entropy"))
